/**
 * A full disk and a failing fsync, under the WAL.
 *
 * 1. Injected at the file layer: a FileIO around the real one (real files, real fsync) whose
 *    writes fail with ENOSPC (after writing part of the buffer, as a full disk does) or whose
 *    fdatasync fails with EIO, while a flag is set.
 * 2. On a real 1 MiB tmpfs, where the kernel returns ENOSPC itself (needs root to mount; skipped
 *    where mounting is not allowed).
 *
 * In every case: the submits in flight are refused with 'unavailable' and a one-line message,
 * none is acknowledged, reads keep showing exactly what was acknowledged, nothing refused shows
 * up, not even after a reopen, and once the fault is gone writes resume and survive a reopen.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Core, OsError, type CoreOptions, type FileIO, type SubmitResult, type WritableFile } from '../../core/index.ts';
import { nodeFileIO } from '../../core/fileio.ts';
import { expectOsError, removeDir, scratchDir } from './helpers.ts';

const root = scratchDir('faults');
afterAll(() => removeDir(root));
let seq = 0;
const freshDir = (): string => path.join(root, `case-${++seq}`);

// ---- the fault-injecting file layer -------------------------------------------------------

type Fault = 'ENOSPC' | 'EIO';

class Faults {
  /** While set, WAL writes fail with ENOSPC, or fdatasyncs with EIO. */
  mode: Fault | null = null;
  /** While set, a failing call waits for it before failing (so more submitters pile up). */
  gate: Promise<void> | null = null;
  /** Calls that failed. */
  hits = 0;
}

const errno = (code: Fault, syscall: string): NodeJS.ErrnoException =>
  Object.assign(new Error(`${code}: ${code === 'ENOSPC' ? 'no space left on device' : 'i/o error'}, ${syscall}`), {
    code,
    errno: code === 'ENOSPC' ? -28 : -5,
    syscall,
  });

function faultyIO(f: Faults): FileIO {
  return {
    ...nodeFileIO,
    async openWritable(p: string): Promise<WritableFile> {
      const inner = await nodeFileIO.openWritable(p);
      return {
        async write(buf, position) {
          if (f.mode !== 'ENOSPC') return inner.write(buf, position);
          if (f.gate) await f.gate;
          // A full disk takes what fits, then refuses the rest: leave half a write behind.
          const part = Math.floor(buf.length / 2);
          if (part > 0) await inner.write(buf.subarray(0, part), position);
          f.hits++;
          throw errno('ENOSPC', 'write');
        },
        async datasync() {
          if (f.mode !== 'EIO') return inner.datasync();
          if (f.gate) await f.gate;
          f.hits++;
          throw errno('EIO', 'fdatasync');
        },
        truncate: (n) => inner.truncate(n),
        close: () => inner.close(),
      };
    },
  };
}

// ---- helpers ------------------------------------------------------------------------------

const create = (name: string, data: unknown = { name }, tags: Record<string, string> = {}) => ({
  op: 'create' as const,
  resource: { type: 'item', namespace: 'ns', name, tags, data },
});

/** name → the revision and data acknowledged for it. */
type Acked = Map<string, { revision: number; data: unknown }>;

function ack(acked: Acked, res: SubmitResult): void {
  for (const r of res.resources) acked.set(r.name, { revision: r.revision, data: r.data });
}

/** Reads show exactly what was acknowledged: every acked resource as acked, nothing else. */
function expectExactly(core: Core, acked: Acked, where: string): void {
  const wrong: string[] = [];
  for (const [name, want] of acked) {
    const r = core.get('item', name, 'ns');
    if (!r) wrong.push(`${name} is missing`);
    else if (r.revision !== want.revision || JSON.stringify(r.data) !== JSON.stringify(want.data)) wrong.push(`${name} is at revision ${r.revision}, acknowledged at ${want.revision}`);
  }
  const all = core.query({ type: 'item' });
  for (const r of all) if (!acked.has(r.name)) wrong.push(`${r.name} (revision ${r.revision}) was never acknowledged`);
  expect(wrong.slice(0, 20), `${where}: ${wrong.length} differences`).toEqual([]);
  expect(all.length).toBe(acked.size);
}

/** Every index up to the core's is an acknowledged record: refused ones left no hole and no trace. */
function expectIndexes(core: Core, indexes: Set<number>, where: string): void {
  const max = Math.max(0, ...indexes);
  expect(core.index, where).toBe(max);
  expect(indexes.size, `${where}: acknowledged indexes are not 1..${max}`).toBe(max);
}

function expectUnavailable(results: PromiseSettledResult<unknown>[], mention: RegExp, where: string): void {
  const acked = results.filter((r) => r.status === 'fulfilled').length;
  expect(acked, `${where}: submits acknowledged while the disk failed`).toBe(0);
  for (const r of results) {
    const e = (r as PromiseRejectedResult).reason as OsError;
    expect(e, `${where}: ${String(e)}`).toBeInstanceOf(OsError);
    expect(e.code, e.message).toBe('unavailable');
    expect(e.message).toMatch(mention);
    expect(e.message).not.toMatch(/[\r\n]/);
  }
}

/** Waits for submits to be acknowledged or refused; they must not hang. */
function settle(ps: Promise<SubmitResult>[]): Promise<PromiseSettledResult<SubmitResult>[]> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${ps.length} submits were neither acknowledged nor refused within 10 s`)), 10_000);
  });
  return Promise.race([Promise.allSettled(ps), hang]).finally(() => clearTimeout(timer));
}

// ---- injected faults ----------------------------------------------------------------------

describe.each([
  ['the disk is full (ENOSPC on write)', 'ENOSPC' as Fault, /disk is full/],
  ['fsync fails (EIO on fdatasync)', 'EIO' as Fault, /I\/O error/],
])('%s, injected at the file layer', (_title, fault, mention) => {
  const OPTS = { worker: false } satisfies Partial<CoreOptions>;

  it('refuses every submit in flight, keeps reads, shows nothing refused, and resumes when the fault clears', async () => {
    const dir = freshDir();
    const f = new Faults();
    const acked: Acked = new Map();
    const indexes = new Set<number>();
    const record = (res: SubmitResult): void => {
      ack(acked, res);
      indexes.add(res.index);
    };
    let open = (): void => {};
    const core = await Core.open({ dir, io: faultyIO(f), ...OPTS });
    try {
      for (const res of await Promise.all(Array.from({ length: 100 }, (_, i) => core.submit(create(`pre-${i}`, { i }, { phase: 'pre' }))))) record(res);
      const before = core.index;
      expect(before).toBe(100);

      // The fault hits while a group is being written; more submitters queue up behind it.
      f.gate = new Promise((r) => (open = r));
      f.mode = fault;
      const inFlight: Promise<SubmitResult>[] = [];
      for (let i = 0; i < 64; i++) inFlight.push(core.submit(create(`refused-${i}`, { i }, { phase: 'refused' })));
      await new Promise((r) => setTimeout(r, 20));
      // Queued behind the failing write: updates, a delete and an atomic batch.
      for (let i = 0; i < 10; i++) inFlight.push(core.submit({ op: 'update', resource: { type: 'item', namespace: 'ns', name: `pre-${i}`, tags: { phase: 'pre' }, data: { i, changed: true } } }));
      inFlight.push(core.submit({ op: 'delete', resource: { type: 'item', namespace: 'ns', name: 'pre-99' } }));
      inFlight.push(core.submit({ batch: [0, 1, 2].map((k) => create(`refused-batch-${k}`, { k }, { batch: 'refused' })) }));
      // Nothing accepted but not durable is visible to readers.
      expect(core.get('item', 'refused-0', 'ns')).toBeUndefined();
      expect(core.get('item', 'pre-0', 'ns')!.data).toEqual({ i: 0 });
      open();
      f.gate = null;
      expectUnavailable(await settle(inFlight), mention, 'in flight');
      expect(f.hits).toBeGreaterThanOrEqual(1);

      // Reads still work and show exactly what was acknowledged before.
      expectExactly(core, acked, 'after the failure');
      expect(core.query({ type: 'item', tags: { phase: 'pre' } }).length).toBe(100);
      expect(core.query({ type: 'item', tags: { phase: 'refused' } })).toEqual([]);
      expect(core.query({ tags: { batch: 'refused' } })).toEqual([]);
      expectIndexes(core, indexes, 'after the failure');

      // While the fault lasts, every new submit is refused too, one at a time or concurrently.
      for (let i = 0; i < 3; i++) {
        const e = await expectOsError(core.submit(create(`still-${i}`)), 'unavailable');
        expect(e.message).toMatch(mention);
      }
      expectUnavailable(await settle(Array.from({ length: 16 }, (_, i) => core.submit(create(`still-many-${i}`)))), mention, 'while the fault lasts');
      expectExactly(core, acked, 'while the fault lasts');

      // The fault clears: writes resume at the next index, refused names are free, refused updates can be redone.
      f.mode = null;
      const after = await Promise.all([
        ...Array.from({ length: 30 }, (_, i) => core.submit(create(`after-${i}`, { i }))),
        core.submit(create('refused-0', { again: true })),
        core.submit({ op: 'update', resource: { type: 'item', namespace: 'ns', name: 'pre-1', data: { i: 1, changed: true } } }),
        core.submit({ batch: [0, 1, 2].map((k) => create(`after-batch-${k}`, { k }, { batch: 'after' })) }),
      ]);
      for (const res of after) record(res);
      expect(Math.min(...after.map((r) => r.index))).toBe(before + 1);
      expectExactly(core, acked, 'after the fault cleared');
      expectIndexes(core, indexes, 'after the fault cleared');
    } finally {
      // Let a failed test close the core rather than hang on the gate.
      open();
      f.mode = null;
      await core.close();
    }

    // Everything acknowledged survives a reopen (on the plain file layer); nothing refused appears.
    const reopened = await Core.open({ dir, ...OPTS });
    try {
      expect(reopened.torn, 'the refused writes were not cut back').toBeNull();
      expectExactly(reopened, acked, 'after a reopen');
      expectIndexes(reopened, indexes, 'after a reopen');
      expect(reopened.query({ tags: { batch: 'after' } }).length).toBe(3);
      const more = await reopened.submit(create('after-reopen'));
      expect(more.index).toBe(reopened.index);
    } finally {
      await reopened.close();
    }
  });

  it('a core closed while the fault lasts reopens without anything refused', async () => {
    const dir = freshDir();
    const f = new Faults();
    const acked: Acked = new Map();
    const core = await Core.open({ dir, io: faultyIO(f), ...OPTS });
    try {
      for (const res of await Promise.all(Array.from({ length: 40 }, (_, i) => core.submit(create(`pre-${i}`, { i }))))) ack(acked, res);
      f.mode = fault;
      expectUnavailable(await settle(Array.from({ length: 40 }, (_, i) => core.submit(create(`refused-${i}`)))), mention, 'refused');
      expectUnavailable(await settle([core.submit({ op: 'update', resource: { type: 'item', namespace: 'ns', name: 'pre-0', data: { changed: true } } })]), mention, 'refused update');
    } finally {
      await core.close();
    }
    f.mode = null;
    const reopened = await Core.open({ dir, io: faultyIO(f), ...OPTS });
    try {
      expect(reopened.torn, 'the refused writes were not cut back').toBeNull();
      expectExactly(reopened, acked, 'reopened after closing while failing');
      expect(reopened.index).toBe(40);
      ack(acked, await reopened.submit(create('refused-0', { again: true })));
      expectExactly(reopened, acked, 'after a new write');
    } finally {
      await reopened.close();
    }
  });

  it('faults that come and go under 32 concurrent submitters, across segment rotations: acknowledged ⇔ durable', async () => {
    const dir = freshDir();
    const f = new Faults();
    const acked: Acked = new Map();
    const indexes = new Set<number>();
    const refused = new Set<string>();
    const other: unknown[] = [];
    const core = await Core.open({ dir, io: faultyIO(f), segmentBytes: 8 * 1024, autoFlush: false, ...OPTS });
    try {
      let attempts = 0;
      let toggles = 0;
      const submitter = async (s: number): Promise<void> => {
        for (let n = 0; attempts < 1500 || toggles < 6; n++) {
          attempts++;
          const name = `s${s}-${n}`;
          try {
            const res = await core.submit(create(name, { s, n, pad: 'z'.repeat(100) }));
            ack(acked, res);
            indexes.add(res.index);
          } catch (e) {
            if (e instanceof OsError && e.code === 'unavailable') refused.add(name);
            else other.push(e);
          }
        }
      };
      // Toggle the fault on and off while the submitters run.
      let toggling = true;
      const toggler = (async () => {
        while (toggling) {
          await new Promise((r) => setTimeout(r, 15));
          f.mode = f.mode ? null : fault;
          toggles++;
        }
        f.mode = null;
      })();
      await Promise.all(Array.from({ length: 32 }, (_, s) => submitter(s)));
      toggling = false;
      await toggler;
      expect(other).toEqual([]);
      expect(refused.size, 'the faults never hit').toBeGreaterThan(0);
      expect(acked.size, 'nothing got through between faults').toBeGreaterThan(0);
      expectExactly(core, acked, 'after the run');
      expectIndexes(core, indexes, 'after the run');
    } finally {
      await core.close();
    }
    const segments = fs.readdirSync(path.join(dir, 'wal'));
    expect(segments.length, 'no segment rotation happened').toBeGreaterThan(2);
    const reopened = await Core.open({ dir, segmentBytes: 8 * 1024, autoFlush: false, ...OPTS });
    try {
      expect(reopened.torn).toBeNull();
      expectExactly(reopened, acked, 'after a reopen');
      expectIndexes(reopened, indexes, 'after a reopen');
    } finally {
      await reopened.close();
    }
  });
});

// ---- a real full file system ----------------------------------------------------------------

/** Can this process mount a tmpfs? (Root in a sandbox that allows mount(2).) */
function probeMount(): { ok: boolean; why: string } {
  if (process.platform !== 'linux') return { ok: false, why: 'not Linux' };
  if (process.getuid?.() !== 0) return { ok: false, why: 'not root' };
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-mount-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', d], { encoding: 'utf8' });
    if (r.status !== 0) return { ok: false, why: (r.stderr || r.error?.message || `mount exited ${r.status}`).trim().split('\n')[0] };
    spawnSync('umount', [d]);
    return { ok: true, why: '' };
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
}
const mountable = probeMount();

describe('a real full file system (1 MiB tmpfs)', () => {
  let mnt: string | null = null;
  afterAll(() => {
    if (!mnt) return;
    const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (r.status !== 0) spawnSync('umount', ['-l', mnt]);
    fs.rmSync(mnt, { recursive: true, force: true });
  });

  it.skipIf(!mountable.ok)(
    `fills it to ENOSPC through the core, refuses, keeps reads, and resumes once space is freed${mountable.ok ? '' : ` (skipped: cannot mount a tmpfs here: ${mountable.why})`}`,
    async () => {
      mnt = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-tmpfs-'));
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { encoding: 'utf8' });
      expect(m.status, m.stderr).toBe(0);
      // Space we can give back later, beside the data directory on the same file system.
      const filler = path.join(mnt, 'filler');
      fs.writeFileSync(filler, Buffer.alloc(256 * 1024, 1));
      const dir = path.join(mnt, 'data');
      const OPTS = { worker: false } satisfies Partial<CoreOptions>;
      const acked: Acked = new Map();
      const pad = 'p'.repeat(4000);
      // A wave is 8 submits in one turn of the event loop: one group (the WAL writes a group
      // early only once it holds 32 records), one write, so all acknowledged or all refused.
      const WAVE = 8;
      const wave = (w: number, core: Core): Promise<PromiseSettledResult<SubmitResult>[]> =>
        settle(Array.from({ length: WAVE }, (_, i) => core.submit(create(`w${w}-${i}`, { w, i, pad }))));

      let core = await Core.open({ dir, ...OPTS });
      let full = -1;
      try {
        for (let w = 0; w < 200 && full < 0; w++) {
          const results = await wave(w, core);
          const ok = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<SubmitResult>[];
          if (ok.length === results.length) for (const r of ok) ack(acked, r.value);
          else {
            full = w;
            expectUnavailable(results, /disk is full/, `wave ${w}`);
            expect((results[0] as PromiseRejectedResult).reason.message).toContain('ENOSPC');
          }
        }
        expect(full, 'the file system never filled up').toBeGreaterThan(0);
        expect(acked.size).toBe(full * WAVE);
        expectExactly(core, acked, 'when the disk is full');
        // Still full: the same wave is refused again.
        expectUnavailable(await wave(full, core), /disk is full/, 'still full');
        expectExactly(core, acked, 'still full');
      } finally {
        await core.close();
      }

      // Reopen while the disk is still full: only what was acknowledged.
      core = await Core.open({ dir, ...OPTS });
      try {
        expect(core.torn, 'the refused writes were not cut back').toBeNull();
        expectExactly(core, acked, 'reopened while full');
        expect(core.index).toBe(full * WAVE);

        // Free space: writes resume.
        fs.rmSync(filler);
        for (const w of [full, full + 1]) {
          const results = await wave(w, core);
          expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), `wave ${w} after freeing space`).toEqual([]);
          for (const r of results) ack(acked, (r as PromiseFulfilledResult<SubmitResult>).value);
        }
        expectExactly(core, acked, 'after freeing space');
      } finally {
        await core.close();
      }

      core = await Core.open({ dir, ...OPTS });
      try {
        expect(core.torn).toBeNull();
        expectExactly(core, acked, 'reopened after freeing space');
        expect(core.index).toBe((full + 2) * WAVE);
      } finally {
        await core.close();
      }
    },
  );
});
