/**
 * A task's output on disk: size-rotated files, and a reader for tail and follow.
 *
 * Files, in `<dataDir>/logs/<task>/`: `output.log` (being written), then `output.log.1` (newest
 * rotated) … `output.log.N` (oldest). One line per line of output:
 *
 *   2026-12-02T03:50:50.123Z out the text as the program wrote it
 *   2026-12-02T03:50:50.124Z err …
 *
 * A line longer than `lineBytesMax` is cut into several. When `output.log` would pass
 * `fileBytesMax` it is renamed to `.1` (and so on down), and the oldest beyond `filesKept` is
 * deleted: a task keeps at most about fileBytesMax × (filesKept + 1) bytes of output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Stream = 'out' | 'err';

export interface LogLine {
  /** ISO time the agent read the line. */
  at: string;
  stream: Stream;
  text: string;
}

export interface LogOptions {
  fileBytesMax: number;
  filesKept: number;
  lineBytesMax: number;
}

export const LOG_DEFAULTS: LogOptions = { fileBytesMax: 1 << 20, filesKept: 4, lineBytesMax: 16 << 10 };
export const LOG_FILE = 'output.log';
const NL = 0x0a;

export class LogWriter {
  readonly dir: string;
  private readonly opts: LogOptions;
  private fd: number;
  private size: number;
  private readonly partial: Record<Stream, Buffer> = { out: Buffer.alloc(0), err: Buffer.alloc(0) };

  constructor(dir: string, opts: Partial<LogOptions> = {}) {
    this.dir = dir;
    this.opts = { ...LOG_DEFAULTS, ...opts };
    fs.mkdirSync(dir, { recursive: true });
    this.fd = fs.openSync(path.join(dir, LOG_FILE), 'a');
    this.size = fs.fstatSync(this.fd).size;
  }

  /** Writes the complete lines in `chunk` (keeping an unfinished one for later) and returns them. */
  write(stream: Stream, chunk: Buffer): string[] {
    let buf = this.partial[stream].length > 0 ? Buffer.concat([this.partial[stream], chunk]) : chunk;
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl < 0) break;
      this.cut(buf.subarray(start, nl), lines);
      start = nl + 1;
    }
    buf = buf.subarray(start);
    while (buf.length >= this.opts.lineBytesMax) {
      lines.push(buf.subarray(0, this.opts.lineBytesMax));
      buf = buf.subarray(this.opts.lineBytesMax);
    }
    this.partial[stream] = Buffer.from(buf);
    this.append(stream, lines);
    return lines.map((l) => l.toString('utf8'));
  }

  /** Writes what is left of unfinished lines (the process has ended). */
  flush(): Array<[Stream, string]> {
    const out: Array<[Stream, string]> = [];
    for (const stream of ['out', 'err'] as const) {
      if (this.partial[stream].length === 0) continue;
      const line = this.partial[stream];
      this.partial[stream] = Buffer.alloc(0);
      this.append(stream, [line]);
      out.push([stream, line.toString('utf8')]);
    }
    return out;
  }

  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }

  private cut(line: Buffer, into: Buffer[]): void {
    for (let i = 0; i < line.length || i === 0; i += this.opts.lineBytesMax) into.push(line.subarray(i, i + this.opts.lineBytesMax));
  }

  private append(stream: Stream, lines: Buffer[]): void {
    if (lines.length === 0) return;
    const prefix = Buffer.from(`${new Date().toISOString()} ${stream} `);
    const parts: Buffer[] = [];
    let bytes = 0;
    const put = (): void => {
      if (parts.length === 0) return;
      fs.writeSync(this.fd, parts.length === 1 ? parts[0] : Buffer.concat(parts));
      this.size += bytes;
      parts.length = 0;
      bytes = 0;
    };
    for (const line of lines) {
      const n = prefix.length + line.length + 1;
      if (this.size + bytes + n > this.opts.fileBytesMax && this.size + bytes > 0) {
        put();
        this.rotate();
      }
      parts.push(prefix, line, Buffer.from('\n'));
      bytes += n;
    }
    put();
  }

  private rotate(): void {
    fs.closeSync(this.fd);
    const file = (i: number): string => path.join(this.dir, i === 0 ? LOG_FILE : `${LOG_FILE}.${i}`);
    fs.rmSync(file(this.opts.filesKept), { force: true });
    for (let i = this.opts.filesKept - 1; i >= 0; i--) {
      try {
        fs.renameSync(file(i), file(i + 1));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    this.fd = fs.openSync(file(0), 'a');
    this.size = 0;
  }
}

export function parseLine(raw: string): LogLine | undefined {
  const a = raw.indexOf(' ');
  const b = raw.indexOf(' ', a + 1);
  if (a < 0 || b < 0) return undefined;
  const stream = raw.slice(a + 1, b);
  if (stream !== 'out' && stream !== 'err') return undefined;
  return { at: raw.slice(0, a), stream, text: raw.slice(b + 1) };
}

export const TAIL_LINES_MAX = 100_000;
const FOLLOW_READ_BYTES_MAX = 1 << 20;

/** Reads a task's log files; works from any process on the host, the agent's or not. */
export class LogReader {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The last `n` lines (at most TAIL_LINES_MAX), oldest first. */
  tail(n: number): LogLine[] {
    const want = Math.max(0, Math.min(Math.floor(n), TAIL_LINES_MAX));
    const out: LogLine[][] = [];
    let have = 0;
    for (const file of this.files()) {
      if (have >= want) break;
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        continue;
      }
      const raw = text.split('\n');
      raw.pop(); // after the last newline: empty, or a line still being written
      const lines = raw.map(parseLine).filter((l): l is LogLine => l !== undefined);
      const take = lines.slice(Math.max(0, lines.length - (want - have)));
      out.unshift(take);
      have += take.length;
    }
    return out.flat();
  }

  /**
   * Lines written from now on (after the last `tail` lines, if asked), until `signal` aborts.
   * Polls the files every `pollMs`, and follows `output.log` through rotations.
   */
  async *follow(opts: { signal?: AbortSignal; pollMs?: number; tail?: number } = {}): AsyncGenerator<LogLine> {
    const pollMs = Math.max(10, opts.pollMs ?? 100);
    if (opts.tail) for (const l of this.tail(opts.tail)) yield l;
    const current = path.join(this.dir, LOG_FILE);
    // A file is known by inode and birth time: a rotated-away file's inode number may come back.
    const idOf = (st: fs.Stats): string => `${st.ino}:${st.birthtimeMs}`;
    let id = '';
    let offset = 0;
    try {
      const st = fs.statSync(current);
      id = idOf(st);
      offset = st.size;
    } catch {
      // Not written yet: start at its beginning when it appears.
    }
    let rest = '';
    const readFrom = (file: string): LogLine[] => {
      let fd: number;
      try {
        fd = fs.openSync(file, 'r');
      } catch {
        return [];
      }
      try {
        const size = fs.fstatSync(fd).size;
        const n = Math.min(size - offset, FOLLOW_READ_BYTES_MAX);
        if (n <= 0) return [];
        const buf = Buffer.alloc(n);
        const got = fs.readSync(fd, buf, 0, n, offset);
        offset += got;
        const raw = (rest + buf.subarray(0, got).toString('utf8')).split('\n');
        rest = raw.pop() ?? '';
        return raw.map(parseLine).filter((l): l is LogLine => l !== undefined);
      } finally {
        fs.closeSync(fd);
      }
    };
    while (!opts.signal?.aborted) {
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(current);
      } catch {
        st = undefined;
      }
      if (st && (idOf(st) !== id || st.size < offset)) {
        // Rotated: finish the file we were reading (now one of the numbered ones, unless already
        // deleted: a reader far behind loses what it never read), then start anew.
        if (id !== '') {
          const old = this.files().find((f) => {
            const o = f === current ? undefined : fs.statSync(f, { throwIfNoEntry: false });
            return o !== undefined && idOf(o) === id;
          });
          if (old) {
            let before: number;
            do {
              before = offset;
              for (const l of readFrom(old)) yield l;
            } while (offset > before);
          }
        }
        id = idOf(st);
        offset = 0;
        rest = '';
      }
      if (st) for (const l of readFrom(current)) yield l;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        opts.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  }

  /** The log files, newest first. */
  private files(): string[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const numbered = names
      .map((n) => (n === LOG_FILE ? 0 : n.startsWith(LOG_FILE + '.') ? Number(n.slice(LOG_FILE.length + 1)) : NaN))
      .filter((i) => Number.isInteger(i) && i >= 0)
      .sort((a, b) => a - b);
    return numbered.map((i) => path.join(this.dir, i === 0 ? LOG_FILE : `${LOG_FILE}.${i}`));
  }
}
