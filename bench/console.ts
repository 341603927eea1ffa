/**
 * `npm run bench -- console`: the web console in Debian's headless chromium, with 10,000
 * resources loaded, while commands arrive at 100 per second. For each command: the time from its
 * acknowledgement (the API's answer, in this process) to its row appearing in the page (a
 * MutationObserver's clock; same machine, same wall clock), p50 and p99, in two views:
 *   - tree, one namespace's 10,000+ resources, newest first (the row comes over the watch stream);
 *   - log, following (the watch stream says something changed, the page reads the log records).
 * osØ runs as its own process (`os0 up`), so the acknowledgement is timed by a client that
 * shares no event loop with the server.
 * Also: the time to sign in and load the 10,000 (paged list), and the page's JS heap at the end.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import { CHROMIUM, launch, NO_CHROMIUM, signIn } from '../test/helpers/browser.ts';
import type { SuiteOptions } from './run.ts';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = path.join(root, '.bench-data', 'console');
const BIN = path.join(root, 'sdk', 'cli', 'bin.js');
const PINNED = path.join(root, 'node_modules', '.bin', 'node');
const LOADED = 10_000;
const RATE = 100;
const SECONDS = 5;

const log = (m: string): void => void process.stderr.write(`  console: ${m}\n`);
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

/** Records, in the page, when each row named `prefix…` first appears. */
async function observe(page: Page, prefix: string): Promise<void> {
  await page.evaluate(`(() => {
    const seen = (window.__seen = new Map());
    new MutationObserver((ms) => {
      const now = Date.now();
      for (const m of ms) for (const n of m.addedNodes) {
        const name = n.dataset && n.dataset.name;
        if (name && name.startsWith(${JSON.stringify(prefix)}) && !seen.has(name)) seen.set(name, now);
      }
    }).observe(document.querySelector('main'), { childList: true, subtree: true });
  })()`);
}

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

/** `os0 up` on a fresh data directory; resolves at its ready line. */
async function up(port: number): Promise<ChildProcess> {
  const child = spawn(fs.existsSync(PINNED) ? PINNED : process.execPath, [BIN, 'up', '--data', dataDir, '--port', String(port)], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`os0 up not ready within 60 s: ${out}`)), 60_000);
    const on = (b: Buffer) => {
      out += b.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.once('exit', (code) => reject(new Error(`os0 up exited (${code}) before ready: ${out}`)));
  });
  return child;
}

export async function run(opts: SuiteOptions): Promise<void> {
  if (!CHROMIUM) {
    log(NO_CHROMIUM);
    return;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
  const port = await freePort();
  const child = await up(port);
  const inst = { url: `http://127.0.0.1:${port}`, adminToken: fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim() };
  const browser = await launch();
  try {
    const api = new (await import('../core/api/client/index.ts')).ApiClient({ url: inst.url, token: inst.adminToken });
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'bench' } });
    log(`loading ${LOADED} resources`);
    for (let i = 0; i < LOADED; i += 500) {
      await api.submit({ batch: Array.from({ length: 500 }, (_, j) => ({ op: 'create' as const, resource: { type: 'configuration', namespace: 'bench', name: `r${String(i + j).padStart(5, '0')}`, data: { n: i + j } } })) });
    }
    const t0 = Date.now();
    const page = await signIn(browser, inst.url, inst.adminToken);
    opts.report(`sign in and load ${LOADED} resources (paged list)`, Date.now() - t0, 'ms');

    for (const [view, hash, prep] of [
      ['tree, newest first', '#/tree/bench', async (p: Page) => p.check('input[name=newest]')],
      ['log, following', '#/log', async () => {}],
    ] as const) {
      await page.goto(`${inst.url}/${hash}`);
      await page.waitForSelector('main .row');
      await prep(page);
      const prefix = `t${view.slice(0, 3)}-`;
      await observe(page, prefix);
      log(`${view}: ${RATE} changes/s for ${SECONDS} s`);
      const acked = new Map<string, number>();
      const inflight = new Set<Promise<void>>();
      const start = Date.now();
      const total = RATE * SECONDS;
      for (let i = 0; i < total; i++) {
        const due = start + (i * 1000) / RATE;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        while (inflight.size >= 50) await Promise.race(inflight);
        const name = `${prefix}${i}`;
        const p: Promise<void> = api
          .apply({ type: 'configuration', namespace: 'bench', name, data: { i } })
          .then(() => void acked.set(name, Date.now()))
          .finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.all(inflight);
      // Give the last rows time to show.
      const deadline = Date.now() + 5000;
      let seen: [string, number][] = [];
      while (Date.now() < deadline) {
        seen = (await page.evaluate('[...window.__seen]')) as [string, number][];
        if (seen.length >= total) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      const lat = seen.filter(([n]) => acked.has(n)).map(([n, t]) => t - acked.get(n)!);
      opts.report(`${view}: ack to row on screen p50 (${RATE}/s, ${LOADED} loaded)`, pct(lat, 50), 'ms');
      opts.report(`${view}: ack to row on screen p99`, pct(lat, 99), 'ms');
      opts.report(`${view}: rows seen of ${total}`, seen.length, 'rows', 'a row the page drew before the ack counts as negative or 0');
    }
    const heap = (await page.evaluate('performance.memory ? performance.memory.usedJSHeapSize : 0')) as number;
    opts.report('page JS heap at the end', heap / 1048576, 'MiB');
  } finally {
    await browser.close();
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}
