/**
 * The one way to read a log of WAL segments (../wal/FORMAT.md) from index N onward: the newest
 * records from a window in memory, older ones decoded from the segments on disk, the same
 * records either way. A reader asking for an index older than what is retained is told 'gone':
 * it must re-list (take a snapshot) and go on from the snapshot's index.
 *
 * Generic over what a record decodes to: the core reads `Committed` (./record.ts), busØ reads its
 * own messages from its own directory of segments with its own `decode`.
 */
import { nodeFileIO, type FileIO } from '../fileio.ts';
import { readSegment, type DecodedRecord, type SegmentSource } from './segments.ts';

/** What a read answers when the index asked for is no longer retained: re-list. */
export const GONE = 'gone';
export type Gone = typeof GONE;

export interface LogReaderOptions<T> {
  /** Where records older than the in-memory window are: the writer's segments. */
  source: () => SegmentSource;
  /** Turns a record body into what readers get; must be pure (the same bytes give equal values). */
  decode: (index: number, body: Buffer) => T;
  /** Records kept in memory. */
  capacity: number;
  /** The weight of one record (e.g. its changes), and the most the window holds in all (both bound memory). */
  weight?: (rec: T) => number;
  weightMax?: number;
  io?: FileIO;
}

/** Reads records (from, from+max) off disk alone, e.g. for a process that does not write the log. */
export async function readFromSegments<T>(
  source: SegmentSource,
  from: number,
  max: number,
  decode: (index: number, body: Buffer) => T,
  io: FileIO = nodeFileIO,
): Promise<T[] | Gone> {
  if (from < source.firstIndex) return GONE;
  const out: T[] = [];
  for (const file of source.segmentPaths(from - 1, Number.MAX_SAFE_INTEGER)) {
    let recs: DecodedRecord[];
    try {
      recs = await readSegment(file, io);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out.length ? out : GONE; // dropped meanwhile
      throw e;
    }
    for (const r of recs) {
      if (r.index < from + out.length) continue;
      if (r.index !== from + out.length) return out;
      out.push(decode(r.index, r.body));
      if (out.length >= max) return out;
    }
  }
  return out;
}

export class LogReader<T> {
  private readonly ring: (T | undefined)[];
  private readonly opts: LogReaderOptions<T>;
  private readonly io: FileIO;
  private start = 1; // index of the oldest record in memory
  private end = 0; // index of the newest
  private tick: Promise<void>;
  private wake!: () => void;
  /** The last segment read from disk, kept raw: lagging readers usually read on through it. */
  private cache: { file: string; first: number; records: DecodedRecord[] } | null = null;
  private weight = 0;
  private readonly weightMax: number;

  constructor(opts: LogReaderOptions<T>) {
    this.opts = opts;
    this.io = opts.io ?? nodeFileIO;
    this.ring = new Array(opts.capacity);
    this.weightMax = opts.weightMax ?? Infinity;
    this.tick = new Promise((r) => (this.wake = r));
  }

  /** The window starts after `index` (set once, at open, to the recovered index). */
  reset(index: number): void {
    this.start = index + 1;
    this.end = index;
  }

  /** Adds the next record (index lastIndex + 1) once it is durable; readers see it after notify(). */
  push(index: number, rec: T): void {
    if (index !== this.end + 1) throw new Error(`log reader: record ${index} pushed after ${this.end}`);
    if (this.end - this.start + 1 >= this.ring.length) this.evict();
    this.ring[index % this.ring.length] = rec;
    this.end = index;
    if (this.opts.weight) {
      this.weight += this.opts.weight(rec);
      while (this.weight > this.weightMax && this.start < this.end) this.evict();
    }
  }

  private evict(): void {
    const slot = this.start % this.ring.length;
    const rec = this.ring[slot];
    if (rec !== undefined && this.opts.weight) this.weight -= this.opts.weight(rec);
    this.ring[slot] = undefined;
    this.start++;
  }

  /** Wakes readers waiting for new records (once per durable group). */
  notify(): void {
    const w = this.wake;
    this.tick = new Promise((r) => (this.wake = r));
    w();
  }

  get lastIndex(): number {
    return this.end;
  }

  /** The oldest index a reader may still read from. */
  get firstIndex(): number {
    return Math.min(this.start, this.opts.source().firstIndex);
  }

  /** Resolves when a record after `index` exists. */
  async waitAfter(index: number): Promise<void> {
    while (this.end <= index) await this.tick;
  }

  /** The next wake-up, whatever it brings (for readers that also wait for other things). */
  get next(): Promise<void> {
    return this.tick;
  }

  /** Up to `max` records from `from` on, from memory alone: null when some must come from disk. */
  readMemory(from: number, max: number): T[] | null {
    if (from < this.start && from <= this.end) return null;
    const out: T[] = [];
    for (let i = Math.max(from, this.start); i <= this.end && out.length < max; i++) out.push(this.ring[i % this.ring.length]!);
    return out;
  }

  /** Up to `max` records from `from` on (fewer at the end of the log), or 'gone' if `from` is no longer retained. */
  async read(from: number, max: number): Promise<T[] | Gone> {
    const mem = this.readMemory(from, max);
    if (mem) return mem;
    if (from < this.firstIndex) return GONE;
    const out: T[] = [];
    let i = from;
    while (i < this.start && out.length < max) {
      const raw = await this.fromDisk(i);
      if (!raw) return out.length ? out : GONE; // dropped while we read: the caller asks again from where it got
      // The window moves while we wait on the disk: what we read stays valid, it is the log.
      for (let k = i - raw.first; k < raw.records.length && i < this.start && out.length < max; k++, i++) {
        out.push(this.opts.decode(i, raw.records[k].body));
      }
    }
    for (; i <= this.end && out.length < max; i++) out.push(this.ring[i % this.ring.length]!);
    return out;
  }

  /** The raw records of the segment holding `index`, from the cache or the disk. */
  private async fromDisk(index: number): Promise<{ first: number; records: DecodedRecord[] } | null> {
    const c = this.cache;
    if (c && index >= c.first && index < c.first + c.records.length) return c;
    const files = this.opts.source().segmentPaths(index - 1, index);
    if (files.length === 0) return null;
    let records: DecodedRecord[];
    try {
      records = await readSegment(files[0], this.io);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // dropped while we looked
      throw e;
    }
    if (records.length === 0 || index < records[0].index || index >= records[0].index + records.length) return null;
    this.cache = { file: files[0], first: records[0].index, records };
    return this.cache;
  }
}
