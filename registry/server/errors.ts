/** The registry's errors: a code of PROTOCOL.md, its HTTP status, and a one-line message. */
export type RegistryErrorCode = 'invalid' | 'unauthorized' | 'forbidden' | 'not_found' | 'conflict' | 'too_large' | 'rate_limited' | 'internal';

export const STATUS: Record<RegistryErrorCode, 400 | 401 | 403 | 404 | 409 | 413 | 429 | 500> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  internal: 500,
};

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  /** For rate_limited: whole seconds until a retry can succeed. */
  readonly retryAfterS: number | undefined;
  constructor(code: RegistryErrorCode, message: string, retryAfterS?: number) {
    super(message);
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
  get status(): number {
    return STATUS[this.code];
  }
  toJSON(): { code: string; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Any thrown value as a RegistryError (unknown errors become `internal`, their message kept to one line). */
export function asRegistryError(e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  const msg = ((e as Error)?.message ?? String(e)).split('\n')[0];
  return new RegistryError('internal', `internal error: ${msg}`);
}
