/**
 * The volume device's cases, run against each quota backend this host has (volume.test.ts):
 * real files, real mounts, a real non-root writer.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, expect, it } from 'vitest';
import type { FailedEvent } from '../../../../runtime/agent/devices/device.ts';
import { isMountPoint, LocalVolumes, loopsOf, type LocalVolumeOptions, type QuotaKind, type VolumeEvent } from '../../../../runtime/agent/devices/volume/index.ts';
import { tempDir } from '../../../helpers/tmp.ts';
import { collect, type Collected } from './helpers.ts';

type Ev = VolumeEvent | FailedEvent;
const MiB = 1 << 20;
const NOBODY = { uid: 65534, gid: 65534 };

/** `dd` as the nobody user: writes `mib` MiB (appending if asked); ok only if all of it got in. */
function writeAs(file: string, mib: number, append = false): Promise<{ ok: boolean; stderr: string }> {
  const args = [`if=/dev/zero`, `of=${file}`, 'bs=1M', `count=${mib}`, 'conv=fsync' + (append ? ',notrunc' : ''), ...(append ? ['oflag=append'] : [])];
  return new Promise((resolve) => {
    const p = spawn('dd', args, { ...NOBODY, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('exit', (code) => resolve({ ok: code === 0, stderr }));
  });
}

function sizeOf(file: string): number {
  return fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
}

export function volumeCases(kind: QuotaKind): void {
  const root = tempDir(`vol-${kind}-`);
  // The non-root writer must reach the volumes (mkdtemp makes the folder 0700).
  fs.chmodSync(root, 0o755);
  const opened: LocalVolumes[] = [];
  let seq = 0;
  const hard = kind === 'loop';

  afterEach(async () => {
    for (const d of opened.splice(0)) {
      for (const v of d.snapshot().volumes) await d.handle({ id: `cleanup-${seq++}`, type: 'volume.delete', volume: v.volume });
      await d.close();
    }
  });
  // Whatever a failed case left mounted under this suite's folder, so the folder can go.
  afterAll(() => {
    const mine = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m) => m?.startsWith(root));
    for (const m of mine) execFileSync('umount', ['-l', m]);
  });

  async function open(extra: Partial<LocalVolumeOptions> = {}): Promise<{ dev: LocalVolumes; c: Collected<Ev>; opts: LocalVolumeOptions }> {
    const c = collect<Ev>();
    const opts: LocalVolumeOptions = { dataDir: path.join(root, `d${seq++}`), quota: kind, emit: c.emit, ...extra };
    const dev = await LocalVolumes.open(opts);
    opened.push(dev);
    return { dev, c, opts };
  }

  it('makes a volume at a path, once per id and once per name', async () => {
    const { dev, c } = await open();
    const cmd = { id: 'e1', type: 'volume.ensure', volume: 'data', sizeBytes: 16 * MiB } as const;
    const a = await dev.handle(cmd);
    expect(a).toMatchObject({ type: 'ensured', volume: 'data', sizeBytes: 16 * MiB, hard, already: false, commandId: 'e1' });
    const p = (a as Extract<Ev, { type: 'ensured' }>).path;
    expect(fs.statSync(p).isDirectory()).toBe(true);
    expect(fs.readdirSync(p)).toEqual([]);
    expect(isMountPoint(p)).toBe(hard);
    expect(await dev.handle(cmd)).toEqual(a);
    expect(await dev.handle({ ...cmd, id: 'e2' })).toMatchObject({ type: 'ensured', path: p, already: true });
    expect(c.events.filter((e) => e.type === 'ensured')).toHaveLength(3);
    const resized = await dev.handle({ ...cmd, id: 'e3', sizeBytes: 32 * MiB });
    if (hard) expect(resized).toMatchObject({ type: 'failed', code: 'conflict' });
    else expect(resized).toMatchObject({ type: 'ensured', sizeBytes: 32 * MiB, already: true });
    expect(dev.snapshot().volumes).toMatchObject([{ volume: 'data', path: p, hard, refusing: false }]);
  });

  it('refuses writes past its quota to a program that is not root, and takes them again once space is freed', async () => {
    const { dev, c } = await open();
    const e = (await dev.handle({ id: 'e1', type: 'volume.ensure', volume: 'q', sizeBytes: 16 * MiB, owner: NOBODY })) as Extract<Ev, { type: 'ensured' }>;
    const big = path.join(e.path, 'big');
    const first = await writeAs(big, 32);
    if (hard) {
      // The file system itself stops it at the quota.
      expect(first.ok).toBe(false);
      expect(first.stderr).toMatch(/No space left/);
      expect(sizeOf(big)).toBeLessThanOrEqual(16 * MiB);
    }
    await dev.measure();
    const v = dev.snapshot().volumes[0];
    if (hard) expect(v.usedBytes).toBeLessThanOrEqual(16 * MiB);
    else {
      expect(v).toMatchObject({ refusing: true });
      expect(c.events.find((x) => x.type === 'over-quota')).toMatchObject({ volume: 'q', sizeBytes: 16 * MiB });
    }
    // Past the quota: neither a new file nor more in the old one.
    expect((await writeAs(path.join(e.path, 'more'), 1)).ok).toBe(false);
    const before = sizeOf(big);
    expect((await writeAs(big, 1, true)).ok).toBe(false);
    expect(sizeOf(big)).toBeLessThanOrEqual(Math.max(before, 16 * MiB));
    // Space freed (by root here): writes go in again.
    fs.rmSync(big);
    fs.rmSync(path.join(e.path, 'more'), { force: true });
    await dev.measure();
    expect(dev.snapshot().volumes[0].refusing).toBe(false);
    if (!hard) expect(c.events.find((x) => x.type === 'under-quota')).toMatchObject({ volume: 'q' });
    expect((await writeAs(path.join(e.path, 'again'), 4)).ok).toBe(true);
  });

  it('keeps a volume and its files across an agent restart' + (hard ? ' and a lost mount (a reboot)' : ''), async () => {
    const { dev, opts } = await open();
    const e = (await dev.handle({ id: 'e1', type: 'volume.ensure', volume: 'keep', sizeBytes: 8 * MiB })) as Extract<Ev, { type: 'ensured' }>;
    fs.writeFileSync(path.join(e.path, 'note'), 'still here');
    await dev.close();
    opened.splice(opened.indexOf(dev), 1);
    if (hard) execFileSync('umount', [e.path]);
    const again = await open({ dataDir: opts.dataDir });
    expect(again.dev.snapshot().volumes).toMatchObject([{ volume: 'keep', path: e.path }]);
    expect(isMountPoint(e.path)).toBe(hard);
    expect(fs.readFileSync(path.join(e.path, 'note'), 'utf8')).toBe('still here');
  });

  it('deletes only on request, leaving no directory, image, mount or loop device behind', async () => {
    const { dev, opts } = await open();
    const e = (await dev.handle({ id: 'e1', type: 'volume.ensure', volume: 'gone', sizeBytes: 8 * MiB })) as Extract<Ev, { type: 'ensured' }>;
    fs.writeFileSync(path.join(e.path, 'f'), 'x');
    const image = path.join(opts.dataDir, 'volume-images', 'gone.ext4');
    if (hard) expect(loopsOf(image)).toHaveLength(1);
    expect(await dev.handle({ id: 'd1', type: 'volume.delete', volume: 'gone' })).toMatchObject({ type: 'deleted', already: false });
    expect(fs.existsSync(e.path)).toBe(false);
    expect(fs.existsSync(image)).toBe(false);
    expect(isMountPoint(e.path)).toBe(false);
    expect(loopsOf(image)).toEqual([]);
    expect(await dev.handle({ id: 'd2', type: 'volume.delete', volume: 'gone' })).toMatchObject({ type: 'deleted', already: true });
    expect(dev.snapshot().volumes).toEqual([]);
  });

  it('removes, on open, what a crash left half made or unrecorded', async () => {
    const { dev, opts } = await open();
    const e = (await dev.handle({ id: 'e1', type: 'volume.ensure', volume: 'orphan', sizeBytes: 8 * MiB })) as Extract<Ev, { type: 'ensured' }>;
    await dev.close();
    opened.splice(opened.indexOf(dev), 1);
    // As if the agent died after making the volume and before writing it down.
    const stateFile = path.join(opts.dataDir, 'volumes.json');
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    fs.writeFileSync(stateFile, JSON.stringify({ ...state, volumes: [] }));
    const again = await open({ dataDir: opts.dataDir });
    expect(again.dev.snapshot().volumes).toEqual([]);
    expect(fs.existsSync(e.path)).toBe(false);
    expect(isMountPoint(e.path)).toBe(false);
    expect(loopsOf(path.join(opts.dataDir, 'volume-images', 'orphan.ext4'))).toEqual([]);
  });

  if (hard) {
    it('will not delete a volume a process still uses', async () => {
      const { dev } = await open();
      const e = (await dev.handle({ id: 'e1', type: 'volume.ensure', volume: 'busy', sizeBytes: 8 * MiB })) as Extract<Ev, { type: 'ensured' }>;
      const user = spawn('sleep', ['300'], { cwd: e.path, stdio: 'ignore' });
      await new Promise((r) => user.once('spawn', r));
      try {
        const r = (await dev.handle({ id: 'd1', type: 'volume.delete', volume: 'busy' })) as FailedEvent;
        expect(r).toMatchObject({ type: 'failed', code: 'conflict' });
        expect(r.error).toContain('in use');
        expect(isMountPoint(e.path)).toBe(true);
      } finally {
        const gone = new Promise((r) => user.once('exit', r));
        user.kill('SIGKILL');
        await gone;
      }
      expect(await dev.handle({ id: 'd2', type: 'volume.delete', volume: 'busy' })).toMatchObject({ type: 'deleted', already: false });
      expect(isMountPoint(e.path)).toBe(false);
    });
  }

  it('bounds volumes and sizes, and refuses bad input with one line, making nothing', async () => {
    const { dev, opts } = await open({ volumesMax: 1 });
    expect(await dev.handle({ id: 'ok', type: 'volume.ensure', volume: 'one', sizeBytes: 4 * MiB })).toMatchObject({ type: 'ensured' });
    const bad: Array<[unknown, string, string]> = [
      [{ id: 'b0', type: 'volume.ensure', volume: 'two', sizeBytes: 4 * MiB }, 'limit', 'already holds 1'],
      [{ id: 'b1', type: 'volume.ensure', volume: '../x', sizeBytes: 4 * MiB }, 'invalid', 'volume must be'],
      [{ id: 'b2', type: 'volume.ensure', volume: 'x', sizeBytes: 1024 }, 'invalid', 'sizeBytes'],
      [{ id: 'b3', type: 'volume.ensure', volume: 'x', sizeBytes: 2 ** 60 }, 'invalid', 'sizeBytes'],
      [{ id: 'b4', type: 'volume.ensure', volume: 'x', sizeBytes: 4 * MiB, owner: { uid: -1, gid: 0 } }, 'invalid', 'owner'],
      [{ id: 'b5', type: 'volume.resize', volume: 'x' }, 'invalid', 'unknown command type'],
    ];
    for (const [cmd, code, words] of bad) {
      const r = (await dev.handle(cmd as never)) as FailedEvent;
      expect(r).toMatchObject({ type: 'failed', code });
      expect(r.error).toContain(words);
      expect(r.error).not.toContain('\n');
    }
    expect(fs.readdirSync(path.join(opts.dataDir, 'volumes'))).toEqual(['one']);
  });
}
