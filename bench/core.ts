/**
 * `npm run bench -- core`: what the durable core does on this machine, next to what the disk can.
 *
 *   1. the disk's raw limit: one write + fdatasync per batch of 1, 16, 128 ~200-byte records;
 *   2. durable commands/s and acknowledgement latency at 1, 16, 256 closed-loop submitters (creates),
 *      then updates and deletes at 256 (their records carry the resource replaced or removed);
 *   3. recovery time, RSS, get and tag-query latency with 1,000,000 live resources, each phase in
 *      its own child process (bench/core-recover.ts) so that one phase's heap is not the next's;
 *   4. the targets, PASS or FAIL (reported, never an exit code).
 *
 * All data lives under .bench-data/core on the repository's disk and is deleted at the end.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Core } from '../core/index.ts';
import type { Report, SuiteOptions } from './run.ts';
import type { FillResult, OpenResult, ReopenResult } from './core-recover.ts';
import { permissionCost } from './core-permission.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.join(here, '..', '.bench-data', 'core');

const RAW_RECORD_BYTES = 200;
const RAW_BATCHES = [1, 16, 128];
const RAW_MS_MAX = 2000;
const RAW_ITERATIONS_MAX = 3000;

const SUBMITTERS = [1, 16, 256];
const WARM_MS = 500;
const MEASURE_MS = 3000;

const LIVE_RESOURCES = 1_000_000;
const TAIL_COMMANDS = 100_000;
const TMPFS_MAGIC = 0x01021994;

const log = (m: string): void => void process.stderr.write(`  core: ${m}\n`);

/** The p-th percentile (0..1) of sorted samples, nearest rank. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

const sortedOf = (xs: number[] | Float64Array): Float64Array => Float64Array.from(xs).sort();

// ---- 1. the disk's raw limit -------------------------------------------------------------------

interface Raw {
  batch: number;
  recordsPerS: number;
  p50Ms: number;
  p99Ms: number;
}

function rawAppend(batch: number): Raw {
  const file = path.join(dataDir, `raw-${batch}.log`);
  const fd = fs.openSync(file, 'w', 0o644);
  const buf = Buffer.alloc(batch * RAW_RECORD_BYTES);
  for (let i = 0; i < buf.length; i++) buf[i] = i % RAW_RECORD_BYTES === RAW_RECORD_BYTES - 1 ? 10 : 97 + (i % 26);
  const lat: number[] = [];
  let at = 0;
  try {
    const t0 = performance.now();
    const end = t0 + RAW_MS_MAX;
    let now = t0;
    while (lat.length < RAW_ITERATIONS_MAX && now < end) {
      const s = now;
      fs.writeSync(fd, buf, 0, buf.length, at);
      fs.fdatasyncSync(fd);
      at += buf.length;
      now = performance.now();
      lat.push(now - s);
    }
    const sorted = sortedOf(lat);
    return { batch, recordsPerS: (lat.length * batch) / ((now - t0) / 1000), p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

// ---- 2. durable commands -----------------------------------------------------------------------

interface Durable {
  submitters: number;
  commandsPerS: number;
  p50Ms: number;
  p99Ms: number;
  commandsPerFsync: number;
  walFsyncP50Ms: number;
  walBytesPerCommand: number;
  storedBytes: number;
}

/** A small configuration: its stored JSON (envelope included) is what the WAL and tree hold. */
const configuration = (namespace: string, name: string, group: string) => ({
  type: 'configuration',
  namespace,
  name,
  tags: { group },
  data: { v: 1 },
});

async function durable(submitters: number): Promise<Durable> {
  const dir = path.join(dataDir, `durable-${submitters}`);
  fs.rmSync(dir, { recursive: true, force: true });
  const core = await Core.open({ dir });
  const lat: number[] = [];
  let inWindow = 0;
  let total = 0;
  let storedBytes = 0;
  const t0 = performance.now();
  const warmEnd = t0 + WARM_MS;
  const end = warmEnd + MEASURE_MS;
  const submitter = async (s: number): Promise<void> => {
    for (let i = 0; ; i++) {
      const start = performance.now();
      if (start >= end) return;
      const res = await core.submit({ op: 'create', resource: configuration('bench/w', `c${submitters}-${s}-${i}`, `g${i % 100}`) });
      const done = performance.now();
      total++;
      if (done >= warmEnd && done <= end) inWindow++;
      if (start >= warmEnd && done <= end) lat.push(done - start);
      if (storedBytes === 0) storedBytes = Buffer.byteLength(JSON.stringify(res.resources[0]));
    }
  };
  await Promise.all(Array.from({ length: submitters }, (_, s) => submitter(s)));
  const stats = core.stats();
  const walFsync = sortedOf(core.fsyncSamples());
  const walDir = path.join(dir, 'wal');
  const walBytes = fs.readdirSync(walDir).reduce((n, f) => n + fs.statSync(path.join(walDir, f)).size, 0);
  const flushed = stats.covered > 0;
  await core.close();
  fs.rmSync(dir, { recursive: true, force: true });
  const sorted = sortedOf(lat);
  return {
    submitters,
    commandsPerS: inWindow / (MEASURE_MS / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    commandsPerFsync: total / Math.max(1, stats.fsyncs),
    walFsyncP50Ms: percentile(walFsync, 0.5),
    // Only meaningful while no segment has been flushed away.
    walBytesPerCommand: flushed ? NaN : walBytes / total,
    storedBytes,
  };
}

/** Updates and deletes carry the resource they replace or remove (wal/FORMAT.md): what that costs. */
interface OpRate {
  op: 'update' | 'delete';
  commandsPerS: number;
  p99Ms: number;
  walBytesPerRecord: number;
}

const OP_RESOURCES = 100_000;

async function durableOps(submitters: number): Promise<OpRate[]> {
  const dir = path.join(dataDir, `ops-${submitters}`);
  fs.rmSync(dir, { recursive: true, force: true });
  // One segment for the whole run, so that nothing is flushed away while WAL bytes are counted.
  const core = await Core.open({ dir, segmentBytes: 1024 * 1024 * 1024 });
  const walDir = path.join(dir, 'wal');
  const walSize = (): number => fs.readdirSync(walDir).reduce((n, f) => n + fs.statSync(path.join(walDir, f)).size, 0);
  const names = Array.from({ length: OP_RESOURCES }, (_, i) => `o${i}`);
  for (let b = 0; b < names.length; b += 1000) {
    await core.submit({ batch: names.slice(b, b + 1000).map((n, i) => ({ op: 'create', resource: configuration('bench/o', n, `g${i % 100}`) })) });
  }
  const out: OpRate[] = [];
  for (const op of ['update', 'delete'] as const) {
    const walBefore = walSize();
    const indexBefore = core.index;
    const lat: number[] = [];
    let next = 0;
    let inWindow = 0;
    let lastDone = 0;
    const t0 = performance.now();
    const warmEnd = t0 + WARM_MS;
    const end = warmEnd + MEASURE_MS;
    const submitter = async (): Promise<void> => {
      while (next < names.length) {
        const start = performance.now();
        if (start >= end) return;
        const name = names[next++];
        const resource = op === 'update' ? { ...configuration('bench/o', name, 'g'), data: { v: 2 } } : { type: 'configuration', namespace: 'bench/o', name };
        await core.submit({ op, resource });
        const done = performance.now();
        if (done >= warmEnd && done <= end) {
          inWindow++;
          lastDone = done;
          if (start >= warmEnd) lat.push(done - start);
        }
      }
    };
    await Promise.all(Array.from({ length: submitters }, () => submitter()));
    const sorted = sortedOf(lat);
    out.push({
      op,
      // The names may run out before the window ends: rate over the time actually measured.
      commandsPerS: inWindow / (Math.max(1, (next >= names.length ? lastDone : end) - warmEnd) / 1000),
      p99Ms: percentile(sorted, 0.99),
      walBytesPerRecord: (walSize() - walBefore) / (core.index - indexBefore),
    });
  }
  await core.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

// ---- 3. recovery, in child processes -----------------------------------------------------------

function child<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const script = path.join(here, 'core-recover.ts');
    const p = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '--expose-gc', script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d: string) => (out += d));
    p.on('error', reject);
    p.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`bench/core-recover.ts ${args[0]} exited with ${signal ?? code}`));
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`bench/core-recover.ts ${args[0]} printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}

// ---- the suite ---------------------------------------------------------------------------------

const fmt = (v: number, digits = 0): string => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function target(report: Report, name: string, ok: boolean, note: string): void {
  report(`target: ${name}`, ok ? 1 : 0, 'pass', note);
}

export async function run({ report }: SuiteOptions): Promise<void> {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    if (fs.statfsSync(dataDir).type === TMPFS_MAGIC) log(`WARNING: ${dataDir} is on tmpfs; fsync figures mean nothing there`);
    // Other work on the machine moves every figure below: say how busy it was.
    report('host: load average (1 min) at start', os.loadavg()[0], 'load', `(${os.availableParallelism()} CPUs)`);

    log('permission filter: an actor with 100 rules, a list of 10,000 resources under deny rules');
    const perm = await permissionCost(path.join(dataDir, 'perm'));
    report('permission filter per command p50, actor with 100 rules', perm.filterP50Us, 'us');
    report('permission filter per command p99, actor with 100 rules', perm.filterP99Us, 'us');
    report(`list of ${fmt(perm.listed)} under deny rules, that actor (median)`, perm.listActorMs, 'ms');
    report(`list of ${fmt(perm.listed)}, admin, same result (median)`, perm.listAdminMs, 'ms');
    target(report, 'permission filter p50 <= 10 us per command', perm.filterP50Us <= 10, `(measured ${fmt(perm.filterP50Us, 2)} us)`);
    target(report, "filtered list <= 2 x admin's list of the same result", perm.listActorMs <= 2 * perm.listAdminMs, `(measured ${fmt(perm.listActorMs / perm.listAdminMs, 2)}x)`);

    log(`raw append + fdatasync of ${RAW_RECORD_BYTES}-byte records (≤ ${RAW_MS_MAX / 1000} s or ${RAW_ITERATIONS_MAX} fdatasyncs per batch size)`);
    const raw = new Map<number, Raw>();
    for (const b of RAW_BATCHES) {
      const r = rawAppend(b);
      raw.set(b, r);
      report(`raw append+fdatasync, batch ${b}: records/s`, Math.round(r.recordsPerS), 'records/s');
      report(`raw append+fdatasync, batch ${b}: p50 latency`, r.p50Ms, 'ms');
      report(`raw append+fdatasync, batch ${b}: p99 latency`, r.p99Ms, 'ms');
    }

    const dur = new Map<number, Durable>();
    for (const n of SUBMITTERS) {
      log(`durable creates, ${n} closed-loop submitter(s): ${WARM_MS / 1000} s warm-up + ${MEASURE_MS / 1000} s measured, fresh data dir`);
      const d = await durable(n);
      dur.set(n, d);
      const who = `${n} submitter${n === 1 ? '' : 's'}`;
      report(`durable commands/s, ${who}`, Math.round(d.commandsPerS), 'cmds/s');
      report(`ack latency p50, ${who}`, d.p50Ms, 'ms');
      report(`ack latency p99, ${who}`, d.p99Ms, 'ms');
      report(`commands per fsync, ${who}`, d.commandsPerFsync, 'cmds', `(WAL write+fdatasync p50 ${fmt(d.walFsyncP50Ms, 3)} ms)`);
    }
    const d1 = dur.get(1)!;
    const d16 = dur.get(16)!;
    const d256 = dur.get(256)!;
    const raw16 = raw.get(16)!;
    const raw128 = raw.get(128)!;
    const fraction = d256.commandsPerS / raw128.recordsPerS;
    report('durable cmds/s at 256 / raw records/s at batch 128', fraction, 'fraction');
    report('stored resource JSON size', d1.storedBytes, 'bytes', '(envelope: id, created, updated, revision, ... included)');
    if (Number.isFinite(d1.walBytesPerCommand)) report('WAL bytes per single-command record', d1.walBytesPerCommand, 'bytes');

    log(`durable updates, then deletes, of ${fmt(OP_RESOURCES)} resources, 256 closed-loop submitters`);
    for (const o of await durableOps(256)) {
      report(`durable ${o.op}s/s, 256 submitters`, Math.round(o.commandsPerS), 'cmds/s');
      report(`ack latency p99, ${o.op}s, 256 submitters`, o.p99Ms, 'ms');
      report(`WAL bytes per single-${o.op} record`, o.walBytesPerRecord, 'bytes');
    }

    const dir = path.join(dataDir, 'recover');
    log(`filling ${fmt(LIVE_RESOURCES)} resources in batches of 1000, then checkpoint (child process)`);
    const fill = await child<FillResult>(['fill', dir, String(LIVE_RESOURCES)]);
    report('fill: resources/s (batches of 1000, 8 in flight)', Math.round(fill.resourcesPerS), 'res/s');
    report('fill: checkpoint (flush + compact)', fill.checkpointMs / 1000, 's');
    report('sstable size, 1M resources', fill.sstBytes / 2 ** 20, 'MiB');

    log(`recovering in a fresh child process, then gets and tag queries, then a WAL tail of ${fmt(TAIL_COMMANDS)} updates`);
    const open = await child<OpenResult>(['open', dir, String(LIVE_RESOURCES), String(TAIL_COMMANDS)]);
    report('recovery of 1M live resources (Core.open)', open.recoveryMs / 1000, 's', '(sstable warm in the page cache)');
    report('RSS after recovery, after GC', open.rssBytes / 2 ** 20, 'MiB', `(heap used ${fmt(open.heapUsedBytes / 2 ** 20)} MiB)`);
    report('get by name p50, 1M resources', open.getP50Us, 'us', `(each get timed singly; timer pair costs ~${fmt(open.timerNs)} ns)`);
    report('get by name p99, 1M resources', open.getP99Us, 'us');
    report('tag query (100 of 1M) p50', open.queryP50Ms, 'ms');
    report('tag query (100 of 1M) p99', open.queryP99Ms, 'ms');

    const reopen = await child<ReopenResult>(['reopen', dir, String(LIVE_RESOURCES)]);
    report(`recovery, 1M in sstable + ${fmt(TAIL_COMMANDS / 1000)}k updates in WAL`, reopen.recoveryMs / 1000, 's');
    report(`RSS after that recovery, after GC`, reopen.rssBytes / 2 ** 20, 'MiB');
    fs.rmSync(dir, { recursive: true, force: true });

    const pct = (x: number): string => `${fmt(x * 100, 1)}%`;
    target(report, 'cmds/s at 256 submitters >= 100,000', d256.commandsPerS >= 100_000, `(measured ${fmt(d256.commandsPerS)})`);
    target(
      report,
      'cmds/s at 256 >= 20% of raw limit at batch 128',
      fraction >= 0.2,
      `(measured ${pct(fraction)}: ${fmt(d256.commandsPerS)} of ${fmt(raw128.recordsPerS)} records/s)`,
    );
    const ackLimit = 2 * raw16.p99Ms + 1;
    target(report, 'p99 ack at 16 <= 2 x raw p99 (batch 16) + 1 ms', d16.p99Ms <= ackLimit, `(measured ${fmt(d16.p99Ms, 3)} ms, limit ${fmt(ackLimit, 3)} ms)`);
    target(report, 'recovery of 1M live resources <= 3 s', open.recoveryMs <= 3000, `(measured ${fmt(open.recoveryMs / 1000, 2)} s)`);
    target(report, 'RSS with 1M live resources <= 1 GiB', open.rssBytes <= 2 ** 30, `(measured ${fmt(open.rssBytes / 2 ** 20)} MiB)`);
    target(report, 'get by name p99 <= 5 us', open.getP99Us <= 5, `(measured ${fmt(open.getP99Us, 2)} us)`);
    target(report, 'tag query (100 of 1M) p99 <= 0.5 ms', open.queryP99Ms <= 0.5, `(measured ${fmt(open.queryP99Ms, 3)} ms)`);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
    try {
      fs.rmdirSync(path.dirname(dataDir));
    } catch {
      // Another suite's data is still there.
    }
  }
}
