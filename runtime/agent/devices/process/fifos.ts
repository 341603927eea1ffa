/**
 * Named pipes made ahead of need: making one takes a `mkfifo` process (Node has no mkfifo), and
 * forking from a large process costs tens of milliseconds on a busy host. The pool makes pairs
 * in batches with one `mkfifo` and hands them out by rename.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export class FifoPool {
  private readonly dir: string;
  private readonly batch: number;
  private spare: string[] = [];
  private refilling?: Promise<void>;
  private seq = 0;

  /** `dir` holds the spare pipes; pipes already there (from an earlier run) are used first. */
  constructor(dir: string, batch = 16) {
    this.dir = dir;
    this.batch = batch;
    fs.mkdirSync(dir, { recursive: true });
    const names = new Set(fs.readdirSync(dir));
    for (const n of names) {
      if (!n.endsWith('.out')) continue;
      const base = n.slice(0, -4);
      if (names.has(`${base}.err`)) this.spare.push(base);
      else fs.rmSync(path.join(dir, n), { force: true });
    }
    for (const n of names) if (n.endsWith('.err') && !names.has(n.slice(0, -4) + '.out')) fs.rmSync(path.join(dir, n), { force: true });
  }

  /** Moves a fresh pair of pipes to `<into>/out` and `<into>/err`. */
  async take(into: string): Promise<void> {
    while (this.spare.length === 0) await this.refill();
    const base = this.spare.pop() as string;
    fs.renameSync(path.join(this.dir, `${base}.out`), path.join(into, 'out'));
    fs.renameSync(path.join(this.dir, `${base}.err`), path.join(into, 'err'));
    if (this.spare.length < this.batch / 2) void this.refill().catch(() => undefined);
  }

  private refill(): Promise<void> {
    this.refilling ??= (async () => {
      try {
        const bases = Array.from({ length: this.batch }, () => `${process.pid}-${Date.now()}-${this.seq++}`);
        await run('mkfifo', ['-m', '600', ...bases.flatMap((b) => [path.join(this.dir, `${b}.out`), path.join(this.dir, `${b}.err`)])]);
        this.spare.push(...bases);
      } finally {
        this.refilling = undefined;
      }
    })();
    return this.refilling;
  }
}
