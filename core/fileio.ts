/**
 * The file layer under the WAL and sstables: the few calls they make, behind an interface so a
 * test can inject faults (ENOSPC, EIO on fsync) where the OS does not let it fill a real disk.
 */
import * as fs from 'node:fs/promises';
import * as fsSync from 'node:fs';
import { constants } from 'node:fs';

export interface WritableFile {
  /** Positional write of the whole buffer; rejects on a short or failed write. */
  write(buf: Uint8Array, position: number): Promise<void>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface FileIO {
  /**
   * Opens for writing, creating it if missing (never truncates). With `dsync`, every write is
   * durable when it returns (O_DSYNC) and datasync() has nothing left to do: one trip to the
   * thread pool per group commit instead of two.
   */
  openWritable(path: string, opts?: { dsync?: boolean }): Promise<WritableFile>;
  readFile(path: string): Promise<Buffer>;
  readdir(dir: string): Promise<string[]>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  mkdirp(dir: string): Promise<void>;
  /** fsync of a directory, so a create, rename or unlink in it is durable. */
  syncDir(dir: string): Promise<void>;
  size(path: string): Promise<number>;
}

class NodeFile implements WritableFile {
  private readonly fh: fs.FileHandle;
  private readonly dsync: boolean;
  constructor(fh: fs.FileHandle, dsync: boolean) {
    this.fh = fh;
    this.dsync = dsync;
  }
  async write(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
      done += bytesWritten;
    }
  }
  datasync(): Promise<void> {
    return this.dsync ? Promise.resolve() : this.fh.datasync();
  }
  truncate(length: number): Promise<void> {
    return this.fh.truncate(length);
  }
  close(): Promise<void> {
    return this.fh.close();
  }
}

export const nodeFileIO: FileIO = {
  async openWritable(path, opts) {
    const dsync = opts?.dsync === true;
    return new NodeFile(await fs.open(path, constants.O_WRONLY | constants.O_CREAT | (dsync ? constants.O_DSYNC : 0), 0o600), dsync);
  },
  readFile: (path) => fs.readFile(path),
  readdir: (dir) => fs.readdir(dir),
  unlink: (path) => fs.unlink(path),
  rename: (from, to) => fs.rename(from, to),
  async mkdirp(dir) {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  },
  async syncDir(dir) {
    const fh = await fs.open(dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  async size(path) {
    return (await fs.stat(path)).size;
  },
};

/** A one-line description of an I/O failure for a user: what happened and what to do. */
export function describeIoError(err: unknown, what: string): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOSPC') return `${what} failed: the disk is full (ENOSPC); free space on the data volume and retry`;
  if (code === 'EDQUOT') return `${what} failed: the disk quota is exhausted (EDQUOT); raise it or free space and retry`;
  if (code === 'EIO') return `${what} failed: an I/O error (EIO); check the disk and retry`;
  if (code === 'EROFS') return `${what} failed: the file system is read-only (EROFS); remount it read-write`;
  return `${what} failed: ${(err as Error)?.message ?? String(err)}`;
}

/**
 * Makes a data directory private whatever the umask was when its parts were made: directories
 * 0700, files 0600 (symlinks are left alone). Bounded: a directory with more than `max` entries
 * below it is tightened only that far (the data directory itself always is).
 */
export function tightenModes(dir: string, max = 100_000): void {
  fsSync.mkdirSync(dir, { recursive: true, mode: 0o700 });
  let seen = 0;
  const stack = [dir];
  while (stack.length > 0 && seen < max) {
    const d = stack.pop()!;
    fsSync.chmodSync(d, 0o700);
    for (const e of fsSync.readdirSync(d, { withFileTypes: true })) {
      if (++seen > max) break;
      const p = `${d}/${e.name}`;
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) fsSync.chmodSync(p, 0o600);
    }
  }
}
