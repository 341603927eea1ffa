/**
 * The volume device on this host: volumes live in `<dataDir>/volumes/<name>` (the path a process
 * is given), loop images in `<dataDir>/volume-images/<name>.ext4`, and the list in
 * `<dataDir>/volumes.json` (replaced atomically). A volume is written down as 'creating' before
 * anything is made, so what a crash leaves half made is removed by the next open, as is anything
 * in those folders the list does not name: no mount or loop device is left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Commands, DeviceError, type Emit, type FailedEvent, type OutcomeBody } from '../device.ts';
import { readJson, writeJsonAtomic } from '../state.ts';
import { LoopQuota } from './loop.ts';
import { MeasuredQuota } from './measured.ts';
import type { Quota, VolumeRecord } from './quota.ts';
import type { DeleteCommand, EnsureCommand, QuotaKind, VolumeCommand, VolumeDevice, VolumeEvent, VolumeSnapshot } from './volume.ts';

export interface LocalVolumeOptions {
  dataDir: string;
  emit: Emit<VolumeEvent>;
  /** Default: loop where the host allows it, else measured. */
  quota?: QuotaKind;
  volumesMax?: number;
  sizeBytesMin?: number;
  sizeBytesMax?: number;
  /** How often every volume is measured. */
  measureMs?: number;
  inFlightMax?: number;
}

export const VOLUME_DEFAULTS = {
  volumesMax: 64,
  sizeBytesMin: 4 << 20,
  sizeBytesMax: 2 ** 40,
  measureMs: 5000,
} as const;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const OWNER_ID_MAX = 2 ** 32 - 2;

interface StateFile {
  version: 1;
  quota: QuotaKind;
  volumes: VolumeRecord[];
}

/** The quota backend this host allows: `want`, or the best one. */
export function openQuota(want?: QuotaKind): Quota {
  if (want === 'measured') return new MeasuredQuota();
  const loop = LoopQuota.open();
  if (typeof loop !== 'string') return loop;
  if (want === 'loop') throw new Error(`loop volumes are not available here: ${loop}`);
  return new MeasuredQuota();
}

function invalid(message: string): DeviceError {
  return new DeviceError('invalid', message);
}

export class LocalVolumes implements VolumeDevice {
  readonly name = 'volume';
  private readonly quota: Quota;
  private readonly opts: Required<Omit<LocalVolumeOptions, 'quota'>>;
  private readonly commands: Commands<VolumeEvent>;
  private readonly records = new Map<string, VolumeRecord>();
  /** Per volume, the tail of its chain of operations: one at a time per volume. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly stateFile: string;
  private readonly volumesDir: string;
  private readonly imagesDir: string;
  private timer?: NodeJS.Timeout;
  private measuring?: Promise<void>;
  private closed = false;

  private constructor(opts: LocalVolumeOptions, quota: Quota) {
    this.quota = quota;
    this.opts = {
      volumesMax: VOLUME_DEFAULTS.volumesMax,
      sizeBytesMin: VOLUME_DEFAULTS.sizeBytesMin,
      sizeBytesMax: VOLUME_DEFAULTS.sizeBytesMax,
      measureMs: VOLUME_DEFAULTS.measureMs,
      inFlightMax: 64,
      ...opts,
    } as LocalVolumes['opts'];
    this.commands = new Commands<VolumeEvent>('volume', opts.emit, { inFlightMax: this.opts.inFlightMax });
    this.stateFile = path.join(opts.dataDir, 'volumes.json');
    this.volumesDir = path.join(opts.dataDir, 'volumes');
    this.imagesDir = path.join(opts.dataDir, 'volume-images');
  }

  /** Opens the device on `dataDir`: mounts its volumes again and removes what a crash left. */
  static async open(opts: LocalVolumeOptions): Promise<LocalVolumes> {
    const dataDir = path.resolve(opts.dataDir);
    const state = readJson<StateFile>(path.join(dataDir, 'volumes.json'));
    // Volumes keep the kind they were made with; an empty data dir takes the best one there is.
    const want = opts.quota ?? (state?.volumes.length ? state.quota : undefined);
    const quota = openQuota(want);
    if (state && state.quota !== quota.kind && state.volumes.length > 0) {
      throw new Error(`${dataDir} holds ${state.quota} volumes; open it with quota '${state.quota}' (or delete its volumes first)`);
    }
    fs.mkdirSync(path.join(dataDir, 'volumes'), { recursive: true });
    const dev = new LocalVolumes({ ...opts, dataDir }, quota);
    await dev.recover(state);
    dev.timer = setInterval(() => void dev.measure().catch(() => undefined), dev.opts.measureMs);
    dev.timer.unref();
    return dev;
  }

  handle(command: VolumeCommand): Promise<VolumeEvent | FailedEvent> {
    const type = (command as { type?: unknown } | null)?.type;
    if (type === 'volume.ensure') return this.commands.run(command, () => this.ensure(command as EnsureCommand));
    if (type === 'volume.delete') return this.commands.run(command, () => this.delete(command as DeleteCommand));
    return this.commands.run(command, async () => {
      throw invalid(`unknown command type ${JSON.stringify(type)}; use volume.ensure or volume.delete`);
    });
  }

  snapshot(): VolumeSnapshot {
    return {
      quota: this.quota.kind,
      volumesMax: this.opts.volumesMax,
      volumes: [...this.records.values()]
        .filter((r) => r.state === 'ready')
        .map((r) => ({ volume: r.volume, path: r.path, sizeBytes: r.sizeBytes, usedBytes: r.usedBytes, hard: this.quota.hard, refusing: r.cleared !== undefined })),
    };
  }

  async measure(): Promise<void> {
    // One measurement at a time; a caller arriving during one waits for the next whole pass.
    while (this.measuring) await this.measuring;
    this.measuring = this.measureAll();
    try {
      await this.measuring;
    } finally {
      this.measuring = undefined;
    }
  }

  /** Stops measuring. Volumes stay mounted and kept: only volume.delete removes one. */
  async close(): Promise<void> {
    this.closed = true;
    this.commands.close();
    clearInterval(this.timer);
    while (this.measuring) await this.measuring;
  }

  // ---- commands ----

  private async ensure(c: EnsureCommand): Promise<OutcomeBody<VolumeEvent>> {
    const name = this.checkName(c.volume);
    const size = c.sizeBytes;
    if (!Number.isInteger(size) || size < this.opts.sizeBytesMin || size > this.opts.sizeBytesMax) {
      throw invalid(`sizeBytes must be a whole number of bytes in ${this.opts.sizeBytesMin}-${this.opts.sizeBytesMax}`);
    }
    const owner = c.owner;
    if (owner !== undefined) {
      const ok = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= OWNER_ID_MAX;
      if (typeof owner !== 'object' || owner === null || !ok(owner.uid) || !ok(owner.gid)) throw invalid('owner must be {"uid": N, "gid": N} with whole numbers');
    }
    return this.locked(name, async () => {
      const known = this.records.get(name);
      if (known) {
        if (known.sizeBytes !== size && this.quota.hard) {
          throw new DeviceError('conflict', `volume ${name} exists with ${known.sizeBytes} bytes; ensure it with that size, or delete it first`);
        }
        known.sizeBytes = size;
        if (owner) known.owner = { uid: owner.uid, gid: owner.gid };
        await this.quota.attach(known);
        this.save();
        await this.measureOne(known);
        return { type: 'ensured', volume: name, path: known.path, sizeBytes: size, hard: this.quota.hard, already: true };
      }
      if (this.records.size >= this.opts.volumesMax) throw new DeviceError('limit', `this machine already holds ${this.opts.volumesMax} volumes; delete one or raise volumesMax`);
      if (this.quota.hard) {
        const s = fs.statfsSync(this.opts.dataDir);
        const free = s.bavail * s.bsize - this.reservedBytes();
        if (size > free) throw new DeviceError('limit', `volume ${name} needs ${size} bytes and the disk has ${Math.max(0, free)} free for volumes; ask for less`);
      }
      const r: VolumeRecord = {
        volume: name,
        sizeBytes: size,
        path: path.join(this.volumesDir, name),
        image: this.quota.kind === 'loop' ? path.join(this.imagesDir, `${name}.ext4`) : undefined,
        owner: owner ? { uid: owner.uid, gid: owner.gid } : undefined,
        state: 'creating',
        createdAt: Date.now(),
        usedBytes: 0,
      };
      this.records.set(name, r);
      this.save();
      try {
        await this.quota.create(r);
      } catch (e) {
        await this.quota.remove(r).catch(() => undefined);
        this.records.delete(name);
        this.save();
        throw new DeviceError('host', `could not make volume ${name}: ${(e as Error).message}`.split('\n')[0]);
      }
      r.state = 'ready';
      this.save();
      await this.measureOne(r);
      return { type: 'ensured', volume: name, path: r.path, sizeBytes: size, hard: this.quota.hard, already: false };
    });
  }

  private async delete(c: DeleteCommand): Promise<OutcomeBody<VolumeEvent>> {
    const name = this.checkName(c.volume);
    return this.locked(name, async () => {
      const r = this.records.get(name);
      if (!r) return { type: 'deleted', volume: name, already: true };
      await this.quota.remove(r);
      this.records.delete(name);
      this.save();
      return { type: 'deleted', volume: name, already: false };
    });
  }

  // ---- measuring ----

  private async measureAll(): Promise<void> {
    for (const r of [...this.records.values()]) {
      if (this.closed) return;
      await this.locked(r.volume, () => (this.records.get(r.volume) === r ? this.measureOne(r) : Promise.resolve()));
    }
  }

  /** Measures one volume (under its lock) and refuses or allows writes accordingly. */
  private async measureOne(r: VolumeRecord): Promise<void> {
    if (r.state !== 'ready') return;
    r.usedBytes = await this.quota.usage(r);
    if (this.quota.hard) return;
    const over = r.usedBytes > r.sizeBytes;
    const refusing = r.cleared !== undefined;
    if (over === refusing) return;
    this.quota.refuse(r, over);
    this.save();
    if (!this.closed) this.commands.event({ type: over ? 'over-quota' : 'under-quota', volume: r.volume, usedBytes: r.usedBytes, sizeBytes: r.sizeBytes });
  }

  // ---- state ----

  private async recover(state: StateFile | undefined): Promise<void> {
    for (const r of state?.volumes ?? []) {
      if (r.state !== 'ready') {
        await this.quota.remove(r);
        continue;
      }
      this.records.set(r.volume, r);
      await this.quota.attach(r);
    }
    // What no record names: made by a run that crashed before writing it down.
    const named = new Set(this.records.keys());
    for (const n of fs.readdirSync(this.volumesDir)) {
      if (named.has(n)) continue;
      await this.quota.remove({ volume: n, path: path.join(this.volumesDir, n), image: path.join(this.imagesDir, `${n}.ext4`) });
    }
    if (fs.existsSync(this.imagesDir)) {
      for (const f of fs.readdirSync(this.imagesDir)) {
        const n = f.replace(/\.ext4$/, '');
        if (!named.has(n)) await this.quota.remove({ volume: n, path: path.join(this.volumesDir, n), image: path.join(this.imagesDir, f) });
      }
    }
    this.save();
    await this.measureAll();
  }

  private save(): void {
    const state: StateFile = { version: 1, quota: this.quota.kind, volumes: [...this.records.values()] };
    writeJsonAtomic(this.stateFile, state);
  }

  private reservedBytes(): number {
    // Image files are sparse: count what the volumes may still grow into.
    let n = 0;
    for (const r of this.records.values()) n += Math.max(0, r.sizeBytes - r.usedBytes);
    return n;
  }

  private checkName(v: unknown): string {
    if (typeof v !== 'string' || !NAME_RE.test(v)) throw invalid('volume must be 1-100 characters of letters, digits, ".", "_" and "-", starting with a letter or digit');
    return v;
  }

  private locked<T>(name: string, work: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const next = prev.then(work, work);
    const tail = next.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return next;
  }
}

