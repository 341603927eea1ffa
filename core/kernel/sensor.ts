/**
 * The sensor processor: the bus's `events` stream → `process` observed resources and each task's
 * `task/observed` (README.md). It reads with its own durable consumer (`kernel-sensor`) and acks an
 * event once what it means is in the log, so a restart neither loses nor doubles one (applying an
 * event twice writes the same state). Machine events (registration, heartbeats) are machines.ts's.
 *
 * Events come from the process device with the agent's machine name on them (`machine`, or
 * `node`). A start or adoption reported by a machine the task is not assigned to is ignored, and
 * so is an exit from a machine the process no longer runs on: a moved task's late news cannot
 * overwrite its new place.
 */
import { EVENTS, type Bus, type Consumer } from '../bus/bus.ts';
import type { Core } from '../core.ts';
import type { Command, Resource } from '../resource.ts';
import { parseNodeTaskId } from './names.ts';
import { dataOf, type AssignmentData, type ProcessData, type TaskData, type TaskObserved } from './shapes.ts';
import { same, submitAll } from './write.ts';

interface Event {
  type: string;
  task?: string;
  machine?: string;
  node?: string;
  pid?: number | null;
  port?: number;
  exitCode?: number | null;
  signal?: string | null;
  requested?: boolean;
  already?: boolean;
  at?: number;
  commandId?: string;
  code?: string;
  error?: string;
}

const PROCESS_EVENTS = new Set(['started', 'adopted', 'ready', 'exited', 'stopped', 'failed']);

/** A task's observed state from its process and its assignment. */
export function taskObserved(p: ProcessData | undefined, a: AssignmentData | undefined, t: TaskData | undefined): TaskObserved {
  const base = { machine: a?.machine ?? null, restarts: p?.restarts ?? 0, port: p?.port ?? null, pid: p?.pid ?? null };
  if (!a || a.state === 'pending') return { ...base, state: 'pending', reason: a?.reason ?? 'waiting for the scheduler' };
  if (!p || p.machine !== a.machine) return { ...base, state: 'starting' };
  if (p.state === 'exited' || p.state === 'stopped') {
    const crashloop = (p.crashes ?? 0) >= 3;
    const why = `exited ${p.signal ? 'by ' + p.signal : 'with code ' + p.exitCode}${crashloop ? `, ${p.crashes} times in a row` : ''}`;
    return { ...base, state: crashloop ? 'crashloop' : p.requested ? 'stopping' : 'exited', reason: why };
  }
  if (p.state === 'stopping') return { ...base, state: 'stopping' };
  if (t?.health) return { ...base, state: p.ready ? 'healthy' : 'running', ...(p.ready ? {} : { reason: 'not healthy yet' }) };
  return { ...base, state: 'running' };
}

export class Sensor {
  private readonly core: Core;
  private readonly bus: Bus;
  private readonly report: (m: string) => void;
  private consumer: Consumer | null = null;
  private closed = false;
  private done: Promise<void> = Promise.resolve();
  private abort = new AbortController();
  processed = 0;

  constructor(core: Core, bus: Bus, report?: (m: string) => void) {
    this.core = core;
    this.bus = bus;
    this.report = report ?? (() => {});
  }

  async start(): Promise<void> {
    this.consumer = await this.bus.consumer(EVENTS, 'kernel-sensor', { start: 'first', ackWaitMs: 30_000, deliveriesMax: 10 });
    this.done = this.run();
  }

  private async run(): Promise<void> {
    let lastError = '';
    while (!this.closed) {
      try {
        const msgs = await this.consumer!.fetch({ max: 200, waitMs: 1000, signal: this.abort.signal });
        for (const m of msgs) {
          if (this.closed) return;
          await this.apply(m.data as Event);
          await this.consumer!.ack(m.seq);
          this.processed++;
        }
        lastError = '';
      } catch (e) {
        if (this.closed) return;
        const msg = (e as Error)?.message ?? String(e);
        if (msg !== lastError) this.report(`kernel sensor: ${msg}`);
        lastError = msg;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /** What one event means for the tree (idempotent). */
  async apply(ev: Event): Promise<void> {
    if (!ev || typeof ev !== 'object' || !PROCESS_EVENTS.has(ev.type) || typeof ev.task !== 'string') return;
    const machine = ev.machine ?? ev.node;
    if (typeof machine !== 'string') return;
    const parsed = parseNodeTaskId(ev.task);
    if (!parsed) return;
    const [ns, name] = parsed;
    const core = this.core;
    const p = core.get('process', name, ns);
    const pd = dataOf<ProcessData>(p);
    const a = dataOf<AssignmentData>(core.get('assignment', name, ns));
    const task = core.get('task', name, ns);
    const td = dataOf<TaskData>(task);
    const at = new Date(ev.at ?? Date.now()).toISOString();
    let next: ProcessData | null = null;
    const fresh = (): ProcessData => ({
      task: name, taskId: task?.id, service: td?.service ?? a?.service ?? '', machine, generation: a?.generation ?? 0, state: 'starting', pid: null, port: null, ready: false,
      exitCode: null, signal: null, requested: false, restarts: 0, crashes: 0, startedAt: null, exitedAt: null,
    });
    switch (ev.type) {
      case 'started':
      case 'adopted': {
        if (a && a.machine !== machine && pd && pd.machine !== machine) return; // news from where it no longer belongs
        const samePid = pd && pd.machine === machine && pd.pid === ev.pid && pd.state !== 'exited' && pd.state !== 'stopped';
        if (samePid) return;
        const sameTask = pd !== undefined && pd.machine === machine && (pd.taskId === undefined || pd.taskId === task?.id);
        const base = sameTask ? pd : fresh();
        const restarted = sameTask && pd.pid !== null && pd.pid !== ev.pid;
        next = { ...base, taskId: task?.id ?? base.taskId, machine, generation: a?.generation ?? base.generation, state: 'running', pid: ev.pid ?? null, port: ev.port ?? null, ready: false, exitCode: null, signal: null, requested: false, restarts: base.restarts + (restarted ? 1 : 0), startedAt: at, exitedAt: null };
        break;
      }
      case 'ready':
        if (!pd || pd.machine !== machine || pd.pid !== ev.pid || pd.ready) return;
        next = { ...pd, ready: true };
        break;
      case 'exited':
      case 'stopped': {
        if (pd && pd.machine !== machine) return;
        if (pd && ev.pid && pd.pid !== null && pd.pid !== ev.pid) return; // an older run's news
        const base = pd ?? fresh();
        if (base.state === 'exited' || base.state === 'stopped') {
          if (ev.type === 'stopped' && base.state === 'exited') next = { ...base, state: 'stopped', requested: true };
          else return;
          break;
        }
        const requested = ev.type === 'stopped' || ev.requested === true;
        const ran = base.startedAt ? Date.parse(at) - Date.parse(base.startedAt) : 0;
        const stable = td?.restart.stableMs ?? 10_000;
        const crashes = requested ? 0 : ran >= stable ? 1 : base.crashes + 1;
        next = { ...base, state: ev.type === 'stopped' ? 'stopped' : 'exited', exitCode: ev.exitCode ?? null, signal: ev.signal ?? null, requested, crashes, exitedAt: at, ready: false };
        break;
      }
      case 'failed': {
        // A start the agent refused: count it as a crash, so it is retried with backoff and shows.
        if (!ev.commandId?.startsWith('start:')) return;
        const base = pd && pd.machine === machine ? pd : fresh();
        if (base.state === 'running') return;
        next = { ...base, state: 'exited', exitCode: null, signal: null, requested: false, crashes: base.crashes + 1, exitedAt: at, ready: false };
        (next as ProcessData & { error?: string }).error = `${ev.code}: ${ev.error}`;
        break;
      }
    }
    if (!next) return;
    const cmds: Command[] = [{ op: 'apply', resource: { type: 'process', namespace: ns, name, tags: { service: next.service }, data: next } }];
    if (task) {
      const to = taskObserved(next, a, td);
      const cur = core.get('task/observed', name, ns);
      if (!cur || !same(cur.data, to)) cmds.push({ op: 'apply', resource: { type: 'task/observed', namespace: ns, name, owner: [task.id], tags: task.tags, data: to } });
    }
    await submitAll(core, cmds);
  }

  async stop(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await this.done.catch(() => {});
  }
}

/** Keeps each task's observed state in step with its assignment (pending reasons, moves). */
export async function refreshTaskObserved(core: Core): Promise<void> {
  const cmds: Command[] = [];
  for (const task of core.query({ type: 'task' })) {
    const a = dataOf<AssignmentData>(core.get('assignment', task.name, task.namespace));
    let p = dataOf<ProcessData>(core.get('process', task.name, task.namespace));
    if (p?.taskId !== undefined && p.taskId !== task.id) p = undefined; // an earlier task's, by the same name
    const to = taskObserved(p, a, dataOf<TaskData>(task));
    const cur = core.get('task/observed', task.name, task.namespace);
    if (!cur || !same(cur.data, to)) cmds.push({ op: 'apply', resource: { type: 'task/observed', namespace: task.namespace, name: task.name, owner: [task.id], tags: task.tags, data: to } });
  }
  await submitAll(core, cmds);
}
export type { Resource };
