/**
 * Crash durability: a child process writes through the core with many concurrent submitters and
 * is killed with SIGKILL at a random moment (often during WAL rotation, flush or compaction, which
 * run in the background with a small segment size). The parent then recovers the same data
 * directory in-process and checks that everything acknowledged survived, that no atomic batch is
 * half visible, and that the core takes new writes. State accumulates over the rounds.
 *
 * Reproduce a failure with CRASH_SEED=<seed printed in the failure> npx vitest run test/core/crash.test.ts
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Core, type Resource } from '../../core/index.ts';
import { between, mulberry32, readManifest, removeDir, scratchDir } from './helpers.ts';

const WRITER = path.join(import.meta.dirname, 'fixtures', 'crash-writer.ts');
const SEED = process.env.CRASH_SEED ? Number(process.env.CRASH_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0;
const ROUNDS = 16;
const SUBMITTERS = 64;
const SEGMENT_BYTES = 256 * 1024;
const BUDGET_MS = 40_000;

interface ChildRun {
  lines: string[];
  stderr: string;
  signal: NodeJS.Signals | null;
  code: number | null;
  readyIndex: number;
  ms: number;
}

/** Runs the writer until `killAfterMs` after it reports ready, then SIGKILLs it. */
function runWriter(dir: string, round: number, killAfterMs: number): Promise<ChildRun> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--disable-warning=ExperimentalWarning', WRITER, dir, String(SEED), String(round), String(SUBMITTERS), String(SEGMENT_BYTES)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    let readyIndex = -1;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      if (readyIndex < 0) {
        const m = /^ready (\d+)\n/.exec(stdout);
        if (m) {
          readyIndex = Number(m[1]);
          timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(guard);
      const lines = stdout.split('\n');
      lines.pop(); // the last line is partial (or empty): the kill may have cut it
      resolve({ lines, stderr, signal, code, readyIndex, ms: Date.now() - t0 });
    });
  });
}

/** What the parent knows was acknowledged, over all rounds. */
class Model {
  /** name → lowest data.v and revision the resource may have. */
  readonly items = new Map<string, { v: number; revision: number }>();
  readonly batches = new Map<string, number>();
  /** Deletes submitted (the resource may be gone or not) and acknowledged (it must be gone). */
  readonly deleting = new Set<string>();
  readonly deleted = new Set<string>();
  maxIndex = 0;
  probes: string[] = [];
  acks = 0;

  record(line: string, where: string): void {
    const [kind, a, b, c] = line.split(' ');
    const raise = (name: string, v: number, revision: number): void => {
      const cur = this.items.get(name);
      if (!cur) this.items.set(name, { v, revision });
      else {
        cur.v = Math.max(cur.v, v);
        cur.revision = Math.max(cur.revision, revision);
      }
      this.maxIndex = Math.max(this.maxIndex, revision);
    };
    this.acks++;
    if (kind === 'C') raise(a, 0, Number(b));
    else if (kind === 'U') raise(a, Number(b), Number(c));
    else if (kind === 'B') {
      this.batches.set(a, Number(b));
      this.maxIndex = Math.max(this.maxIndex, Number(b));
    } else if (kind === 'd') {
      this.acks--;
      this.deleting.add(a);
    } else if (kind === 'D') {
      this.deleted.add(a);
      this.maxIndex = Math.max(this.maxIndex, Number(b));
    } else if (kind === 'E') throw new Error(`${where}: the writer's submit failed: ${line.slice(2)}`);
    else throw new Error(`${where}: unexpected line from the writer: ${JSON.stringify(line)}`);
  }
}

function check(core: Core, model: Model, dir: string, where: string): void {
  const problems: string[] = [];
  const all = core.query({ type: 'item', namespace: 'crash' });
  const byName = new Map<string, Resource>(all.map((r) => [r.name, r]));

  // Every acknowledged create and update is there, at least as new as acknowledged, unless a
  // delete of it was submitted (acknowledged: it must be gone; not: it may be).
  for (const [name, want] of model.items) {
    const r = byName.get(name);
    if (model.deleted.has(name)) {
      if (r) problems.push(`${name} is back after its delete was acknowledged (revision ${r.revision})`);
      continue;
    }
    if (!r) {
      if (model.deleting.has(name)) model.deleted.add(name); // the unacknowledged delete made it: gone for good
      else problems.push(`acknowledged ${name} is missing`);
      continue;
    }
    model.deleting.delete(name); // an unacknowledged delete that did not make it
    const v = (r.data as { v: number }).v;
    if (v < want.v) problems.push(`${name} has data.v ${v}, older than the acknowledged ${want.v}`);
    if (r.revision < want.revision) problems.push(`${name} is at revision ${r.revision}, older than the acknowledged ${want.revision}`);
    // Whatever recovery shows is the floor for later rounds (it was read back from the log).
    want.v = Math.max(want.v, v);
    want.revision = Math.max(want.revision, r.revision);
  }
  // Resources that recovery shows without an acknowledgement (durable, not yet acknowledged
  // when the writer died) are fine; from now on they must stay.
  for (const r of all) {
    if (model.deleted.has(r.name)) problems.push(`${r.name} is back after it was deleted`);
    else if (!model.items.has(r.name)) model.items.set(r.name, { v: (r.data as { v: number }).v, revision: r.revision });
  }

  // No batch is half visible: every batch tag has exactly 3 resources (acknowledged or not).
  const groups = new Map<string, number>();
  for (const r of all) if (r.tags.batch) groups.set(r.tags.batch, (groups.get(r.tags.batch) ?? 0) + 1);
  for (const [id, n] of groups) if (n !== 3) problems.push(`batch ${id} is half visible (${n} of 3 resources)`);
  for (const [id] of model.batches) {
    if (groups.get(id) !== 3) problems.push(`acknowledged batch ${id} has ${groups.get(id) ?? 0} of 3 resources`);
    // And the tag index agrees with the tree.
    else if (core.query({ tags: { batch: id } }).length !== 3) problems.push(`the tag index does not find the 3 resources of batch ${id}`);
  }

  if (core.index < model.maxIndex) problems.push(`recovered to index ${core.index}, below the acknowledged ${model.maxIndex}`);
  for (const p of model.probes) if (!core.get('probe', p, 'crash')) problems.push(`the parent's own write ${p} is missing`);

  // Left-overs of an interrupted flush or compaction are gone.
  const left = leftovers(dir);
  if (left.length > 0) problems.push(`sst/ still holds files the MANIFEST does not name: ${left.join(', ')}`);

  expect(problems.slice(0, 20), `${where}: ${problems.length} problems`).toEqual([]);
}

/**
 * What a kill during a flush or compaction leaves and recovery must remove: half-written `.tmp`
 * files, and sstables the MANIFEST does not name. Before the first MANIFEST there is nothing to
 * name them, so recovery keeps a finished `.sst` on purpose (the WAL check vouches for the data)
 * and it is not a left-over (core/sstable/levels.ts, Levels.open).
 */
function leftovers(dir: string): string[] {
  const sst = path.join(dir, 'sst');
  if (!fs.existsSync(sst)) return [];
  const hasManifest = fs.existsSync(path.join(sst, 'MANIFEST'));
  const m = hasManifest ? readManifest(dir) : { base: null, deltas: [] };
  const named = new Set([m.base, ...m.deltas]);
  return fs.readdirSync(sst).filter((f) => f !== 'MANIFEST' && (f.endsWith('.tmp') || (hasManifest && !named.has(f))));
}

describe('crash recovery (SIGKILL during concurrent writes, flush and compaction)', () => {
  const dir = scratchDir('crash');
  afterAll(() => removeDir(dir));

  it(`keeps every acknowledged write and every batch whole over ${ROUNDS} kills (seed ${SEED})`, async () => {
    const rnd = mulberry32(SEED);
    const model = new Model();
    const t0 = Date.now();
    let rounds = 0;
    let torn = 0;
    let interrupted = 0;
    let round = 0;
    try {
      for (; round < ROUNDS && Date.now() - t0 < BUDGET_MS; round++) {
        const where = `seed ${SEED}, round ${round}`;
        // Mostly early kills (during the first group commits and rotations); every third round and
        // some others a later one, once the background worker is up (it takes ~0.5 s to start) and
        // flushing sealed segments or compacting.
        const late = round % 3 === 2 || rnd() < 0.15;
        const killAfter = late ? between(rnd, 400, 1200) : between(rnd, 50, 400);
        const run = await runWriter(dir, round, killAfter);
        expect(run.readyIndex, `${where}: the writer never got ready: ${run.stderr}`).toBeGreaterThanOrEqual(0);
        expect(run.signal, `${where}: the writer died on its own (code ${run.code}): ${run.stderr}`).toBe('SIGKILL');
        // The only thing the writer may report is a torn tail it cut (a kill during WAL rotation
        // leaves an empty segment); a failed background flush or compaction is a failure.
        const reports = run.stderr.split('\n').filter((l) => l && !/^report: WAL: cut a torn tail /.test(l));
        expect(reports, `${where}: the writer reported problems`).toEqual([]);
        // The writer starts from what the previous recovery showed.
        expect(run.readyIndex, `${where}: the writer opened at an older index`).toBeGreaterThanOrEqual(model.maxIndex);
        for (const line of run.lines.slice(1)) model.record(line, where);
        if (leftovers(dir).length > 0) interrupted++;
        if (process.env.CRASH_DEBUG) console.log(`${where}: killed ${killAfter} ms after ready, ${run.lines.length} lines, ${run.ms} ms; left over: ${leftovers(dir).join(' ')}`);

        const core = await Core.open({ dir, segmentBytes: SEGMENT_BYTES });
        try {
          if (core.torn) torn++;
          check(core, model, dir, where);
          // New writes succeed: one command and one batch, acknowledged after fsync.
          const name = `round-${round}`;
          const one = await core.submit({ op: 'create', resource: { type: 'probe', namespace: 'crash', name, data: { round } } });
          expect(one.index).toBeGreaterThan(model.maxIndex);
          const batch = await core.submit({
            batch: [0, 1, 2].map((k) => ({ op: 'create', resource: { type: 'item', namespace: 'crash', name: `parent-${round}-${k}`, tags: { batch: `parent-${round}` }, data: { v: 0 } } })),
          });
          expect(batch.index).toBe(one.index + 1);
          model.probes.push(name);
          model.batches.set(`parent-${round}`, batch.index);
          for (let k = 0; k < 3; k++) model.items.set(`parent-${round}-${k}`, { v: 0, revision: batch.index });
          model.maxIndex = batch.index;
        } finally {
          await core.close();
        }
        rounds++;
      }
      // One last recovery after the parent's own writes, with nothing killed in between.
      const core = await Core.open({ dir, segmentBytes: SEGMENT_BYTES });
      try {
        expect(core.torn, 'a clean close left a torn tail').toBeNull();
        check(core, model, dir, `seed ${SEED}, final reopen`);
        // Fold everything into one base sstable and recover from that alone.
        await core.checkpoint();
      } finally {
        await core.close();
      }
      const m = readManifest(dir);
      expect(m.deltas, 'checkpoint() did not fold the deltas into a base').toEqual([]);
      expect(m.covered, 'checkpoint() did not flush the whole WAL').toBe(model.maxIndex);
      const again = await Core.open({ dir, segmentBytes: SEGMENT_BYTES });
      try {
        check(again, model, dir, `seed ${SEED}, reopen after checkpoint`);
      } finally {
        await again.close();
      }
    } catch (e) {
      if (e instanceof Error) e.message = `[crash test seed ${SEED}, round ${round}; rerun with CRASH_SEED=${SEED}] ${e.message}`;
      throw e;
    }
    // The run was meaningful: many rounds, many acknowledgements, deletes, sstables written.
    expect(model.deleted.size).toBeGreaterThan(0);
    expect(rounds, 'too few rounds fit in the time budget').toBeGreaterThanOrEqual(8);
    expect(model.acks).toBeGreaterThan(rounds * 200);
    expect(readManifest(dir).covered, 'no WAL segment was ever flushed to an sstable').toBeGreaterThan(0);
    console.log(`crash test: seed ${SEED}, ${rounds} rounds, ${model.acks} acknowledgements, ${model.items.size} items, ${model.deleted.size} deleted, ${torn} torn tails, ${interrupted} kills during a flush or compaction, ${Date.now() - t0} ms`);
  });
});
