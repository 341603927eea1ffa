/**
 * `npm run bench -- store`: the app store against a real `os0 up` process and its embedded
 * registry (port + 1), as an operator uses them.
 *
 *   1. install time of an app with 10 dependencies (11 apps, each one capability and one type,
 *      signed and published to the embedded registry): POST /v1/store/install end to end over
 *      HTTP, the first (cold) one and the median of the next ones (everything uninstalled in
 *      between), then once through the CLI (`os0 install top --yes`, its start-up included);
 *   2. invoke latency over HTTP (POST /v1/invocations, one at a time, keep-alive), p50 and p99,
 *      next to a plain durable command's (POST /v1/commands apply) measured the same way in the
 *      same run;
 *   3. the targets, PASS or FAIL (reported, never an exit code).
 * Breakdown lines say where the time goes: the client side of an install (resolve, fetch and
 * verify the 11 packages) timed in this process, the plan the CLI asks for before installing, the
 * WAL's fdatasync p50 from /metrics. OS0_BENCH_CPU_PROF=DIR runs `os0 up` with --cpu-prof into DIR.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RegistryClient } from '../registry/client/index.ts';
import { generateKeyPair, keyIdOf } from '../registry/package/keys.ts';
import { pack } from '../registry/package/pack.ts';
import type { SuiteOptions } from './run.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataRoot = path.join(root, '.bench-data');
const BIN = path.join(root, 'sdk', 'cli', 'bin.js');
const DEPS = 10;
/** Installs over HTTP: one cold, then these many warm. */
const WARM_INSTALLS = 5;
const WARMUP_CALLS = 20;
const CALLS = 300;
const INSTALL_TARGET_MS = 2000;

const log = (m: string): void => void process.stderr.write(`  store: ${m}\n`);

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port P such that P and P + 1 (the embedded registry's) are free right now. */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error('no free pair of ports found on 127.0.0.1');
}

interface Os0 {
  url: string;
  registryUrl: string;
  token: string;
  child: ChildProcess;
}

/** `os0 up --data DIR --port P`, until its ready line (30 s at most). `nodeArgs` go to node itself. */
async function startOs0(dir: string, nodeArgs: string[] = []): Promise<Os0> {
  const port = await freePortPair();
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'up', '--data', dir, '--port', String(port)], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv() });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => (err += s));
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`os0 up did not print its ready line within 30 s: ${err.trim()}`));
    }, 30_000);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      out += s;
      const l = out.split('\n').find((x) => x.includes('ready'));
      if (l) {
        clearTimeout(timer);
        resolve(l);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`os0 up exited (${code}) before ready: ${err.trim()}`));
    });
  });
  child.stdout!.resume();
  const reg = /registry at (https?:\/\/[^\s,)]+)/.exec(line);
  return {
    url: `http://127.0.0.1:${port}`,
    registryUrl: reg ? reg[1] : `http://127.0.0.1:${port + 1}`,
    token: fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim(),
    child,
  };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await done;
  clearTimeout(t);
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OS0_')) env[k] = v;
  return env;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One request over the keep-alive agent; the answer's status and JSON body. */
function request(base: string, token: string, method: string, pathname: string, body?: unknown): Promise<{ status: number; body: any; text: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(pathname, base);
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = { authorization: `Bearer ${token}` };
    if (data !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(data);
    }
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed, text });
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error(`${method} ${pathname} timed out after 60 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

async function expectStatus(p: Promise<{ status: number; body: any; text: string }>, status: number, what: string): Promise<any> {
  const r = await p;
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${r.status}: ${r.text.slice(0, 300)}`);
  return r.body;
}

/** Writes DIR/NAME: one capability (echoes its input) and one type; `deps` as dependencies. */
function writeApp(dir: string, name: string, deps: Record<string, string>): string {
  const app = path.join(dir, name);
  fs.mkdirSync(path.join(app, 'src'), { recursive: true });
  const manifest = {
    name,
    version: '1.0.0',
    description: `bench app ${name}`,
    types: {
      [`${name}-thing`]: {
        description: `A thing of ${name}`,
        scope: 'namespaced',
        schema: { type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: false },
      },
    },
    capabilities: { echo: { entry: 'src/echo.ts', description: 'Answers its input', timeoutMs: 5000 } },
    permissions: { resources: [{ types: [`${name}-thing`], verbs: ['get', 'list'] }] },
    dependencies: deps,
  };
  fs.writeFileSync(path.join(app, 'os0.json'), JSON.stringify(manifest, null, 2) + '\n');
  fs.writeFileSync(path.join(app, 'src', 'echo.ts'), 'export default async (input: unknown) => ({ echo: input });\n');
  return app;
}

/** Runs the CLI to completion; its wall time and output. */
function cli(args: string[], env: Record<string, string>, cwd: string): Promise<{ ms: number; code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...cleanEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (s: string) => (stdout += s));
    child.stderr.on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - t0, code, stdout, stderr });
    });
  });
}

export async function run({ report }: SuiteOptions): Promise<void> {
  const target = (name: string, ok: boolean, note: string): void => report(`target: ${name}`, ok ? 1 : 0, 'pass', note);
  report('host: load average (1 min) at start', os.loadavg()[0], 'load', `(${os.availableParallelism()} CPUs)`);
  fs.mkdirSync(dataRoot, { recursive: true });
  const dir = fs.mkdtempSync(path.join(dataRoot, 'store-'));
  let os0: Os0 | null = null;
  try {
    const nodeArgs = process.env.OS0_BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.OS0_BENCH_CPU_PROF}`] : [];
    log('starting os0 up');
    os0 = await startOs0(path.join(dir, 'os0'), nodeArgs);
    const { url, token } = os0;
    const api = (method: string, p: string, body?: unknown) => request(url, token, method, p, body);

    // --- 11 apps, signed, published, their key trusted ----------------------------------------
    log(`packing and publishing ${DEPS + 1} apps to ${os0.registryUrl}`);
    const apps = path.join(dir, 'apps');
    const keys = generateKeyPair();
    const depNames = Array.from({ length: DEPS }, (_, i) => `dep-${i}`);
    const registry = new RegistryClient({ url: os0.registryUrl, token, trust: { publisherKeys: [keys.publicKey] } });
    const folders = [...depNames.map((n) => writeApp(apps, n, {})), writeApp(apps, 'top', Object.fromEntries(depNames.map((n) => [n, '^1.0.0'])))];
    const tPublish = performance.now();
    for (const folder of folders) {
      const packed = await pack(folder, { out: `${folder}.tgz`, key: keys.secretKey });
      await registry.publish(fs.readFileSync(packed.file), { publicKey: keys.publicKey });
    }
    report(`pack + publish ${folders.length} apps (in process)`, performance.now() - tPublish, 'ms');
    const keyId = keyIdOf(keys.publicKey);
    await expectStatus(api('POST', '/v1/commands', { op: 'apply', resource: { type: 'trusted-key', name: keyId, data: { kind: 'publisher', publicKey: Buffer.from(keys.publicKey).toString('base64') } } }), 200, 'trusting the key');

    // --- install, uninstall, again --------------------------------------------------------------
    const uninstallAll = async (): Promise<void> => {
      for (const name of ['top', ...depNames]) await expectStatus(api('DELETE', `/v1/store/apps/${name}`), 200, `uninstalling ${name}`);
    };
    const installOnce = async (): Promise<number> => {
      const t = performance.now();
      const done = await expectStatus(api('POST', '/v1/store/install', { app: 'top', range: '*' }), 201, 'installing top');
      const ms = performance.now() - t;
      const got = (done.apps as { name: string }[]).map((a) => a.name).sort();
      if (got.length !== DEPS + 1 || !got.includes('top')) throw new Error(`installing top installed ${got.join(', ')}; expected top and ${DEPS} dependencies`);
      return ms;
    };
    log(`installing top (with ${DEPS} dependencies) ${1 + WARM_INSTALLS} times over HTTP`);
    const cold = await installOnce();
    const warm: number[] = [];
    for (let i = 0; i < WARM_INSTALLS; i++) {
      await uninstallAll();
      warm.push(await installOnce());
    }
    const listed = await expectStatus(api('GET', '/v1/store/apps'), 200, 'listing the apps');
    const active = (listed as { name: string; status: string }[]).filter((a) => a.status === 'active').length;
    if (active !== DEPS + 1) throw new Error(`after the installs ${active} apps are active, expected ${DEPS + 1}: ${JSON.stringify(listed)}`);
    report(`install, app + ${DEPS} deps, HTTP, first (cold)`, cold, 'ms');
    report(`install, app + ${DEPS} deps, HTTP, median of ${WARM_INSTALLS} next`, pct(warm, 0.5), 'ms', `(min ${Math.min(...warm).toFixed(0)}, max ${Math.max(...warm).toFixed(0)})`);

    // The client side of an install alone, in this process: what the store does for each app
    // (metadata verified twice: once to resolve, once to fetch; each package downloaded,
    // inspected and verified).
    const tFetch = performance.now();
    for (const name of ['top', ...depNames]) {
      await registry.metadata(name);
      await registry.fetch(name, '*');
    }
    report(`install breakdown: resolve + fetch + verify ${DEPS + 1} packages`, performance.now() - tFetch, 'ms', '(RegistryClient, in the bench process)');

    log('installing top through the CLI');
    await uninstallAll();
    // The CLI asks for the plan first (to show it), then installs what it showed: two prepares.
    const tPlan = performance.now();
    const plan = await expectStatus(api('POST', '/v1/store/plan', { app: 'top', range: '*', action: 'install' }), 200, 'planning top');
    if ((plan.apps as unknown[]).length !== DEPS + 1) throw new Error(`the plan for top has ${(plan.apps as unknown[]).length} apps, expected ${DEPS + 1}`);
    report(`plan alone (POST /v1/store/plan; the CLI's first step)`, performance.now() - tPlan, 'ms');
    const viaCli = await cli(['install', 'top', '--yes'], { OS0_URL: url, OS0_TOKEN: token }, dir);
    if (viaCli.code !== 0) throw new Error(`os0 install top --yes exited ${viaCli.code}: ${viaCli.stderr.trim()}`);
    const installedLines = viaCli.stdout.split('\n').filter((l) => l.startsWith('installed ')).length;
    if (installedLines !== DEPS + 1) throw new Error(`os0 install top --yes printed ${installedLines} "installed" lines, expected ${DEPS + 1}: ${viaCli.stdout}`);
    const cliStart = await cli(['--version'], {}, dir);
    report(`install, app + ${DEPS} deps, via the CLI (os0 install --yes)`, viaCli.ms, 'ms');
    report('CLI start-up alone (os0 --version)', cliStart.ms, 'ms');
    target(`install with ${DEPS} deps ≤ ${INSTALL_TARGET_MS / 1000} s (cold, HTTP)`, cold <= INSTALL_TARGET_MS, `(${cold.toFixed(0)} ms)`);
    target(`install with ${DEPS} deps ≤ ${INSTALL_TARGET_MS / 1000} s (via the CLI)`, viaCli.ms <= INSTALL_TARGET_MS, `(${viaCli.ms.toFixed(0)} ms)`);

    // --- invoke vs. a durable command, one at a time ------------------------------------------------
    log(`${WARMUP_CALLS} + ${CALLS} invocations and as many commands, one at a time`);
    const invoke = async (i: number): Promise<void> => {
      const out = await expectStatus(api('POST', '/v1/invocations', { app: 'top', capability: 'echo', input: { i } }), 200, 'invoking top.echo');
      if (out?.status !== 'succeeded' || out?.output?.echo?.i !== i) throw new Error(`top.echo answered ${JSON.stringify(out).slice(0, 300)}`);
    };
    const command = async (i: number): Promise<void> => {
      await expectStatus(api('POST', '/v1/commands', { op: 'apply', resource: { type: 'configuration', namespace: 'system', name: `bench-${i % 50}`, data: { i } } }), 200, 'applying a configuration');
    };
    const timed = async (f: (i: number) => Promise<void>, n: number, warmup: number): Promise<number[]> => {
      for (let i = 0; i < warmup; i++) await f(i);
      const xs: number[] = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await f(i);
        xs.push(performance.now() - t);
      }
      return xs;
    };
    // In interleaved halves, so that a change of load on the machine hits both alike.
    const inv: number[] = [];
    const cmd: number[] = [];
    for (let half = 0; half < 2; half++) {
      inv.push(...(await timed(invoke, CALLS / 2, half === 0 ? WARMUP_CALLS : 0)));
      cmd.push(...(await timed(command, CALLS / 2, half === 0 ? WARMUP_CALLS : 0)));
    }
    const invP50 = pct(inv, 0.5);
    const cmdP50 = pct(cmd, 0.5);
    report('invoke over HTTP (POST /v1/invocations), p50', invP50, 'ms');
    report('invoke over HTTP, p99', pct(inv, 0.99), 'ms');
    report('durable command over HTTP (POST /v1/commands), p50', cmdP50, 'ms');
    report('durable command over HTTP, p99', pct(cmd, 0.99), 'ms');
    // Where an invocation's time goes: it commits two records (the invocation, then its observed
    // result) around the program's run, each waiting for its WAL group's fdatasync.
    const metrics = await request(url, token, 'GET', '/metrics');
    const fsync = /os0_wal_fsync_seconds\{quantile="0.5"\} ([0-9.e-]+)/.exec(metrics.text);
    if (fsync) {
      const fsyncMs = Number(fsync[1]) * 1000;
      report('invoke: WAL fdatasync p50 (2 per invoke, /metrics)', fsyncMs, 'ms');
      report('invoke: p50 − 2 × fdatasync p50 (HTTP, sandbox, rest)', invP50 - 2 * fsyncMs, 'ms');
    }
    const bound = 2 * cmdP50 + 2;
    report('invoke p50 / (2 × command p50 + 2 ms)', invP50 / bound, 'ratio');
    target('invoke p50 ≤ 2 × command p50 + 2 ms', invP50 <= bound, `(${invP50.toFixed(2)} ms vs ${bound.toFixed(2)} ms: ${invP50 <= bound ? 'met' : 'missed'})`);
    report('host: load average (1 min) at end', os.loadavg()[0], 'load');
  } finally {
    agent.destroy();
    if (os0) await stop(os0.child);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
