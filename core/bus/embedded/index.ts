/**
 * The embedded busØ: streams and durable consumers in files under one directory, inside the
 * core's process (layout: ../README.md "Embedded bus on disk"). Agents reach it over the core's
 * HTTP port (routes.ts) with the same interface (remote.ts).
 */
import * as path from 'node:path';
import type { FileIO } from '../../fileio.ts';
import { OsError } from '../../errors.ts';
import {
  checkDurable,
  checkStream,
  consumerOptions,
  encodeData,
  messageId,
  resolveLimits,
  type Bus,
  type BusLimits,
  type Consumer,
  type ConsumerOptions,
  type PublishOptions,
  type Published,
  type StreamInfo,
} from '../bus.ts';
import { EmbeddedConsumer } from './consumer.ts';
import { Stream, type Tuning } from './stream.ts';

export interface EmbeddedBusOptions {
  /** Directory of the bus (e.g. DATA/bus). */
  dir: string;
  limits?: Partial<BusLimits>;
  io?: FileIO;
  /** Sizes that tests shrink to reach the disk paths quickly; the defaults suit production. */
  tuning?: Partial<Tuning>;
}

/** Most streams open at once (one per node, and events). */
const STREAMS_MAX = 10_000;
const CONSUMERS_MAX = 10_000;

export class EmbeddedBus implements Bus {
  readonly dir: string;
  readonly limits: BusLimits;
  private readonly io: FileIO | undefined;
  private readonly tuning: Partial<Tuning>;
  private readonly streams = new Map<string, Promise<Stream>>();
  private readonly consumers = new Map<string, Promise<EmbeddedConsumer>>();
  private closed = false;

  private constructor(opts: EmbeddedBusOptions) {
    this.dir = opts.dir;
    this.limits = resolveLimits(opts.limits);
    this.io = opts.io;
    this.tuning = opts.tuning ?? {};
  }

  static async open(opts: EmbeddedBusOptions): Promise<EmbeddedBus> {
    return new EmbeddedBus({ ...opts, dir: path.resolve(opts.dir) });
  }

  private check(): void {
    if (this.closed) throw new OsError('closed', 'the bus is closed');
  }

  private stream(name: string): Promise<Stream> {
    checkStream(name);
    this.check();
    let s = this.streams.get(name);
    if (!s) {
      if (this.streams.size >= STREAMS_MAX) throw new OsError('too_large', `the embedded bus holds ${STREAMS_MAX} streams already; use NATS JetStream for a fleet this large`);
      s = Stream.open(this.dir, name, this.limits, this.io, this.tuning);
      s.catch(() => this.streams.delete(name));
      this.streams.set(name, s);
    }
    return s;
  }

  async publish(stream: string, data: unknown, opts?: PublishOptions): Promise<Published> {
    checkStream(stream);
    const id = messageId(opts);
    const buf = encodeData(stream, data, this.limits);
    return (await this.stream(stream)).publish(id, buf);
  }

  async consumer(stream: string, durable: string, opts?: ConsumerOptions): Promise<Consumer> {
    checkStream(stream);
    checkDurable(durable);
    const o = consumerOptions(opts);
    const key = `${stream}/${durable}`;
    let c = this.consumers.get(key);
    if (!c) {
      if (this.consumers.size >= CONSUMERS_MAX) throw new OsError('too_large', `the embedded bus holds ${CONSUMERS_MAX} consumers already`);
      const s = await this.stream(stream);
      c = this.consumers.get(key) ?? EmbeddedConsumer.open(this.dir, s, durable, o, this.io, this.tuning.consumerSegmentBytes);
      c.catch(() => this.consumers.delete(key));
      this.consumers.set(key, c);
    }
    return c;
  }

  async info(stream: string): Promise<StreamInfo> {
    return (await this.stream(stream)).info();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const cs = await Promise.allSettled([...this.consumers.values()]);
    for (const c of cs) if (c.status === 'fulfilled') await c.value.close();
    const ss = await Promise.allSettled([...this.streams.values()]);
    for (const s of ss) if (s.status === 'fulfilled') await s.value.close();
  }
}
