/**
 * Every error osØ shows a user is an OsError: a stable code, a one-line message that says what
 * was wrong and what to do, and (for rejections) the filter that refused.
 */
export type ErrorCode =
  | 'invalid' // malformed input: fix the command
  | 'not_found'
  | 'conflict' // exists already, or a stale `expect`
  | 'rejected' // a filter refused
  | 'unavailable' // the log cannot write now (disk full, fsync failed); retry later
  | 'corrupt' // on-disk data failed its checksum
  | 'too_large'
  | 'too_many' // a per-actor or global cap (watches, handlers, queued invocations) is reached
  | 'closed'
  | 'unauthorized'
  | 'forbidden'
  | 'internal';

/** The HTTP status each code answers with, wherever osØ serves HTTP (the API, busØ's routes). */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  too_many: 429,
  rejected: 422,
  unavailable: 503,
  closed: 503,
  corrupt: 500,
  internal: 500,
};

export class OsError extends Error {
  readonly code: ErrorCode;
  readonly filter: string | undefined;
  constructor(code: ErrorCode, message: string, filter?: string) {
    super(message);
    this.name = 'OsError';
    this.code = code;
    this.filter = filter;
  }
  toJSON(): { code: ErrorCode; message: string; filter?: string } {
    return this.filter ? { code: this.code, message: this.message, filter: this.filter } : { code: this.code, message: this.message };
  }
}

/** A filter's refusal: `rejected by NAME: reason`. */
export class Rejection extends OsError {
  constructor(filter: string, reason: string) {
    super('rejected', `rejected by ${filter}: ${reason}`, filter);
  }
}

export const invalid = (message: string): OsError => new OsError('invalid', message);
