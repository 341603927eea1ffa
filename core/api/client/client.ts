/**
 * The typed client of the HTTP API (server.ts beside it): one for the CLI, the tests, and next
 * the node agent and the web console. It speaks JSON over fetch and turns every failure into an
 * ApiError with the server's code and one-line message; what a caller prints is its own business
 * (the CLI adds its hints and exit codes).
 */
import type { Resource, ResourceInput, Submission } from '../../resource.ts';
import { WatchStream, type WatchOptions, type WatchQuery } from './watch.ts';

export interface ApiClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:7070 (a trailing slash is ignored). */
  url: string;
  /** Bearer token; none sends no authorization header. */
  token?: string;
  /** Time limit of one request that is not a stream (30,000 ms; 0: none). */
  timeoutMs?: number;
}

/** A failed request: `status` 0 when no answer came (`code` 'unreachable'). */
export class ApiError extends Error {
  readonly status: number;
  /** The server's error code (docs/api.md, "Errors"), or 'unreachable', 'bad_response', 'timeout'. */
  readonly code: string;
  /** The filter that refused, for rejections. */
  readonly filter: string | undefined;
  /** For 'unreachable': the system error code (ECONNREFUSED, ENOTFOUND...), when known. */
  readonly errno: string | undefined;
  constructor(status: number, code: string, message: string, extra: { filter?: string; errno?: string; cause?: unknown } = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.filter = extra.filter;
    this.errno = extra.errno;
  }
}

export interface RequestOptions {
  /** A JSON value (sent as JSON), or a string sent as it is. */
  body?: unknown;
  signal?: AbortSignal;
  accept?: string;
  /** Overrides the client's time limit for this request (0: none, for streams). */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

export interface SubmitResult {
  index: number;
  resources: Resource[];
}

/** A namespace comes with its rolled-up cost and usage. */
export type Listed = Resource & { status?: unknown };

export interface ListQuery {
  type?: string;
  namespace?: string;
  /** `k=v,k2=v2`, or an object of them. */
  tags?: string | Record<string, string>;
  /** Only this namespace, not the ones below it. */
  exact?: boolean;
  limit?: number;
  /** The observed state of the type (TYPE/observed). */
  observed?: boolean;
}

export interface LogEntry {
  index: number;
  time: string;
  actor: string;
  changes: { action: 'create' | 'update' | 'delete'; type: string; namespace: string; name: string; id: string }[];
}

export interface TokenInfo {
  id: string;
  actor: string;
  groups: string[];
  description: string;
  created: string;
}

export interface HandlerQuery {
  type?: string;
  namespace?: string;
  tags?: Record<string, string>;
}

export interface HandlerEvent {
  action: 'create' | 'update' | 'delete';
  index: number;
  old: Resource | null;
  new: Resource | null;
}

export interface HandlerPoll {
  cursor: number;
  last: number;
  events: HandlerEvent[];
}

export interface HandlerStatus {
  name: string;
  remote: boolean;
  query: HandlerQuery;
  cursor: number;
  lag: number;
  delivered: number;
  failures: number;
  lastError?: string;
  owner?: string;
  [more: string]: unknown;
}

export interface InvocationResult {
  /** The invocation resource's id. */
  id: string;
  /** Its name in namespace `system`: `APP.CAPABILITY.SHORTID`. */
  name: string;
  status: 'succeeded' | 'failed';
  output?: unknown;
  /** Why it failed: the sandbox's code ('threw', 'timeout', 'memory'…) and a one-line message. */
  error?: { code: string; message: string };
  logs: string[];
  durationMs: number;
  cpuMs: number;
  [more: string]: unknown;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export function queryString(q: Record<string, string | number | boolean | undefined | null>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== null && v !== '' && v !== false) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

function tagsParam(tags: ListQuery['tags']): string | undefined {
  if (tags === undefined || typeof tags === 'string') return tags;
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function listParams(q: ListQuery): Record<string, string | number | boolean | undefined> {
  return { type: q.type, namespace: q.namespace, tags: tagsParam(q.tags), exact: q.exact, limit: q.limit, observed: q.observed };
}

export class ApiClient {
  readonly url: string;
  readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(opts: ApiClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** A client for the same server with another token. */
  as(token: string | undefined): ApiClient {
    return new ApiClient({ url: this.url, token, timeoutMs: this.timeoutMs });
  }

  // ---- raw ------------------------------------------------------------------------------------

  /**
   * One request (any route, e.g. the store's or the invoker's); resolves with the response when
   * its status is 2xx, throws ApiError otherwise (the body read for the server's message).
   */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (opts.accept) headers.accept = opts.accept;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const limit = opts.timeoutMs ?? this.timeoutMs;
    const signals = [opts.signal, limit > 0 ? AbortSignal.timeout(limit) : undefined].filter((s): s is AbortSignal => s !== undefined);
    let res: Response;
    try {
      res = await fetch(this.url + path, { method, headers, body, signal: signals.length ? AbortSignal.any(signals) : undefined });
    } catch (e) {
      throw this.failure(e, limit);
    }
    if (res.ok) return res;
    let message = `${res.status} ${res.statusText}`;
    let code = res.status === 404 ? 'not_found' : 'bad_response';
    let filter: string | undefined;
    try {
      const j = (await res.json()) as { error?: { code?: string; message?: string; filter?: string } };
      if (j.error?.message) message = j.error.message;
      if (j.error?.code) code = j.error.code;
      filter = j.error?.filter;
    } catch {}
    throw new ApiError(res.status, code, message, { filter });
  }

  private failure(e: unknown, limit: number): ApiError {
    if ((e as Error)?.name === 'TimeoutError') return new ApiError(0, 'timeout', `osØ at ${this.url} did not answer within ${limit} ms`, { cause: e });
    if ((e as Error)?.name === 'AbortError') return new ApiError(0, 'aborted', 'the request was aborted', { cause: e });
    const errno = (e as { cause?: { code?: string } }).cause?.code;
    return new ApiError(0, 'unreachable', `cannot reach osØ at ${this.url}${errno ? ` (${errno})` : ''}`, { errno, cause: e });
  }

  /** A request whose answer is JSON. */
  async json<T>(method: string, path: string, body?: unknown, opts: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    const res = await this.request(method, path, { ...opts, body });
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'bad_response', `osØ at ${this.url} answered ${method} ${path} with something that is not JSON`);
    }
  }

  // ---- health -------------------------------------------------------------------------------

  healthz(): Promise<{ ok: boolean; index: number }> {
    return this.json('GET', '/healthz');
  }

  /** The Prometheus text of GET /metrics. */
  async metrics(): Promise<string> {
    return (await this.request('GET', '/metrics')).text();
  }

  // ---- commands and resources ----------------------------------------------------------------

  /** One command or an atomic batch ({batch: [...]}). */
  submit(submission: Submission): Promise<SubmitResult> {
    return this.json('POST', '/v1/commands', submission);
  }

  apply(resource: ResourceInput, expect?: number): Promise<SubmitResult> {
    return this.submit({ op: 'apply', resource, expect });
  }

  delete(type: string, name: string, namespace?: string, expect?: number): Promise<SubmitResult> {
    return this.submit({ op: 'delete', resource: { type, name, namespace }, expect });
  }

  /** One resource by type, name and namespace ('' or none: cluster-wide). */
  get(type: string, name: string, namespace?: string, opts: { observed?: boolean } = {}): Promise<Listed> {
    return this.json('GET', `/v1/resources${queryString({ type, name, namespace, observed: opts.observed })}`);
  }

  getById(id: string): Promise<Listed> {
    return this.json('GET', `/v1/resources/${encodeURIComponent(id)}`);
  }

  /** The resources that match, and the log index they were read at (watch from there). */
  async list(q: ListQuery = {}): Promise<{ items: Listed[]; index: number }> {
    const res = await this.request('GET', `/v1/resources${queryString(listParams(q))}`);
    const items = (await res.json()) as Listed[];
    return { items, index: Number(res.headers.get('x-os0-index') ?? NaN) };
  }

  /**
   * One page of a list: at most `limit` resources in key order, the log index every page of this
   * list shows the tree at, and the token of the next page (none after the last). A token whose
   * index left the retained log fails with status 409 (code 'conflict'): list again from the start.
   */
  async listPage(q: ListQuery & { continue?: string } = {}): Promise<{ items: Listed[]; index: number; continue?: string }> {
    const res = await this.request('GET', `/v1/resources${queryString({ ...listParams(q), limit: q.limit ?? 500, continue: q.continue })}`);
    const items = (await res.json()) as Listed[];
    const next = res.headers.get('x-os0-continue');
    return { items, index: Number(res.headers.get('x-os0-index') ?? NaN), ...(next ? { continue: next } : {}) };
  }

  /** Every page of a list, in order (see listPage): all as of one log index. */
  async *listPages(q: ListQuery = {}): AsyncGenerator<{ items: Listed[]; index: number }> {
    let token: string | undefined;
    do {
      const p = await this.listPage({ ...q, continue: token });
      yield { items: p.items, index: p.index };
      token = p.continue;
    } while (token);
  }

  /**
   * Changes to what matches, from `since` (default: now) on, as an async iterable; with
   * `reconnect`, a dropped stream (a restart of the server) resumes from the last index seen.
   */
  watch(q: WatchQuery = {}, opts: WatchOptions = {}): WatchStream {
    return new WatchStream(this, q, opts);
  }

  /** The command log: records after `since` (default: the last 100), at most `limit`. */
  log(q: { since?: number; limit?: number } = {}): Promise<LogEntry[]> {
    return this.json('GET', `/v1/log${queryString(q)}`);
  }

  // ---- tokens -------------------------------------------------------------------------------

  /** A new token for an actor; its secret is in the answer only. */
  createToken(actor: string, groups: string[] = [], description?: string): Promise<{ id: string; actor: string; groups: string[]; token: string }> {
    return this.json('POST', '/v1/tokens', { actor, groups, description });
  }

  listTokens(): Promise<TokenInfo[]> {
    return this.json('GET', '/v1/tokens');
  }

  revokeToken(id: string): Promise<{ index: number }> {
    return this.json('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  }

  // ---- remote handlers ------------------------------------------------------------------------

  registerHandler(name: string, query: HandlerQuery = {}, from?: number): Promise<{ name: string; cursor: number }> {
    return this.json('POST', '/v1/handlers', { name, query, from });
  }

  listHandlers(): Promise<HandlerStatus[]> {
    return this.json('GET', '/v1/handlers');
  }

  /** The next events after the handler's cursor: at most `max`, waiting up to `waitMs` for one. */
  pollHandler(name: string, opts: { max?: number; waitMs?: number; signal?: AbortSignal } = {}): Promise<HandlerPoll> {
    const wait = opts.waitMs ?? 0;
    return this.json('GET', `/v1/handlers/${encodeURIComponent(name)}/events${queryString({ max: opts.max, wait: wait || undefined })}`, undefined, {
      signal: opts.signal,
      timeoutMs: this.timeoutMs > 0 ? this.timeoutMs + wait : 0,
    });
  }

  ackHandler(name: string, index: number): Promise<{ cursor: number }> {
    return this.json('POST', `/v1/handlers/${encodeURIComponent(name)}/ack`, { index });
  }

  removeHandler(name: string): Promise<{ ok: boolean }> {
    return this.json('DELETE', `/v1/handlers/${encodeURIComponent(name)}`);
  }

  // ---- invocations --------------------------------------------------------------------------

  /** Runs app.capability and waits for its result (a program that failed is status 'failed'). */
  invoke(app: string, capability: string, input?: unknown): Promise<InvocationResult> {
    // A program runs within its wall limit (300 s at most): wait at least that long.
    return this.json('POST', '/v1/invocations', { app, capability, input }, { timeoutMs: this.timeoutMs === 0 ? 0 : Math.max(this.timeoutMs, 330_000) });
  }

  /** Starts app.capability without waiting: the invocation resource's id and name. */
  startInvocation(app: string, capability: string, input?: unknown): Promise<{ id: string; name: string }> {
    return this.json('POST', '/v1/invocations?wait=false', { app, capability, input });
  }
}
