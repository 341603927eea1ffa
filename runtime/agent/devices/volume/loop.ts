/** The hard quota: an ext4 file system in a file of exactly the volume's size, loop-mounted. */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DeviceError } from '../device.ts';
import { isMountPoint, loopsOf } from './mounts.ts';
import type { Quota, VolumeRecord } from './quota.ts';

const exec = promisify(execFile);
const SBIN = '/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin';
const COMMAND_MS_MAX = 60_000;

async function sh(cmd: string, args: string[]): Promise<void> {
  try {
    await exec(cmd, args, { timeout: COMMAND_MS_MAX, env: { PATH: SBIN, LANG: 'C' } });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    const why = (err.stderr?.trim() || err.message).split('\n')[0];
    throw new Error(`${cmd} ${args.join(' ')}: ${why}`);
  }
}

function onPath(cmd: string): boolean {
  return SBIN.split(':').some((d) => fs.existsSync(path.join(d, cmd)));
}

export class LoopQuota implements Quota {
  readonly kind = 'loop' as const;
  readonly hard = true;

  /** The quota, or a one-line reason this host cannot have it. */
  static open(): LoopQuota | string {
    if (process.getuid?.() !== 0) return 'loop-mounted volumes need root';
    for (const cmd of ['mkfs.ext4', 'mount', 'umount', 'losetup']) if (!onPath(cmd)) return `loop-mounted volumes need ${cmd} (e2fsprogs, util-linux)`;
    if (!fs.existsSync('/dev/loop-control')) return 'loop-mounted volumes need /dev/loop-control (the loop module)';
    return new LoopQuota();
  }

  async create(r: VolumeRecord): Promise<void> {
    const image = r.image as string;
    fs.mkdirSync(path.dirname(image), { recursive: true });
    fs.mkdirSync(r.path, { recursive: true });
    const fd = fs.openSync(image, 'w', 0o600);
    try {
      fs.ftruncateSync(fd, r.sizeBytes);
    } finally {
      fs.closeSync(fd);
    }
    // -m 0: no blocks kept for root, so the quota is the same for every user.
    await sh('mkfs.ext4', ['-q', '-F', '-m', '0', '-E', 'lazy_itable_init=1,lazy_journal_init=1', image]);
    await this.attach(r);
    fs.rmSync(path.join(r.path, 'lost+found'), { recursive: true, force: true });
  }

  async attach(r: VolumeRecord): Promise<void> {
    fs.mkdirSync(r.path, { recursive: true });
    if (!isMountPoint(r.path)) await sh('mount', ['-o', 'loop,nosuid,nodev', r.image as string, r.path]);
    if (r.owner) fs.chownSync(r.path, r.owner.uid, r.owner.gid);
  }

  async usage(r: VolumeRecord): Promise<number> {
    if (!isMountPoint(r.path)) return 0;
    const s = fs.statfsSync(r.path);
    return (s.blocks - s.bfree) * s.bsize;
  }

  refuse(): void {
    // The file system refuses by itself.
  }

  async remove(r: Pick<VolumeRecord, 'volume' | 'path' | 'image'>): Promise<void> {
    if (isMountPoint(r.path)) {
      try {
        await sh('umount', [r.path]);
      } catch (e) {
        if (/busy/i.test((e as Error).message)) throw new DeviceError('conflict', `volume ${r.volume} is in use; stop the processes that use it, then delete it`);
        throw e;
      }
    }
    // `mount -o loop` frees its loop device on unmount (autoclear); make sure, whoever bound it.
    if (r.image) for (const dev of loopsOf(r.image)) await sh('losetup', ['-d', dev]);
    if (isMountPoint(r.path)) throw new Error(`${r.path} is still mounted after umount`);
    fs.rmSync(r.path, { recursive: true, force: true });
    if (r.image) fs.rmSync(r.image, { force: true });
  }
}
