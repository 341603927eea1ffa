/**
 * The Sandbox: runs programs in supervised child processes (worker.ts), never in this process.
 *
 * V8 is not resilient to running out of memory (a heap OOM aborts the whole process, and
 * isolated-vm's memoryLimit is a guideline that hostile code overshoots 2–3×), so the isolates
 * live in children. This side supervises them: a hard RSS cap read from /proc, a wall-time
 * backstop that kills a child that stops answering, a bound on queued invocations, host calls and
 * their concurrency, and a fresh child when one dies. Only plain data crosses: the program's
 * source, JSON strings, numbers.
 */
import { checkHostCall } from './host-calls.ts';
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Program } from './compile.ts';
import { sha256 } from './compile.ts';
import { SandboxError, formatBytes, oneLine, type SandboxErrorCode } from './errors.ts';
import {
  DEFAULT_LIMITS,
  HOST_CONCURRENCY_MAX,
  HOST_RESULT_BYTES_MAX,
  MAX_LIMITS,
  MIN_MEMORY_MB,
  PROGRAM_BYTES_MAX,
  type Limits,
  type ToChild,
  type ToParent,
} from './protocol.ts';
import { SourceMap, mapStack } from './sourcemap.ts';

/** The caller's side of every host call: it knows the app and the invoker, and checks permissions. */
export interface HostCalls {
  call(method: string, args: unknown[]): Promise<unknown>;
}

export interface SandboxOptions {
  /** Sandbox processes; default: the number of CPUs, at most 4. */
  processes?: number;
  /** A process whose resident memory goes over this is killed (default 1024). */
  rssCapMb?: number;
  /** An isolate is disposed after this many invocations (default 500). */
  recycleAfter?: number;
  /** Invocations one process runs at once (default 4); more wait in the queue. */
  concurrency?: number;
  /** Invocations waiting for a process (default 1000); beyond it, run() fails with 'busy'. */
  queueMax?: number;
  /** Defaults for every run(), under the per-call overrides. */
  limits?: Partial<Limits>;
}

export interface RunResult {
  output: unknown;
  logs: string[];
  cpuMs: number;
  wallMs: number;
}

const WORKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'worker.ts');
/** The parent kills a process this long after an invocation's wall limit if it has not answered. */
const WALL_GRACE_MS = 1000;
const RSS_CHECK_MS = 50;
const OUTPUT_TAIL_CHARS = 8192;
/** More deaths than this within RESPAWN_WINDOW_MS and a process is restarted after a pause. */
const RESPAWN_BURST = 5;
const RESPAWN_WINDOW_MS = 10_000;
const RESPAWN_PAUSE_MS = 1000;
const CHILD_HEAP_MB = 256;
const NAME_CHARS_MAX = 1024;
const CODES = new Set<string>(['threw', 'timeout', 'memory', 'output', 'log', 'calls', 'crashed', 'invalid']);

interface Prepared {
  pid: string;
  name: string;
  map: SourceMap | null | undefined; // undefined: not parsed yet
  program: Program;
}

interface Job {
  rid: number;
  prep: Prepared;
  key: string;
  input: string;
  host: HostCalls;
  limits: Limits;
  resolve: (r: RunResult) => void;
  reject: (e: SandboxError) => void;
  settled: boolean;
  proc: Proc | null;
  wallTimer: NodeJS.Timeout | null;
  hostCalls: number;
  hostActive: number;
  hostQueue: [cid: number, method: string, args: unknown[]][];
  /** Whose invocation this is: the queue is fair between owners. */
  owner: string;
}

interface Proc {
  slot: number;
  child: ChildProcess;
  jobs: Map<number, Job>;
  programs: Set<string>;
  outputTail: string;
  rssTimer: NodeJS.Timeout;
  /** Set when this side kills the process: what its invocations are told. */
  outbox: ToChild[];
  killed: { code: SandboxErrorCode; message: (job: Job) => string; culprit?: number } | null;
  exited: boolean;
  /** Its 'close' event came: its invocations have been failed. */
  closed: boolean;
  /** Whether it loaded isolated-vm and said so. */
  started: boolean;
  ready: Promise<void>;
}

export class Sandbox {
  private readonly procs: (Proc | null)[];
  private readonly queue: Job[] = [];
  private readonly prepared = new WeakMap<Program, Prepared>();
  private readonly deaths: number[] = [];
  private readonly opts: Required<Omit<SandboxOptions, 'limits'>>;
  private readonly defaults: Limits;
  private nextRid = 1;
  private closed = false;
  private restartsCount = 0;

  constructor(opts: SandboxOptions = {}) {
    this.opts = {
      processes: positiveInt(opts.processes, Math.min(4, os.availableParallelism()), 'processes'),
      rssCapMb: positiveInt(opts.rssCapMb, 1024, 'rssCapMb'),
      recycleAfter: positiveInt(opts.recycleAfter, 500, 'recycleAfter'),
      concurrency: positiveInt(opts.concurrency, 4, 'concurrency'),
      queueMax: positiveInt(opts.queueMax, 1000, 'queueMax'),
    };
    const d = checkLimits(withOverrides(DEFAULT_LIMITS, opts.limits ?? {}));
    if (typeof d === 'string') throw new SandboxError('invalid', d);
    this.defaults = d;
    this.procs = Array.from({ length: this.opts.processes }, (_, i) => this.spawn(i));
  }

  /** Resolves when every process has loaded isolated-vm (run() does not need to wait for it). */
  async ready(): Promise<void> {
    await Promise.all(this.procs.map((p) => p?.ready));
  }

  /** For tests and monitoring: the live processes' ids and how many times one was replaced. */
  stats(): { pids: number[]; restarts: number; queued: number; running: number } {
    const live = this.procs.filter((p): p is Proc => !!p && !p.exited);
    return {
      pids: live.map((p) => p.child.pid!).filter((x) => x !== undefined),
      restarts: this.restartsCount,
      queued: this.queue.length,
      running: live.reduce((n, p) => n + p.jobs.size, 0),
    };
  }

  /** Running invocations per owner: one owner may hold at most half the slots while others wait. */
  private readonly runningBy = new Map<string, number>();
  private lastOwner = '';

  private get ownerMax(): number {
    return Math.max(1, Math.floor((this.opts.processes * this.opts.concurrency) / 2));
  }

  /** Whether an owner may take another slot ('' is unattributed work: no share applies). */
  private belowShare(owner: string): boolean {
    return owner === '' || (this.runningBy.get(owner) ?? 0) < this.ownerMax;
  }

  /**
   * Runs a program. `owner` (the invoking actor) makes waiting fair: an owner never holds more
   * than half the slots, and the queue is served round-robin between owners, so one actor's
   * hanging invocations do not delay another's.
   */
  run(program: Program, input: unknown, host: HostCalls, limits?: Partial<Limits>, owner = ''): Promise<RunResult> {
    return new Promise<RunResult>((resolve, reject) => {
      if (this.closed) return reject(new SandboxError('closed', 'the sandbox is closed'));
      const prep = this.prepare(program);
      if (typeof prep === 'string') return reject(new SandboxError('invalid', prep));
      const l = limits ? checkLimits(withOverrides(this.defaults, limits)) : this.defaults;
      if (typeof l === 'string') return reject(new SandboxError('invalid', l));
      let json: string | undefined;
      try {
        json = JSON.stringify(input);
      } catch (e) {
        return reject(new SandboxError('invalid', `the input is not JSON: ${(e as Error).message}`));
      }
      if (typeof host?.call !== 'function') return reject(new SandboxError('invalid', 'run() needs a HostCalls with a call(method, args) function'));
      const job: Job = {
        rid: this.nextRid++,
        prep,
        key: `${prep.pid}:${l.memoryMb}:${program.app ?? ''}`,
        input: json ?? 'null',
        host,
        limits: l,
        resolve,
        reject,
        settled: false,
        proc: null,
        wallTimer: null,
        hostCalls: 0,
        hostActive: 0,
        hostQueue: [],
        owner,
      };
      const proc = this.belowShare(owner) ? this.pick(job) : null;
      if (proc) this.dispatch(proc, job);
      else if (this.queue.length >= this.opts.queueMax) reject(new SandboxError('busy', `the sandbox has ${this.queue.length} invocations waiting; retry later`));
      else this.queue.push(job);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) this.settleError(job, new SandboxError('closed', 'the sandbox was closed'));
    const exits: Promise<void>[] = [];
    for (const p of this.procs) {
      if (!p || p.closed) continue;
      exits.push(new Promise((r) => p.child.once('close', () => r())));
      if (!p.exited) this.kill(p, { code: 'closed', message: () => 'the sandbox was closed' });
      else p.killed ??= { code: 'closed', message: () => 'the sandbox was closed' };
    }
    await Promise.all(exits);
  }

  // ——— programs ———

  private prepare(program: Program): Prepared | string {
    const known = this.prepared.get(program);
    if (known) return known;
    if (typeof program?.code !== 'string' || typeof program.id !== 'string') return 'a program needs a string id and code (from compile())';
    if (program.code.length > PROGRAM_BYTES_MAX) return `the program is over ${formatBytes(PROGRAM_BYTES_MAX)}`;
    // Caches here and in the workers are keyed by this hash, never by a name a caller chose.
    const pid = sha256(program.code);
    if (pid !== program.id) return `program ${JSON.stringify(String(program.entry))} has id ${program.id.slice(0, 12)}… but its code hashes to ${pid.slice(0, 12)}…`;
    const name = String(program.name ?? program.entry ?? pid.slice(0, 12)).slice(0, NAME_CHARS_MAX);
    const prep: Prepared = { pid, name, map: undefined, program };
    this.prepared.set(program, prep);
    return prep;
  }

  private sourceMap(prep: Prepared): SourceMap | null {
    if (prep.map === undefined) {
      try {
        prep.map = prep.program.map ? new SourceMap(prep.program.map) : null;
      } catch {
        prep.map = null;
      }
    }
    return prep.map;
  }

  // ——— processes ———

  private spawn(slot: number): Proc {
    const child = fork(WORKER, [JSON.stringify({ recycleAfter: this.opts.recycleAfter, spareMemoryMb: this.defaults.memoryMb })], {
      execPath: process.execPath,
      // --no-node-snapshot: isolated-vm's requirement on Node 20+.
      execArgv: ['--no-node-snapshot', `--max-old-space-size=${CHILD_HEAP_MB}`, '--disable-warning=ExperimentalWarning'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'], // read for V8's last words when it dies
      serialization: 'json',
      env: {}, // nothing of this process's environment reaches the sandbox
    });
    let readyResolve!: () => void;
    const proc: Proc = {
      slot,
      child,
      jobs: new Map(),
      programs: new Set(),
      outputTail: '',
      rssTimer: setInterval(() => this.checkRss(proc), RSS_CHECK_MS),
      killed: null,
      outbox: [],
      exited: false,
      closed: false,
      started: false,
      ready: new Promise<void>((r) => (readyResolve = r)),
    };
    proc.rssTimer.unref();
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (s: string) => {
        proc.outputTail = (proc.outputTail + s).slice(-OUTPUT_TAIL_CHARS);
      });
    }
    child.on('message', (raw: ToParent | ToParent[]) => {
      for (const m of Array.isArray(raw) ? raw : [raw]) {
        if (m.t === 'ready') {
          proc.started = true;
          readyResolve();
        } else this.onMessage(proc, m);
      }
    });
    child.on('error', () => {
      // An IPC send to a dying child; 'exit' follows and does the work.
    });
    // Dead at 'exit' (nothing more is sent to it); its invocations are failed at 'close', when
    // its stdout and stderr have been read to the end (V8's last words say whether it was an OOM).
    child.on('exit', () => {
      proc.exited = true;
      clearInterval(proc.rssTimer);
    });
    child.on('close', (code, signal) => {
      readyResolve();
      this.onExit(proc, code, signal);
    });
    return proc;
  }

  private onExit(proc: Proc, code: number | null, signal: NodeJS.Signals | null): void {
    proc.exited = true;
    proc.closed = true;
    clearInterval(proc.rssTimer);
    const oom = /out[- ]of[- ]memory|is_heap_oom = 1|reached heap limit/i.test(proc.outputTail);
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    const jobs = [...proc.jobs.values()];
    proc.jobs.clear();
    const lastWords = proc.outputTail.trim().split('\n').pop() ?? '';
    for (const job of jobs) {
      if (job.wallTimer) clearTimeout(job.wallTimer);
      if (!proc.started && !proc.killed) {
        this.settleError(job, new SandboxError('crashed', `the sandbox process could not start (${how})${lastWords ? `: ${lastWords}` : ''}`));
      } else if (proc.killed) {
        const k = proc.killed;
        if (k.culprit === undefined || k.culprit === job.rid) this.settleError(job, new SandboxError(k.code, k.message(job)));
        else this.settleError(job, new SandboxError('crashed', `the sandbox process was killed (another invocation in it stopped answering) while running ${job.prep.name}`));
      } else if (oom && jobs.length === 1) {
        this.settleError(job, new SandboxError('memory', `memory limit of ${job.limits.memoryMb} MB exceeded: the sandbox process ran out of memory (${how}) while running ${job.prep.name}`));
      } else {
        this.settleError(job, new SandboxError('crashed', `the sandbox process died (${how}${oom ? ', out of memory' : ''}) while running ${job.prep.name}`));
      }
    }
    if (this.closed) return;
    this.restartsCount++;
    const now = Date.now();
    this.deaths.push(now);
    while (this.deaths.length > 0 && this.deaths[0] < now - RESPAWN_WINDOW_MS) this.deaths.shift();
    const respawn = (): void => {
      if (this.closed) return;
      this.procs[proc.slot] = this.spawn(proc.slot);
      this.drain();
    };
    this.procs[proc.slot] = null;
    if (this.deaths.length > RESPAWN_BURST) setTimeout(respawn, RESPAWN_PAUSE_MS).unref();
    else respawn();
  }

  private kill(proc: Proc, why: NonNullable<Proc['killed']>): void {
    if (proc.exited || proc.killed) return;
    proc.killed = why;
    proc.child.kill('SIGKILL');
  }

  private checkRss(proc: Proc): void {
    if (proc.exited || proc.killed || process.platform !== 'linux' || proc.child.pid === undefined) return;
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${proc.child.pid}/status`, 'utf8');
    } catch {
      return;
    }
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status);
    if (!kb) return;
    const rssMb = Number(kb[1]) / 1024;
    if (rssMb > this.opts.rssCapMb) {
      this.kill(proc, {
        code: 'memory',
        message: (job) => `the sandbox process went over its memory cap of ${this.opts.rssCapMb} MB (RSS ${Math.round(rssMb)} MB) while running ${job.prep.name}`,
      });
    }
  }

  // ——— invocations ———

  private pick(job: Job): Proc | null {
    let best: Proc | null = null;
    for (const p of this.procs) {
      if (!p || p.exited || p.killed || p.jobs.size >= this.opts.concurrency) continue;
      // The least loaded; between equals, one that has the program warm.
      if (!best || p.jobs.size < best.jobs.size || (p.jobs.size === best.jobs.size && p.programs.has(job.prep.pid) && !best.programs.has(job.prep.pid))) best = p;
    }
    return best;
  }

  private drain(): void {
    while (this.queue.length > 0) {
      // Round-robin: the first waiting job of the next owner after the one served last, among
      // owners below their share of the slots.
      let at = -1;
      let fallback = -1;
      const seen = new Set<string>();
      for (let i = 0; i < this.queue.length; i++) {
        const o = this.queue[i].owner;
        if (seen.has(o)) continue;
        seen.add(o);
        if (!this.belowShare(o)) continue;
        if (fallback < 0) fallback = i;
        if (o > this.lastOwner) {
          at = i;
          break;
        }
      }
      if (at < 0) at = fallback;
      if (at < 0) return;
      const proc = this.pick(this.queue[at]);
      if (!proc) return;
      const job = this.queue.splice(at, 1)[0];
      this.lastOwner = job.owner;
      this.dispatch(proc, job);
    }
  }

  private dispatch(proc: Proc, job: Job): void {
    this.runningBy.set(job.owner, (this.runningBy.get(job.owner) ?? 0) + 1);
    const release = job.resolve;
    const refuse = job.reject;
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      const n = (this.runningBy.get(job.owner) ?? 1) - 1;
      if (n <= 0) this.runningBy.delete(job.owner);
      else this.runningBy.set(job.owner, n);
      setImmediate(() => this.drain());
    };
    job.resolve = (r) => {
      done();
      release(r);
    };
    job.reject = (e) => {
      done();
      refuse(e);
    };
    job.proc = proc;
    proc.jobs.set(job.rid, job);
    this.sendRun(proc, job, !proc.programs.has(job.prep.pid));
    job.wallTimer = setTimeout(() => {
      job.wallTimer = null;
      if (proc.jobs.has(job.rid)) {
        this.kill(proc, {
          code: 'timeout',
          culprit: job.rid,
          message: () => `timed out: ran longer than ${job.limits.wallMs} ms and its sandbox process stopped answering`,
        });
      }
    }, job.limits.wallMs + WALL_GRACE_MS);
  }

  private sendRun(proc: Proc, job: Job, withCode: boolean): void {
    const p = job.prep;
    const msg: ToChild = { t: 'run', rid: job.rid, key: job.key, pid: p.pid, input: job.input, limits: job.limits };
    if (withCode) {
      msg.code = p.program.code;
      proc.programs.add(p.pid);
    }
    this.send(proc, msg);
  }

  /** Messages to a process go out once per turn of the event loop, as one array when several. */
  private send(proc: Proc, msg: ToChild): void {
    proc.outbox.push(msg);
    if (proc.outbox.length === 1) setImmediate(() => this.flush(proc));
  }

  private flush(proc: Proc): void {
    const batch = proc.outbox.splice(0);
    if (proc.exited || !proc.child.connected || batch.length === 0) return; // its exit fails the invocations
    proc.child.send(batch.length === 1 ? batch[0] : batch);
  }

  private onMessage(proc: Proc, m: ToParent): void {
    if (m.t === 'ready') return;
    const job = proc.jobs.get(m.rid);
    if (!job) return;
    if (m.t === 'need') this.sendRun(proc, job, true);
    else if (m.t === 'call') this.hostCall(job, m.cid, m.method, m.args);
    else if (m.t === 'done') {
      proc.jobs.delete(m.rid);
      if (job.wallTimer) clearTimeout(job.wallTimer);
      this.finish(job, m);
      this.drain();
    }
  }

  private finish(job: Job, m: Extract<ToParent, { t: 'done' }>): void {
    if (job.settled) return;
    const logs = Array.isArray(m.logs) ? m.logs.filter((x): x is string => typeof x === 'string') : [];
    if (m.ok) {
      let output: unknown;
      try {
        output = parseJson(m.output);
      } catch {
        return this.settleError(job, new SandboxError('output', 'output is not JSON'));
      }
      job.settled = true;
      job.resolve({ output, logs, cpuMs: Number(m.cpuMs) || 0, wallMs: Number(m.wallMs) || 0 });
      return;
    }
    const code = (CODES.has(m.code) ? m.code : 'crashed') as SandboxErrorCode;
    if (code === 'threw') {
      const { stack, top } = mapStack(typeof m.stack === 'string' ? m.stack : '', this.sourceMap(job.prep));
      const where = top ? ` (at ${top.source}:${top.line}:${top.column})` : '';
      const e = new SandboxError('threw', `${oneLine(String(m.message))}${where}`, stack || undefined);
      e.cpuMs = Number(m.cpuMs) || 0;
      return this.settleError(job, e);
    }
    const e = new SandboxError(code, String(m.message));
    e.cpuMs = Number(m.cpuMs) || 0;
    this.settleError(job, e);
  }

  private settleError(job: Job, e: SandboxError): void {
    if (job.settled) return;
    job.settled = true;
    job.hostQueue.length = 0;
    job.reject(e);
  }

  /** Ends an invocation from this side; the worker's 'done' still frees its slot. */
  private abort(job: Job, code: SandboxErrorCode, message: string): void {
    this.settleError(job, new SandboxError(code, message));
    if (job.proc && job.proc.jobs.has(job.rid)) this.send(job.proc, { t: 'abort', rid: job.rid, code, message });
  }

  // ——— host calls ———

  private hostCall(job: Job, cid: number, method: string, argsJson: string): void {
    if (job.settled) return;
    job.hostCalls++;
    if (job.hostCalls > job.limits.hostCalls) {
      return this.abort(job, 'calls', `made more than ${job.limits.hostCalls} host calls; the limit is ${job.limits.hostCalls}`);
    }
    let args: unknown;
    try {
      args = parseJson(String(argsJson));
    } catch {
      return this.reply(job, cid, false, `${method}: arguments are not JSON`);
    }
    const bad = checkHostCall(method, args);
    if (bad) return this.reply(job, cid, false, bad);
    if (job.hostActive >= HOST_CONCURRENCY_MAX) job.hostQueue.push([cid, method, args as unknown[]]);
    else this.callHost(job, cid, method, args as unknown[]);
  }

  private callHost(job: Job, cid: number, method: string, args: unknown[]): void {
    job.hostActive++;
    let p: Promise<unknown>;
    try {
      p = Promise.resolve(job.host.call(method, args));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (value) => {
        let json: string | undefined;
        try {
          json = JSON.stringify(value);
        } catch (e) {
          return this.reply(job, cid, false, `${method}: the host's answer is not JSON: ${(e as Error).message}`);
        }
        if (json !== undefined && json.length > HOST_RESULT_BYTES_MAX) {
          return this.reply(job, cid, false, `${method}: the answer is over ${formatBytes(HOST_RESULT_BYTES_MAX)}; ask for less`);
        }
        this.reply(job, cid, true, json ?? '');
      },
      (e: unknown) => this.reply(job, cid, false, `${oneLine(String((e as Error)?.message ?? e))}`),
    ).finally(() => {
      job.hostActive--;
      const next = job.hostQueue.shift();
      if (next && !job.settled) this.callHost(job, ...next);
    });
  }

  private reply(job: Job, cid: number, ok: boolean, value: string): void {
    if (job.settled || !job.proc || !job.proc.jobs.has(job.rid)) return;
    this.send(job.proc, { t: 'reply', rid: job.rid, cid, ok, value });
  }
}

/** JSON.parse, except that a `__proto__` key is dropped rather than handed to code that might merge it. */
function parseJson(s: string): unknown {
  return s.includes('"__proto__"') ? JSON.parse(s, (k, v) => (k === '__proto__' ? undefined : v)) : JSON.parse(s);
}

/** The same checks as the prelude's, again on this side: what comes out of an isolate is untrusted. */
export { checkHostCall } from './host-calls.ts';

/** Base limits with the overrides that are set (an `undefined` override keeps the base). */
function withOverrides(base: Limits, over: Partial<Limits>): Limits {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over ?? {})) if (v !== undefined) out[k] = v;
  return out as unknown as Limits;
}

/** Every limit a positive finite number within MAX_LIMITS; a message if not. */
export function checkLimits(l: Limits): Limits | string {
  const out = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]) {
    const v = l[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) return `limit ${k} must be a positive number, not ${JSON.stringify(v)}`;
    if (v > MAX_LIMITS[k]) return `limit ${k} is ${v}; the most allowed is ${MAX_LIMITS[k]}`;
    out[k] = k === 'cpuMs' || k === 'wallMs' ? v : Math.floor(v);
  }
  if (out.memoryMb < MIN_MEMORY_MB) return `limit memoryMb is ${out.memoryMb}; the least allowed is ${MIN_MEMORY_MB}`;
  for (const k of Object.keys(l)) if (!(k in DEFAULT_LIMITS)) return `unknown limit ${JSON.stringify(k)}`;
  return out;
}

function positiveInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v <= 0) throw new SandboxError('invalid', `sandbox option ${name} must be a positive integer, not ${JSON.stringify(v)}`);
  return v;
}
