/**
 * One append-only log of JSON bodies in the WAL's segment format (core/wal/FORMAT.md), with
 * group commit: every body appended in one turn shares one write and one fdatasync. The embedded
 * bus keeps each stream and each consumer's state in one of these.
 *
 * Opening replays the segments once (through the Wal's recovery, which cuts a torn tail); reads
 * after that go through the core's one log reader (core/log), over `source`.
 */
import { OsError } from '../../errors.ts';
import { nodeFileIO, type FileIO } from '../../fileio.ts';
import { encodeRecord, parseSegmentName } from '../../wal/codec.ts';
import { Wal } from '../../wal/wal.ts';
import type { SegmentSource } from '../../log/segments.ts';

export interface LogOptions {
  dir: string;
  segmentBytes?: number;
  io?: FileIO;
  onSealed?: (lastIndex: number) => void;
}

interface Waiter {
  index: number;
  resolve: () => void;
  reject: (e: OsError) => void;
}

/**
 * Opens the segments in `dir` from the oldest kept, handing every record to `onRecord`: the one
 * place the bus reads segments.
 */
async function replay(opts: LogOptions & { onDurable: (last: number) => void; onFailure: (e: OsError) => void }, onRecord: (index: number, body: Buffer) => void): Promise<Wal> {
  const io = opts.io ?? nodeFileIO;
  await io.mkdirp(opts.dir);
  let first = Infinity;
  for (const name of await io.readdir(opts.dir)) {
    const f = parseSegmentName(name);
    if (f !== null && f < first) first = f;
  }
  return (await Wal.open(opts, first === Infinity ? 0 : first - 1, onRecord)).wal;
}

export class JsonLog {
  private wal!: Wal;
  private waiters: Waiter[] = [];

  private constructor() {}

  static async open(opts: LogOptions, onRecord: (index: number, body: unknown, bytes: number) => void): Promise<JsonLog> {
    const log = new JsonLog();
    log.wal = await replay({ ...opts, onDurable: (last) => log.durable(last), onFailure: (err) => log.failed(err) }, (index, body) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        throw new OsError('corrupt', `bus log ${opts.dir}: record ${index} is not JSON though its checksum holds; restore the data directory from a backup`);
      }
      onRecord(index, parsed, body.length);
    });
    return log;
  }

  get lastIndex(): number {
    return this.wal.lastIndex;
  }

  get firstIndex(): number {
    return this.wal.firstIndex;
  }

  /** The segments, for the log reader (core/log) to read older records from. */
  get source(): SegmentSource {
    return this.wal;
  }

  /** Appends one record; its index is returned at once, `durable` resolves after the fsync. */
  append(body: string): { index: number; bytes: number; durable: Promise<void> } {
    const index = this.wal.lastIndex + 1;
    const rec = encodeRecord(index, body);
    this.wal.append(rec, index);
    const durable = new Promise<void>((resolve, reject) => this.waiters.push({ index, resolve, reject }));
    return { index, bytes: rec.length, durable };
  }

  private durable(last: number): void {
    let n = 0;
    while (n < this.waiters.length && this.waiters[n].index <= last) this.waiters[n++].resolve();
    if (n) this.waiters.splice(0, n);
  }

  private failed(err: OsError): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  dropThrough(index: number): Promise<number> {
    return this.wal.dropThrough(index);
  }

  close(): Promise<void> {
    return this.wal.close();
  }
}
