/**
 * The process device on this host: each task's program runs under a small shell launcher that
 * joins the task's limits and records the program's exit status, in its own session and process
 * group, with stdout and stderr on named pipes the agent drains into rotated log files.
 *
 * Why it survives the agent: the launcher is detached (setsid), and its stdout and stderr are
 * the pipes opened read-write, so the pipes always have a reader and a write never fails while
 * the agent is away (it only waits once the pipe's 64 KiB are full). The agent keeps a state
 * file with each task's pid and start time (/proc/PID/stat field 22) and the boot id; an agent
 * that starts again takes back each process whose pid still names the same process, opens its
 * pipes again and reads on, or (recover: 'clean') ends them all. What a crash between steps left
 * behind (a cgroup without a task, a process started but not yet written down) is found by its
 * cgroup or by OS0_TASK and OS0_AGENT in its environment, and ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Commands, DeviceError, type Emit, type FailedEvent, type OutcomeBody } from '../device.ts';
import { openLimiter } from './detect.ts';
import { FifoPool } from './fifos.ts';
import { checkLimits, readSmall, type Limiter, type LimiterKind, type Limits, type Placement } from './limits.ts';
import { LogReader, LogWriter, type LogOptions, type Stream } from './logs.ts';
import type { Exit, ProcessCommand, ProcessDevice, ProcessEvent, ProcessSnapshot, StartCommand, StopCommand } from './process.ts';
import { allStats, bootId, findByEnv, isSame, readStat, signal, treeOf } from './procfs.ts';
import { readJson, writeJsonAtomic } from '../state.ts';

export interface LocalProcessOptions {
  /** Where the state file, the pipes and the logs live. */
  dataDir: string;
  emit: Emit<ProcessEvent>;
  /** The machine's port range, inclusive. */
  ports: [number, number];
  /** Keeps this agent's cgroups and processes apart from another's; default: from dataDir. */
  name?: string;
  /** Default: the best this host allows (cgroup v2, cgroup v1, rlimits). */
  limiter?: LimiterKind;
  /** What to do with processes an earlier run left: take them back (default) or end them. */
  recover?: 'adopt' | 'clean';
  processesMax?: number;
  /** SIGTERM → SIGKILL, when a stop command names none. */
  graceMs?: number;
  log?: Partial<LogOptions>;
  logEventsPerSecondMax?: number;
  /** Log directories of ended tasks kept for `os0 logs`. */
  endedLogsMax?: number;
  /** How often processes the agent did not start itself are checked for exit. */
  pollMs?: number;
  inFlightMax?: number;
}

export const PROCESS_DEFAULTS = {
  processesMax: 256,
  graceMs: 10_000,
  logEventsPerSecondMax: 100,
  endedLogsMax: 64,
  pollMs: 250,
} as const;

const GRACE_MS_MAX = 300_000;
const READY_TIMEOUT_MS_MAX = 300_000;
const TASK_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ARGS_MAX = 256;
const ENV_VARS_MAX = 256;
const ARG_BYTES_MAX = 128 << 10;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** After the processes are gone, how long their pipes may take to deliver the last output. */
const DRAIN_MS_MAX = 1000;
/** After SIGKILL, how long the kernel may take to remove the processes before we give up waiting. */
const KILL_WAIT_MS_MAX = 5000;
/** Pids remembered per task while stopping it. */
const SEEN_MAX = 4096;

/** One task's process, as written in the state file. */
interface Entry {
  task: string;
  /** Null between "about to start" and "started": a crash there is cleaned up by environment. */
  pid: number | null;
  startTicks: number | null;
  port: number;
  argv: string[];
  cwd: string;
  limits: Limits;
  placement: Placement;
  startedAt: number;
  /** Set once a stop began: when SIGKILL is due (ms since the epoch). A restarted agent carries the stop on. */
  stopAt?: number;
}

interface StateFile {
  version: 1;
  bootId: string;
  name: string;
  entries: Entry[];
}

interface Live {
  entry: Entry;
  pid: number;
  adopted: boolean;
  child?: ChildProcess;
  readers: net.Socket[];
  writer: LogWriter;
  state: 'running' | 'stopping';
  requested: boolean;
  killAt: number;
  killTimer?: NodeJS.Timeout;
  sentKill: boolean;
  finishing: boolean;
  /** Settles once the start command's outcome is out, so `exited` never comes before `started`. */
  announced: Promise<void>;
  done: Promise<Exit>;
  resolveDone: (e: Exit) => void;
  /** Pids of the task seen while stopping it, with their start ticks. */
  seen: Map<number, number>;
  logWindowStart: number;
  logWindowCount: number;
  logDropped: number;
  readyAbort?: AbortController;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const SIGNAL_NAMES = new Map<number, string>(Object.entries(os.constants.signals).map(([k, v]) => [v as number, k]));

/** A shell status: above 128 it means "killed by signal status − 128". */
function fromStatus(n: number): Pick<Exit, 'exitCode' | 'signal'> {
  const name = n > 128 ? SIGNAL_NAMES.get(n - 128) : undefined;
  return name ? { exitCode: null, signal: name } : { exitCode: n, signal: null };
}

/** The launcher: joins the limits, runs the program, writes its status. `$1` is the status file. */
function launcher(shell: string[]): string {
  return [
    'exitfile=$1; shift',
    ...shell.map((l) => `${l} || exit 125`),
    // Trapped (not ignored), so the program gets default dispositions and the launcher outlives it.
    "trap ':' TERM INT HUP",
    '"$@"',
    'code=$?',
    'echo $code > "$exitfile"',
    'exit $code',
  ].join('\n');
}

function invalid(message: string): DeviceError {
  return new DeviceError('invalid', message);
}

function checkTask(task: unknown): string {
  if (typeof task !== 'string' || !TASK_RE.test(task)) throw invalid('task must be 1-100 characters of letters, digits, ".", "_" and "-", starting with a letter or digit');
  return task;
}

function findProgram(argv0: string, envPath: string, cwd: string): string | undefined {
  const candidates = argv0.includes('/') ? [path.resolve(cwd, argv0)] : envPath.split(':').filter(Boolean).map((d) => path.join(d, argv0));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      if (fs.statSync(c).isFile()) return c;
    } catch {
      // next
    }
  }
  return undefined;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export class LocalProcesses implements ProcessDevice {
  readonly name = 'process';
  private readonly opts: Required<Omit<LocalProcessOptions, 'log' | 'limiter' | 'name'>> & { log: Partial<LogOptions> };
  private readonly agent: string;
  private readonly limiter: Limiter;
  private readonly commands: Commands<ProcessEvent>;
  private readonly entries = new Map<string, Entry>();
  private readonly live = new Map<string, Live>();
  /** Tasks between "start" and "started", with the start's promise. */
  private readonly starting = new Map<string, Promise<unknown>>();
  private readonly reservedPorts = new Set<number>();
  private portCursor = 0;
  private readonly stateFile: string;
  private readonly runDir: string;
  private readonly logsDir: string;
  private readonly fifos: FifoPool;
  private poller?: NodeJS.Timeout;
  private closed = false;

  private constructor(opts: LocalProcessOptions, agent: string, limiter: Limiter) {
    this.opts = {
      processesMax: PROCESS_DEFAULTS.processesMax,
      graceMs: PROCESS_DEFAULTS.graceMs,
      logEventsPerSecondMax: PROCESS_DEFAULTS.logEventsPerSecondMax,
      endedLogsMax: PROCESS_DEFAULTS.endedLogsMax,
      pollMs: PROCESS_DEFAULTS.pollMs,
      recover: 'adopt',
      inFlightMax: 64,
      log: {},
      ...opts,
    } as LocalProcesses['opts'];
    this.agent = agent;
    this.limiter = limiter;
    this.commands = new Commands<ProcessEvent>('process', opts.emit, { inFlightMax: this.opts.inFlightMax });
    this.stateFile = path.join(opts.dataDir, 'processes.json');
    this.runDir = path.join(opts.dataDir, 'run');
    this.logsDir = path.join(opts.dataDir, 'logs');
    this.fifos = new FifoPool(path.join(opts.dataDir, 'fifos'));
  }

  /** Opens the device on `dataDir`, taking back (or ending) what an earlier run left there. */
  static async open(opts: LocalProcessOptions): Promise<LocalProcesses> {
    const [lo, hi] = opts.ports ?? [];
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) throw new Error(`ports must be [low, high] within 1-65535, e.g. [20000, 20999]`);
    const dataDir = path.resolve(opts.dataDir);
    fs.mkdirSync(path.join(dataDir, 'run'), { recursive: true });
    fs.mkdirSync(path.join(dataDir, 'logs'), { recursive: true });
    const agent = opts.name ?? 'a' + createHash('sha256').update(dataDir).digest('hex').slice(0, 12);
    if (!TASK_RE.test(agent)) throw new Error(`name must be letters, digits, ".", "_" and "-" (at most 100)`);
    const dev = new LocalProcesses({ ...opts, dataDir }, agent, openLimiter(agent, opts.limiter));
    // Polling first: recovery waits for the exits of processes it ends, which only polling sees.
    dev.poller = setInterval(() => dev.poll(), dev.opts.pollMs);
    dev.poller.unref();
    try {
      await dev.recover();
    } catch (e) {
      await dev.close();
      throw e;
    }
    return dev;
  }

  handle(command: ProcessCommand): Promise<ProcessEvent | FailedEvent> {
    const type = (command as { type?: unknown } | null)?.type;
    if (type === 'process.start') return this.commands.run(command, () => this.start(command as StartCommand));
    if (type === 'process.stop') return this.commands.run(command, () => this.stop(command as StopCommand));
    return this.commands.run(command, async () => {
      throw invalid(`unknown command type ${JSON.stringify(type)}; use process.start or process.stop`);
    });
  }

  snapshot(): ProcessSnapshot {
    return {
      limiter: this.limiter.kind,
      enforced: { ...this.limiter.enforced },
      ports: [...this.opts.ports],
      processesMax: this.opts.processesMax,
      processes: [...this.live.values()].map((l) => ({
        task: l.entry.task,
        pid: l.pid,
        port: l.entry.port,
        state: l.state,
        startedAt: l.entry.startedAt,
        adopted: l.adopted,
        argv: [...l.entry.argv],
        limits: { ...l.entry.limits },
      })),
    };
  }

  logs(task: string): LogReader {
    if (typeof task !== 'string' || !TASK_RE.test(task)) throw new Error(`no task named ${JSON.stringify(task)}; task names are letters, digits, ".", "_" and "-"`);
    return new LogReader(path.join(this.logsDir, task));
  }

  /** Lets go of pipes, timers and child handles; the processes keep running for the next agent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.commands.close();
    clearInterval(this.poller);
    for (const l of this.live.values()) {
      clearTimeout(l.killTimer);
      l.readyAbort?.abort();
      for (const r of l.readers) r.destroy();
      l.writer.close();
      l.child?.removeAllListeners('exit');
      l.child?.unref();
    }
    this.limiter.tidy();
  }

  // ---- commands ----

  private async start(c: StartCommand): Promise<OutcomeBody<ProcessEvent>> {
    const task = checkTask(c.task);
    const pending = this.starting.get(task);
    if (pending) await pending.catch(() => undefined);
    let known = this.live.get(task);
    if (known?.finishing) {
      // Its program has ended and the device is still reporting it: start anew after that.
      await known.done;
      known = this.live.get(task);
    }
    if (known) {
      if (known.state === 'stopping') throw new DeviceError('conflict', `task ${task} is stopping; start it again once it has stopped`);
      return { type: 'started', task, pid: known.pid, port: known.entry.port, already: true };
    }
    if (this.live.size + this.starting.size >= this.opts.processesMax) {
      throw new DeviceError('limit', `this machine already runs ${this.opts.processesMax} processes; stop one or raise processesMax`);
    }
    const work = this.spawnTask(task, c);
    this.starting.set(task, work);
    try {
      return await work;
    } finally {
      this.starting.delete(task);
    }
  }

  private async spawnTask(task: string, c: StartCommand): Promise<OutcomeBody<ProcessEvent>> {
    if (!Array.isArray(c.argv) || c.argv.length === 0 || c.argv.length > ARGS_MAX || !c.argv.every((a) => typeof a === 'string' && !a.includes('\0'))) {
      throw invalid(`argv must be 1-${ARGS_MAX} strings, the program first`);
    }
    const env = c.env ?? {};
    if (typeof env !== 'object' || env === null || Array.isArray(env)) throw invalid('env must be an object of strings');
    const envKeys = Object.keys(env);
    if (envKeys.length > ENV_VARS_MAX) throw invalid(`env holds more than ${ENV_VARS_MAX} variables`);
    for (const k of envKeys) {
      if (!ENV_KEY_RE.test(k) || typeof env[k] !== 'string' || env[k].includes('\0')) throw invalid(`env ${JSON.stringify(k)} must be a NAME of letters, digits and "_" with a string value`);
    }
    const bytes = c.argv.reduce((n, a) => n + Buffer.byteLength(a), 0) + envKeys.reduce((n, k) => n + k.length + Buffer.byteLength(env[k]), 0);
    if (bytes > ARG_BYTES_MAX) throw invalid(`argv and env together exceed ${ARG_BYTES_MAX} bytes`);
    const cwd = c.cwd ?? '/';
    if (typeof cwd !== 'string' || !path.isAbsolute(cwd) || !fs.statSync(cwd, { throwIfNoEntry: false })?.isDirectory()) {
      throw invalid(`cwd ${JSON.stringify(cwd)} is not an absolute path to a directory`);
    }
    const limitError = checkLimits(c.limits);
    if (limitError) throw invalid(limitError);
    const limits: Limits = { ...(c.limits ?? {}) };
    let readyTimeoutMs = 0;
    if (c.ready !== undefined) {
      if (c.ready?.port !== true) throw invalid('ready must be {"port": true} (with an optional timeoutMs)');
      readyTimeoutMs = c.ready.timeoutMs ?? 30_000;
      if (!Number.isInteger(readyTimeoutMs) || readyTimeoutMs < 1 || readyTimeoutMs > READY_TIMEOUT_MS_MAX) throw invalid(`ready.timeoutMs must be 1-${READY_TIMEOUT_MS_MAX}`);
    }
    const fullEnv: Record<string, string> = { PATH: DEFAULT_PATH, ...env };
    if (!findProgram(c.argv[0], fullEnv.PATH, cwd)) throw invalid(`no program ${JSON.stringify(c.argv[0])} to run (looked on PATH ${fullEnv.PATH}); give an absolute path or set env.PATH`);

    const port = await this.allocatePort(c.port);
    this.reservedPorts.add(port);
    let placement: Placement | undefined;
    const dir = path.join(this.runDir, task);
    let announce = (): void => undefined;
    const announced = new Promise<void>((r) => (announce = r));
    try {
      placement = this.limiter.place(task, limits);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { recursive: true });
      await this.fifos.take(dir);
      const entry: Entry = { task, pid: null, startTicks: null, port, argv: [...c.argv], cwd, limits, placement, startedAt: Date.now() };
      this.entries.set(task, entry);
      this.save();

      const writeFds = [fs.openSync(path.join(dir, 'out'), fs.constants.O_RDWR), fs.openSync(path.join(dir, 'err'), fs.constants.O_RDWR)];
      let child: ChildProcess;
      try {
        child = spawn('/bin/sh', ['-c', launcher(placement.shell), 'os0-launch', path.join(dir, 'exit'), ...c.argv], {
          cwd,
          env: { ...fullEnv, PORT: String(port), OS0_TASK: task, OS0_AGENT: this.agent },
          stdio: ['ignore', writeFds[0], writeFds[1]],
          detached: true,
        });
        await new Promise<void>((resolve, reject) => {
          child.once('spawn', resolve);
          child.once('error', reject);
        });
      } finally {
        for (const fd of writeFds) fs.closeSync(fd);
      }
      const pid = child.pid as number;
      entry.pid = pid;
      entry.startTicks = readStat(pid)?.startTicks ?? null;
      entry.startedAt = Date.now();
      this.save();
      const live = this.track(entry, pid, false, announced);
      live.child = child;
      child.unref();
      child.on('error', () => undefined); // nothing is sent through the handle; its exit is what counts
      child.once('exit', (code, sig) => void this.finish(live, { code, signal: sig }));
      if (readyTimeoutMs > 0) void this.watchReady(live, readyTimeoutMs);
      return { type: 'started', task, pid, port, already: false };
    } catch (e) {
      this.entries.delete(task);
      if (placement) await this.limiter.release(placement);
      fs.rmSync(dir, { recursive: true, force: true });
      this.save();
      if (e instanceof DeviceError) throw e;
      throw new DeviceError('host', `could not start task ${task}: ${(e as Error).message}`.split('\n')[0]);
    } finally {
      this.reservedPorts.delete(port);
      // Let `exited` wait until the `started` outcome has gone out.
      setImmediate(announce);
    }
  }

  private async stop(c: StopCommand): Promise<OutcomeBody<ProcessEvent>> {
    const task = checkTask(c.task);
    const graceMs = c.graceMs ?? this.opts.graceMs;
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > GRACE_MS_MAX) throw invalid(`graceMs must be a whole number of ms in 0-${GRACE_MS_MAX}`);
    const pending = this.starting.get(task);
    if (pending) await pending.catch(() => undefined);
    const l = this.live.get(task);
    if (!l) return { type: 'stopped', task, pid: null, exitCode: null, signal: null, oomKilled: false, already: true };
    this.terminate(l, graceMs);
    const exit = await l.done;
    return { type: 'stopped', task, pid: l.pid, already: false, ...exit };
  }

  // ---- running processes ----

  private track(entry: Entry, pid: number, adopted: boolean, announced: Promise<void>): Live {
    let resolveDone: (e: Exit) => void = () => undefined;
    const done = new Promise<Exit>((r) => (resolveDone = r));
    const l: Live = {
      entry,
      pid,
      adopted,
      readers: [],
      writer: new LogWriter(path.join(this.logsDir, entry.task), this.opts.log),
      state: 'running',
      requested: false,
      killAt: 0,
      sentKill: false,
      finishing: false,
      announced,
      done,
      resolveDone,
      seen: new Map(),
      logWindowStart: 0,
      logWindowCount: 0,
      logDropped: 0,
    };
    for (const stream of ['out', 'err'] as const) {
      let fd: number;
      try {
        fd = fs.openSync(path.join(this.runDir, entry.task, stream), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      } catch {
        continue; // no pipe: nothing to read (its output is lost, the process is not)
      }
      const r = new net.Socket({ fd, readable: true, writable: false });
      r.on('data', (chunk: Buffer) => this.output(l, stream, chunk));
      r.on('error', () => undefined);
      l.readers.push(r);
    }
    this.live.set(entry.task, l);
    return l;
  }

  private output(l: Live, stream: Stream, chunk: Buffer): void {
    if (this.closed) return;
    this.logEvents(l, stream, l.writer.write(stream, chunk));
  }

  private logEvents(l: Live, stream: Stream, lines: string[]): void {
    const now = Date.now();
    for (const line of lines) {
      if (now - l.logWindowStart >= 1000) {
        l.logWindowStart = now;
        l.logWindowCount = 0;
      }
      if (l.logWindowCount >= this.opts.logEventsPerSecondMax) {
        l.logDropped++;
        continue;
      }
      l.logWindowCount++;
      this.commands.event({ type: 'log', task: l.entry.task, stream, line, dropped: l.logDropped });
      l.logDropped = 0;
    }
  }

  /**
   * Every process of the task still alive: its group, its descendants, its cgroup, and any seen
   * before (a child that left the group is no descendant once its parent has died).
   */
  private members(l: Live): number[] {
    const stats = allStats();
    const byPid = new Map(stats.map((s) => [s.pid, s]));
    const all = new Set<number>();
    if (!this.foreign(l)) for (const p of treeOf(l.pid, l.pid, stats)) all.add(p);
    for (const p of this.limiter.members(l.entry.placement)) all.add(p);
    for (const [p, ticks] of l.seen) if (byPid.get(p)?.startTicks === ticks) all.add(p);
    all.delete(process.pid);
    for (const p of all) {
      const s = byPid.get(p);
      if (s && l.seen.size < SEEN_MAX) l.seen.set(p, s.startTicks);
    }
    return [...all].filter((p) => byPid.has(p));
  }

  /**
   * True when the task's pid now names another process. Linux frees a pid number only once no
   * process, group or session uses it, so then the task's group is gone too, and a group or
   * tree found under that number is someone else's.
   */
  private foreign(l: Live): boolean {
    const s = readStat(l.pid);
    return s !== undefined && s.startTicks !== l.entry.startTicks;
  }

  private signalAll(l: Live, sig: NodeJS.Signals): void {
    // Find them all before signalling any: a parent's death hides its children from the tree.
    const members = this.members(l);
    if (!this.foreign(l)) {
      try {
        process.kill(-l.pid, sig);
      } catch {
        // The group is empty: the members below are whatever left it.
      }
    }
    for (const p of members) signal(p, sig);
  }

  private terminate(l: Live, graceMs: number): void {
    if (l.state === 'stopping') return;
    l.state = 'stopping';
    l.requested = true;
    l.killAt = Date.now() + graceMs;
    l.entry.stopAt = l.killAt;
    this.save();
    this.signalAll(l, 'SIGTERM');
    l.killTimer = setTimeout(() => {
      l.sentKill = true;
      this.signalAll(l, 'SIGKILL');
    }, graceMs);
  }

  /** Processes the agent did not start itself have no exit event: look for them in /proc. */
  private poll(): void {
    for (const l of this.live.values()) {
      if (!l.child && !l.finishing && !isSame(l.pid, l.entry.startTicks ?? -1)) void this.finish(l);
    }
  }

  /** The launcher has gone: end what is left of the task, drain its output, report its exit. */
  private async finish(l: Live, wait?: { code: number | null; signal: NodeJS.Signals | null }): Promise<void> {
    if (l.finishing || this.closed) return;
    l.finishing = true;
    l.readyAbort?.abort();
    await l.announced;
    // The rest of the task's processes: until the grace period ends when stopping, else at once.
    const deadline = l.requested ? l.killAt : 0;
    const giveUp = Math.max(deadline, Date.now()) + KILL_WAIT_MS_MAX;
    for (;;) {
      const left = this.members(l);
      if (left.length === 0 || Date.now() > giveUp) break;
      if (Date.now() >= deadline) for (const p of left) signal(p, 'SIGKILL');
      await sleep(20);
    }
    clearTimeout(l.killTimer);
    const exit = this.exitOf(l, wait);
    // Every writer is gone: the pipes end once drained.
    const drained = Promise.all(l.readers.map((r) => new Promise<void>((res) => (r.readableEnded || r.destroyed ? res() : (r.once('end', res), r.once('close', res))))));
    await Promise.race([drained, sleep(DRAIN_MS_MAX)]);
    for (const r of l.readers) r.destroy();
    if (this.closed) return;
    for (const [stream, line] of l.writer.flush()) this.logEvents(l, stream, [line]);
    l.writer.close();
    await this.limiter.release(l.entry.placement);
    fs.rmSync(path.join(this.runDir, l.entry.task), { recursive: true, force: true });
    this.live.delete(l.entry.task);
    this.entries.delete(l.entry.task);
    this.save();
    this.commands.event({ type: 'exited', task: l.entry.task, pid: l.pid, requested: l.requested, ...exit });
    l.resolveDone(exit);
    this.pruneLogs();
  }

  private exitOf(l: Live, wait?: { code: number | null; signal: NodeJS.Signals | null }): Exit {
    const oomKilled = this.limiter.oomKilled(l.entry.placement);
    const text = readSmall(path.join(this.runDir, l.entry.task, 'exit'))?.trim();
    if (text && /^\d{1,3}$/.test(text)) return { ...fromStatus(Number(text)), oomKilled };
    if (wait?.signal) return { exitCode: null, signal: wait.signal, oomKilled };
    if (wait && wait.code !== null) return { ...fromStatus(wait.code), oomKilled };
    // Not our child and no status written: the launcher itself was killed, by us or by someone.
    return { exitCode: null, signal: l.sentKill ? 'SIGKILL' : null, oomKilled };
  }

  private async watchReady(l: Live, timeoutMs: number): Promise<void> {
    const abort = new AbortController();
    l.readyAbort = abort;
    const until = Date.now() + timeoutMs;
    await l.announced;
    while (!abort.signal.aborted && Date.now() < until) {
      if (await connects(l.entry.port)) {
        if (!abort.signal.aborted && !this.closed) this.commands.event({ type: 'ready', task: l.entry.task, pid: l.pid, port: l.entry.port });
        return;
      }
      await sleep(50);
    }
  }

  // ---- ports, state, logs ----

  private async allocatePort(want: number | undefined): Promise<number> {
    const [lo, hi] = this.opts.ports;
    const held = new Set<number>(this.reservedPorts);
    for (const e of this.entries.values()) held.add(e.port);
    if (want !== undefined) {
      if (!Number.isInteger(want) || want < lo || want > hi) throw invalid(`port ${want} is outside this machine's range ${lo}-${hi}`);
      if (held.has(want) || !(await portFree(want))) throw new DeviceError('conflict', `port ${want} is in use; leave port out to get a free one`);
      return want;
    }
    const size = hi - lo + 1;
    for (let i = 0; i < size; i++) {
      const p = lo + ((this.portCursor + i) % size);
      if (held.has(p)) continue;
      if (await portFree(p)) {
        // Next time start after it, so a port just given up is not handed out again at once.
        this.portCursor = (p - lo + 1) % size;
        return p;
      }
    }
    throw new DeviceError('limit', `no free port in ${lo}-${hi}; stop a process or widen the machine's port range`);
  }

  private save(): void {
    const state: StateFile = { version: 1, bootId: bootId(), name: this.agent, entries: [...this.entries.values()] };
    // No fsync: these processes do not outlive the machine, and after a reboot (a new boot id)
    // nothing in the file is alive anyway; the rename alone holds against the agent's death.
    writeJsonAtomic(this.stateFile, state, { durable: false });
  }

  private pruneLogs(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.logsDir);
    } catch {
      return;
    }
    const ended = names
      .filter((n) => !this.live.has(n) && !this.starting.has(n))
      .map((n) => ({ n, t: fs.statSync(path.join(this.logsDir, n), { throwIfNoEntry: false })?.mtimeMs ?? 0 }))
      .sort((a, b) => a.t - b.t);
    for (const { n } of ended.slice(0, Math.max(0, ended.length - this.opts.endedLogsMax))) fs.rmSync(path.join(this.logsDir, n), { recursive: true, force: true });
  }

  // ---- after a restart ----

  private async recover(): Promise<void> {
    let state: StateFile | undefined;
    try {
      state = readJson<StateFile>(this.stateFile);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      // Unreadable (a crash of the machine mid-write): start empty; the scans below end what it named.
      fs.renameSync(this.stateFile, `${this.stateFile}.unreadable-${Date.now()}`);
    }
    const sameBoot = state?.bootId === bootId();
    const adopted: Live[] = [];
    for (const e of state?.entries ?? []) {
      if (e.pid === null) {
        // Started but never written down: the environment scan below ends it.
        await this.limiter.release(e.placement).catch(() => false);
        fs.rmSync(path.join(this.runDir, e.task), { recursive: true, force: true });
        continue;
      }
      this.entries.set(e.task, e);
      // Alive and the same process: taken back. Gone while the agent was away (or the machine
      // rebooted): tracked just long enough to report how it ended.
      adopted.push(this.track(e, e.pid, true, Promise.resolve()));
    }
    // This agent's processes that no task accounts for: a start never written down, a lost state file.
    const strays = findByEnv(`OS0_AGENT=${this.agent}`, 'OS0_TASK').filter((p) => {
      const l = p.value === undefined ? undefined : this.live.get(p.value);
      return !l || !(sameBoot && isSame(l.pid, l.entry.startTicks ?? -1));
    });
    await this.killAll(strays.flatMap((p) => [p.pid, ...treeOf(p.pid, readStat(p.pid)?.pgid ?? p.pid)]), undefined);
    // Cgroups of tasks nobody knows: a crash between making the group and writing the state.
    for (const p of this.limiter.leftovers(new Set(this.entries.keys()))) {
      await this.killAll([], p);
      await this.limiter.release(p);
    }
    for (const n of fs.readdirSync(this.runDir)) if (!this.entries.has(n)) fs.rmSync(path.join(this.runDir, n), { recursive: true, force: true });
    this.save();
    const ending: Promise<unknown>[] = [];
    for (const l of adopted) {
      const alive = sameBoot && l.entry.startTicks !== null && isSame(l.pid, l.entry.startTicks);
      if (!alive) {
        ending.push(this.finish(l));
      } else if (this.opts.recover === 'clean' || l.entry.stopAt !== undefined) {
        // Cleaning up, or a stop the last agent began: end it, keeping what is left of its grace.
        const graceMs = l.entry.stopAt !== undefined ? Math.max(0, l.entry.stopAt - Date.now()) : this.opts.graceMs;
        const carried = l.entry.stopAt !== undefined && this.opts.recover !== 'clean';
        l.entry.stopAt = undefined;
        this.terminate(l, graceMs);
        // A clean-up is done when open returns; a carried stop ends in its own time, with `exited`.
        if (!carried) ending.push(l.done);
      } else {
        this.commands.event({ type: 'adopted', task: l.entry.task, pid: l.pid, port: l.entry.port });
      }
    }
    await Promise.all(ending);
  }

  private async killAll(pids: number[], placement: Placement | undefined): Promise<void> {
    const until = Date.now() + KILL_WAIT_MS_MAX;
    for (;;) {
      const alive = (p: number): boolean => {
        const st = readStat(p)?.state;
        return st !== undefined && st !== 'Z' && st !== 'X';
      };
      const left = new Set([...pids.filter(alive), ...(placement ? this.limiter.members(placement) : [])]);
      left.delete(process.pid);
      if (left.size === 0 || Date.now() > until) return;
      for (const p of left) signal(p, 'SIGKILL');
      await sleep(20);
    }
  }
}
