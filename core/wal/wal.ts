/**
 * The segmented write-ahead log with group commit (format: FORMAT.md beside this file).
 *
 * One write and one fdatasync are in flight at a time; every record appended meanwhile joins the
 * next group, so N concurrent writers share one fsync. A record is acknowledged (its promise
 * resolves) only after the fdatasync that covers it has returned.
 */
import * as path from 'node:path';
import { OsError } from '../errors.ts';
import { describeIoError, nodeFileIO, type FileIO, type WritableFile } from '../fileio.ts';
import { decodeSegment, encodeSegmentHeader, parseSegmentName, SEGMENT_HEADER_BYTES, segmentName } from './codec.ts';

export interface WalOptions {
  dir: string;
  /** A new segment is started when a write would take the current one past this. */
  segmentBytes?: number;
  /** Most bytes written by one group commit. */
  groupBytesMax?: number;
  io?: FileIO;
  /** Called when a segment is sealed (a new one started), with the last index it holds. */
  onSealed?: (lastIndex: number) => void;
  /** Called after each fdatasync with the last index it made durable. */
  onDurable?: (lastIndex: number) => void;
  /** Called (synchronously, before anything else is appended) when a write fails and every queued record is refused. */
  onFailure?: (err: OsError) => void;
}

export interface TornTail {
  file: string;
  offset: number;
  bytes: number;
  reason: string;
}

interface Segment {
  first: number;
  name: string;
}

interface Group {
  bufs: Buffer[];
  bytes: number;
  first: number;
  last: number;
}

const GROUP_RECORDS_MAX = 1024; // IOV_MAX on Linux
/** A group this large is written at once rather than at the end of the turn. */
const EAGER_RECORDS = 32;

export class Wal {
  readonly dir: string;
  private readonly io: FileIO;
  private readonly segmentBytes: number;
  private readonly groupBytesMax: number;
  private readonly onSealed: ((lastIndex: number) => void) | undefined;
  private readonly onFailure: ((err: OsError) => void) | undefined;
  private readonly onDurable: ((lastIndex: number) => void) | undefined;
  private segments: Segment[];
  private file: WritableFile | null;
  /** Bytes of the current segment that are durable. */
  private segBytes: number;
  private lastAppended: number;
  private durable: number;
  private groups: Group[] = [];
  private flushing = false;
  private damaged: OsError | null = null;
  private closed = false;
  private sealRequested = false;
  private scheduled = false;
  private inFlight: Group | null = null;
  private idle: (() => void)[] = [];
  /** fdatasync latencies in ms, for metrics; a bounded ring. */
  readonly syncMs = new Float64Array(4096);
  syncCount = 0;

  private constructor(opts: WalOptions, segments: Segment[], file: WritableFile, segBytes: number, last: number) {
    this.dir = opts.dir;
    this.io = opts.io ?? nodeFileIO;
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.groupBytesMax = opts.groupBytesMax ?? 4 * 1024 * 1024;
    this.onSealed = opts.onSealed;
    this.onFailure = opts.onFailure;
    this.onDurable = opts.onDurable;
    this.segments = segments;
    this.file = file;
    this.segBytes = segBytes;
    this.lastAppended = last;
    this.durable = last;
  }

  /**
   * Opens (or creates) the log, calling `onRecord` for every record after `afterIndex` in order.
   * A torn tail is cut and reported; corruption anywhere else throws WalCorruption.
   */
  static async open(
    opts: WalOptions,
    afterIndex: number,
    onRecord: (index: number, body: Buffer) => void,
  ): Promise<{ wal: Wal; torn: TornTail | null; lastIndex: number }> {
    const io = opts.io ?? nodeFileIO;
    await io.mkdirp(opts.dir);
    const segments: Segment[] = [];
    for (const name of await io.readdir(opts.dir)) {
      const first = parseSegmentName(name);
      if (first !== null) segments.push({ first, name });
    }
    segments.sort((a, b) => a.first - b.first);
    // Segments wholly covered by sstables stay for the retained window (the core drops them
    // with dropThrough); they are not read here.
    let torn: TornTail | null = null;
    let next = afterIndex + 1;
    if (segments.length > 0 && segments[0].first > next) {
      throw new OsError('corrupt', `WAL in ${opts.dir} starts at index ${segments[0].first} but the sstable covers only up to ${afterIndex}: records are missing; restore the data directory from a backup`);
    }
    let segBytes = SEGMENT_HEADER_BYTES;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const isLast = i === segments.length - 1;
      const file = path.join(opts.dir, seg.name);
      // Kept only for the retained window (history), and covered by sstables: nothing to replay.
      if (!isLast && segments[i + 1].first - 1 <= afterIndex) continue;
      const dec = decodeSegment(await io.readFile(file), seg.name, isLast, seg.first);
      const end = seg.first + dec.records.length;
      if (!isLast && end !== segments[i + 1].first) {
        throw new OsError('corrupt', `WAL segment ${seg.name} ends at index ${end - 1} but the next segment starts at ${segments[i + 1].first}: records are missing; restore the data directory from a backup`);
      }
      if (i === 0 && seg.first > next) throw new OsError('corrupt', `WAL records ${next}..${seg.first - 1} are missing`);
      for (const r of dec.records) if (r.index > afterIndex) onRecord(r.index, r.body);
      next = Math.max(next, end);
      if (isLast) {
        segBytes = Math.max(dec.validBytes, SEGMENT_HEADER_BYTES);
        if (dec.torn) {
          torn = { file, offset: dec.torn.offset, bytes: dec.torn.bytes, reason: dec.torn.reason };
          const f = await io.openWritable(file);
          await f.truncate(dec.validBytes < SEGMENT_HEADER_BYTES ? 0 : dec.validBytes);
          if (dec.validBytes < SEGMENT_HEADER_BYTES) await f.write(encodeSegmentHeader(seg.first), 0);
          await f.datasync();
          await f.close();
        }
      }
    }
    if (segments.length === 0) {
      const seg = { first: next, name: segmentName(next) };
      const f = await io.openWritable(path.join(opts.dir, seg.name));
      await f.truncate(0);
      await f.write(encodeSegmentHeader(seg.first), 0);
      await f.datasync();
      await f.close();
      await io.syncDir(opts.dir);
      segments.push(seg);
    }
    const current = segments[segments.length - 1];
    const file = await io.openWritable(path.join(opts.dir, current.name), { dsync: true });
    const wal = new Wal(opts, segments, file, segBytes, next - 1);
    return { wal, torn, lastIndex: next - 1 };
  }

  /** Index of the last record appended (durable or queued). */
  get lastIndex(): number {
    return this.lastAppended;
  }

  /** Index of the last record known durable. */
  get durableIndex(): number {
    return this.durable;
  }

  /** The oldest index still on disk. */
  get firstIndex(): number {
    return this.segments[0].first;
  }

  /** The last index held by a sealed (no longer written) segment, or 0. */
  get sealedThrough(): number {
    return this.segments[this.segments.length - 1].first - 1;
  }

  /** Paths of the segments that hold records in (from, to]. */
  segmentPaths(from: number, to: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.segments.length; i++) {
      const s = this.segments[i];
      const last = i + 1 < this.segments.length ? this.segments[i + 1].first - 1 : this.lastAppended;
      if (last > from && s.first <= to) out.push(path.join(this.dir, s.name));
    }
    return out;
  }

  /**
   * Queues one encoded record; `onDurable` reports it once it is durable, `onFailure` if it is
   * refused. `index` must follow the previous record's. All records appended in one turn of the
   * event loop (and while a write is in flight) share one write and one fdatasync.
   */
  append(record: Buffer, index: number): void {
    if (this.closed) throw new OsError('closed', 'the log is closed');
    if (index !== this.lastAppended + 1) throw new OsError('internal', `WAL append out of order: ${index} after ${this.lastAppended}`);
    this.lastAppended = index;
    let g = this.groups[this.groups.length - 1];
    if (!g || g === this.inFlight || g.bufs.length >= GROUP_RECORDS_MAX || g.bytes + record.length > this.groupBytesMax) {
      g = { bufs: [], bytes: 0, first: index, last: index };
      this.groups.push(g);
    }
    g.bufs.push(record);
    g.bytes += record.length;
    g.last = index;
    if (!this.flushing && g.bufs.length >= EAGER_RECORDS) {
      // Enough for a write: start it now, so the disk works while the rest of this burst of
      // submitters is sequenced into the next group (CPU and fsync overlap).
      this.flushing = true;
      void this.flushLoop();
    } else this.kick();
  }

  /** Starts a new segment (if the current one holds records), so that all before it can be flushed to an sstable. */
  seal(): Promise<void> {
    this.sealRequested = true;
    this.kick();
    return this.drain();
  }

  /** Starts the flush loop at the end of this turn (so one turn's appends share a write). */
  private kick(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      if (this.flushing) return;
      this.flushing = true;
      void this.flushLoop();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.groups.length > 0 || this.sealRequested) {
      const g = this.groups[0];
      this.inFlight = g ?? null;
      try {
        if (this.damaged) await this.repair();
        if (!g) {
          if (this.segBytes > SEGMENT_HEADER_BYTES) await this.rotate(this.durable + 1);
          this.sealRequested = false;
          continue;
        }
        if (this.segBytes > SEGMENT_HEADER_BYTES && this.segBytes + g.bytes > this.segmentBytes) await this.rotate(g.first);
        const t0 = performance.now();
        await this.writeGroup(g);
        await this.file!.datasync();
        this.syncMs[this.syncCount++ % this.syncMs.length] = performance.now() - t0;
        this.segBytes += g.bytes;
        this.durable = g.last;
        this.groups.shift();
        this.inFlight = null;
        this.onDurable?.(g.last);
      } catch (e) {
        this.inFlight = null;
        this.sealRequested = false;
        const err = e instanceof OsError ? e : new OsError('unavailable', describeIoError(e, 'writing the WAL'));
        this.damaged = err;
        this.groups = [];
        this.lastAppended = this.durable;
        // Synchronously, so that nothing is appended on top of the refused records.
        this.onFailure?.(err);
        try {
          await this.repair();
        } catch {
          // Still damaged: the next write retries the repair first.
        }
      }
    }
    this.flushing = false;
    for (const f of this.idle.splice(0)) f();
  }

  private async writeGroup(g: Group): Promise<void> {
    const buf = g.bufs.length === 1 ? g.bufs[0] : Buffer.concat(g.bufs, g.bytes);
    await this.file!.write(buf, this.segBytes);
  }

  /** Cuts the current segment back to its durable length after a failed write. */
  private async repair(): Promise<void> {
    if (!this.file) {
      const cur = this.segments[this.segments.length - 1];
      this.file = await this.io.openWritable(path.join(this.dir, cur.name), { dsync: true });
    }
    await this.file.truncate(this.segBytes);
    await this.file.datasync();
    this.damaged = null;
  }

  private async rotate(first: number): Promise<void> {
    const seg = { first, name: segmentName(first) };
    const f = await this.io.openWritable(path.join(this.dir, seg.name), { dsync: true });
    try {
      await f.truncate(0);
      await f.write(encodeSegmentHeader(first), 0);
      await f.datasync();
      await this.io.syncDir(this.dir);
    } catch (e) {
      await f.close().catch(() => {});
      await this.io.unlink(path.join(this.dir, seg.name)).catch(() => {});
      throw e;
    }
    const old = this.file!;
    this.file = f;
    this.segments.push(seg);
    this.segBytes = SEGMENT_HEADER_BYTES;
    await old.close().catch(() => {});
    this.onSealed?.(first - 1);
  }

  /** Deletes sealed segments whose records are all at or below `index` (covered by an sstable). */
  async dropThrough(index: number): Promise<number> {
    let dropped = 0;
    while (this.segments.length > 1 && this.segments[1].first - 1 <= index) {
      const s = this.segments.shift()!;
      await this.io.unlink(path.join(this.dir, s.name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      dropped++;
    }
    if (dropped) await this.io.syncDir(this.dir);
    return dropped;
  }

  /** Resolves when every queued record has been written (or refused). */
  drain(): Promise<void> {
    if (!this.flushing && !this.scheduled) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
    await this.file?.close();
    this.file = null;
  }
}
