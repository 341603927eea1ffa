/**
 * The CLI's side of the API client (core/api/client/): where the server is, who we are, and
 * every failure as one line with an exit code (CliError).
 */
import { existsSync, readFileSync } from 'node:fs';
import { ApiClient, ApiError, type RequestOptions } from '../../core/api/client/index.ts';

export class CliError extends Error {
  readonly exitCode: number;
  /** The HTTP status the server answered with; undefined when it was not reached. */
  readonly status: number | undefined;
  constructor(message: string, exitCode = 1, status?: number) {
    super(message);
    this.exitCode = exitCode;
    this.status = status;
  }
}

export interface ClientOptions {
  url?: string;
  token?: string;
}

/** A CLI command waits this long for one answer (an install fetches packages; an invocation runs). */
const CLI_TIMEOUT_MS = 600_000;

/** The API error as the CLI says it: where the server is not reachable, what to check. */
export function cliError(e: unknown, url: string): unknown {
  if (!(e instanceof ApiError)) return e;
  if (e.code === 'unreachable') return new CliError(`cannot reach osØ at ${url}${e.errno ? ` (${e.errno})` : ''}; is 'os0 up' running? (set OS0_URL or --url)`);
  return new CliError(e.message, 1, e.status || undefined);
}

export class Client {
  readonly url: string;
  readonly token: string | undefined;
  /** The typed client; its errors are ApiErrors (pass them through cliError()). */
  readonly api: ApiClient;

  constructor(opts: ClientOptions = {}) {
    this.url = (opts.url ?? process.env.OS0_URL ?? 'http://127.0.0.1:7070').replace(/\/+$/, '');
    this.token = opts.token ?? process.env.OS0_TOKEN ?? readTokenFile('./.os0/admin.token');
    this.api = new ApiClient({ url: this.url, token: this.token, timeoutMs: CLI_TIMEOUT_MS });
  }

  /** Runs a call of the typed client, turning its failure into a CliError. */
  async call<T>(fn: (api: ApiClient) => Promise<T>): Promise<T> {
    try {
      return await fn(this.api);
    } catch (e) {
      throw cliError(e, this.url);
    }
  }

  /** One request; a 2xx response, or a CliError with the server's message. */
  fetch(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const opts: RequestOptions = { body, signal };
    // An event stream is read for as long as the user wants it.
    if (path.startsWith('/v1/watch')) opts.timeoutMs = 0;
    return this.call((api) => api.request(method, path, opts));
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.call((api) => api.json<T>(method, path, body));
  }
}

function readTokenFile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}
