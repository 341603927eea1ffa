/**
 * `npm run bench -- instance`: starting and stopping osØ.
 *
 *   1. in process, the composition root (sdk/cli/instance.ts): start on a fresh data directory
 *      (the first start bootstraps it) and on an existing one, and stop, medians of a few runs,
 *      with each service's share of the start;
 *   2. `os0 up` as a process on the pinned runtime: from spawn to its ready line, and from
 *      SIGTERM to its exit;
 *   3. how long os0 and its sandbox processes outlive their starter once it is killed with
 *      SIGKILL: bin.js's wrapper (the lifeline is an IPC channel: at once) and `npx os0 up`
 *      (npm → sh → os0: the ancestor chain, read every 500 ms).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteOptions } from './run.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataRoot = path.join(root, '.bench-data', 'instance');
const BIN = path.join(root, 'sdk', 'cli', 'bin.js');
const PINNED = path.join(root, 'node_modules', '.bin', 'node');
const RUNS = 5;

const log = (m: string): void => void process.stderr.write(`  instance: ${m}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OS0_')) env[k] = v;
  return env;
}

/** Pids below `pid`, from /proc. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const out: number[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const [c, pp] of parent) if (pp === p) (out.push(c), todo.push(c));
  }
  return out;
}

function running(pid: number): boolean {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(st.slice(st.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/** Starts `cmd args` (os0 up in its own process group) and resolves at its ready line, with the ms it took. */
async function launch(cmd: string, args: string[]): Promise<{ child: ChildProcess; readyMs: number }> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { cwd: root, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`os0 up not ready within 60 s: ${err}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`os0 up exited (${code}) before ready: ${err}`));
    });
  });
  return { child, readyMs: performance.now() - t0 };
}

/** SIGKILLs the launcher and measures until every process that was below it has ended. */
async function orphanMs(cmd: string, args: (dir: string, port: number) => string[], dir: string): Promise<number> {
  const { child } = await launch(cmd, args(dir, await freePort()));
  const below = descendants(child.pid!);
  const t0 = performance.now();
  child.kill('SIGKILL');
  while (below.some(running)) {
    if (performance.now() - t0 > 30_000) {
      for (const p of below) if (running(p)) process.kill(p, 'SIGKILL');
      throw new Error(`processes outlived their starter by 30 s: ${below.filter(running).join(' ')}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - t0;
}

export async function run({ report }: SuiteOptions): Promise<void> {
  fs.rmSync(dataRoot, { recursive: true, force: true });
  fs.mkdirSync(dataRoot, { recursive: true });
  const { Instance } = await import('../sdk/cli/instance.ts');

  // 1. In process.
  log('in-process starts and stops');
  const fresh: number[] = [];
  const again: number[] = [];
  const stops: number[] = [];
  const shares: Record<string, number[]> = {};
  for (let i = 0; i < RUNS; i++) {
    const dir = path.join(dataRoot, `inproc-${i}`);
    for (const into of [fresh, again]) {
      const inst = new Instance({ data: dir, port: 0 });
      const t0 = performance.now();
      await inst.start();
      into.push(performance.now() - t0);
      if (into === fresh) for (const [k, v] of Object.entries(inst.startMs)) (shares[k] ??= []).push(v);
      const t1 = performance.now();
      await inst.stop();
      stops.push(performance.now() - t1);
    }
  }
  report('in-process start, fresh data dir (bootstrap), median', median(fresh), 'ms', `(${RUNS} runs)`);
  for (const [k, v] of Object.entries(shares)) report(`  of which service ${k}`, median(v), 'ms');
  report('in-process start, existing data dir, median', median(again), 'ms');
  report('in-process stop, median', median(stops), 'ms');

  // 2. os0 up as a process.
  log('os0 up as a process');
  const ready: number[] = [];
  const exits: number[] = [];
  for (let i = 0; i < 3; i++) {
    const { child, readyMs } = await launch(PINNED, [BIN, 'up', '--data', path.join(dataRoot, `proc-${i}`), '--port', String(await freePort())]);
    ready.push(readyMs);
    const t0 = performance.now();
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await done;
    exits.push(performance.now() - t0);
  }
  report('os0 up: spawn to ready line, median', median(ready), 'ms', '(3 runs, fresh data dirs)');
  report('os0 up: SIGTERM to exit, median', median(exits), 'ms');

  // 3. Outliving the starter.
  const other = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => fs.existsSync(p) && spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.split('.')[0] !== '22');
  if (other) {
    log(`SIGKILL of the bin.js wrapper (started by ${other})`);
    const ms = await orphanMs(other, (d, p) => [BIN, 'up', '--data', d, '--port', String(p)], path.join(dataRoot, 'wrapper'));
    report('SIGKILL of the wrapper: until os0 and sandboxes are gone', ms, 'ms', '(IPC lifeline)');
  } else log('no node other than 22 on this machine: the wrapper is not measured');
  const npx = ['/usr/bin/npx', '/usr/local/bin/npx'].find((p) => fs.existsSync(p));
  if (npx) {
    log('SIGKILL of npx os0 up');
    const ms = await orphanMs(npx, (d, p) => ['--no', '--', 'os0', 'up', '--data', d, '--port', String(p)], path.join(dataRoot, 'npx'));
    report('SIGKILL of npx: until os0 and sandboxes are gone', ms, 'ms', '(ancestor chain read every 500 ms)');
  }
  fs.rmSync(dataRoot, { recursive: true, force: true });
}
