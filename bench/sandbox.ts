/**
 * `npm run bench -- sandbox`: the capability sandbox on this machine, next to the raw isolated-vm
 * floor measured in the same run.
 *
 *   1. the floor: in a child process with the sandbox's flags, a warm isolate; per call, a new
 *      context, a precompiled script run in it, one function applied to a ~200-byte JSON string
 *      that returns JSON (all synchronous: the cheapest isolated-vm can do it);
 *   2. cold invocations, the first of a program after load: compiled by esbuild then run, and
 *      compiled from the disk cache then run (a new isolate or the process's spare one);
 *   3. warm invocations through Sandbox.run, one at a time: p50 and p99;
 *   4. invocations/s with 16 in flight, across the sandbox's processes;
 *   5. the hostile suite's quick programs, once: escapes (a hostile program that succeeded or left
 *      the next invocation's context dirty) and host crashes;
 *   6. the targets, PASS or FAIL (reported, never an exit code).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Report, SuiteOptions } from './run.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const dataDir = path.join(root, '.bench-data', 'sandbox');
const log = (m: string): void => void process.stderr.write(`  sandbox: ${m}\n`);

const INPUT = {
  name: 'world',
  tags: { env: 'prod', tier: 'web' },
  items: Array.from({ length: 8 }, (_, i) => ({ i, v: 'x'.repeat(6) })),
};
const FLOOR_CALLS = 5000;
const WARM_CALLS = 5000;
const WARMUP_CALLS = 500;
const COLD_PROGRAMS = 20;
const THROUGHPUT_MS = 3000;
const IN_FLIGHT = 16;

interface Floor {
  p50Ms: number;
  p99Ms: number;
  perS: number;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** Runs in the child (`--floor`): isolated-vm with nothing of ours around it. */
async function floor(): Promise<Floor> {
  const { default: ivm } = await import('isolated-vm');
  const iso = new ivm.Isolate({ memoryLimit: 64 });
  const script = iso.compileScriptSync('(function (json) { const input = JSON.parse(json); return JSON.stringify(input); })');
  const arg = JSON.stringify(INPUT);
  const once = (): void => {
    const context = iso.createContextSync();
    const fn = script.runSync(context, { reference: true }) as { applySync(t: undefined, a: unknown[]): unknown; release(): void };
    const out = fn.applySync(undefined, [arg]);
    if (out !== arg) throw new Error('floor: wrong result');
    fn.release();
    context.release();
  };
  for (let i = 0; i < WARMUP_CALLS; i++) once();
  const xs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < FLOOR_CALLS; i++) {
    const t = performance.now();
    once();
    xs.push(performance.now() - t);
  }
  const perS = (FLOOR_CALLS / (performance.now() - t0)) * 1000;
  iso.dispose();
  return { p50Ms: percentile(xs, 0.5), p99Ms: percentile(xs, 0.99), perS };
}

function measureFloor(): Promise<Floor> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', '--disable-warning=ExperimentalWarning', fileURLToPath(import.meta.url), '--floor'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`the floor child exited with ${code}`));
      resolve(JSON.parse(out) as Floor);
    });
  });
}

const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

export async function run({ report }: SuiteOptions): Promise<void> {
  const { compile, Sandbox } = await import('../runtime/sandbox/index.ts');
  const { forgetCompiled } = await import('../runtime/sandbox/compile.ts');
  const target = (name: string, ok: boolean, note: string): void => report(`target: ${name}`, ok ? 1 : 0, 'pass', note);
  const host = { call: async (method: string, args: unknown[]): Promise<unknown> => ({ method, args }) };

  report('host: load average (1 min) at start', os.loadavg()[0], 'load', `(${os.availableParallelism()} CPUs)`);
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });

  // 1. The floor.
  log('raw isolated-vm floor');
  const raw = await measureFloor();
  report('raw isolated-vm: new context + call, p50', raw.p50Ms, 'ms');
  report('raw isolated-vm: new context + call, p99', raw.p99Ms, 'ms');
  report('raw isolated-vm: calls/s, one thread', raw.perS, 'calls/s');

  const sandbox = new Sandbox();
  try {
    const tStart = performance.now();
    await sandbox.ready();
    report('sandbox: processes started and ready', performance.now() - tStart, 'ms', `(${sandbox.stats().pids.length} processes)`);

    // 2. Cold: distinct programs, each first compiled with esbuild, or taken from the disk cache.
    log('cold invocations');
    const cacheDir = path.join(dataDir, 'cache');
    const entries = Array.from({ length: 2 * COLD_PROGRAMS }, (_, i) => {
      const file = path.join(dataDir, 'apps', `p${i}`, 'main.ts');
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, `import type { Ctx } from '${path.join(root, 'sdk/index.ts')}';\nexport default async (input: unknown, ctx: Ctx) => ({ program: ${i}, input });\n`);
      return file;
    });
    const coldBuild: number[] = [];
    for (const file of entries.slice(0, COLD_PROGRAMS)) {
      await new Promise((r) => setTimeout(r, 50)); // a cold start finds an idle sandbox
      const t = performance.now();
      await sandbox.run(await compile(file), INPUT, host);
      coldBuild.push(performance.now() - t);
    }
    for (const file of entries.slice(COLD_PROGRAMS)) await compile(file, { cacheDir });
    forgetCompiled();
    const coldCached: number[] = [];
    for (const file of entries.slice(COLD_PROGRAMS)) {
      await new Promise((r) => setTimeout(r, 50));
      const t = performance.now();
      await sandbox.run(await compile(file, { cacheDir }), INPUT, host);
      coldCached.push(performance.now() - t);
    }
    report('cold invocation, esbuild compile + new isolate, p50', percentile(coldBuild, 0.5), 'ms');
    report('cold invocation, cached program + new isolate, p50', percentile(coldCached, 0.5), 'ms');
    report('cold invocation, cached program + new isolate, max', Math.max(...coldCached), 'ms');

    // 3. Warm, one at a time.
    log('warm invocations');
    const echo = await compile(path.join(root, 'test/runtime/programs/echo.ts'));
    for (let i = 0; i < WARMUP_CALLS; i++) await sandbox.run(echo, INPUT, host);
    const warm: number[] = [];
    for (let i = 0; i < WARM_CALLS; i++) {
      const t = performance.now();
      await sandbox.run(echo, INPUT, host);
      warm.push(performance.now() - t);
    }
    const warmP50 = percentile(warm, 0.5);
    report('warm invocation p50 (Sandbox.run, one in flight)', warmP50, 'ms', `(${fmt(warmP50 / raw.p50Ms, 2)} x raw)`);
    report('warm invocation p99', percentile(warm, 0.99), 'ms');

    // 4. Throughput.
    log(`throughput, ${IN_FLIGHT} in flight`);
    let done = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (performance.now() - t0 < THROUGHPUT_MS) {
          await sandbox.run(echo, INPUT, host);
          done++;
        }
      }),
    );
    const perS = (done / (performance.now() - t0)) * 1000;
    report(`invocations/s, ${IN_FLIGHT} in flight`, perS, 'inv/s');

    // 5. Hostile programs: every fixture that ends quickly, then a probe for a clean context.
    log('hostile programs');
    const hostileDir = path.join(root, 'test/runtime/hostile');
    const probe = await compile(path.join(root, 'test/runtime/programs/probe.ts'));
    const clean = JSON.stringify((await sandbox.run(probe, null, host)).output);
    let hostile = 0;
    let escapes = 0;
    for (const f of fs.readdirSync(hostileDir).filter((x) => x.endsWith('.ts') && !x.startsWith('mem-'))) {
      const p = await compile(path.join(hostileDir, f));
      hostile++;
      const ok = await sandbox.run(p, null, host, { cpuMs: 200, wallMs: 400, hostCalls: 500 }).then(
        () => true,
        () => false,
      );
      const after = JSON.stringify((await sandbox.run(probe, null, host)).output);
      if (ok || after !== clean) {
        escapes++;
        log(`ESCAPE: ${f}`);
      }
    }
    report('hostile programs run', hostile, 'programs');
    report('escapes', escapes, 'escapes');
    report('host crashes', 0, 'crashes', '(this process is still here)');
    report('sandbox process restarts', sandbox.stats().restarts, 'restarts');

    // 5b. Over HTTP: POST /v1/invocations of samples/hello against an in-process API, next to a
    // plain durable command in the same server.
    log('invocations over HTTP');
    const http = await overHttp(path.join(dataDir, 'http'));
    report('warm invocation over HTTP p50', http.invokeP50, 'ms');
    report('warm invocation over HTTP p99', http.invokeP99, 'ms');
    report('durable command over HTTP p50 (same server)', http.commandP50, 'ms');

    // 6. Targets.
    target('warm p50 <= 3 x raw floor p50', warmP50 <= 3 * raw.p50Ms, `(measured ${fmt(warmP50, 3)} ms, limit ${fmt(3 * raw.p50Ms, 3)} ms)`);
    target('cold of a cached program p50 <= 10 ms', percentile(coldCached, 0.5) <= 10, `(measured ${fmt(percentile(coldCached, 0.5), 2)} ms)`);
    target('warm invocations/s >= 2,000', perS >= 2000, `(measured ${fmt(perS)})`);
    target('zero escapes, zero host crashes', escapes === 0, `(${escapes} escapes in ${hostile} hostile programs)`);
  } finally {
    await sandbox.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Sequential POST /v1/invocations (hello.greet) and POST /v1/commands against one in-process server. */
async function overHttp(dir: string): Promise<{ invokeP50: number; invokeP99: number; commandP50: number }> {
  // The instance os0 up runs (sdk/cli/instance.ts), in this process: core, sandbox, invoker, API.
  const { Instance } = await import('../sdk/cli/instance.ts');
  const { loadAppFolder } = await import('../runtime/invoke/index.ts');
  const inst = new Instance({ data: dir, port: 0, registry: false });
  await inst.start();
  const sys = inst.sys;
  inst.invoker.add(await loadAppFolder(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'samples', 'hello'), { cacheDir: path.join(dir, 'cache') }));
  const port = inst.port;
  const headers = { authorization: `Bearer ${sys.adminToken}`, 'content-type': 'application/json' };
  const time = async (url: string, body: (i: number) => unknown, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const r = await fetch(`http://127.0.0.1:${port}${url}`, { method: 'POST', headers, body: JSON.stringify(body(i)) });
      await r.text();
      if (r.status !== 200) throw new Error(`${url} answered ${r.status}`);
      if (i >= 50) out.push(performance.now() - t);
    }
    return out;
  };
  try {
    await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'bench' } }, sys.authenticate(sys.adminToken));
    const inv = await time('/v1/invocations', () => ({ app: 'hello', capability: 'greet', input: { name: 'bench' } }), 550);
    const cmd = await time('/v1/commands', (i) => ({ op: 'create', resource: { type: 'configuration', namespace: 'bench', name: `c${i}` } }), 550);
    return { invokeP50: percentile(inv, 0.5), invokeP99: percentile(inv, 0.99), commandP50: percentile(cmd, 0.5) };
  } finally {
    await inst.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--floor') {
  floor().then(
    (r) => process.stdout.write(JSON.stringify(r)),
    (e: unknown) => {
      process.stderr.write(`floor: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
