/**
 * The executor: assignment → node-commands on busØ (README.md). What it has sent where is written
 * down first, as `assignment/observed` {machine, generation, attempt} (not owned by the
 * assignment, so it outlives it), then published; command ids are `start:NODETASK:GEN:ATTEMPT` and
 * `stop:NODETASK:GEN:ATTEMPT`, so a command sent again after a crash or a resync is the same
 * command and the bus and the agent do it once.
 *
 * Each pass, per task:
 * - placed and never sent: send `process.start`;
 * - sent to another machine or generation than the assignment now says, or the assignment is
 *   gone: `process.stop` there; once the process is seen stopped (or its machine is down), start
 *   the new placement, or forget the record and the process resource;
 * - its process exited on its own: start it again after the service's backoff (doubling per
 *   crash in a row, from `backoffMs` up to `backoffMaxMs`; a run longer than `stableMs` resets it).
 * Secrets in env are resolved here, when the command is built; nothing keeps their values.
 */
import { createHash } from 'node:crypto';
import { commandStream, type Bus } from '../bus/bus.ts';
import type { Core } from '../core.ts';
import type { Handlers } from '../handlers.ts';
import type { Command, Resource } from '../resource.ts';
import { Loop } from './loop.ts';
import { nodeTaskId } from './names.ts';
import { machinesOf } from './scheduler.ts';
import { dataOf, type AssignmentData, type MachineInfo, type ProcessData, type TaskData } from './shapes.ts';
import { submitAll } from './write.ts';

/** Reads one key of a secret; throws when it cannot. */
export type ResolveSecret = (namespace: string, name: string, key: string) => Promise<string>;

export interface Sent {
  task: string;
  /** The task's resource id: a task deleted and made again under the same name is another task. */
  taskId?: string;
  service: string;
  machine: string;
  generation: number;
  attempt: number;
  at: string;
  /** Set once a stop was sent for this run. */
  stopping?: boolean;
}

/** How long a process waits before its next start: doubling per crash in a row. */
export function backoffMs(p: ProcessData | undefined, t: TaskData | undefined): number {
  const r = t?.restart ?? { backoffMs: 500, backoffMaxMs: 30_000, stableMs: 10_000 };
  const crashes = p?.crashes ?? 0;
  if (crashes <= 1) return r.backoffMs;
  return Math.min(r.backoffMaxMs, r.backoffMs * 2 ** Math.min(30, crashes - 1));
}

const key = (ns: string, name: string): string => `${ns}/${name}`;
/** Command ids: the node's task id, a hash of the task's resource id, generation and attempt (at most 128 characters). */
const commandId = (verb: string, node: string, s: Sent): string =>
  `${verb}:${node.slice(0, 64)}:${createHash('sha256').update(s.taskId ?? '').digest('hex').slice(0, 12)}:${s.generation}:${s.attempt}`;
const RESEND_MS = 10_000;

export class Executor {
  private readonly core: Core;
  private readonly bus: Bus;
  private readonly loop: Loop;
  private readonly resolveSecret: ResolveSecret;
  private readonly report: (m: string) => void;
  /** Command ids published by this process, with when (a resend after RESEND_MS is allowed). */
  private readonly published = new Map<string, number>();
  private wakeAt = Infinity;

  constructor(core: Core, bus: Bus, opts: { resolveSecret?: ResolveSecret; report?: (m: string) => void } = {}) {
    this.core = core;
    this.bus = bus;
    this.report = opts.report ?? (() => {});
    this.resolveSecret = opts.resolveSecret ?? (async (ns, name) => {
      throw new Error(`secret ${ns}/${name} cannot be read: this instance has no secret resolver`);
    });
    this.loop = new Loop({
      name: 'executor',
      queries: [{ type: 'assignment' }, { type: 'assignment/observed' }, { type: 'process' }, { type: 'machine/observed' }],
      pass: () => this.pass(),
      report: opts.report,
    });
  }

  start(handlers: Handlers): void {
    this.loop.start(handlers);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async publish(machine: string, cmd: Record<string, unknown> & { id: string }): Promise<void> {
    const last = this.published.get(cmd.id);
    if (last !== undefined && Date.now() - last < RESEND_MS) return;
    await this.bus.publish(commandStream(machine), cmd, { id: cmd.id });
    if (this.published.size > 100_000) this.published.clear();
    this.published.set(cmd.id, Date.now());
  }

  private async env(ns: string, env: TaskData['env'], task: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(env ?? {})) {
      if (typeof v === 'string') out[k] = v;
      else {
        try {
          out[k] = await this.resolveSecret(ns, v.secret, v.key);
        } catch (e) {
          throw new Error(`task ${ns}/${task}: env ${k}: ${(e as Error).message}`);
        }
      }
    }
    out.OS0_TASK = task;
    return out;
  }

  private async sendStart(ns: string, s: Sent, t: TaskData): Promise<void> {
    const node = nodeTaskId(ns, s.task);
    const cmd: Record<string, unknown> & { id: string } = {
      id: commandId('start', node, s),
      type: 'process.start',
      task: node,
      argv: t.command,
      env: await this.env(ns, t.env, s.task),
      limits: { memoryBytes: Math.round(t.resources.memoryMb * 1024 * 1024), cpus: t.resources.cpu },
    };
    if (t.cwd) cmd.cwd = t.cwd;
    if (t.health) cmd.ready = { port: true };
    await this.publish(s.machine, cmd);
  }

  private async sendStop(ns: string, s: Sent, graceMs: number): Promise<void> {
    const node = nodeTaskId(ns, s.task);
    await this.publish(s.machine, { id: commandId('stop', node, s), type: 'process.stop', task: node, graceMs });
  }

  async pass(): Promise<void> {
    const core = this.core;
    const machines = machinesOf(core);
    const up = (m: string): boolean => machines.get(m)?.up === true;
    const now = Date.now();
    const at = new Date(now).toISOString();
    const writes: Command[] = [];
    const after: (() => Promise<void>)[] = [];
    this.wakeAt = Infinity;
    const sentByKey = new Map<string, Resource>();
    for (const o of core.query({ type: 'assignment/observed' })) sentByKey.set(key(o.namespace, o.name), o);
    const record = (ns: string, name: string, s: Sent): void => {
      writes.push({ op: 'apply', resource: { type: 'assignment/observed', namespace: ns, name, tags: { service: s.service }, data: s } });
    };
    // Placed assignments: start what was never sent.
    for (const a of core.query({ type: 'assignment' })) {
      const ad = dataOf<AssignmentData>(a);
      if (!ad || ad.state !== 'placed' || !ad.machine) continue;
      const k = key(a.namespace, a.name);
      if (sentByKey.has(k)) continue;
      const task = core.get('task', a.name, a.namespace);
      const td = dataOf<TaskData>(task);
      if (!td) continue;
      const s: Sent = { task: a.name, taskId: task!.id, service: ad.service, machine: ad.machine, generation: ad.generation, attempt: 0, at };
      record(a.namespace, a.name, s);
      after.push(() => this.sendStart(a.namespace, s, td));
    }
    for (const [k, o] of sentByKey) {
      const s = dataOf<Sent>(o);
      if (!s) continue;
      const ns = o.namespace;
      const a = core.get('assignment', o.name, ns);
      const ad = dataOf<AssignmentData>(a);
      const task = core.get('task', o.name, ns);
      const td = dataOf<TaskData>(task);
      const p = core.get('process', o.name, ns);
      const pd = dataOf<ProcessData>(p);
      const current = ad && ad.state === 'placed' && ad.machine === s.machine && ad.generation === s.generation && td && task!.id === s.taskId;
      if (!current) {
        // This run must end before anything else happens to the task.
        const there = pd && pd.machine === s.machine;
        const live = there && (pd.state === 'running' || pd.state === 'starting' || pd.state === 'stopping');
        const unconfirmed = !pd || pd.machine !== s.machine; // a start may be on its way: stop it all the same
        if ((live || unconfirmed) && up(s.machine) && !(unconfirmed && s.stopping && this.stoppedLongAgo(o, now))) {
          if (!s.stopping) record(ns, o.name, { ...s, stopping: true, at });
          after.push(() => this.sendStop(ns, s, td?.stopGraceMs ?? 5000));
          continue;
        }
        if (!up(s.machine)) after.push(() => this.sendStop(ns, s, td?.stopGraceMs ?? 5000).catch(() => {}));
        if (ad && ad.state === 'placed' && ad.machine && td) {
          const next: Sent = { task: o.name, taskId: task!.id, service: s.service, machine: ad.machine, generation: ad.generation, attempt: 0, at };
          record(ns, o.name, next);
          after.push(() => this.sendStart(ns, next, td));
        } else {
          writes.push({ op: 'delete', resource: { type: 'assignment/observed', namespace: ns, name: o.name } });
          if (p && (!pd || pd.machine === s.machine) && !task) writes.push({ op: 'delete', resource: { type: 'process', namespace: ns, name: o.name } });
        }
        continue;
      }
      // Current: restart what exited on its own, after its backoff.
      if (pd && pd.machine === s.machine && pd.state === 'exited' && !pd.requested) {
        const due = Date.parse(pd.exitedAt ?? at) + backoffMs(pd, td);
        if (due <= now) {
          const next: Sent = { ...s, attempt: s.attempt + 1, at };
          delete next.stopping;
          record(ns, o.name, next);
          after.push(() => this.sendStart(ns, next, td));
        } else this.wakeAt = Math.min(this.wakeAt, due);
      } else if (!pd || pd.machine !== s.machine) {
        // Sent and not heard of yet: send again (the same id) once in a while.
        if (now - Date.parse(s.at) > RESEND_MS) after.push(() => this.sendStart(ns, s, td));
      }
      void k;
    }
    // Processes nobody sent (left by a crash between two steps): stop the live ones, forget the rest.
    for (const p of core.query({ type: 'process' })) {
      if (sentByKey.has(key(p.namespace, p.name))) continue;
      if (core.get('assignment', p.name, p.namespace) && dataOf<AssignmentData>(core.get('assignment', p.name, p.namespace))?.machine === dataOf<ProcessData>(p)?.machine) continue;
      const pd = dataOf<ProcessData>(p);
      if (!pd) continue;
      if ((pd.state === 'running' || pd.state === 'starting') && up(pd.machine)) {
        const s: Sent = { task: p.name, service: pd.service, machine: pd.machine, generation: pd.generation ?? 0, attempt: 0, at };
        after.push(() => this.sendStop(p.namespace, s, 5000));
      } else if (!core.get('task', p.name, p.namespace)) writes.push({ op: 'delete', resource: { type: 'process', namespace: p.namespace, name: p.name } });
    }
    // Intent first, then the commands.
    await submitAll(core, writes);
    for (const f of after) {
      try {
        await f();
      } catch (e) {
        this.report(`kernel executor: ${(e as Error).message}`);
      }
    }
    if (this.wakeAt !== Infinity) this.loop.kick(Math.max(10, this.wakeAt - Date.now()));
  }

  /** A stop sent for a start never confirmed, long enough ago to give up waiting for its process. */
  private stoppedLongAgo(o: Resource, now: number): boolean {
    return now - Date.parse(dataOf<Sent>(o)?.at ?? '') > 3 * RESEND_MS;
  }
}

export type { MachineInfo };
