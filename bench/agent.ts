/**
 * `npm run bench -- agent`: the node agent's devices on this machine.
 *
 * Sections (each prints its own figures; more devices add their own section here):
 *   1. process: the floor first (Node's own spawn of the same program until its 'spawn'
 *      event); then `process.start` handed to the device until its `started` event, p50 and p99,
 *      for each limiter the host has (cgroups, rlimits); then `process.stop` until `stopped` for
 *      a program that ends on SIGTERM. Each start spawns the launcher (/bin/sh) in its own
 *      session, makes its cgroups or rlimits, two named pipes (one `mkfifo`), and fsyncs the
 *      state file twice (before and after the spawn), so a restarted agent can find it.
 *
 *   2. network (bench/agent-net.ts, runNet): DNS queries/s over UDP with dnsperf, requests/s
 *      through the proxy device next to direct with wrk (keep-alive and a new connection per
 *      request), in the same run.
 *
 * All data lives under .bench-data/agent and is removed at the end; every process started is
 * stopped before the next section.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalProcesses, openLimiter, type LimiterKind, type ProcessEvent } from '../runtime/agent/devices/process/index.ts';
import type { FailedEvent } from '../runtime/agent/devices/device.ts';
import { runNet } from './agent-net.ts';
import type { SuiteOptions } from './run.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const dataDir = path.join(here, '..', '.bench-data', 'agent');
const log = (m: string): void => void process.stderr.write(`  agent: ${m}\n`);

const PROCESS_STARTS = 200;
const PROCESS_WARMUP = 10;
const PROCESS_PORTS: [number, number] = [47000, 47999];
/** Processes alive at once during the start run (stopped in batches, below the device's bound). */
const PROCESS_BATCH = 50;

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function available(kind: LimiterKind): boolean {
  try {
    openLimiter(`bench-probe-${process.pid}`, kind).tidy();
    return true;
  } catch {
    return false;
  }
}

// ---- 1. process ----

/** The floor: Node's own spawn of the same program, until its 'spawn' event, in the same run. */
async function spawnFloor(report: SuiteOptions['report']): Promise<void> {
  const ms: number[] = [];
  for (let i = 0; i < PROCESS_WARMUP + PROCESS_STARTS; i++) {
    const t0 = performance.now();
    const child = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });
    await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject));
    if (i >= PROCESS_WARMUP) ms.push(performance.now() - t0);
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
  report('floor: child_process.spawn → spawn event p50', percentile(ms, 0.5), 'ms');
  report('floor: child_process.spawn → spawn event p99', percentile(ms, 0.99), 'ms');
}

async function processFigures(kind: LimiterKind, report: SuiteOptions['report']): Promise<void> {
  const waiting = new Map<string, (e: ProcessEvent | FailedEvent) => void>();
  const dev = await LocalProcesses.open({
    dataDir: path.join(dataDir, `process-${kind}`),
    name: `bench-${process.pid}-${kind}`,
    limiter: kind,
    ports: PROCESS_PORTS,
    emit: (e) => {
      if (e.commandId) waiting.get(e.commandId)?.(e);
    },
    logEventsPerSecondMax: 0,
  });
  const send = (cmd: Parameters<LocalProcesses['handle']>[0]): Promise<ProcessEvent | FailedEvent> => {
    const p = new Promise<ProcessEvent | FailedEvent>((resolve) => waiting.set(cmd.id, resolve));
    void dev.handle(cmd);
    return p.finally(() => waiting.delete(cmd.id));
  };
  const startMs: number[] = [];
  const stopMs: number[] = [];
  try {
    const running: Array<{ task: string; measured: boolean }> = [];
    const stopAll = async (): Promise<void> => {
      for (const { task, measured } of running.splice(0)) {
        const t0 = performance.now();
        const e = await send({ id: `stop-${task}`, type: 'process.stop', task, graceMs: 5000 });
        if (e.type !== 'stopped') throw new Error(`stop ${task}: ${JSON.stringify(e)}`);
        if (measured) stopMs.push(performance.now() - t0);
      }
    };
    for (let i = 0; i < PROCESS_WARMUP + PROCESS_STARTS; i++) {
      const task = `bench-${i}`;
      const t0 = performance.now();
      const e = await send({ id: `start-${task}`, type: 'process.start', task, argv: ['sleep', '300'], limits: { memoryBytes: 64 << 20, pids: 32, cpus: 0.5 } });
      const ms = performance.now() - t0;
      if (e.type !== 'started') throw new Error(`start ${task}: ${JSON.stringify(e)}`);
      running.push({ task, measured: i >= PROCESS_WARMUP });
      if (i >= PROCESS_WARMUP) startMs.push(ms);
      if (running.length >= PROCESS_BATCH) await stopAll();
    }
    await stopAll();
  } finally {
    for (const p of dev.snapshot().processes) await dev.handle({ id: `cleanup-${p.task}`, type: 'process.stop', task: p.task, graceMs: 0 });
    await dev.close();
  }
  log(`${kind}: ${startMs.length} starts, ${stopMs.length} stops`);
  report(`process.start → started (${kind}) p50`, percentile(startMs, 0.5), 'ms');
  report(`process.start → started (${kind}) p99`, percentile(startMs, 0.99), 'ms');
  report(`process.stop → stopped, SIGTERM honoured (${kind}) p50`, percentile(stopMs, 0.5), 'ms');
  report(`process.stop → stopped, SIGTERM honoured (${kind}) p99`, percentile(stopMs, 0.99), 'ms');
}

export async function run({ report }: SuiteOptions): Promise<void> {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  try {
    await spawnFloor(report);
    for (const kind of ['cgroup-v2', 'cgroup-v1', 'rlimit'] as const) {
      if (!available(kind)) {
        log(`${kind}: not available here, skipped`);
        continue;
      }
      await processFigures(kind, report);
    }
    await runNet({ report });
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
