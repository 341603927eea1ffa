/**
 * A durable consumer of the embedded bus. Its state (where it is, what is delivered and how
 * often, what is acked, what is parked) is a log of small JSON records beside the stream's, so
 * an ack is durable when `ack` resolves and a restart resumes exactly:
 *
 *   {"o":{ackWaitMs,deliveriesMax,ackPendingMax},"n":NEXT}   created (or options changed)
 *   {"d":[SEQ,...]}                                           delivered (once more each)
 *   {"a":[SEQ]}                                               acked
 *   {"p":[{"s":SEQ,"i":ID,"t":TIME,"n":DELIVERIES}]}          parked
 *   {"s":{...}}                                               snapshot of all the above
 *
 * When a segment fills, a snapshot is written and the segments before it are deleted.
 */
import * as path from 'node:path';
import type { FileIO } from '../../fileio.ts';
import { OsError } from '../../errors.ts';
import { fetchOptions, type Consumer, type ConsumerInfo, type FetchOptions, type Message, type ResolvedConsumerOptions } from '../bus.ts';
import { JsonLog } from './log.ts';
import type { Meta, Stream } from './stream.ts';

interface Pending {
  deliveries: number;
  /** Deliverable again from this time (ms since the epoch). */
  deadline: number;
}

interface ParkedEntry {
  s: number;
  i: string;
  t: number;
  n: number;
}

type Options = Omit<ResolvedConsumerOptions, 'start'>;

interface Snapshot {
  f: number;
  n: number;
  done: number[];
  pend: [number, number][];
  parked: ParkedEntry[];
  pc: number;
  o: Options;
}

type Rec = { o?: Options; n?: number; d?: number[]; a?: number[]; p?: ParkedEntry[]; s?: Snapshot };

const SEGMENT_BYTES = 1024 * 1024;
/** Parked messages listed; older ones are still counted. */
const PARKED_LISTED_MAX = 1000;

export class EmbeddedConsumer implements Consumer {
  readonly stream: string;
  readonly durable: string;
  private readonly s: Stream;
  private log!: JsonLog;
  private o!: Options;
  private floor = 0;
  private next = 1;
  private done = new Set<number>();
  private pending = new Map<number, Pending>();
  private parkedList: ParkedEntry[] = [];
  private parkedCount = 0;
  private snapshotDue = false;
  private closed = false;
  private readonly wakers = new Set<() => void>();

  private constructor(s: Stream, durable: string) {
    this.s = s;
    this.stream = s.name;
    this.durable = durable;
  }

  static async open(root: string, s: Stream, durable: string, opts: ResolvedConsumerOptions, io?: FileIO, segmentBytes = SEGMENT_BYTES): Promise<EmbeddedConsumer> {
    const c = new EmbeddedConsumer(s, durable);
    let created = false;
    let lastSnapshot = 0;
    c.log = await JsonLog.open(
      { dir: path.join(root, 'consumers', s.name, durable), io, segmentBytes, onSealed: () => (c.snapshotDue = true) },
      (index, body) => {
        const r = body as Rec;
        if (r.s) lastSnapshot = index;
        if (r.o) created = true;
        c.apply(r, Date.now());
      },
    );
    const { start, ...o } = opts;
    if (!created) {
      const next = start === 'first' ? s.first : start === 'new' ? s.last + 1 : start;
      c.o = o;
      c.next = next;
      c.floor = next - 1;
      await c.log.append(JSON.stringify({ o, n: next } satisfies Rec)).durable;
    } else if (JSON.stringify(o) !== JSON.stringify(c.o)) {
      c.o = o;
      await c.log.append(JSON.stringify({ o } satisfies Rec)).durable;
    }
    if (lastSnapshot > 1) await c.log.dropThrough(lastSnapshot - 1);
    return c;
  }

  private apply(r: Rec, now: number): void {
    if (r.s) {
      const x = r.s;
      this.floor = x.f;
      this.next = x.n;
      this.done = new Set(x.done);
      this.pending = new Map(x.pend.map(([seq, n]) => [seq, { deliveries: n, deadline: now + x.o.ackWaitMs }]));
      this.parkedList = x.parked;
      this.parkedCount = x.pc;
      this.o = x.o;
    }
    if (r.o) this.o = r.o;
    if (r.n !== undefined) {
      this.next = r.n;
      this.floor = r.n - 1;
    }
    for (const seq of r.d ?? []) {
      const p = this.pending.get(seq);
      if (p) p.deliveries++;
      else this.pending.set(seq, { deliveries: 1, deadline: now + this.o.ackWaitMs });
      if (seq >= this.next) this.next = seq + 1;
    }
    for (const seq of r.a ?? []) if (this.pending.delete(seq)) this.markDone(seq);
    for (const p of r.p ?? []) {
      if (this.pending.delete(p.s)) this.markDone(p.s);
      this.addParked(p);
    }
  }

  private addParked(p: ParkedEntry): void {
    this.parkedList.push(p);
    if (this.parkedList.length > PARKED_LISTED_MAX) this.parkedList.shift();
    this.parkedCount++;
  }

  private markDone(seq: number): void {
    if (seq > this.floor) this.done.add(seq);
    this.advanceFloor();
  }

  private advanceFloor(): void {
    const first = this.s.first;
    for (;;) {
      const seq = this.floor + 1;
      if (seq >= this.next) break;
      if (this.done.delete(seq) || (seq < first && !this.pending.has(seq))) this.floor = seq;
      else break;
    }
  }

  private write(r: Rec): Promise<void> {
    const { durable } = this.log.append(JSON.stringify(r));
    if (this.snapshotDue) {
      this.snapshotDue = false;
      const snap = this.log.append(JSON.stringify({ s: this.snapshot() } satisfies Rec));
      void snap.durable.then(() => this.log.dropThrough(snap.index - 1)).catch(() => {
        // The segments stay until the next snapshot; the state they hold is in this one too.
      });
    }
    return durable;
  }

  private snapshot(): Snapshot {
    return {
      f: this.floor,
      n: this.next,
      done: [...this.done],
      pend: [...this.pending].map(([seq, p]) => [seq, p.deliveries]),
      parked: this.parkedList,
      pc: this.parkedCount,
      o: this.o,
    };
  }

  private wake(): void {
    for (const f of this.wakers) f();
  }

  /** Parks what has had its deliveries and whose ack wait has passed; drops what retention dropped. */
  private expire(now: number): void {
    let parked: ParkedEntry[] | null = null;
    for (const [seq, p] of this.pending) {
      if (p.deadline > now) continue;
      const m = this.s.meta(seq);
      if (!m) {
        this.pending.delete(seq);
        this.markDone(seq);
      } else if (p.deliveries >= this.o.deliveriesMax) {
        (parked ??= []).push(this.park(seq, m, p));
      }
    }
    if (parked) void this.write({ p: parked }).catch(() => {});
  }

  private park(seq: number, m: Meta, p: Pending): ParkedEntry {
    const e = { s: seq, i: m.id, t: m.time, n: p.deliveries };
    this.pending.delete(seq);
    this.markDone(seq);
    this.addParked(e);
    return e;
  }

  /** Chooses what to deliver now (redeliveries first, then new messages) and counts the delivery. */
  private pick(max: number, now: number): { seq: number; n: number }[] {
    this.expire(now);
    const out: { seq: number; n: number }[] = [];
    const ready: number[] = [];
    for (const [seq, p] of this.pending) if (p.deadline <= now) ready.push(seq);
    ready.sort((a, b) => a - b);
    for (const seq of ready) {
      if (out.length >= max) break;
      const p = this.pending.get(seq)!;
      p.deliveries++;
      p.deadline = now + this.o.ackWaitMs;
      out.push({ seq, n: p.deliveries });
    }
    if (this.next < this.s.first) this.next = this.s.first;
    while (out.length < max && this.pending.size < this.o.ackPendingMax && this.next <= this.s.last) {
      this.pending.set(this.next, { deliveries: 1, deadline: now + this.o.ackWaitMs });
      out.push({ seq: this.next, n: 1 });
      this.next++;
    }
    this.advanceFloor();
    return out;
  }

  async fetch(opts?: FetchOptions): Promise<Message[]> {
    const { max, waitMs } = fetchOptions(opts);
    const until = Date.now() + waitMs;
    for (;;) {
      if (this.closed) throw new OsError('closed', `bus consumer ${this.durable} on ${this.stream} is closed`);
      const now = Date.now();
      const got = this.pick(max, now);
      if (got.length > 0) {
        // The delivery counts are durable before anyone sees the messages, so a crash never
        // lets a message past its deliveriesMax.
        const [, stored] = await Promise.all([this.write({ d: got.map((g) => g.seq) }), this.s.read(got.map((g) => g.seq))]);
        const out: Message[] = [];
        for (const { seq, n } of got) {
          const m = stored.get(seq);
          if (m) out.push({ stream: this.stream, seq, id: m.id, time: m.time, data: JSON.parse(m.data), deliveries: n });
          else if (this.pending.delete(seq)) this.markDone(seq); // dropped by retention meanwhile
        }
        if (out.length > 0) return out;
        continue;
      }
      if (now >= until || opts?.signal?.aborted) return [];
      let soonest = until;
      for (const p of this.pending.values()) if (p.deadline < soonest) soonest = p.deadline;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          unlisten();
          this.wakers.delete(done);
          opts?.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, Math.max(1, soonest - now));
        const unlisten = this.s.listen(done);
        this.wakers.add(done);
        opts?.signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  async ack(seq: number): Promise<void> {
    if (this.closed) throw new OsError('closed', `bus consumer ${this.durable} on ${this.stream} is closed`);
    if (!this.pending.delete(seq)) return;
    this.markDone(seq);
    this.wake();
    await this.write({ a: [seq] });
  }

  async nak(seq: number, delayMs = 0): Promise<void> {
    if (this.closed) throw new OsError('closed', `bus consumer ${this.durable} on ${this.stream} is closed`);
    const p = this.pending.get(seq);
    if (!p) return;
    const m = this.s.meta(seq);
    if (m && p.deliveries >= this.o.deliveriesMax) {
      await this.write({ p: [this.park(seq, m, p)] });
    } else {
      p.deadline = Date.now() + Math.max(0, delayMs);
    }
    this.wake();
  }

  async info(): Promise<ConsumerInfo> {
    this.expire(Date.now());
    const from = Math.max(this.next, this.s.first);
    return {
      stream: this.stream,
      durable: this.durable,
      ackFloor: this.floor,
      ackPending: this.pending.size,
      waiting: Math.max(0, this.s.last - from + 1),
      parked: this.parkedCount,
    };
  }

  async parked(max = 100): Promise<Message[]> {
    this.expire(Date.now());
    const list = this.parkedList.slice(0, Math.max(0, Math.min(max, PARKED_LISTED_MAX)));
    const stored = await this.s.read(list.map((p) => p.s));
    return list.map((p) => {
      const m = stored.get(p.s);
      return { stream: this.stream, seq: p.s, id: p.i, time: p.t, data: m ? JSON.parse(m.data) : null, deliveries: p.n };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await this.log.close();
  }
}
