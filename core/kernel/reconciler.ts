/**
 * The service reconciler: `service` → one `task` per replica (owned by the service) with its
 * `assignment-request` (owned by the task), and the service's `load-balancer` and `dns-record`
 * (README.md). Level-triggered: every pass compares each service with its tasks and their
 * observed state, on every relevant change and on a periodic resync.
 *
 * - `replicas` picks the slots 0..replicas-1; tasks of other slots are deleted (scale down);
 * - a task's name carries a hash of what its process is made from (command, cwd, env, resources,
 *   health, constraints): a change makes new tasks, one slot at a time, and the old task of a slot
 *   is deleted only once the new one is ready (healthy, or running without a health check);
 * - `dependsOn` holds the creation of tasks until every dependency has all its replicas running
 *   (or healthy); the wait is the service's observed reason;
 * - deleting the service deletes what it owns by cascade (tasks, requests, assignments, its load
 *   balancer and DNS record); the executor then stops the processes.
 */
import { createHash } from 'node:crypto';
import type { Core } from '../core.ts';
import type { Handlers } from '../handlers.ts';
import type { Command, Resource } from '../resource.ts';
import { Loop } from './loop.ts';
import { serviceDnsName } from './names.ts';
import { dataOf, readService, type ProcessData, type RequestData, type ServiceSpec, type TaskData, type TaskObserved } from './shapes.ts';
import { machinesOf } from './scheduler.ts';
import { same, submitAll } from './write.ts';

export function specHash(s: ServiceSpec): string {
  const h = createHash('sha256');
  h.update(JSON.stringify([s.command, s.cwd ?? null, Object.entries(s.env).sort(([a], [b]) => (a < b ? -1 : 1)), s.resources, s.health, s.constraints]));
  return h.digest('hex').slice(0, 8);
}

/** Whether a task counts as ready: healthy when its service checks health, running otherwise. */
export function taskReady(core: Core, t: Resource): boolean {
  const o = dataOf<TaskObserved>(core.get('task/observed', t.name, t.namespace));
  if (!o) return false;
  const d = dataOf<TaskData>(t);
  return d?.health ? o.state === 'healthy' : o.state === 'running' || o.state === 'healthy';
}

export interface ServiceObserved {
  state: 'running' | 'waiting' | 'rolling' | 'scaling' | 'pending' | 'degraded';
  replicas: number;
  running: number;
  healthy: number;
  ready: number;
  reason?: string;
  dns?: string;
}

export class Reconciler {
  private readonly core: Core;
  private readonly loop: Loop;

  constructor(core: Core, report?: (m: string) => void) {
    this.core = core;
    this.loop = new Loop({
      name: 'reconciler',
      queries: [{ type: 'service' }, { type: 'task' }, { type: 'task/observed' }, { type: 'process' }],
      pass: () => this.pass(),
      report,
    });
  }

  start(handlers: Handlers): void {
    this.loop.start(handlers);
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  kick(): void {
    this.loop.kick();
  }

  private tasksOf(svc: Resource): Resource[] {
    return this.core.query({ type: 'task', namespace: svc.namespace, exact: true, tags: { service: svc.name } }).filter((t) => t.owner?.includes(svc.id));
  }

  /** Counts a service's tasks by observed state. */
  private counts(svc: Resource): { running: number; healthy: number; ready: number; total: number } {
    let running = 0;
    let healthy = 0;
    let ready = 0;
    const tasks = this.tasksOf(svc);
    for (const t of tasks) {
      const st = dataOf<TaskObserved>(this.core.get('task/observed', t.name, t.namespace))?.state;
      if (st === 'running' || st === 'healthy') running++;
      if (st === 'healthy') healthy++;
      if (taskReady(this.core, t)) ready++;
    }
    return { running, healthy, ready, total: tasks.length };
  }

  /** Why a service must wait for its dependencies, or null. */
  private waiting(svc: Resource, spec: ServiceSpec): string | null {
    for (const dep of spec.dependsOn) {
      const d = this.core.get('service', dep.service, svc.namespace);
      if (!d) return `waiting for service ${dep.service}, which does not exist`;
      const want = Math.max(1, readService(d).replicas);
      const c = this.counts(d);
      const have = dep.state === 'healthy' ? (readService(d).health ? c.healthy : c.running) : c.running;
      if (have < want) return `waiting for service ${dep.service} to be ${dep.state} (${have} of ${want} replicas are)`;
    }
    return null;
  }

  async pass(): Promise<void> {
    for (const svc of this.core.query({ type: 'service' })) await this.reconcile(svc);
  }

  async reconcile(svc: Resource): Promise<void> {
    const core = this.core;
    const spec = readService(svc);
    const hash = specHash(spec);
    const tasks = this.tasksOf(svc);
    const bySlot = new Map<number, { cur: Resource | null; old: Resource[] }>();
    const deletes: Command[] = [];
    for (const t of tasks) {
      const d = dataOf<TaskData>(t);
      const slot = d?.slot ?? -1;
      if (slot < 0 || slot >= spec.replicas) {
        deletes.push({ op: 'delete', resource: { type: 'task', namespace: t.namespace, name: t.name } });
        continue;
      }
      let s = bySlot.get(slot);
      if (!s) bySlot.set(slot, (s = { cur: null, old: [] }));
      if (d?.spec === hash && !s.cur) s.cur = t;
      else s.old.push(t);
    }
    const wait = spec.command.length === 0 ? 'the service has no command' : this.waiting(svc, spec);
    const creates: number[] = [];
    const rollable: number[] = [];
    let inFlight = 0;
    let anyOld = false;
    for (let slot = 0; slot < spec.replicas; slot++) {
      const s = bySlot.get(slot);
      if (!s) {
        creates.push(slot);
        continue;
      }
      if (s.old.length) anyOld = true;
      if (!s.cur) {
        if (s.old.length) rollable.push(slot);
        else creates.push(slot);
      } else if (s.old.length) {
        if (taskReady(core, s.cur)) for (const o of s.old) deletes.push({ op: 'delete', resource: { type: 'task', namespace: o.namespace, name: o.name } });
        else inFlight++;
      }
    }
    // A rollout replaces one replica at a time; empty slots are filled at once.
    if (inFlight === 0 && rollable.length) creates.push(rollable[0]);
    const made: Resource[] = [];
    if (!wait && creates.length) {
      const cmds: Command[] = creates.map((slot) => {
        const data: TaskData = {
          service: svc.name,
          slot,
          spec: hash,
          command: spec.command,
          cwd: spec.cwd,
          env: spec.env,
          resources: spec.resources,
          health: spec.health,
          constraints: spec.constraints,
          restart: spec.restart,
          stopGraceMs: spec.stopGraceMs,
        };
        return { op: 'create', resource: { type: 'task', namespace: svc.namespace, name: `${svc.name}-${slot}-${hash}`, owner: [svc.id], tags: { service: svc.name }, data } };
      });
      for (let i = 0; i < cmds.length; i += 200) {
        const chunk = cmds.slice(i, i + 200);
        const r = await core.submit(chunk.length === 1 ? chunk[0] : { batch: chunk }, { actor: 'system' });
        made.push(...r.resources);
      }
    }
    // Every task has its request (made after the task, which owns it).
    const reqs: Command[] = [];
    for (const t of [...tasks, ...made]) {
      const d = dataOf<TaskData>(t);
      if (!d || core.get('assignment-request', t.name, t.namespace)) continue;
      if (deletes.some((c) => c.resource.name === t.name)) continue;
      const data: RequestData = { task: t.name, service: svc.name, cpu: d.resources.cpu, memoryMb: d.resources.memoryMb, ports: 1, labels: d.constraints };
      reqs.push({ op: 'create', resource: { type: 'assignment-request', namespace: t.namespace, name: t.name, owner: [t.id], tags: { service: svc.name }, data } });
    }
    await submitAll(core, [...reqs, ...deletes]);
    await this.network(svc, spec);
    // The service's observed state.
    const c = this.counts(svc);
    let state: ServiceObserved['state'] = 'running';
    let reason: string | undefined;
    if (wait && c.total === 0) {
      state = 'waiting';
      reason = wait;
    } else if (anyOld) state = 'rolling';
    else if (c.total !== spec.replicas) state = 'scaling';
    else if (c.ready < spec.replicas) {
      state = c.running === 0 ? 'pending' : 'degraded';
      const stuck = tasks.map((t) => core.get('assignment', t.name, t.namespace)).find((a) => dataOf<{ state: string }>(a)?.state === 'pending');
      if (stuck) reason = `task ${stuck.name} is pending: ${dataOf<{ reason: string }>(stuck)!.reason}`;
      else if (wait) reason = wait;
    }
    const obs: ServiceObserved = { state, replicas: spec.replicas, running: c.running, healthy: c.healthy, ready: c.ready };
    if (reason) obs.reason = reason;
    if (spec.loadBalancer) obs.dns = serviceDnsName(svc.namespace, svc.name);
    const cur = core.get('service/observed', svc.name, svc.namespace);
    if (!cur || !same(cur.data, obs)) {
      await submitAll(core, [{ op: 'apply', resource: { type: 'service/observed', namespace: svc.namespace, name: svc.name, owner: [svc.id], data: obs } }]);
    }
  }

  /** The service's load balancer (backends: its ready processes) and its DNS name, or neither. */
  private async network(svc: Resource, spec: ServiceSpec): Promise<void> {
    const core = this.core;
    const cmds: Command[] = [];
    const lb = core.get('load-balancer', svc.name, svc.namespace);
    const dns = core.get('dns-record', svc.name, svc.namespace);
    if (!spec.loadBalancer) {
      if (lb?.owner?.includes(svc.id)) cmds.push({ op: 'delete', resource: { type: 'load-balancer', namespace: svc.namespace, name: svc.name } });
      if (dns?.owner?.includes(svc.id)) cmds.push({ op: 'delete', resource: { type: 'dns-record', namespace: svc.namespace, name: svc.name } });
      await submitAll(core, cmds);
      return;
    }
    const machines = machinesOf(core);
    const backends: string[] = [];
    for (const t of this.tasksOf(svc)) {
      if (!taskReady(core, t)) continue;
      const p = dataOf<ProcessData>(core.get('process', t.name, t.namespace));
      if (!p || p.port === null || (p.state !== 'running' && p.state !== 'starting')) continue;
      backends.push(`${machines.get(p.machine)?.address ?? '127.0.0.1'}:${p.port}`);
    }
    backends.sort();
    const lbData = { port: spec.loadBalancer.port, backends, service: svc.name };
    if (!lb || !same(lb.data, lbData)) cmds.push({ op: 'apply', resource: { type: 'load-balancer', namespace: svc.namespace, name: svc.name, owner: [svc.id], tags: { service: svc.name }, data: lbData } });
    const dnsData = { type: 'A', value: '127.0.0.1', ttl: 30, name: serviceDnsName(svc.namespace, svc.name), loadBalancer: svc.name };
    if (!dns || !same(dns.data, dnsData)) cmds.push({ op: 'apply', resource: { type: 'dns-record', namespace: svc.namespace, name: svc.name, owner: [svc.id], tags: { service: svc.name }, data: dnsData } });
    await submitAll(core, cmds);
  }
}
