/**
 * `npm run bench -- api`: osØ over HTTP against a real `os0 up` process.
 * - durable commands/s and p50/p99 with 64 concurrent keep-alive clients, ~200-byte resources,
 *   and etcd 3.4's v3 JSON gateway under the same load in the same run (when Debian's
 *   etcd-server is installed);
 * - watch fan-out: 1,000 concurrent SSE watchers, delay from commit to delivery;
 * - the permission and quota filters' cost per command, in process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteOptions } from './run.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataRoot = path.join(root, '.bench-data');
const CLIENTS = 64;
const LOAD_MS = 5000;
const WATCHERS = 1000;

const pct = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
};
const log = (m: string) => process.stderr.write(`bench api: ${m}\n`);

async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function startOs0(dir: string): Promise<{ url: string; token: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'sdk/cli/bin.js'), 'up', '--data', dir, '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b;
      if (out.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`os0 up exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, token: fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim(), child };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });

function post(url: string, pathname: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(pathname, url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** 64 closed-loop clients for LOAD_MS; `make(i)` gives the i-th request body. */
async function load(url: string, pathname: string, headers: Record<string, string>, make: (i: number) => string): Promise<{ perSec: number; p50: number; p99: number; errors: number; n: number }> {
  let next = 0;
  let errors = 0;
  const lat: number[] = [];
  const end = performance.now() + LOAD_MS;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < end) {
        const i = next++;
        const s = performance.now();
        try {
          const r = await post(url, pathname, make(i), headers);
          if (r.status !== 200) errors++;
        } catch {
          errors++;
        }
        lat.push(performance.now() - s);
      }
    }),
  );
  const el = (performance.now() - t0) / 1000;
  return { perSec: lat.length / el, p50: pct(lat, 0.5), p99: pct(lat, 0.99), errors, n: lat.length };
}

const filler = 'x'.repeat(60);
const resourceBody = (i: number) => JSON.stringify({ op: 'create', resource: { type: 'configuration', namespace: 'bench', name: `c${i}`, tags: { g: `g${i % 100}` }, data: { v: filler } } });

async function etcdLoad(dir: string): Promise<{ perSec: number; p50: number; p99: number; errors: number; n: number } | null> {
  const which = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find((p) => fs.existsSync(p));
  if (!which) return null;
  const port = await freePort();
  const peer = await freePort();
  const child = spawn(which, ['--data-dir', dir, '--listen-client-urls', `http://127.0.0.1:${port}`, '--advertise-client-urls', `http://127.0.0.1:${port}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--initial-cluster', `default=http://127.0.0.1:${peer}`, '--log-level', 'error'], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let i = 0; ; i++) {
      try {
        const r = await post(url, '/v3/kv/put', JSON.stringify({ key: Buffer.from('warm').toString('base64'), value: 'AA==' }), {});
        if (r.status === 200) break;
      } catch {}
      if (i > 100) throw new Error('etcd did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    // A ~200-byte value, as osØ's resources.
    const value = Buffer.from(JSON.stringify({ type: 'configuration', namespace: 'bench', tags: { g: 'g1' }, data: { v: filler }, pad: 'y'.repeat(60) })).toString('base64');
    return await load(url, '/v3/kv/put', {}, (i) => JSON.stringify({ key: Buffer.from(`/bench/c${i}`).toString('base64'), value }));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

/** Opens n SSE watches; each records the arrival time of every change index. */
async function watchers(url: string, token: string, n: number): Promise<{ arrivals: Map<number, number[]>; close: () => void }> {
  const arrivals = new Map<number, number[]>();
  const reqs: http.ClientRequest[] = [];
  const wagent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<void>((resolve, reject) => {
        const u = new URL('/v1/watch?type=configuration&namespace=fan', url);
        const req = http.get({ host: u.hostname, port: u.port, path: u.pathname + u.search, agent: wagent, headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.setEncoding('utf8');
          let buf = '';
          let ready = false;
          res.on('data', (d: string) => {
            const now = performance.now();
            buf += d;
            let cut: number;
            while ((cut = buf.indexOf('\n\n')) >= 0) {
              const ev = buf.slice(0, cut);
              buf = buf.slice(cut + 2);
              if (!ready && ev.includes('event: bookmark')) {
                ready = true;
                resolve();
              }
              const m = /^id: (\d+)$/m.exec(ev);
              if (m) {
                const idx = Number(m[1]);
                let a = arrivals.get(idx);
                if (!a) arrivals.set(idx, (a = []));
                a.push(now);
              }
            }
          });
        });
        req.on('error', reject);
        reqs.push(req);
      }),
    ),
  );
  return { arrivals, close: () => reqs.forEach((r) => r.destroy()) };
}

export async function run({ report }: SuiteOptions): Promise<void> {
  fs.mkdirSync(dataRoot, { recursive: true });
  const dir = fs.mkdtempSync(path.join(dataRoot, 'api-'));
  try {
    // --- commands over HTTP --------------------------------------------------------------
    log('starting os0 up');
    const os0 = await startOs0(path.join(dir, 'os0'));
    const auth = { authorization: `Bearer ${os0.token}` };
    for (const ns of ['bench', 'fan']) await post(os0.url, '/v1/commands', JSON.stringify({ op: 'create', resource: { type: 'namespace', name: ns } }), auth);
    log(`${CLIENTS} clients for ${LOAD_MS} ms against osØ`);
    const ours = await load(os0.url, '/v1/commands', auth, resourceBody);
    report(`osØ durable commands/s over HTTP (${CLIENTS} clients)`, ours.perSec, '/s');
    report('osØ command latency p50 over HTTP', ours.p50, 'ms');
    report('osØ command latency p99 over HTTP', ours.p99, 'ms');
    report('osØ errors under load', ours.errors, 'count');

    // --- watch fan-out ---------------------------------------------------------------------
    log(`opening ${WATCHERS} watchers`);
    const w = await watchers(os0.url, os0.token, WATCHERS);
    const acked = new Map<number, number>();
    const sent = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const s = performance.now();
      const r = await post(os0.url, '/v1/commands', JSON.stringify({ op: 'create', resource: { type: 'configuration', namespace: 'fan', name: `f${i}`, data: { i } } }), auth);
      const idx = (JSON.parse(r.body) as { index: number }).index;
      sent.set(idx, s);
      acked.set(idx, performance.now());
      await new Promise((res) => setTimeout(res, 10));
    }
    await new Promise((res) => setTimeout(res, 1000));
    w.close();
    const fromSubmit: number[] = [];
    const fromAck: number[] = [];
    let missing = 0;
    for (const [idx, s] of sent) {
      const a = w.arrivals.get(idx) ?? [];
      missing += WATCHERS - a.length;
      for (const t of a) {
        fromSubmit.push(t - s);
        fromAck.push(Math.max(0, t - acked.get(idx)!));
      }
    }
    report(`watch fan-out to ${WATCHERS}: delivery p50 after submit`, pct(fromSubmit, 0.5), 'ms');
    report(`watch fan-out to ${WATCHERS}: delivery p99 after submit`, pct(fromSubmit, 0.99), 'ms');
    report(`watch fan-out to ${WATCHERS}: delivery p99 after the commit's ack`, pct(fromAck, 0.99), 'ms');
    report(`watch fan-out: events not delivered`, missing, 'count');
    await stop(os0.child);

    // --- etcd under the same load ----------------------------------------------------------
    log('etcd v3 JSON gateway under the same load');
    const etcd = await etcdLoad(path.join(dir, 'etcd'));
    if (etcd) {
      report(`etcd 3.4 durable puts/s over HTTP (${CLIENTS} clients)`, etcd.perSec, '/s');
      report('etcd put latency p50', etcd.p50, 'ms');
      report('etcd put latency p99', etcd.p99, 'ms');
      report('etcd errors under load', etcd.errors, 'count');
      report('target: osØ ≥ 2× etcd commands/s, zero errors', Number(ours.perSec >= 2 * etcd.perSec && ours.errors === 0), 'pass', `(${(ours.perSec / etcd.perSec).toFixed(2)}×)`);
      report('target: osØ p99 below etcd p99', Number(ours.p99 < etcd.p99), 'pass');
    } else {
      log("etcd is not installed (apt-get install etcd-server): no comparison");
    }
    report(`target: watch delivery p99 ≤ 50 ms after commit`, Number(pct(fromAck, 0.99) <= 50), 'pass');

    // --- filter cost, in process ----------------------------------------------------------
    log('permission + quota filter cost');
    const filterUs = await filterCost(path.join(dir, 'filters'));
    report('permission + quota filters per command, p50', filterUs.p50, 'µs');
    report('permission + quota filters per command, p99', filterUs.p99, 'µs');
    report('target: permission + quota ≤ 10 µs p50', Number(filterUs.p50 <= 10), 'pass');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Times the permission and quota filters' admit (and release) on a typical create by a non-system actor. */
async function filterCost(dir: string): Promise<{ p50: number; p99: number }> {
  const { System } = await import('../core/system.ts');
  const sys = await System.open({ dir });
  const admin = sys.authenticate(sys.adminToken);
  await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'acme', data: { quota: { count: { configuration: 1_000_000 }, cpu: 100 }, budget: { perHour: 1000 } } } }, admin);
  await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'acme/prod' } }, admin);
  const ctx = { actor: admin.name, view: sys.core.view };
  const samples: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const next = { apiVersion: 'os0/v1', id: `id${i}`, namespace: 'acme/prod', type: 'configuration', name: `c${i}`, created: '', updated: '', revision: 1, tags: { g: 'x' }, data: { v: filler } };
    const change = { command: { op: 'create' as const, resource: next }, old: null, next };
    const t = process.hrtime.bigint();
    sys.permissions.admit(change, ctx);
    sys.economy.admit(change, ctx);
    const el = Number(process.hrtime.bigint() - t) / 1000;
    sys.economy.release(change);
    if (i >= 2000) samples.push(el);
  }
  await sys.close();
  return { p50: pct(samples, 0.5), p99: pct(samples, 0.99) };
}
