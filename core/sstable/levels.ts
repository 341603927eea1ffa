/**
 * The sstables of one data directory: the MANIFEST that names them, loading them at start-up,
 * and the background flush and compaction jobs (run in a worker thread, one at a time).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { crc32c } from '../crc32c.ts';
import { OsError } from '../errors.ts';
import { runJob, type Job, type JobResult } from './jobs.ts';
import { SstReader, type Entry } from './sstable.ts';

interface Manifest {
  base: string | null;
  deltas: string[];
  covered: number;
}

const hex = (n: number): string => n.toString(16).padStart(16, '0');

export interface LevelsOptions {
  dir: string;
  /** Run jobs in a worker thread (default) or inline (simple tests). */
  worker?: boolean;
}

export class Levels {
  readonly dir: string;
  private manifest: Manifest;
  private worker: Worker | null = null;
  private readonly useWorker: boolean;
  private nextJob = 1;
  private readonly waiting = new Map<number, { kind: string; resolve: (r: JobResult) => void; reject: (e: Error) => void }>();

  private constructor(opts: LevelsOptions, m: Manifest) {
    this.dir = opts.dir;
    this.useWorker = opts.worker ?? true;
    this.manifest = m;
  }

  /** Reads the MANIFEST (none: empty) and deletes files it does not name (left-overs of a crash). */
  static open(opts: LevelsOptions): Levels {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    const mpath = path.join(opts.dir, 'MANIFEST');
    let m: Manifest = { base: null, deltas: [], covered: 0 };
    if (fs.existsSync(mpath)) {
      const text = fs.readFileSync(mpath, 'utf8');
      const nl = text.indexOf('\n');
      const body = text.slice(nl + 1);
      if (nl < 0 || Number(text.slice(0, nl)) !== crc32c(Buffer.from(body))) {
        throw new OsError('corrupt', `${mpath} fails its checksum; restore the data directory from a backup`);
      }
      m = JSON.parse(body) as Manifest;
    }
    const live = new Set([m.base, ...m.deltas].filter(Boolean));
    const hasManifest = fs.existsSync(mpath);
    for (const f of fs.readdirSync(opts.dir)) {
      // Without a MANIFEST nothing says which sstables are left-overs: keep them (the WAL check
      // that follows refuses to open if records are missing), delete only half-written files.
      if (f.endsWith('.tmp') || (hasManifest && f.endsWith('.sst') && !live.has(f))) fs.unlinkSync(path.join(opts.dir, f));
    }
    return new Levels(opts, m);
  }

  /** The last log index the sstables hold. */
  get covered(): number {
    return this.manifest.covered;
  }

  get deltaCount(): number {
    return this.manifest.deltas.length;
  }

  get files(): string[] {
    return [this.manifest.base, ...this.manifest.deltas].filter((f): f is string => f !== null);
  }

  /** Calls `apply` for every entry: the base, then each delta, in log order. */
  load(apply: (block: Entry[]) => void): void {
    for (const f of this.files) {
      const file = path.join(this.dir, f);
      if (!fs.existsSync(file)) throw new OsError('corrupt', `the MANIFEST names ${file}, which is missing; restore the data directory from a backup`);
      const r = new SstReader(file);
      try {
        for (const block of r.blocks()) apply(block);
      } finally {
        r.close();
      }
    }
  }

  /** Writes sealed WAL records covered+1..to into a new delta; returns once the MANIFEST names it. */
  async flush(segments: string[], to: number): Promise<void> {
    const from = this.manifest.covered;
    if (to <= from) return;
    const name = `delta-${hex(from)}-${hex(to)}.sst`;
    await this.run({ kind: 'flush', segments, from, to, out: path.join(this.dir, name) });
    this.writeManifest({ base: this.manifest.base, deltas: [...this.manifest.deltas, name], covered: to });
  }

  /** Merges base and deltas into a new base without superseded versions and tombstones. */
  async compact(): Promise<void> {
    const m = this.manifest;
    if (m.deltas.length === 0) return;
    const name = `base-${hex(m.covered)}.sst`;
    const inputs = this.files.map((f) => path.join(this.dir, f));
    await this.run({ kind: 'compact', inputs, to: m.covered, out: path.join(this.dir, name) });
    const old = this.files;
    this.writeManifest({ base: name, deltas: [], covered: m.covered });
    for (const f of old) if (f !== name) fs.rmSync(path.join(this.dir, f), { force: true });
  }

  private writeManifest(m: Manifest): void {
    const body = JSON.stringify(m);
    const tmp = path.join(this.dir, 'MANIFEST.tmp');
    const fd = fs.openSync(tmp, 'w', 0o600);
    fs.writeSync(fd, `${crc32c(Buffer.from(body))}\n${body}`);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, path.join(this.dir, 'MANIFEST'));
    const dfd = fs.openSync(this.dir, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    this.manifest = m;
  }

  private run(job: Job): Promise<JobResult> {
    if (!this.useWorker) return Promise.resolve().then(() => runJob(job));
    if (!this.worker) {
      this.worker = new Worker(new URL('./worker.ts', import.meta.url));
      this.worker.unref();
      this.worker.on('message', (msg: { id: number; ok: boolean; result: JobResult; error: { message: string } }) => {
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.ok) w?.resolve(msg.result);
        else w?.reject(new OsError('internal', `${w?.kind} failed: ${msg.error.message}`));
      });
      this.worker.on('error', (e) => {
        for (const w of this.waiting.values()) w.reject(e);
        this.waiting.clear();
        this.worker = null;
      });
    }
    const id = this.nextJob++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { kind: job.kind, resolve, reject });
      this.worker!.postMessage({ id, job });
    });
  }

  async close(): Promise<void> {
    await this.worker?.terminate();
    this.worker = null;
  }
}
