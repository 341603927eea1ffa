/**
 * busØ over NATS JetStream (`--bus nats://HOST:PORT[,HOST:PORT…]`). Naming (../README.md):
 *
 *   bus stream `cmd.NODE` → JetStream stream PREFIX_cmd_NODE, subject PREFIX.cmd.NODE
 *   bus stream `events`   → JetStream stream PREFIX_events,  subject PREFIX.events
 *   a durable consumer    → a durable pull consumer of that name, explicit acks, max_deliver -1
 *   parked messages       → stream PREFIX_parked, subject PREFIX.parked.DURABLE.STREAM
 *
 * JetStream itself would stop delivering after max_deliver and only announce it on an advisory
 * nobody may be listening to, so the client bounds deliveries: a message delivered past
 * `deliveriesMax` (or nak'd on its last delivery) is copied to the parked stream and then
 * terminated. Publishes and acks retry with backoff through a leader election, for
 * `retryMsMax`, and then fail with a clear error.
 */
import { connect, createInbox, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream';
import { OsError } from '../../errors.ts';
import {
  checkDurable,
  checkStream,
  consumerOptions,
  encodeData,
  fetchOptions,
  messageId,
  resolveLimits,
  type Bus,
  type BusLimits,
  type Consumer,
  type ConsumerInfo,
  type ConsumerOptions,
  type FetchOptions,
  type Message,
  type PublishOptions,
  type Published,
  type ResolvedConsumerOptions,
  type StreamInfo,
} from '../bus.ts';

export interface NatsBusOptions {
  /** `nats://HOST:PORT[,HOST:PORT…]` or a list of servers. */
  servers: string | string[];
  /** Names this instance's streams (letters, digits, "-", "_"; "os0"). */
  prefix?: string;
  limits?: Partial<BusLimits>;
  /** Stream replicas; by default 3 when the server is in a cluster, else 1. */
  replicas?: number;
  /** How long a publish, an ack or a stream operation keeps retrying through an outage (20 s). */
  retryMsMax?: number;
  /** One try's wait for an answer (2 s). */
  requestMsMax?: number;
}

const ns = (ms: number): number => ms * 1_000_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ID_HEADER = 'Nats-Msg-Id';
const JS_STREAM_NOT_FOUND = 10059;
const JS_CONSUMER_NOT_FOUND = 10014;
const JS_NOT_CLUSTERED = 10074;
const JS_MESSAGE_SIZE = 10054;
/** The shortest wait of a pull request (a fetch that does not wait still gives the server this long). */
const PULL_MS_MIN = 50;
/** Deliveries a consumer remembers for their acks (beyond any max_ack_pending in use). */
const DELIVERED_MAX = 100_000;
const DESC_PREFIX = 'os0 deliveriesMax=';

/** Errors that retrying cannot fix. */
function definitive(e: unknown): boolean {
  if (e instanceof OsError) return true;
  if (e instanceof JetStreamApiError) {
    return [JS_MESSAGE_SIZE, JS_NOT_CLUSTERED, 10052 /* bad config */, 10012 /* stream name exists, other config */].includes(e.code);
  }
  return false;
}

const describe = (e: unknown): string => (e as Error)?.message ?? String(e);

export class NatsBus implements Bus {
  readonly prefix: string;
  readonly limits: BusLimits;
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly replicas: number;
  private readonly retryMsMax: number;
  private readonly requestMsMax: number;
  private readonly ensured = new Map<string, Promise<void>>();
  /** One per durable, so an ack reaches the consumer that was delivered the message. */
  private readonly consumers = new Map<string, NatsConsumer>();
  private closed = false;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, opts: NatsBusOptions, replicas: number) {
    this.nc = nc;
    this.jsm = jsm;
    this.js = jetstream(nc, { timeout: opts.requestMsMax ?? 2000 });
    this.prefix = opts.prefix ?? 'os0';
    this.limits = resolveLimits(opts.limits);
    this.retryMsMax = opts.retryMsMax ?? 20_000;
    this.requestMsMax = opts.requestMsMax ?? 2000;
    this.replicas = replicas;
  }

  static async open(opts: NatsBusOptions): Promise<NatsBus> {
    const servers = typeof opts.servers === 'string' ? opts.servers.split(',').map((s) => s.trim()).filter(Boolean) : opts.servers;
    if (servers.length === 0) throw new OsError('invalid', 'a NATS bus needs at least one server: nats://HOST:PORT[,HOST:PORT…]');
    const prefix = opts.prefix ?? 'os0';
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix)) throw new OsError('invalid', 'a NATS bus prefix is 1-32 letters, digits, "-" or "_"');
    let nc: NatsConnection;
    try {
      nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250, name: `os0-bus-${prefix}` });
    } catch (e) {
      throw new OsError('unavailable', `cannot reach NATS at ${servers.join(',')} (${describe(e)}); check nats-server is running there with -js`);
    }
    // A cluster that has just started answers JetStream only once it has elected a meta leader:
    // keep asking, with backoff, for a bounded time (retryMsMax) before saying it has none.
    const deadline = Date.now() + (opts.retryMsMax ?? 20_000);
    for (let attempt = 1; ; attempt++) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: opts.requestMsMax ?? 2000 });
        const replicas = opts.replicas ?? (nc.info?.cluster ? 3 : 1);
        return new NatsBus(nc, jsm, { ...opts, prefix }, replicas);
      } catch (e) {
        if (Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
          continue;
        }
        await nc.close();
        throw new OsError('unavailable', `NATS at ${servers.join(',')} has no JetStream (${describe(e)}); start nats-server with -js, and for a cluster check that a quorum of its servers is up`);
      }
    }
  }

  /** JetStream stream name of a bus stream. */
  streamName(stream: string): string {
    return `${this.prefix}_${stream.replace('.', '_')}`;
  }

  subject(stream: string): string {
    return `${this.prefix}.${stream}`;
  }

  get parkedStream(): string {
    return `${this.prefix}_parked`;
  }

  parkedSubject(stream: string, durable: string): string {
    return `${this.prefix}.parked.${durable}.${stream}`;
  }

  /** Runs `f` until it succeeds, an error retrying cannot fix, or retryMsMax passes. */
  async retry<T>(what: string, f: () => Promise<T>): Promise<T> {
    const until = Date.now() + this.retryMsMax;
    let wait = 50;
    for (;;) {
      if (this.closed) throw new OsError('closed', 'the bus is closed');
      try {
        return await f();
      } catch (e) {
        if (definitive(e)) throw e;
        if (Date.now() + wait > until) {
          throw new OsError('unavailable', `NATS JetStream did not complete ${what} within ${this.retryMsMax} ms (${describe(e)}); check that the nats-server cluster is up and has a quorum`);
        }
        await sleep(wait);
        wait = Math.min(wait * 2, 1000);
      }
    }
  }

  private config(name: string, subjects: string[]): StreamConfig {
    const l = this.limits;
    return {
      name,
      subjects,
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      num_replicas: this.replicas,
      max_msgs: l.streamMessagesMax,
      max_bytes: l.streamBytesMax,
      max_age: ns(l.streamAgeMsMax),
      max_msg_size: l.messageBytesMax + 4096,
      duplicate_window: ns(Math.min(l.duplicateWindowMs, l.streamAgeMsMax)),
    } as StreamConfig;
  }

  /** Creates the JetStream stream the first time it is used (or brings its limits up to date). */
  ensure(name: string, subjects: string[]): Promise<void> {
    let p = this.ensured.get(name);
    if (!p) {
      p = this.retry(`creating stream ${name}`, async () => {
        const cfg = this.config(name, subjects);
        try {
          const info = await this.jsm.streams.info(name);
          const c = info.config;
          if (c.max_msgs !== cfg.max_msgs || c.max_bytes !== cfg.max_bytes || c.max_age !== cfg.max_age || c.max_msg_size !== cfg.max_msg_size || c.duplicate_window !== cfg.duplicate_window) {
            await this.jsm.streams.update(name, { ...c, ...cfg, num_replicas: c.num_replicas });
          }
        } catch (e) {
          if (!(e instanceof JetStreamApiError && e.code === JS_STREAM_NOT_FOUND)) throw e;
          await this.jsm.streams.add(cfg);
        }
      });
      p.catch(() => this.ensured.delete(name));
      this.ensured.set(name, p);
    }
    return p;
  }

  ensureStream(stream: string): Promise<void> {
    return this.ensure(this.streamName(stream), [this.subject(stream)]);
  }

  ensureParked(): Promise<void> {
    return this.ensure(this.parkedStream, [`${this.prefix}.parked.>`]);
  }

  async publish(stream: string, data: unknown, opts?: PublishOptions): Promise<Published> {
    checkStream(stream);
    const id = messageId(opts);
    const buf = encodeData(stream, data, this.limits);
    await this.ensureStream(stream);
    return this.retry(`a publish to ${stream}`, async () => {
      try {
        const ack = await this.js.publish(this.subject(stream), buf, { msgID: id, timeout: this.requestMsMax });
        return { stream, seq: ack.seq, duplicate: ack.duplicate };
      } catch (e) {
        if (e instanceof JetStreamApiError && e.code === JS_MESSAGE_SIZE) {
          throw new OsError('too_large', `a message of ${buf.length} bytes is larger than the bus allows; send a reference to the data instead`);
        }
        throw e;
      }
    });
  }

  /** Publishes raw, as the bench's baseline: the same client, no checks. */
  async rawPublish(stream: string, payload: Uint8Array, id: string): Promise<number> {
    return (await this.js.publish(this.subject(stream), payload, { msgID: id, timeout: this.requestMsMax })).seq;
  }

  async consumer(stream: string, durable: string, opts?: ConsumerOptions): Promise<Consumer> {
    checkStream(stream);
    checkDurable(durable);
    const o = consumerOptions(opts);
    await this.ensureStream(stream);
    const name = this.streamName(stream);
    const deliveriesMax = await this.retry(`opening consumer ${durable} on ${stream}`, async () => {
      try {
        const info = await this.jsm.consumers.info(name, durable);
        const c = info.config;
        if (c.ack_wait !== ns(o.ackWaitMs) || c.max_ack_pending !== o.ackPendingMax || c.description !== DESC_PREFIX + o.deliveriesMax) {
          await this.jsm.consumers.update(name, durable, { ack_wait: ns(o.ackWaitMs), max_ack_pending: o.ackPendingMax, description: DESC_PREFIX + o.deliveriesMax });
        }
        return o.deliveriesMax;
      } catch (e) {
        if (!(e instanceof JetStreamApiError && e.code === JS_CONSUMER_NOT_FOUND)) throw e;
        await this.jsm.consumers.add(name, this.consumerConfig(durable, o));
        return o.deliveriesMax;
      }
    });
    const key = `${stream}/${durable}`;
    let c = this.consumers.get(key);
    if (!c) {
      c = new NatsConsumer(this, stream, durable, deliveriesMax);
      this.consumers.set(key, c);
    }
    return c;
  }

  private consumerConfig(durable: string, o: ResolvedConsumerOptions): ConsumerConfig {
    const cfg: Partial<ConsumerConfig> = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      ack_wait: ns(o.ackWaitMs),
      max_deliver: -1,
      max_ack_pending: o.ackPendingMax,
      description: DESC_PREFIX + o.deliveriesMax,
    };
    if (o.start === 'first') cfg.deliver_policy = DeliverPolicy.All;
    else if (o.start === 'new') cfg.deliver_policy = DeliverPolicy.New;
    else {
      cfg.deliver_policy = DeliverPolicy.StartSequence;
      cfg.opt_start_seq = o.start;
    }
    return cfg as ConsumerConfig;
  }

  async info(stream: string): Promise<StreamInfo> {
    checkStream(stream);
    await this.ensureStream(stream);
    const si = await this.retry(`reading ${stream}'s state`, () => this.jsm.streams.info(this.streamName(stream)));
    const st = si.state;
    return { stream, first: st.messages === 0 ? st.last_seq + 1 : st.first_seq, last: st.last_seq, messages: st.messages, bytes: st.bytes };
  }

  pull(stream: string, durable: string, batch: number, expiresMs: number): Promise<Msg[]> {
    return this.pullRaw(this.streamName(stream), durable, batch, expiresMs);
  }

  /** One pull request: up to `batch` messages, waiting up to `expiresMs` for the first. */
  pullRaw(jsStream: string, consumer: string, batch: number, expiresMs: number): Promise<Msg[]> {
    const inbox = createInbox();
    const out: Msg[] = [];
    return new Promise<Msg[]>((resolve) => {
      let sub: Subscription | null = null;
      const finish = (): void => {
        clearTimeout(timer);
        sub?.unsubscribe();
        resolve(out);
      };
      // The server ends a request with a status; if that is lost, stop a little after it should have.
      const timer = setTimeout(finish, expiresMs + this.requestMsMax);
      sub = this.nc.subscribe(inbox, {
        callback: (err, m) => {
          if (err) return finish();
          const code = m.headers?.code ?? 0;
          if (!m.reply || code >= 100) {
            if (code === 100) return; // an idle heartbeat
            return finish();
          }
          out.push(m);
          if (out.length >= batch) finish();
        },
      });
      const req = { batch, no_wait: true, expires: ns(expiresMs) };
      this.nc.publish(`$JS.API.CONSUMER.MSG.NEXT.${jsStream}.${consumer}`, JSON.stringify(req), { reply: inbox });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.consumers.values()) c.closed = true;
    await this.nc.drain().catch(() => this.nc.close());
  }
}

interface Delivered {
  reply: string;
  m: Message;
}

/** `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>` (with domain and account hash in the newer form). */
function parseAck(reply: string): { deliveries: number; seq: number; timeMs: number } {
  const t = reply.split('.');
  const at = t.length === 9 ? 4 : 6;
  return { deliveries: Number(t[at]), seq: Number(t[at + 1]), timeMs: Math.floor(Number(t[at + 3]) / 1e6) };
}

class NatsConsumer implements Consumer {
  readonly stream: string;
  readonly durable: string;
  closed = false;
  private readonly bus: NatsBus;
  private readonly deliveriesMax: number;
  /** Delivered to this client and not yet acked (bounded by the consumer's max_ack_pending). */
  private readonly delivered = new Map<number, Delivered>();

  constructor(bus: NatsBus, stream: string, durable: string, deliveriesMax: number) {
    this.bus = bus;
    this.stream = stream;
    this.durable = durable;
    this.deliveriesMax = deliveriesMax;
  }

  private check(): void {
    if (this.closed) throw new OsError('closed', `bus consumer ${this.durable} on ${this.stream} is closed`);
  }

  /** Turns pulled messages into deliveries, parking those past their deliveries. */
  private async take(msgs: Msg[]): Promise<Message[]> {
    const out: Message[] = [];
    for (const raw of msgs) {
      const a = parseAck(raw.reply!);
      let data: unknown = null;
      try {
        data = raw.json();
      } catch {
        data = raw.string();
      }
      const m: Message = { stream: this.stream, seq: a.seq, id: raw.headers?.get(ID_HEADER) || String(a.seq), time: a.timeMs, data, deliveries: a.deliveries };
      if (a.deliveries > this.deliveriesMax) await this.park({ reply: raw.reply!, m: { ...m, deliveries: this.deliveriesMax } });
      else {
        this.delivered.delete(m.seq);
        this.delivered.set(m.seq, { reply: raw.reply!, m });
        // Redelivered elsewhere long ago and never acked here: forget the oldest.
        if (this.delivered.size > DELIVERED_MAX) this.delivered.delete(this.delivered.keys().next().value!);
        out.push(m);
      }
    }
    return out;
  }

  /** Copies it to the parked stream (once, by id), then tells JetStream never to deliver it again. */
  private async park(d: Delivered): Promise<void> {
    const b = this.bus;
    await b.ensureParked();
    const subject = b.parkedSubject(this.stream, this.durable);
    await b.retry(`parking ${this.stream} #${d.m.seq}`, () =>
      b.js.publish(subject, JSON.stringify(d.m), { msgID: `${this.stream}/${this.durable}/${d.m.seq}`, timeout: 2000 }),
    );
    await this.reply(d.reply, '+TERM', 'terminating a parked message');
    this.delivered.delete(d.m.seq);
  }

  /** An ack (or term) the server confirms, retried through an outage. */
  private reply(subject: string, body: string, what: string): Promise<void> {
    return this.bus.retry(what, async () => {
      await this.bus.nc.request(subject, body, { timeout: 2000 });
    });
  }

  async fetch(opts?: FetchOptions): Promise<Message[]> {
    const { max, waitMs } = fetchOptions(opts);
    const until = Date.now() + waitMs;
    for (;;) {
      this.check();
      // JetStream 2.9: no_wait with expires waits up to expires for a first message, then
      // answers as soon as no more are ready (or max_ack_pending holds the rest back).
      const raw = await this.bus.pull(this.stream, this.durable, max, Math.max(PULL_MS_MIN, until - Date.now()));
      const got = await this.take(raw);
      if (got.length > 0 || Date.now() >= until) return got;
    }
  }

  async ack(seq: number): Promise<void> {
    this.check();
    const d = this.delivered.get(seq);
    if (!d) return;
    await this.reply(d.reply, '+ACK', `acking ${this.stream} #${seq}`);
    this.delivered.delete(seq);
  }

  async nak(seq: number, delayMs = 0): Promise<void> {
    this.check();
    const d = this.delivered.get(seq);
    if (!d) return;
    if (d.m.deliveries >= this.deliveriesMax) return this.park(d);
    const body = delayMs > 0 ? `-NAK ${JSON.stringify({ delay: ns(delayMs) })}` : '-NAK';
    this.bus.nc.publish(d.reply, body);
    this.delivered.delete(seq);
  }

  async info(): Promise<ConsumerInfo> {
    this.check();
    const b = this.bus;
    const ci = await b.retry(`reading consumer ${this.durable}`, () => b.jsm.consumers.info(b.streamName(this.stream), this.durable));
    return {
      stream: this.stream,
      durable: this.durable,
      ackFloor: ci.ack_floor.stream_seq,
      ackPending: ci.num_ack_pending,
      waiting: ci.num_pending,
      parked: await this.parkedCount(),
    };
  }

  private async parkedCount(): Promise<number> {
    const b = this.bus;
    await b.ensureParked();
    const subject = b.parkedSubject(this.stream, this.durable);
    const si = await b.retry('counting parked messages', () => b.jsm.streams.info(b.parkedStream, { subjects_filter: subject }));
    return (si.state.subjects as Record<string, number> | undefined)?.[subject] ?? 0;
  }

  async parked(max = 100): Promise<Message[]> {
    this.check();
    const b = this.bus;
    await b.ensureParked();
    const n = Math.min(await this.parkedCount(), Math.max(0, Math.min(max, 1000)));
    if (n === 0) return [];
    // A short-lived consumer over this consumer's parked subject, read without acks.
    const name = `parked-${Math.random().toString(36).slice(2, 10)}`;
    await b.jsm.consumers.add(b.parkedStream, {
      name,
      durable_name: name,
      filter_subject: b.parkedSubject(this.stream, this.durable),
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: ns(60_000),
    } as ConsumerConfig);
    try {
      const out: Message[] = [];
      while (out.length < n) {
        const msgs = await b.pullRaw(b.parkedStream, name, n - out.length, PULL_MS_MIN);
        if (msgs.length === 0) break;
        for (const m of msgs) out.push(m.json<Message>());
      }
      return out;
    } finally {
      await b.jsm.consumers.delete(b.parkedStream, name).catch(() => {});
    }
  }
}
