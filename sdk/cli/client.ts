/** The CLI's HTTP client: where the server is, who we are, and errors as one line. */
import { existsSync, readFileSync } from 'node:fs';

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

export class Client {
  readonly url: string;
  readonly token: string | undefined;

  constructor(opts: ClientOptions = {}) {
    this.url = (opts.url ?? process.env.OS0_URL ?? 'http://127.0.0.1:7070').replace(/\/+$/, '');
    this.token = opts.token ?? process.env.OS0_TOKEN ?? readTokenFile('./.os0/admin.token');
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = {};
    if (this.token) h.authorization = `Bearer ${this.token}`;
    if (json) h['content-type'] = 'application/json';
    return h;
  }

  async fetch(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(this.url + path, {
        method,
        headers: this.headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      });
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause?.code;
      throw new CliError(`cannot reach osØ at ${this.url}${cause ? ` (${cause})` : ''}; is 'os0 up' running? (set OS0_URL or --url)`);
    }
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const j = (await res.json()) as { error?: { message?: string } };
        if (j.error?.message) message = j.error.message;
      } catch {}
      throw new CliError(message, 1, res.status);
    }
    return res;
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.fetch(method, path, body);
    return (await res.json()) as T;
  }
}

function readTokenFile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').trim() || undefined;
}
