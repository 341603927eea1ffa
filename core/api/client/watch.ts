/**
 * GET /v1/watch as an async iterable of typed events. The stream remembers the last log index it
 * saw (each change's and each bookmark's), so a dropped connection — the server restarted, the
 * network blinked — can resume exactly there: with `reconnect`, it does so by itself, with a
 * bounded number of tries and a growing pause between them, and says so with a `reconnected`
 * event. What cannot be resumed (the index fell out of the retained log: `gone`; the server no
 * longer has that history) ends the iteration with an ApiError that says why.
 */
import type { Resource } from '../../resource.ts';
import { ApiError, listParams, queryString, type ApiClient, type ListQuery } from './client.ts';
import { readSse } from './sse.ts';

export interface WatchQuery extends Omit<ListQuery, 'limit' | 'exact'> {
  /** Resume after this log index (default: from now). */
  since?: number;
}

export interface ReconnectOptions {
  /** Failed tries in a row before giving up (20). */
  attempts?: number;
  /** The first pause (200 ms); it doubles up to delayMsMax. */
  delayMs?: number;
  delayMsMax?: number;
}

export interface WatchOptions {
  signal?: AbortSignal;
  /** Resume after a dropped stream (true: the defaults of ReconnectOptions). */
  reconnect?: boolean | ReconnectOptions;
}

export type WatchEvent =
  | { type: 'change'; action: 'create' | 'update' | 'delete'; index: number; resource: Resource }
  /** Nothing to report up to `index` (sent first, and every few seconds while idle). */
  | { type: 'bookmark'; index: number }
  /** The stream dropped and resumed after `index` (`reason`: why it dropped). */
  | { type: 'reconnected'; index: number; attempts: number; reason: string };

const RETRYABLE = new Set([0, 502, 503, 504]);

export class WatchStream implements AsyncIterable<WatchEvent> {
  private readonly client: ApiClient;
  private readonly query: WatchQuery;
  private readonly reconnect: Required<ReconnectOptions> | null;
  private readonly abort = new AbortController();
  private current: Response | null = null;
  private started = false;
  /** The last log index seen: a change's, or a bookmark's (undefined until the first event). */
  index: number | undefined;
  /** Connections made so far. */
  connections = 0;

  constructor(client: ApiClient, query: WatchQuery, opts: WatchOptions) {
    this.client = client;
    this.query = query;
    this.index = query.since;
    const r = opts.reconnect;
    this.reconnect = r ? { attempts: 20, delayMs: 200, delayMsMax: 5000, ...(r === true ? {} : r) } : null;
    if (opts.signal) {
      if (opts.signal.aborted) this.abort.abort();
      else opts.signal.addEventListener('abort', () => this.close(), { once: true });
    }
  }

  get closed(): boolean {
    return this.abort.signal.aborted;
  }

  /** Connects now (iterating does it too): throws at once what the server refuses (a bad type...). */
  async open(): Promise<void> {
    if (!this.current) this.current = await this.connect();
  }

  /** Ends the stream; a pending iteration finishes without an error. */
  close(): void {
    this.abort.abort();
  }

  private async connect(): Promise<Response> {
    const path = `/v1/watch${queryString({ ...listParams(this.query), since: this.index })}`;
    const res = await this.client.request('GET', path, { accept: 'text/event-stream', signal: this.abort.signal, timeoutMs: 0 });
    this.connections++;
    return res;
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.started) throw new Error('a watch stream is iterated once');
    this.started = true;
    return this.events();
  }

  private async *events(): AsyncGenerator<WatchEvent> {
    let failures = 0;
    let dropped: string | null = null;
    try {
      for (;;) {
        let res: Response;
        try {
          res = this.current ?? (await this.connect());
          this.current = null;
        } catch (e) {
          if (this.closed) return;
          if (!(e instanceof ApiError) || !RETRYABLE.has(e.status) || !this.reconnect || this.index === undefined || failures >= this.reconnect.attempts) {
            throw e;
          }
          failures++;
          dropped ??= e.message;
          await this.pause(failures);
          continue;
        }
        if (dropped !== null) {
          yield { type: 'reconnected', index: this.index!, attempts: failures, reason: dropped };
          dropped = null;
        }
        failures = 0;
        try {
          for await (const ev of readSse(res.body!)) {
            const out = this.parse(ev.event, ev.data);
            if (out) yield out;
          }
          dropped = 'the server ended the stream';
        } catch (e) {
          if (this.closed) return;
          if (e instanceof ApiError) throw e;
          dropped = `the stream broke (${(e as Error)?.message ?? String(e)})`;
        }
        if (this.closed) return;
        if (!this.reconnect || this.index === undefined) {
          if (dropped === 'the server ended the stream') return;
          throw new ApiError(0, 'unreachable', `the watch stream from ${this.client.url} broke: ${dropped}`);
        }
        failures = 1;
        await this.pause(failures);
      }
    } finally {
      this.close();
    }
  }

  private parse(event: string, data: string): WatchEvent | null {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(data) as Record<string, unknown>;
    } catch {
      throw new ApiError(200, 'bad_response', `the watch stream sent an event that is not JSON: ${data.slice(0, 80)}`);
    }
    if (event === 'change') {
      this.index = j.index as number;
      return { type: 'change', action: j.action as 'create', index: j.index as number, resource: j.resource as Resource };
    }
    if (event === 'bookmark') {
      this.index = j.index as number;
      return { type: 'bookmark', index: j.index as number };
    }
    if (event === 'gone') {
      const err = (j.error ?? {}) as { code?: string; message?: string };
      throw new ApiError(409, err.code ?? 'conflict', err.message ?? `the watch fell behind the retained log after ${this.index}: re-list, then watch again`);
    }
    return null; // an event kind this client does not know yet
  }

  private pause(failures: number): Promise<void> {
    const r = this.reconnect!;
    const ms = Math.min(r.delayMsMax, r.delayMs * 2 ** Math.min(failures - 1, 16));
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.abort.signal.addEventListener('abort', done, { once: true });
    });
  }
}
