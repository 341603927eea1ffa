/**
 * The child-process half of the core bench's recovery figures, one phase per process so that
 * each one starts with an empty heap:
 *
 *   fill DIR N            creates N resources (batches of 1000, 8 in flight), checkpoints, closes
 *   open DIR N TAIL       times Core.open, RSS after GC, get and tag-query latency, then appends
 *                         TAIL updates that stay in the WAL and closes
 *   reopen DIR N          times Core.open with those updates to replay from the WAL
 *
 * Prints exactly one JSON line on stdout (the result); progress goes to stderr.
 * Run with --expose-gc for a meaningful RSS.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Core, type Command } from '../core/index.ts';

export interface FillResult {
  resourcesPerS: number;
  checkpointMs: number;
  sstBytes: number;
}

export interface OpenResult {
  recoveryMs: number;
  rssBytes: number;
  heapUsedBytes: number;
  timerNs: number;
  getP50Us: number;
  getP99Us: number;
  queryP50Ms: number;
  queryP99Ms: number;
}

export interface ReopenResult {
  recoveryMs: number;
  rssBytes: number;
}

const NAMESPACES = 100;
/** With N = 1,000,000: 10,000 groups of exactly 100 resources each. */
const GROUP_SIZE = 100;
const BATCH = 1000;
const IN_FLIGHT = 8;
const GETS = 200_000;
const QUERIES = 2_000;

const log = (m: string): void => void process.stderr.write(`  core-recover: ${m}\n`);

const nsOf = (i: number): string => `bench/n${i % NAMESPACES}`;
const nameOf = (i: number): string => `r-${i}`;
const groupOf = (i: number, n: number): string => `g${i % (n / GROUP_SIZE)}`;

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

/** Submits commands made by `make(i)` for i in [0, n), in batches, a few batches in flight. */
async function submitAll(core: Core, n: number, make: (i: number) => Command): Promise<void> {
  let next = 0;
  let done = 0;
  let lastLog = performance.now();
  const lane = async (): Promise<void> => {
    while (next < n) {
      const from = next;
      const to = Math.min(n, from + BATCH);
      next = to;
      const batch: Command[] = [];
      for (let i = from; i < to; i++) batch.push(make(i));
      await core.submit({ batch });
      done += to - from;
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now();
        log(`${done.toLocaleString('en-US')} of ${n.toLocaleString('en-US')}`);
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

function gcNow(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  } else log('no --expose-gc: RSS includes garbage');
}

function dirBytes(dir: string): number {
  return fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
}

async function fill(dir: string, n: number): Promise<FillResult> {
  fs.rmSync(dir, { recursive: true, force: true });
  const core = await Core.open({ dir });
  const t0 = performance.now();
  await submitAll(core, n, (i) => ({
    op: 'create',
    resource: { type: 'configuration', namespace: nsOf(i), name: nameOf(i), tags: { group: groupOf(i, n) }, data: { v: 1 } },
  }));
  const fillMs = performance.now() - t0;
  const t1 = performance.now();
  await core.checkpoint();
  const checkpointMs = performance.now() - t1;
  const resources = core.stats().resources;
  await core.close();
  if (resources !== n) throw new Error(`filled ${resources} resources, expected ${n}`);
  return { resourcesPerS: n / (fillMs / 1000), checkpointMs, sstBytes: dirBytes(path.join(dir, 'sst')) };
}

async function timedOpen(dir: string, n: number): Promise<{ core: Core; recoveryMs: number }> {
  const t0 = performance.now();
  const core = await Core.open({ dir });
  const recoveryMs = performance.now() - t0;
  const have = core.stats().resources;
  if (have !== n) throw new Error(`recovered ${have} resources, expected ${n}`);
  return { core, recoveryMs };
}

async function open(dir: string, n: number, tail: number): Promise<OpenResult> {
  const { core, recoveryMs } = await timedOpen(dir, n);
  gcNow();
  const mem = process.memoryUsage();

  // Keys drawn up front so that the timed loop holds nothing but the get.
  const nss: string[] = new Array(GETS);
  const names: string[] = new Array(GETS);
  for (let k = 0; k < GETS; k++) {
    const i = Math.floor(Math.random() * n);
    nss[k] = nsOf(i);
    names[k] = nameOf(i);
  }
  let timer = Infinity;
  for (let k = 0; k < 10_000; k++) {
    const a = performance.now();
    const b = performance.now();
    if (b - a < timer) timer = b - a;
  }
  const getUs = new Float64Array(GETS);
  let found = 0;
  for (let k = 0; k < GETS; k++) {
    const a = performance.now();
    const r = core.get('configuration', names[k], nss[k]);
    const b = performance.now();
    getUs[k] = (b - a) * 1000;
    if (r) found++;
  }
  if (found !== GETS) throw new Error(`${GETS - found} of ${GETS} gets found nothing`);
  getUs.sort();

  const groups = n / GROUP_SIZE;
  const queryMs = new Float64Array(QUERIES);
  for (let k = 0; k < QUERIES; k++) {
    const g = `g${Math.floor(Math.random() * groups)}`;
    const a = performance.now();
    const rs = core.query({ tags: { group: g } });
    queryMs[k] = performance.now() - a;
    if (rs.length !== GROUP_SIZE) throw new Error(`tag query group=${g} returned ${rs.length}, expected ${GROUP_SIZE}`);
  }
  queryMs.sort();

  // Updates that stay in the WAL (well under one segment) for the `reopen` phase.
  if (tail > 0) {
    await submitAll(core, tail, (k) => {
      const i = Math.floor((k * n) / tail);
      return { op: 'update', resource: { type: 'configuration', namespace: nsOf(i), name: nameOf(i), tags: { group: groupOf(i, n) }, data: { v: 2 } } };
    });
  }
  await core.close();
  return {
    recoveryMs,
    rssBytes: mem.rss,
    heapUsedBytes: mem.heapUsed,
    timerNs: timer * 1e6,
    getP50Us: percentile(getUs, 0.5),
    getP99Us: percentile(getUs, 0.99),
    queryP50Ms: percentile(queryMs, 0.5),
    queryP99Ms: percentile(queryMs, 0.99),
  };
}

async function reopen(dir: string, n: number): Promise<ReopenResult> {
  const { core, recoveryMs } = await timedOpen(dir, n);
  gcNow();
  const rssBytes = process.memoryUsage().rss;
  await core.close();
  return { recoveryMs, rssBytes };
}

async function main(argv: string[]): Promise<unknown> {
  const [mode, dir, nText, tailText] = argv;
  const n = Number(nText);
  if (!dir || !Number.isSafeInteger(n) || n <= 0 || n % GROUP_SIZE !== 0) throw new Error('usage: core-recover.ts fill|open|reopen DIR N [TAIL]  (N a multiple of 100)');
  if (mode === 'fill') return fill(dir, n);
  if (mode === 'open') return open(dir, n, Number(tailText ?? 0));
  if (mode === 'reopen') return reopen(dir, n);
  throw new Error(`unknown mode ${mode}`);
}

main(process.argv.slice(2)).then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + '\n');
  },
  (e: unknown) => {
    process.stderr.write(`core-recover: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  },
);
