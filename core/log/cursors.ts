/**
 * Durable consumer cursors: where each named reader of a log stands (and a little JSON state
 * beside it), kept in one small file written through the same FileIO layer as the WAL.
 *
 * The file is replaced whole (write a temporary file, fdatasync, rename, fsync the directory),
 * so a crash leaves the old version or the new one, never a mix. Writes are group-committed:
 * every `commit()` that arrives while a write is in flight is covered by the next single write,
 * so N acknowledgements at once cost one write and two fsyncs, not N.
 */
import * as path from 'node:path';
import { OsError } from '../errors.ts';
import { describeIoError, nodeFileIO, type FileIO } from '../fileio.ts';

export interface CursorState {
  /** The last index this reader finished with. */
  cursor: number;
}

export interface CursorsOptions {
  /** The file, e.g. DATA/handlers.json. */
  file: string;
  io?: FileIO;
  /** set() without commit() is saved within this long (50 ms): at most that much repeats after a crash. */
  saveMs?: number;
  /** Most readers the file holds. */
  entriesMax?: number;
}

export class Cursors<S extends CursorState> {
  readonly file: string;
  private readonly io: FileIO;
  private readonly saveMs: number;
  private readonly entriesMax: number;
  private readonly states = new Map<string, S>();
  /** Bumped by every change; `written` is the version the file holds. */
  private version = 0;
  private written = 0;
  private writing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Why the last write failed (null once one succeeds): the caller reports it. */
  lastError: string | null = null;

  private constructor(opts: CursorsOptions) {
    this.file = opts.file;
    this.io = opts.io ?? nodeFileIO;
    this.saveMs = opts.saveMs ?? 50;
    this.entriesMax = opts.entriesMax ?? 10_000;
  }

  static async open<S extends CursorState>(opts: CursorsOptions): Promise<Cursors<S>> {
    const c = new Cursors<S>(opts);
    let text: string | null = null;
    try {
      text = (await c.io.readFile(c.file)).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new OsError('unavailable', describeIoError(e, `reading ${c.file}`));
    }
    if (text !== null) {
      let saved: Record<string, S>;
      try {
        saved = JSON.parse(text) as Record<string, S>;
      } catch {
        throw new OsError('corrupt', `${c.file} is not valid JSON (it is only ever replaced whole, so the disk damaged it); restore it from a backup, or delete it to start every reader from now`);
      }
      for (const [name, s] of Object.entries(saved)) {
        if (!Number.isSafeInteger(s?.cursor)) throw new OsError('corrupt', `${c.file}: reader ${name} has no cursor; restore the file from a backup, or delete it to start every reader from now`);
        c.states.set(name, s);
      }
    }
    return c;
  }

  get(name: string): S | undefined {
    return this.states.get(name);
  }

  names(): string[] {
    return [...this.states.keys()];
  }

  get size(): number {
    return this.states.size;
  }

  /** Records a reader's state; it is saved within `saveMs` (call commit() to wait for it). */
  set(name: string, state: S): void {
    if (!this.states.has(name) && this.states.size >= this.entriesMax) {
      throw new OsError('too_large', `${this.entriesMax} readers already keep cursors; remove unused handlers first`);
    }
    this.states.set(name, state);
    this.changed();
  }

  delete(name: string): void {
    if (this.states.delete(name)) this.changed();
  }

  /** The state objects are the caller's: after changing one in place, call touch(). */
  touch(): void {
    this.changed();
  }

  private changed(): void {
    this.version++;
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.commit().catch(() => {}); // lastError says why; the next change retries
    }, this.saveMs);
    this.timer.unref();
  }

  /** Resolves once everything set before the call is durable; concurrent calls share one write. */
  async commit(): Promise<void> {
    const want = this.version;
    while (this.written < want) {
      if (this.writing) {
        await this.writing.catch(() => {});
        continue;
      }
      const version = this.version;
      this.writing = this.write().finally(() => (this.writing = null));
      await this.writing;
      this.written = Math.max(this.written, version);
    }
  }

  private async write(): Promise<void> {
    const out: Record<string, S> = {};
    for (const [name, s] of this.states) out[name] = s;
    const buf = Buffer.from(JSON.stringify(out));
    const tmp = this.file + '.tmp';
    try {
      const f = await this.io.openWritable(tmp);
      try {
        await f.truncate(0);
        await f.write(buf, 0);
        await f.datasync();
      } finally {
        await f.close();
      }
      await this.io.rename(tmp, this.file);
      await this.io.syncDir(path.dirname(this.file));
      this.lastError = null;
    } catch (e) {
      await this.io.unlink(tmp).catch(() => {}); // no temporary file left behind (nor an error over it)
      this.lastError = describeIoError(e, `saving reader cursors to ${this.file}`);
      throw new OsError('unavailable', this.lastError);
    }
  }

  /** Saves what is pending and stops the timer: later changes are saved only by an explicit commit(). */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.closed = true;
    await this.commit();
  }
}
