/**
 * One stream of the embedded bus: its log (record index = message sequence), the retained
 * messages in memory, the duplicate window, and the retention limits.
 *
 * Record body: `{"i":ID,"t":TIME_MS,"d":DATA}`. A message becomes visible to consumers only
 * once the fsync that covers it has returned, so nothing a consumer sees can be lost.
 */
import * as path from 'node:path';
import type { FileIO } from '../../fileio.ts';
import { OsError } from '../../errors.ts';
import type { BusLimits, Published, StreamInfo } from '../bus.ts';
import { JsonLog } from './log.ts';

export interface Stored {
  seq: number;
  id: string;
  time: number;
  /** The data's JSON text. */
  data: string;
  bytes: number;
}

interface Body {
  i: string;
  t: number;
  d: unknown;
}

const SEGMENT_BYTES = 16 * 1024 * 1024;

export class Stream {
  readonly name: string;
  private log!: JsonLog;
  private readonly limits: BusLimits;
  /** Retained and durable, oldest first: msgs[head..] hold sequences first..last. */
  private msgs: Stored[] = [];
  private head = 0;
  private bytes = 0;
  /** Sequence the next durable message will have, minus one: the last visible. */
  private lastVisible = 0;
  /** Message ids seen within the duplicate window, and when. */
  private dedupe = new Map<string, { seq: number; time: number; durable: Promise<void> }>();
  private dedupeOrder: { id: string; time: number }[] = [];
  private dedupeHead = 0;
  private readonly listeners = new Set<() => void>();
  private ageTimer: NodeJS.Timeout | null = null;

  private constructor(name: string, limits: BusLimits) {
    this.name = name;
    this.limits = limits;
  }

  static async open(root: string, name: string, limits: BusLimits, io?: FileIO): Promise<Stream> {
    const s = new Stream(name, limits);
    const now = Date.now();
    s.log = await JsonLog.open({ dir: path.join(root, 'streams', name), io, segmentBytes: SEGMENT_BYTES }, (index, body, bytes) => {
      const b = body as Body;
      const m: Stored = { seq: index, id: b.i, time: b.t, data: JSON.stringify(b.d), bytes };
      s.msgs.push(m);
      s.bytes += bytes;
      if (now - m.time < limits.duplicateWindowMs) s.remember(m.id, m.seq, m.time, Promise.resolve());
    });
    // Sequences held by segments before the first kept one were dropped by retention.
    s.lastVisible = s.log.lastIndex;
    s.retain();
    s.ageTimer = setInterval(() => s.retain(), Math.min(1000, Math.max(50, limits.streamAgeMsMax / 4)));
    s.ageTimer.unref();
    return s;
  }

  get first(): number {
    return this.head < this.msgs.length ? this.msgs[this.head].seq : this.lastVisible + 1;
  }

  get last(): number {
    return this.lastVisible;
  }

  info(): StreamInfo {
    this.retain();
    return { stream: this.name, first: this.first, last: this.lastVisible, messages: this.msgs.length - this.head, bytes: this.bytes };
  }

  get(seq: number): Stored | undefined {
    const f = this.first;
    if (seq < f || seq > this.lastVisible) return undefined;
    const m = this.msgs[this.head + (seq - f)];
    return m && m.seq === seq ? m : undefined;
  }

  /** Called whenever a message becomes visible. */
  listen(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  async publish(id: string, data: Buffer): Promise<Published> {
    this.pruneDedupe(Date.now());
    const seen = this.dedupe.get(id);
    if (seen) {
      await seen.durable;
      return { stream: this.name, seq: seen.seq, duplicate: true };
    }
    const time = Date.now();
    const body = `{"i":${JSON.stringify(id)},"t":${time},"d":${data.toString('utf8')}}`;
    const { index, bytes, durable } = this.log.append(body);
    const m: Stored = { seq: index, id, time, data: data.toString('utf8'), bytes };
    this.remember(id, index, time, durable);
    this.inFlight.push(m);
    try {
      await durable;
    } catch (e) {
      // Refused with every record of its group: forget them, the log reuses their sequences.
      this.inFlight = this.inFlight.filter((x) => x.seq < index);
      if (this.dedupe.get(id)?.seq === index) this.dedupe.delete(id);
      throw e;
    }
    this.reveal(index);
    return { stream: this.name, seq: index, duplicate: false };
  }

  /** Appended, not yet durable: made visible in order as their fsyncs return. */
  private inFlight: Stored[] = [];

  private reveal(through: number): void {
    let n = 0;
    while (n < this.inFlight.length && this.inFlight[n].seq <= through) {
      const m = this.inFlight[n++];
      if (m.seq !== this.lastVisible + 1) throw new OsError('internal', `bus stream ${this.name}: message ${m.seq} after ${this.lastVisible}`);
      this.msgs.push(m);
      this.bytes += m.bytes;
      this.lastVisible = m.seq;
    }
    if (n === 0) return;
    this.inFlight.splice(0, n);
    this.retain();
    for (const f of this.listeners) f();
  }

  private remember(id: string, seq: number, time: number, durable: Promise<void>): void {
    this.dedupe.set(id, { seq, time, durable });
    this.dedupeOrder.push({ id, time });
  }

  private pruneDedupe(now: number): void {
    const o = this.dedupeOrder;
    while (this.dedupeHead < o.length && now - o[this.dedupeHead].time >= this.limits.duplicateWindowMs) {
      const { id, time } = o[this.dedupeHead++];
      if (this.dedupe.get(id)?.time === time) this.dedupe.delete(id);
    }
    if (this.dedupeHead > 1024 && this.dedupeHead * 2 > o.length) {
      this.dedupeOrder = o.slice(this.dedupeHead);
      this.dedupeHead = 0;
    }
  }

  /** Drops the oldest messages past the count, bytes and age limits, and segments nothing needs. */
  private retain(): void {
    const l = this.limits;
    const now = Date.now();
    const before = this.head;
    while (this.head < this.msgs.length) {
      const m = this.msgs[this.head];
      const count = this.msgs.length - this.head;
      if (count > l.streamMessagesMax || this.bytes > l.streamBytesMax || now - m.time >= l.streamAgeMsMax) {
        this.bytes -= m.bytes;
        this.head++;
      } else break;
    }
    if (this.head === before) return;
    if (this.head > 1024 && this.head * 2 > this.msgs.length) {
      this.msgs = this.msgs.slice(this.head);
      this.head = 0;
    }
    void this.log.dropThrough(this.first - 1).catch(() => {
      // A segment that cannot be deleted now is tried again at the next drop.
    });
  }

  async close(): Promise<void> {
    if (this.ageTimer) clearInterval(this.ageTimer);
    await this.log.close();
  }
}
