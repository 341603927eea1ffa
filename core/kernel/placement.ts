/**
 * The scheduler's placement: a pure, in-memory function from a request and the fleet's state to a
 * machine, or to the reasons no machine fits. No I/O; scheduler.ts feeds it from the tree.
 *
 * - a machine is a candidate when it is up, not cordoned, and carries every label the request asks for;
 * - it fits when its observed capacity minus what is placed on it leaves the request's cpu, memory
 *   and ports (a count from its port range);
 * - among those that fit (a scan stops once CANDIDATES machines fit with no replica of the same
 *   service, starting where the last scan started plus one, as Nomad limits its candidates): fewest replicas of the same service first (spread), then the fullest
 *   machine after placement (bin-packing, so big holes stay free for big requests);
 * - a namespace's quota (cpu, memoryMb) caps what is placed in it and below it; another
 *   namespace's reservation holds its unused part of the fleet's free capacity away from others.
 * An unplaceable request gets one reason that counts, per constraint, the machines it filtered
 * out, and names which resource was exhausted where (a few machines each).
 */
export interface Capacity {
  cpu: number;
  memoryMb: number;
}

export interface MachineView {
  name: string;
  cpu: number;
  memoryMb: number;
  /** Inclusive port range. */
  ports: [number, number];
  labels: Record<string, string>;
  up: boolean;
  cordoned: boolean;
}

export interface PlacementRequest {
  /** Unique: `namespace/name` of the assignment-request. */
  key: string;
  namespace: string;
  /** Replicas of one service are spread: `namespace/service`. */
  group: string;
  cpu: number;
  memoryMb: number;
  /** Ports needed from the machine's range (1 by default). */
  ports: number;
  labels?: Record<string, string>;
}

export type Placement = { machine: string } | { machine: null; reason: string };

interface MachineState {
  view: MachineView;
  cpu: number;
  memoryMb: number;
  ports: number;
  groups: Map<string, number>;
}

/** How many machines to name per exhausted resource in a reason. */
const NAMED_MAX = 3;
const EPS = 1e-9;
/** Machines that fit without a replica of the same service, after which a scan stops. */
const CANDIDATES = 24;

const ancestors = (ns: string): string[] => {
  const out = [''];
  if (ns === '') return out;
  const parts = ns.split('/');
  for (let i = 1; i <= parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
};
const num = (n: number): string => String(Math.round(n * 1000) / 1000);

/** The fleet as the scheduler sees it: machines, what is placed where, namespace quotas and reservations. */
export class Fleet {
  private readonly machines = new Map<string, MachineState>();
  /** The machines in a fixed order, for scans that start where the last one left off. */
  private list: MachineState[] | null = null;
  private cursor = 0;
  private readonly placed = new Map<string, { machine: string; req: PlacementRequest }>();
  /** Usage of each namespace and everything below it. */
  private readonly nsUsed = new Map<string, Capacity>();
  private readonly quotas = new Map<string, Partial<Capacity>>();
  private readonly reservations = new Map<string, Capacity>();

  setMachine(view: MachineView): void {
    const m = this.machines.get(view.name);
    if (m) m.view = view;
    else {
      this.machines.set(view.name, { view, cpu: 0, memoryMb: 0, ports: 0, groups: new Map() });
      this.list = null;
    }
  }

  removeMachine(name: string): void {
    this.machines.delete(name);
    this.list = null;
  }

  machine(name: string): MachineView | undefined {
    return this.machines.get(name)?.view;
  }

  machineNames(): string[] {
    return [...this.machines.keys()];
  }

  setQuota(ns: string, q: Partial<Capacity> | null): void {
    if (q && (q.cpu !== undefined || q.memoryMb !== undefined)) this.quotas.set(ns, q);
    else this.quotas.delete(ns);
  }

  setReservation(ns: string, r: Partial<Capacity> | null): void {
    if (r && ((r.cpu ?? 0) > 0 || (r.memoryMb ?? 0) > 0)) this.reservations.set(ns, { cpu: r.cpu ?? 0, memoryMb: r.memoryMb ?? 0 });
    else this.reservations.delete(ns);
  }

  /** Where a request is placed, if it is. */
  placedOn(key: string): string | undefined {
    return this.placed.get(key)?.machine;
  }

  /** Records a placement (also one read back from the tree at start). Replaces an earlier one of the same key. */
  commit(req: PlacementRequest, machine: string): void {
    this.release(req.key);
    let m = this.machines.get(machine);
    if (!m) {
      // Placed on a machine not (or no longer) known: count it there all the same.
      m = { view: { name: machine, cpu: 0, memoryMb: 0, ports: [0, -1], labels: {}, up: false, cordoned: true }, cpu: 0, memoryMb: 0, ports: 0, groups: new Map() };
      this.machines.set(machine, m);
      this.list = null;
    }
    m.cpu += req.cpu;
    m.memoryMb += req.memoryMb;
    m.ports += req.ports;
    m.groups.set(req.group, (m.groups.get(req.group) ?? 0) + 1);
    for (const a of ancestors(req.namespace)) {
      const u = this.nsUsed.get(a) ?? { cpu: 0, memoryMb: 0 };
      u.cpu += req.cpu;
      u.memoryMb += req.memoryMb;
      this.nsUsed.set(a, u);
    }
    this.placed.set(req.key, { machine, req });
  }

  /** Forgets a placement (its task is gone, or it is being moved). */
  release(key: string): void {
    const p = this.placed.get(key);
    if (!p) return;
    this.placed.delete(key);
    const m = this.machines.get(p.machine);
    if (m) {
      m.cpu -= p.req.cpu;
      m.memoryMb -= p.req.memoryMb;
      m.ports -= p.req.ports;
      const n = (m.groups.get(p.req.group) ?? 1) - 1;
      if (n <= 0) m.groups.delete(p.req.group);
      else m.groups.set(p.req.group, n);
    }
    for (const a of ancestors(p.req.namespace)) {
      const u = this.nsUsed.get(a);
      if (u) {
        u.cpu -= p.req.cpu;
        u.memoryMb -= p.req.memoryMb;
      }
    }
  }

  /** What is placed on a machine. */
  usage(machine: string): { cpu: number; memoryMb: number; ports: number } | undefined {
    const m = this.machines.get(machine);
    return m && { cpu: m.cpu, memoryMb: m.memoryMb, ports: m.ports };
  }

  /** Picks a machine for `req` (does not commit it). */
  place(req: PlacementRequest): Placement {
    const quota = this.quotaReason(req);
    if (quota) return { machine: null, reason: quota };
    const held = this.heldFromOthers(req.namespace);
    let down = 0;
    let cordoned = 0;
    const labelMiss = new Map<string, number>();
    const exhausted: Record<'cpu' | 'memory' | 'ports', string[]> = { cpu: [], memory: [], ports: [] };
    const exhaustedCount = { cpu: 0, memory: 0, ports: 0 };
    let best: MachineState | null = null;
    let bestScore = Infinity;
    let freeCpu = 0;
    let freeMem = 0;
    const wantLabels = req.labels ? Object.entries(req.labels) : [];
    const list = (this.list ??= [...this.machines.values()]);
    const n = list.length;
    const start = this.cursor % Math.max(1, n);
    this.cursor = start + 1;
    let ideal = 0;
    for (let i = 0; i < n; i++) {
      // Like Nomad's limit iterator: enough machines that fit with nothing of this service on
      // them is enough to choose from; a full scan happens only when few fit.
      if (ideal >= CANDIDATES && !held) break;
      const m = list[start + i < n ? start + i : start + i - n];
      const v = m.view;
      if (!v.up) {
        down++;
        continue;
      }
      if (v.cordoned) {
        cordoned++;
        continue;
      }
      let miss: string | null = null;
      for (const [k, val] of wantLabels) if (v.labels[k] !== val) {
        miss = `${k}=${val}`;
        break;
      }
      if (miss) {
        labelMiss.set(miss, (labelMiss.get(miss) ?? 0) + 1);
        continue;
      }
      const fc = v.cpu - m.cpu;
      const fm = v.memoryMb - m.memoryMb;
      const fp = v.ports[1] - v.ports[0] + 1 - m.ports;
      if (held) {
        freeCpu += Math.max(0, fc);
        freeMem += Math.max(0, fm);
      }
      let ok = true;
      if (fc + EPS < req.cpu) {
        ok = false;
        exhaustedCount.cpu++;
        if (exhausted.cpu.length < NAMED_MAX) exhausted.cpu.push(`${v.name} (${num(Math.max(0, fc))} free)`);
      } else if (fm + EPS < req.memoryMb) {
        ok = false;
        exhaustedCount.memory++;
        if (exhausted.memory.length < NAMED_MAX) exhausted.memory.push(`${v.name} (${num(Math.max(0, fm))} MB free)`);
      } else if (fp < req.ports) {
        ok = false;
        exhaustedCount.ports++;
        if (exhausted.ports.length < NAMED_MAX) exhausted.ports.push(`${v.name} (${Math.max(0, fp)} free)`);
      }
      if (!ok) continue;
      // Spread first, then best fit: the fuller the machine after placement, the better.
      const spread = m.groups.size === 0 ? 0 : (m.groups.get(req.group) ?? 0);
      if (spread === 0) ideal++;
      const fill = (v.cpu > 0 ? (m.cpu + req.cpu) / v.cpu : 1) + (v.memoryMb > 0 ? (m.memoryMb + req.memoryMb) / v.memoryMb : 1);
      const score = spread * 4 - fill;
      if (score < bestScore) {
        bestScore = score;
        best = m;
      }
    }
    if (best && held) {
      // Capacity reserved for other namespaces and not used by them is not ours to take.
      if (freeCpu - held.cpu + EPS < req.cpu || freeMem - held.memoryMb + EPS < req.memoryMb) {
        return {
          machine: null,
          reason: `reservations: ${num(held.cpu)} cpu and ${num(held.memoryMb)} MB of the free ${num(freeCpu)} cpu and ${num(freeMem)} MB are reserved for ${held.names.join(', ')}; ${num(req.cpu)} cpu and ${num(req.memoryMb)} MB are wanted`,
        };
      }
    }
    if (best) return { machine: best.view.name };
    const parts: string[] = [];
    if (down) parts.push(`${down} down`);
    if (cordoned) parts.push(`${cordoned} cordoned`);
    for (const [l, n] of labelMiss) parts.push(`${n} without label ${l}`);
    if (exhaustedCount.cpu) parts.push(`cpu exhausted on ${exhaustedCount.cpu} (${exhausted.cpu.join(', ')}${exhaustedCount.cpu > NAMED_MAX ? ', …' : ''}; ${num(req.cpu)} wanted)`);
    if (exhaustedCount.memory) parts.push(`memory exhausted on ${exhaustedCount.memory} (${exhausted.memory.join(', ')}${exhaustedCount.memory > NAMED_MAX ? ', …' : ''}; ${num(req.memoryMb)} MB wanted)`);
    if (exhaustedCount.ports) parts.push(`ports exhausted on ${exhaustedCount.ports} (${exhausted.ports.join(', ')}${exhaustedCount.ports > NAMED_MAX ? ', …' : ''}; ${req.ports} wanted)`);
    const total = this.machines.size;
    return { machine: null, reason: total === 0 ? 'no machines: join one with os0 node join' : `0 of ${total} machines fit: ${parts.join('; ')}` };
  }

  private quotaReason(req: PlacementRequest): string | null {
    if (this.quotas.size === 0) return null;
    for (const a of ancestors(req.namespace)) {
      const q = this.quotas.get(a);
      if (!q) continue;
      const u = this.nsUsed.get(a) ?? { cpu: 0, memoryMb: 0 };
      if (q.cpu !== undefined && u.cpu + req.cpu > q.cpu + EPS) return `quota: namespace ${a} allows ${num(q.cpu)} cpu; ${num(u.cpu)} are placed and ${num(req.cpu)} more are wanted`;
      if (q.memoryMb !== undefined && u.memoryMb + req.memoryMb > q.memoryMb + EPS) {
        return `quota: namespace ${a} allows ${num(q.memoryMb)} MB; ${num(u.memoryMb)} are placed and ${num(req.memoryMb)} more are wanted`;
      }
    }
    return null;
  }

  /** The unused reservations of namespaces that are neither `ns` nor above it. */
  private heldFromOthers(ns: string): (Capacity & { names: string[] }) | null {
    if (this.reservations.size === 0) return null;
    const mine = new Set(ancestors(ns));
    let cpu = 0;
    let memoryMb = 0;
    const names: string[] = [];
    for (const [n, r] of this.reservations) {
      if (mine.has(n) || n.startsWith(ns + '/')) continue;
      const u = this.nsUsed.get(n) ?? { cpu: 0, memoryMb: 0 };
      const c = Math.max(0, r.cpu - u.cpu);
      const m = Math.max(0, r.memoryMb - u.memoryMb);
      if (c > 0 || m > 0) {
        cpu += c;
        memoryMb += m;
        names.push(n);
      }
    }
    return names.length ? { cpu, memoryMb, names } : null;
  }
}
