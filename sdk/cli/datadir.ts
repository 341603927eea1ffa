/**
 * The data directory as a service: created if missing, locked for one osØ process at a time.
 * A start that fails is rolled back to what was there before: a directory this process created
 * is removed (with any parents it created), one that existed empty is emptied again, and one that
 * held data is left as it was (only the lock goes).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Service, StopReason } from './services.ts';

export const LOCK_FILE = 'LOCK';

export class DataDir implements Service {
  readonly name = 'data';
  readonly dir: string;
  private readonly lockIt: boolean;
  /** The topmost directory this process created, or the existing directory if it was empty. */
  private fresh: { created: string | null; wasEmpty: boolean } | null = null;
  private unlock: (() => void) | null = null;

  constructor(dir: string, opts: { lock?: boolean } = {}) {
    this.dir = path.resolve(dir);
    this.lockIt = opts.lock ?? true;
  }

  async start(): Promise<void> {
    let existed: fs.Stats | null = null;
    try {
      existed = fs.statSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot use ${this.dir}: ${(e as Error).message}`);
    }
    if (existed && !existed.isDirectory()) throw new Error(`${this.dir} is not a directory; pass another --data`);
    if (!existed) {
      const created = fs.mkdirSync(this.dir, { recursive: true }) ?? this.dir;
      this.fresh = { created, wasEmpty: true };
    } else if (fs.readdirSync(this.dir).length === 0) {
      this.fresh = { created: null, wasEmpty: true };
    }
    if (this.lockIt) {
      try {
        this.unlock = lock(this.dir);
      } catch (e) {
        this.discard();
        throw e;
      }
    }
  }

  async stop(reason: StopReason): Promise<void> {
    this.unlock?.();
    this.unlock = null;
    if (reason === 'rollback') this.discard();
  }

  /** Whether this start found no data here (the directory was missing or empty). */
  get isFresh(): boolean {
    return this.fresh !== null;
  }

  private discard(): void {
    if (!this.fresh) return;
    if (this.fresh.created) fs.rmSync(this.fresh.created, { recursive: true, force: true });
    else for (const f of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, f), { recursive: true, force: true });
    this.fresh = null;
  }
}

/** One osØ per data directory: a second one on the same directory is refused while the first lives. */
function lock(dir: string): () => void {
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot lock ${dir}: ${(e as Error).message}`);
      const pid = Number(fs.readFileSync(file, 'utf8'));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid !== process.pid;
      } catch {}
      if (alive) throw new Error(`${dir} is in use by osØ process ${pid}; stop it first or pass another --data`);
      fs.rmSync(file, { force: true }); // left by a process that died
    }
  }
  throw new Error(`cannot lock ${dir}`);
}
