/**
 * One stream of the embedded bus: its log (record index = message sequence), an index of the
 * retained messages (id, time, size: what retention and the duplicate window need), and the
 * messages themselves read through the core's log reader (core/log): the newest from memory,
 * older ones off the segments, the same values either way.
 *
 * Record body: `{"i":ID,"t":TIME_MS,"d":DATA}`. A message becomes visible to consumers only
 * once the fsync that covers it has returned, so nothing a consumer sees can be lost.
 */
import * as path from 'node:path';
import type { FileIO } from '../../fileio.ts';
import { OsError } from '../../errors.ts';
import { LogReader } from '../../log/reader.ts';
import type { BusLimits, Published, StreamInfo } from '../bus.ts';
import { JsonLog } from './log.ts';

export interface Meta {
  seq: number;
  id: string;
  time: number;
  bytes: number;
}

export interface Stored extends Meta {
  /** The data's JSON text. */
  data: string;
}

interface Body {
  i: string;
  t: number;
  d: unknown;
}

export interface Tuning {
  streamSegmentBytes: number;
  consumerSegmentBytes: number;
  /** Messages of a stream kept in memory (older ones are read off the segments), by count and by bytes. */
  windowMessages: number;
  windowBytes: number;
}

const TUNING: Tuning = {
  streamSegmentBytes: 16 * 1024 * 1024,
  consumerSegmentBytes: 1024 * 1024,
  windowMessages: 8192,
  windowBytes: 16 * 1024 * 1024,
};

function decode(seq: number, body: Buffer): Stored {
  const b = JSON.parse(body.toString('utf8')) as Body;
  return { seq, id: b.i, time: b.t, data: JSON.stringify(b.d), bytes: body.length };
}

export class Stream {
  readonly name: string;
  private log!: JsonLog;
  private readonly reader: LogReader<Stored>;
  private readonly limits: BusLimits;
  /** Retained and durable, oldest first: metas[head..] hold sequences first..last. */
  private metas: Meta[] = [];
  private head = 0;
  private bytes = 0;
  private lastVisible = 0;
  /** Message ids seen within the duplicate window, and when. */
  private dedupe = new Map<string, { seq: number; time: number; durable: Promise<void> }>();
  private dedupeOrder: { id: string; time: number }[] = [];
  private dedupeHead = 0;
  /** Appended, not yet durable: made visible in order as their fsyncs return. */
  private inFlight: Stored[] = [];
  private readonly listeners = new Set<() => void>();
  private ageTimer: NodeJS.Timeout | null = null;

  private constructor(name: string, limits: BusLimits, io: FileIO | undefined, t: Tuning) {
    this.name = name;
    this.limits = limits;
    this.reader = new LogReader<Stored>({
      source: () => this.log.source,
      decode,
      capacity: t.windowMessages,
      weight: (m) => m.bytes,
      weightMax: t.windowBytes,
      io,
    });
  }

  static async open(root: string, name: string, limits: BusLimits, io?: FileIO, tuning?: Partial<Tuning>): Promise<Stream> {
    const t = { ...TUNING, ...tuning };
    const s = new Stream(name, limits, io, t);
    const now = Date.now();
    let started = false;
    s.log = await JsonLog.open({ dir: path.join(root, 'streams', name), io, segmentBytes: t.streamSegmentBytes }, (index, body, bytes) => {
      const b = body as Body;
      const m: Stored = { seq: index, id: b.i, time: b.t, data: JSON.stringify(b.d), bytes };
      if (!started) {
        s.reader.reset(index - 1);
        started = true;
      }
      s.reader.push(index, m);
      s.metas.push({ seq: m.seq, id: m.id, time: m.time, bytes });
      s.bytes += bytes;
      if (now - m.time < limits.duplicateWindowMs) s.remember(m.id, m.seq, m.time, Promise.resolve());
    });
    if (!started) s.reader.reset(s.log.lastIndex);
    s.lastVisible = s.log.lastIndex;
    s.retain();
    s.ageTimer = setInterval(() => s.retain(), Math.min(1000, Math.max(50, limits.streamAgeMsMax / 4)));
    s.ageTimer.unref();
    return s;
  }

  get first(): number {
    return this.head < this.metas.length ? this.metas[this.head].seq : this.lastVisible + 1;
  }

  get last(): number {
    return this.lastVisible;
  }

  info(): StreamInfo {
    this.retain();
    return { stream: this.name, first: this.first, last: this.lastVisible, messages: this.metas.length - this.head, bytes: this.bytes };
  }

  /** Id, time and size of a retained message. */
  meta(seq: number): Meta | undefined {
    const f = this.first;
    if (seq < f || seq > this.lastVisible) return undefined;
    return this.metas[this.head + (seq - f)];
  }

  /** The retained messages among `seqs` (a message dropped meanwhile is left out). */
  async read(seqs: number[]): Promise<Map<number, Stored>> {
    const out = new Map<number, Stored>();
    const sorted = [...new Set(seqs)].sort((a, b) => a - b);
    for (let i = 0; i < sorted.length; ) {
      let j = i + 1;
      while (j < sorted.length && sorted[j] === sorted[j - 1] + 1) j++;
      const from = sorted[i];
      const got = this.meta(from) ? await this.reader.read(from, j - i) : 'gone';
      if (got === 'gone') {
        // The head of this run was dropped: read what is left one by one.
        for (let k = i + 1; k < j; k++) {
          if (!this.meta(sorted[k])) continue;
          const one = await this.reader.read(sorted[k], 1);
          if (one !== 'gone' && one.length) out.set(sorted[k], one[0]);
        }
      } else for (const m of got) out.set(m.seq, m);
      i = j;
    }
    return out;
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
    const text = data.toString('utf8');
    const body = `{"i":${JSON.stringify(id)},"t":${time},"d":${text}}`;
    const { index, durable } = this.log.append(body);
    const m: Stored = { seq: index, id, time, data: text, bytes: Buffer.byteLength(body) };
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

  private reveal(through: number): void {
    let n = 0;
    while (n < this.inFlight.length && this.inFlight[n].seq <= through) {
      const m = this.inFlight[n++];
      if (m.seq !== this.lastVisible + 1) throw new OsError('internal', `bus stream ${this.name}: message ${m.seq} after ${this.lastVisible}`);
      this.reader.push(m.seq, m);
      this.metas.push({ seq: m.seq, id: m.id, time: m.time, bytes: m.bytes });
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
    while (this.head < this.metas.length) {
      const m = this.metas[this.head];
      const count = this.metas.length - this.head;
      if (count > l.streamMessagesMax || this.bytes > l.streamBytesMax || now - m.time >= l.streamAgeMsMax) {
        this.bytes -= m.bytes;
        this.head++;
      } else break;
    }
    if (this.head === before) return;
    if (this.head > 1024 && this.head * 2 > this.metas.length) {
      this.metas = this.metas.slice(this.head);
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
