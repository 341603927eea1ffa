/**
 * The Bus interface over HTTP, for node agents talking to an embedded bus in another process
 * (routes.ts). A publish or an ack that cannot reach the core is retried with backoff for
 * `retryMsMax` (a publish keeps its id, so a retry is never stored twice), then fails clearly.
 */
import { OsError, type ErrorCode } from '../../errors.ts';
import {
  checkDurable,
  checkStream,
  fetchOptions,
  messageId,
  type Bus,
  type Consumer,
  type ConsumerInfo,
  type ConsumerOptions,
  type FetchOptions,
  type Message,
  type PublishOptions,
  type Published,
  type StreamInfo,
} from '../bus.ts';

export interface RemoteBusOptions {
  /** Where the routes are mounted, e.g. http://127.0.0.1:7070/v1/bus */
  url: string;
  token?: string;
  /** How long a call keeps retrying while the core cannot be reached (10 s). */
  retryMsMax?: number;
  /** One request's limit, beyond a fetch's own wait (10 s). */
  requestMsMax?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ACK_BATCH_MAX = 1000;

export class RemoteBus implements Bus {
  private readonly base: string;
  private readonly token: string | undefined;
  private readonly retryMsMax: number;
  private readonly requestMsMax: number;
  private closed = false;
  private readonly inflight = new Set<AbortController>();

  constructor(opts: RemoteBusOptions) {
    this.base = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
    this.retryMsMax = opts.retryMsMax ?? 10_000;
    this.requestMsMax = opts.requestMsMax ?? 10_000;
  }

  /** One call, retried while the core is unreachable or unavailable. */
  async call<T>(method: string, path: string, body?: unknown, waitMs = 0): Promise<T> {
    const until = Date.now() + this.retryMsMax;
    let wait = 50;
    for (;;) {
      if (this.closed) throw new OsError('closed', 'the bus client is closed');
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), waitMs + this.requestMsMax);
      this.inflight.add(ac);
      let res: Response;
      try {
        res = await fetch(this.base + path, {
          method,
          headers: { 'content-type': 'application/json', ...(this.token ? { authorization: `Bearer ${this.token}` } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: ac.signal,
        });
      } catch (e) {
        if (this.closed) throw new OsError('closed', 'the bus client is closed');
        if (Date.now() + wait > until) throw new OsError('unavailable', `cannot reach the bus at ${this.base} (${(e as Error)?.message}); check the core is running and the URL`);
        await sleep(wait);
        wait = Math.min(wait * 2, 1000);
        continue;
      } finally {
        clearTimeout(timer);
        this.inflight.delete(ac);
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        throw new OsError('internal', `the bus at ${this.base} answered ${res.status} with something that is not JSON`);
      }
      if (res.ok) return parsed as T;
      const err = (parsed as { error?: { code?: ErrorCode; message?: string } } | null)?.error;
      if (res.status === 503 && err?.code !== 'closed' && Date.now() + wait <= until) {
        await sleep(wait);
        wait = Math.min(wait * 2, 1000);
        continue;
      }
      throw new OsError(err?.code ?? 'internal', err?.message ?? `the bus at ${this.base} answered ${res.status}`);
    }
  }

  async publish(stream: string, data: unknown, opts?: PublishOptions): Promise<Published> {
    checkStream(stream);
    const id = messageId(opts);
    if (data === undefined) throw new OsError('invalid', `a message on ${stream} needs data (any JSON value)`);
    return this.call('POST', `/streams/${stream}/messages`, { data, id });
  }

  async consumer(stream: string, durable: string, opts?: ConsumerOptions): Promise<Consumer> {
    checkStream(stream);
    checkDurable(durable);
    await this.call('PUT', `/streams/${stream}/consumers/${durable}`, opts ?? {});
    return new RemoteConsumer(this, stream, durable);
  }

  info(stream: string): Promise<StreamInfo> {
    checkStream(stream);
    return this.call('GET', `/streams/${stream}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const ac of this.inflight) ac.abort();
  }
}

class RemoteConsumer implements Consumer {
  readonly stream: string;
  readonly durable: string;
  private readonly bus: RemoteBus;
  private readonly path: string;

  constructor(bus: RemoteBus, stream: string, durable: string) {
    this.bus = bus;
    this.stream = stream;
    this.durable = durable;
    this.path = `/streams/${stream}/consumers/${durable}`;
  }

  async fetch(opts?: FetchOptions): Promise<Message[]> {
    const o = fetchOptions(opts);
    return (await this.bus.call<{ messages: Message[] }>('POST', `${this.path}/fetch`, o, o.waitMs)).messages;
  }

  /** Acks asked for in one turn travel in one request. */
  private acks: { seqs: number[]; done: Promise<void> } | null = null;

  ack(seq: number): Promise<void> {
    if (this.acks && this.acks.seqs.length < ACK_BATCH_MAX) {
      this.acks.seqs.push(seq);
      return this.acks.done;
    }
    const batch = { seqs: [seq], done: Promise.resolve() };
    batch.done = new Promise<void>((resolve) => queueMicrotask(resolve)).then(async () => {
      if (this.acks === batch) this.acks = null;
      await this.bus.call('POST', `${this.path}/ack`, { seqs: batch.seqs });
    });
    this.acks = batch;
    return batch.done;
  }

  async nak(seq: number, delayMs = 0): Promise<void> {
    await this.bus.call('POST', `${this.path}/nak`, { seq, delayMs });
  }

  info(): Promise<ConsumerInfo> {
    return this.bus.call('GET', this.path);
  }

  async parked(max = 100): Promise<Message[]> {
    return (await this.bus.call<{ messages: Message[] }>('GET', `${this.path}/parked?max=${max}`)).messages;
  }
}
