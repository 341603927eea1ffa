/**
 * End-to-end helpers: a real `os0 up` child process on a free port with a temporary data
 * directory, the CLI run as a child process, raw HTTP for asserting statuses, and the project's
 * typed client (core/api/client/) bound to a server.
 *
 * Everything started here is killed (SIGKILL if still alive) and every data directory removed in
 * an afterAll registered when this module is imported, and on process exit as a last resort.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { ApiClient, readSse } from '../../core/api/client/index.ts';

export const ROOT = path.resolve(import.meta.dirname, '..', '..');
/** The project's pinned Node.js 22 (type stripping); the machine's default `node` may be older. */
export const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
/** The CLI entry; run with NODE directly so that signals reach the real server process. */
export const BIN = path.join(ROOT, 'sdk', 'cli', 'bin.js');
export const DATA_ROOT = path.join(ROOT, '.test-data');

const children = new Set<ChildProcess>();
const dirs = new Set<string>();

function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch {}
    }
  }
}
process.once('exit', killAll);

afterAll(async () => {
  const waits: Promise<unknown>[] = [];
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      waits.push(new Promise((r) => c.once('exit', r)));
      c.kill('SIGKILL');
    }
  }
  await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 5000))]);
  children.clear();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs.clear();
});

/** A fresh directory under .test-data (removed after the file's tests). */
export function tempDir(prefix = 'e2e-'): string {
  fs.mkdirSync(DATA_ROOT, { recursive: true });
  const d = fs.mkdtempSync(path.join(DATA_ROOT, prefix));
  dirs.add(d);
  return d;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port P such that P and P+1 (the embedded registry's) are free right now. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * 40000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error('no free port pair found');
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Os0 {
  url: string;
  port: number;
  /** The admin token (DATA/admin.token). */
  token: string;
  dataDir: string;
  proc: ChildProcess;
  /** Everything the current process wrote so far. */
  stdout(): string;
  stderr(): string;
  /** Sends a signal (SIGTERM by default) and resolves with how the process ended. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
  /** kill -9. */
  kill9(): Promise<Exit>;
  /**
   * Starts `os0 up` again on the same data directory, on a new port: keep-alive connections the
   * client pooled to the old process can then never be reused against the new one.
   */
  restart(): Promise<void>;
}

export interface StartOptions {
  /** Reuse this data directory (default: a fresh temporary one). */
  dataDir?: string;
  /** Extra arguments to `os0 up`. */
  args?: string[];
  env?: Record<string, string>;
}

/** Starts `node bin.js up --data DIR --port P` and waits for its `ready` line. */
export async function startOs0(opts: StartOptions = {}): Promise<Os0> {
  const dataDir = opts.dataDir ?? tempDir('e2e-');
  let proc!: ChildProcess;
  let out = '';
  let err = '';
  let exited!: Promise<Exit>;

  const launch = async (): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const p = await freePort();
      out = '';
      err = '';
      // The host agent's DNS port defaults to 7053: tests run many instances at once, so each takes a free one.
      const dns = opts.args?.includes('--dns-port') ? [] : ['--dns-port', '0'];
      const child = spawn(NODE, [BIN, 'up', '--data', dataDir, '--port', String(p), ...dns, ...(opts.args ?? [])], {
        cwd: dataDir,
        env: { ...cleanEnv(), ...opts.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      child.stdout!.setEncoding('utf8');
      child.stderr!.setEncoding('utf8');
      child.stdout!.on('data', (s: string) => (out += s));
      child.stderr!.on('data', (s: string) => (err += s));
      const ended = new Promise<Exit>((r) => child.once('exit', (code, signal) => r({ code, signal })));
      ended.then(() => children.delete(child));
      const ready = await new Promise<string | Exit>((resolve) => {
        const timer = setTimeout(() => resolve({ code: null, signal: null }), 30_000);
        const onData = () => {
          const line = out.slice(0, out.lastIndexOf('\n') + 1).split('\n').find((l) => l.includes('ready'));
          if (line) {
            clearTimeout(timer);
            child.stdout!.off('data', onData);
            resolve(line);
          }
        };
        child.stdout!.on('data', onData);
        ended.then((e) => {
          clearTimeout(timer);
          resolve(e);
        });
      });
      if (typeof ready === 'string') {
        const m = /https?:\/\/[^\s)]+/.exec(ready);
        if (!m) throw new Error(`os0 up printed a ready line without a URL: ${ready}`);
        proc = child;
        exited = ended;
        inst.url = m[0].replace(/[.,]$/, '');
        inst.port = p;
        inst.proc = child;
        return;
      }
      if (ready.code === null && ready.signal === null) {
        child.kill('SIGKILL');
        throw new Error(`os0 up did not print ready within 30 s\nstdout: ${out}\nstderr: ${err}`);
      }
      if (attempt < 3 && /in use/.test(err) && /port/.test(err)) continue; // lost a port race
      throw new Error(`os0 up exited (${ready.code ?? ready.signal}) before ready\nstdout: ${out}\nstderr: ${err}`);
    }
  };

  const inst: Os0 = {
    url: '',
    port: 0,
    token: '',
    dataDir,
    proc: undefined as unknown as ChildProcess,
    stdout: () => out,
    stderr: () => err,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      return withTimeout(exited, 15_000, `os0 up did not exit after ${signal}`);
    },
    async kill9() {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill('SIGKILL');
      return exited;
    },
    async restart() {
      if (proc.exitCode === null && proc.signalCode === null) throw new Error('restart(): the server is still running; stop() or kill9() it first');
      await launch();
      inst.token = readToken(dataDir);
    },
  };
  await launch();
  inst.token = readToken(dataDir);
  return inst;
}

function readToken(dir: string): string {
  return fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim();
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(what)), ms)))]).finally(() => clearTimeout(t));
}

/** The environment without client settings that would leak into a test. */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('OS0_')) env[k] = v;
  return env;
}

// ---- the CLI ---------------------------------------------------------------------------------

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  /** Written to standard input (which is closed afterwards; empty by default). */
  input?: string;
  /** Working directory (default: an empty temporary one, so no ./.os0/admin.token is found). */
  cwd?: string;
  timeoutMs?: number;
}

let emptyCwd: string | null = null;
function defaultCwd(): string {
  return (emptyCwd ??= tempDir('cli-cwd-'));
}

/** Runs `os0 ARGS...` to completion. */
export function cli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const child = spawnCli(args, opts);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => (stdout += s));
  child.stderr!.on('data', (s: string) => (stderr += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** Starts `os0 ARGS...` and leaves it running (for watch); stdin gets `input` then closes. */
export function spawnCli(args: string[], opts: CliOptions = {}): ChildProcess {
  const child = spawn(NODE, [BIN, ...args], { cwd: opts.cwd ?? defaultCwd(), env: { ...cleanEnv(), ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.stdin!.on('error', () => {});
  child.stdin!.end(opts.input ?? '');
  return child;
}

/** The CLI pointed at a server through OS0_URL / OS0_TOKEN (the token defaults to the admin's). */
export function cliFor(s: Os0, token?: string): (args: string[], opts?: CliOptions) => Promise<CliResult> {
  return (args, opts = {}) => cli(args, { ...opts, env: { OS0_URL: s.url, OS0_TOKEN: token ?? s.token, ...opts.env } });
}

// ---- HTTP ------------------------------------------------------------------------------------

export interface HttpResult<T = any> {
  status: number;
  body: T;
  text: string;
  headers: Headers;
}

/** One request; `token: null` sends none. The body is sent as JSON unless it is a string. */
export async function http<T = any>(s: { url: string; token: string }, method: string, p: string, body?: unknown, token?: string | null): Promise<HttpResult<T>> {
  const headers: Record<string, string> = {};
  const tok = token === undefined ? s.token : token;
  if (tok) headers.authorization = `Bearer ${tok}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(s.url + p, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20_000), // a stream answered where JSON was expected must not hang the test
  });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed as T, text, headers: res.headers };
}

/** The typed API client for a server as it is now (after a restart(), ask for a new one). */
export function apiClient(s: { url: string; token: string }, token?: string): ApiClient {
  return new ApiClient({ url: s.url, token: token ?? s.token, timeoutMs: 20_000 });
}

/** A client bound to a server (follows its URL and token across restarts). */
export function client(s: Os0, token?: string) {
  const t = () => token ?? s.token;
  return {
    get: <T = any>(p: string) => http<T>({ url: s.url, token: t() }, 'GET', p),
    post: <T = any>(p: string, body: unknown) => http<T>({ url: s.url, token: t() }, 'POST', p, body),
    del: <T = any>(p: string) => http<T>({ url: s.url, token: t() }, 'DELETE', p),
    /** POST /v1/commands; throws unless 200. */
    async submit(cmd: unknown): Promise<{ index: number; resources: any[] }> {
      try {
        return await apiClient(s, t()).submit(cmd as never);
      } catch (e) {
        throw new Error(`command refused (${(e as { status?: number }).status}): ${(e as Error).message}`);
      }
    },
  };
}

// ---- server-sent events ----------------------------------------------------------------------

export interface SseEvent {
  event: string;
  data: string;
  id?: string;
  json: any;
}

export interface SseStream {
  status: number;
  /** The next event (waits up to timeoutMs; rejects on timeout or end of stream). */
  next(timeoutMs?: number): Promise<SseEvent>;
  /** The next `n` events of the given kind (others are skipped). */
  take(n: number, event?: string, timeoutMs?: number): Promise<SseEvent[]>;
  /** Whether the stream ended (the server closed it). */
  ended(): boolean;
  /** Error body, for a non-200 answer. */
  errorBody: any;
  close(): void;
}

/** Opens GET PATH as an event stream. */
export async function sse(s: { url: string; token: string }, p: string): Promise<SseStream> {
  const ac = new AbortController();
  const res = await fetch(s.url + p, { headers: { authorization: `Bearer ${s.token}`, accept: 'text/event-stream' }, signal: ac.signal });
  const queue: SseEvent[] = [];
  let done = false;
  let failure: unknown = null;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let errorBody: any = undefined;
  if (res.status !== 200) {
    errorBody = await res.json().catch(() => undefined);
    done = true;
  } else {
    void (async () => {
      try {
        for await (const ev of readSse(res.body!)) {
          let json: unknown;
          try {
            json = JSON.parse(ev.data);
          } catch {}
          queue.push({ event: ev.event, data: ev.data, id: ev.id, json });
          notify();
        }
      } catch (e) {
        if (!ac.signal.aborted) failure = e;
      }
      done = true;
      notify();
    })();
  }
  const stream: SseStream = {
    status: res.status,
    errorBody,
    ended: () => done && queue.length === 0,
    async next(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const e = queue.shift();
        if (e) return e;
        if (done) throw new Error(`the event stream ended${failure ? `: ${(failure as Error).message}` : ''}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no event within ${timeoutMs} ms`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    },
    async take(n, event, timeoutMs = 10_000) {
      const out: SseEvent[] = [];
      const deadline = Date.now() + timeoutMs;
      while (out.length < n) {
        const e = await stream.next(Math.max(1, deadline - Date.now()));
        if (event === undefined || e.event === event) out.push(e);
      }
      return out;
    },
    close() {
      ac.abort();
    },
  };
  return stream;
}

/** Reads a child's stdout line by line. */
export function lines(child: ChildProcess): { all: string[]; waitFor(n: number, timeoutMs?: number): Promise<string[]> } {
  const all: string[] = [];
  let buf = '';
  let wake: (() => void) | null = null;
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (s: string) => {
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      all.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
    wake?.();
  });
  child.once('exit', () => wake?.());
  return {
    all,
    async waitFor(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (all.length < n) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the process exited after ${all.length} lines`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`only ${all.length} of ${n} lines within ${timeoutMs} ms: ${all.join('\n')}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, Math.min(left, 200));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
      return all.slice(0, n);
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `fn` returns truthy (polling). */
export async function until<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
