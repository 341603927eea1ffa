/**
 * The retained log window that watches, handlers and `os0 log` read from: the newest records in
 * a ring in memory, older ones decoded from the WAL segments kept on disk for the window. A
 * reader asking for an index older than the window is told to re-list ('gone').
 */
import * as path from 'node:path';
import { readFileSync } from 'node:fs';
import type { Change, Committed } from './core.ts';
import { decodeBody } from './logrecord.ts';
import type { Resource } from './resource.ts';
import { decodeSegment, parseSegmentName } from './wal/codec.ts';

export interface LogSource {
  /** Paths of the WAL segments that hold records in (from, to]. */
  segmentPaths(from: number, to: number): string[];
  /** The oldest index still on disk. */
  readonly firstIndex: number;
}

export class History {
  private readonly ring: (Committed | undefined)[];
  private start = 1; // index of the oldest record in the ring
  private end = 0; // index of the newest
  private tick: Promise<void>;
  private wake!: () => void;
  private cache: { file: string; records: Map<number, Committed> } | null = null;
  private readonly source: () => LogSource;

  /** Changes held by the ring: a record may hold up to 1000 (a batch), so both are bounded. */
  private changes = 0;
  private readonly changesMax: number;

  constructor(capacity: number, source: () => LogSource, changesMax = capacity * 10) {
    this.ring = new Array(capacity);
    this.changesMax = changesMax;
    this.source = source;
    this.tick = new Promise((r) => (this.wake = r));
  }

  /** The index the ring starts after; set once at open to the recovered index. */
  reset(index: number): void {
    this.start = index + 1;
    this.end = index;
  }

  push(c: Committed): void {
    const slot = c.index % this.ring.length;
    if (this.end - this.start + 1 >= this.ring.length) this.evict();
    this.ring[slot] = c;
    this.end = c.index;
    this.changes += c.changes.length;
    while (this.changes > this.changesMax && this.start < this.end) this.evict();
  }

  private evict(): void {
    const slot = this.start % this.ring.length;
    this.changes -= this.ring[slot]?.changes.length ?? 0;
    this.ring[slot] = undefined;
    this.start++;
  }

  /** Wakes readers waiting for new records (called once per applied group). */
  notify(): void {
    const w = this.wake;
    this.tick = new Promise((r) => (this.wake = r));
    w();
  }

  get lastIndex(): number {
    return this.end;
  }

  /** The oldest index a reader may still resume from. */
  get firstIndex(): number {
    return Math.min(this.start, this.source().firstIndex);
  }

  /** Resolves when a record after `index` exists. */
  async waitAfter(index: number): Promise<void> {
    while (this.end <= index) await this.tick;
  }

  /** The next wake-up, whatever it brings (for readers that also wait for other things). */
  get next(): Promise<void> {
    return this.tick;
  }

  /** Up to `max` records from `from` on, or 'gone' if `from` is older than the window. */
  read(from: number, max: number): Committed[] | 'gone' {
    const out: Committed[] = [];
    if (from > this.end) return out;
    if (from < this.firstIndex) return 'gone';
    let i = from;
    while (i < this.start && out.length < max) {
      const c = this.fromDisk(i);
      if (!c) return 'gone';
      out.push(c);
      i++;
    }
    for (; i <= this.end && out.length < max; i++) out.push(this.ring[i % this.ring.length]!);
    return out;
  }

  private fromDisk(index: number): Committed | undefined {
    const hit = this.cache?.records.get(index);
    if (hit) return hit;
    const files = this.source().segmentPaths(index - 1, index);
    if (files.length === 0) return undefined;
    const file = files[0];
    const name = path.basename(file);
    // The newest segment may end in a write still in flight: read it as recovery would.
    const seg = decodeSegment(readFileSync(file), name, true, parseSegmentName(name)!);
    const records = new Map<number, Committed>();
    for (const rec of seg.records) {
      const body = decodeBody(rec.body);
      const changes: Change[] = body.c.map((ch) =>
        ch.o === 'delete' ? { action: 'delete', old: ch.r, new: null } : { action: ch.o, old: null, new: ch.r as Resource },
      );
      records.set(rec.index, { index: rec.index, time: body.t, actor: body.a, changes });
    }
    this.cache = { file, records };
    return records.get(index);
  }
}
