/**
 * The scheduler: assignment-request → assignment (README.md). `placement.ts` is the pure
 * placement function (Fleet.place); this zero-proc feeds it the tree on every relevant change and
 * on a periodic resync:
 * - each request without a placed assignment is placed, or gets ONE pending assignment with the
 *   reason (rewritten only when the reason changes), and is placed once capacity appears;
 * - an assignment on a machine that is down or gone is placed again elsewhere (generation + 1);
 * - a draining machine's assignments move `parallelism` at a time, each once the one before runs
 *   on its new machine; past the drain's deadline all that are left move (or go pending).
 */
import type { Core } from '../core.ts';
import type { Handlers } from '../handlers.ts';
import type { Command, Resource } from '../resource.ts';
import { Loop } from './loop.ts';
import { Fleet, type PlacementRequest } from './placement.ts';
import { dataOf, readMachine, type AssignmentData, type MachineInfo, type RequestData, type TaskObserved } from './shapes.ts';
import { same, submitAll } from './write.ts';

export { Fleet, type MachineView, type Placement, type PlacementRequest } from './placement.ts';

const key = (r: Resource): string => `${r.namespace}/${r.name}`;

export function requestOf(r: Resource): PlacementRequest {
  const d = dataOf<Partial<RequestData>>(r) ?? {};
  return {
    key: key(r),
    namespace: r.namespace,
    group: `${r.namespace}/${d.service ?? r.name}`,
    cpu: typeof d.cpu === 'number' ? d.cpu : 0,
    memoryMb: typeof d.memoryMb === 'number' ? d.memoryMb : 0,
    ports: typeof d.ports === 'number' ? d.ports : 1,
    labels: d.labels,
  };
}

/** Every machine of the fleet, desired and observed together. */
export function machinesOf(core: Core): Map<string, MachineInfo> {
  const desired = new Map<string, Resource>();
  for (const r of core.query({ type: 'machine' })) desired.set(r.name, r);
  const out = new Map<string, MachineInfo>();
  for (const o of core.query({ type: 'machine/observed' })) out.set(o.name, readMachine(desired.get(o.name), o, o.name));
  for (const [name, d] of desired) if (!out.has(name)) out.set(name, readMachine(d, undefined, name));
  return out;
}

export class Scheduler {
  private readonly core: Core;
  private readonly loop: Loop;
  /** Placements made by the last pass (for tests and the bench). */
  placements = 0;

  constructor(core: Core, report?: (m: string) => void) {
    this.core = core;
    this.loop = new Loop({
      name: 'scheduler',
      queries: [{ type: 'assignment-request' }, { type: 'assignment' }, { type: 'machine' }, { type: 'machine/observed' }, { type: 'namespace' }, { type: 'task/observed' }],
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

  async pass(): Promise<void> {
    const core = this.core;
    const fleet = new Fleet();
    const machines = machinesOf(core);
    for (const m of machines.values()) fleet.setMachine(m);
    for (const ns of core.query({ type: 'namespace' })) {
      const d = dataOf<{ quota?: { cpu?: number; memoryMb?: number }; reservation?: { cpu?: number; memoryMb?: number } }>(ns);
      if (d?.quota) fleet.setQuota(ns.name, d.quota);
      if (d?.reservation) fleet.setReservation(ns.name, d.reservation);
    }
    const requests = core.query({ type: 'assignment-request' }).sort((a, b) => a.revision - b.revision);
    const assignments = new Map<string, Resource>();
    for (const a of core.query({ type: 'assignment' })) assignments.set(key(a), a);
    const reqs = new Map<string, PlacementRequest>();
    const todo: { req: Resource; pr: PlacementRequest; old: Resource | undefined; from?: string }[] = [];
    const draining = new Map<string, Resource[]>();
    // What stays where it is counts first.
    for (const r of requests) {
      const pr = requestOf(r);
      reqs.set(pr.key, pr);
      const a = assignments.get(pr.key);
      const ad = dataOf<AssignmentData>(a);
      if (!a || !ad || ad.state !== 'placed' || !ad.machine) {
        todo.push({ req: r, pr, old: a });
        continue;
      }
      const m = machines.get(ad.machine);
      if (!m || !m.up) {
        todo.push({ req: r, pr, old: a, from: ad.machine });
        continue;
      }
      fleet.commit(pr, ad.machine);
      if (m.drain) {
        let list = draining.get(m.name);
        if (!list) draining.set(m.name, (list = []));
        list.push(r);
      }
    }
    // Draining machines give up `parallelism` assignments at a time.
    const now = Date.now();
    for (const [name, list] of draining) {
      const m = machines.get(name)!;
      const past = now >= m.drain!.deadline;
      let inFlight = 0;
      for (const a of assignments.values()) {
        const ad = dataOf<AssignmentData>(a)!;
        if (ad.from !== name || ad.state !== 'placed') continue;
        const st = dataOf<TaskObserved>(core.get('task/observed', a.name, a.namespace))?.state;
        if (st !== 'running' && st !== 'healthy') inFlight++;
      }
      let room = past ? list.length : Math.max(0, m.drain!.parallelism - inFlight);
      for (const r of list) {
        if (room <= 0) break;
        room--;
        const pr = reqs.get(key(r))!;
        fleet.release(pr.key);
        todo.push({ req: r, pr, old: assignments.get(pr.key), from: name });
      }
    }
    const cmds: Command[] = [];
    const at = new Date().toISOString();
    for (const t of todo) {
      const p = fleet.place(t.pr);
      const od = dataOf<AssignmentData>(t.old);
      const d = dataOf<RequestData>(t.req);
      let data: AssignmentData;
      if (p.machine !== null) {
        fleet.commit(t.pr, p.machine);
        this.placements++;
        data = { task: d?.task ?? t.req.name, service: d?.service ?? '', machine: p.machine, state: 'placed', generation: (od?.generation ?? 0) + 1, at };
        if (t.from) data.from = t.from;
      } else if (t.from && machines.get(t.from)?.up && !(now >= (machines.get(t.from)!.drain?.deadline ?? 0))) {
        // A drain that cannot move this one yet: it stays where it is, and says why.
        fleet.commit(t.pr, t.from);
        const reason = `drain of ${t.from} blocked: ${p.reason}`;
        if (od?.reason === reason) continue;
        data = { ...od!, reason };
      } else {
        const reason = p.reason;
        if (od && od.state === 'pending' && od.reason === reason) continue;
        data = { task: d?.task ?? t.req.name, service: d?.service ?? '', machine: null, state: 'pending', reason, generation: od?.generation ?? 0, at };
        if (t.from) data.from = t.from;
      }
      if (t.old && same(t.old.data, data)) continue;
      cmds.push({ op: 'apply', resource: { type: 'assignment', namespace: t.req.namespace, name: t.req.name, owner: [t.req.id], tags: t.req.tags, data } });
    }
    await submitAll(core, cmds);
  }
}
