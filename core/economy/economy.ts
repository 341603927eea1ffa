/**
 * Namespaces and their economics, as one admit-phase filter:
 * - the namespace tree: a namespace's parent must exist, a resource's namespace must exist, a
 *   namespace with anything in it (resources or child namespaces) cannot be deleted;
 * - costs: each resource's `cost` (units per hour) from its type's pricing and usage;
 * - quotas (counts per type, cpu, memoryMb) and budgets (cost per hour) of a namespace and every
 *   ancestor, counting everything below it.
 * Totals are rolled up per namespace and include admitted changes that are not durable yet, so
 * that concurrent writers cannot together exceed a quota; release() takes back what never lands.
 */
import { Rejection } from '../errors.ts';
import type { Filter, FilterContext, PlannedChange, StateView } from '../filter.ts';
import type { Resource } from '../resource.ts';
import type { TypeSpec } from '../types/builtin.ts';
import { baseType, isObserved } from '../types/schema-filter.ts';

export interface Totals {
  counts: Map<string, number>;
  cpu: number;
  memoryMb: number;
  cost: number;
}

interface NamespaceData {
  budget?: { perHour: number };
  quota?: { count?: Record<string, number>; cpu?: number; memoryMb?: number };
  reservation?: { cpu?: number; memoryMb?: number };
}

interface Delta {
  type: string;
  name: string;
  namespace: string;
  count: number;
  cpu: number;
  memoryMb: number;
  cost: number;
}

function at(doc: unknown, path: string | undefined): number {
  if (!path) return 0;
  let v: unknown = doc;
  for (const p of path.split('.')) {
    if (v === null || typeof v !== 'object') return 0;
    v = (v as Record<string, unknown>)[p];
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/** The ancestors of a namespace path, itself first, ending with '' (the root). */
function lineage(ns: string): string[] {
  const out = [ns];
  for (let i = ns.lastIndexOf('/'); i > 0; i = ns.lastIndexOf('/', i - 1)) out.push(ns.slice(0, i));
  if (ns !== '') out.push('');
  return out;
}

const round = (n: number): number => Math.round(n * 1e6) / 1e6;

export class Economy implements Filter {
  readonly name = 'quota';
  private readonly totals = new Map<string, Totals>();
  private readonly deltas = new WeakMap<PlannedChange, Delta[]>();
  /** namespace path → how many child namespaces it has. */
  private readonly children = new Map<string, number>();
  private readonly specOf: (view: StateView, type: string) => TypeSpec | null;

  constructor(specOf: (view: StateView, type: string) => TypeSpec | null) {
    this.specOf = specOf;
  }

  /** Rolled-up totals of a namespace and everything below it. */
  totalsOf(ns: string): Totals {
    return this.totals.get(ns) ?? { counts: new Map(), cpu: 0, memoryMb: 0, cost: 0 };
  }

  load(view: { all(): Iterable<Resource> }): void {
    const specs = new Map<string, TypeSpec>();
    const all = [...view.all()];
    for (const r of all) if (r.type === 'type') specs.set(r.name, r.data as TypeSpec);
    for (const r of all) this.add(this.usage(r, specs.get(baseType(r.type)) ?? null, 1));
  }

  private usage(r: Resource, spec: TypeSpec | null, sign: 1 | -1): Delta {
    const observed = isObserved(r.type);
    const u = observed ? undefined : spec?.usage;
    const mult = u?.multiplier ? at(r, u.multiplier) : 1;
    return {
      type: r.type,
      name: r.name,
      namespace: r.namespace,
      count: sign,
      cpu: sign * at(r, u?.cpu) * mult,
      memoryMb: sign * at(r, u?.memoryMb) * mult,
      cost: sign * (r.cost ?? 0),
    };
  }

  private add(d: Delta, sign = 1): void {
    if (d.type === 'namespace') {
      const cut = d.name.lastIndexOf('/');
      if (cut > 0) {
        const parent = d.name.slice(0, cut);
        this.children.set(parent, (this.children.get(parent) ?? 0) + sign * d.count);
      }
    }
    for (const ns of lineage(d.namespace)) {
      let t = this.totals.get(ns);
      if (!t) this.totals.set(ns, (t = { counts: new Map(), cpu: 0, memoryMb: 0, cost: 0 }));
      t.counts.set(d.type, (t.counts.get(d.type) ?? 0) + sign * d.count);
      t.cpu = round(t.cpu + sign * d.cpu);
      t.memoryMb = round(t.memoryMb + sign * d.memoryMb);
      t.cost = round(t.cost + sign * d.cost);
    }
  }

  admit(change: PlannedChange, ctx: FilterContext): void {
    const { old, next } = change;
    const r = next ?? old!;
    const spec = this.specOf(ctx.view, baseType(r.type));
    if (next) {
      if (next.namespace !== '' && !ctx.view.get('', 'namespace', next.namespace)) {
        throw new Rejection('namespace', `namespace ${next.namespace} does not exist; create it first`);
      }
      if (next.type === 'namespace' && !old) {
        const cut = next.name.lastIndexOf('/');
        if (cut > 0 && !ctx.view.get('', 'namespace', next.name.slice(0, cut))) {
          throw new Rejection('namespace', `the parent namespace ${next.name.slice(0, cut)} does not exist; create it first`);
        }
      }
      if (!isObserved(next.type)) next.cost = this.costOf(next, spec);
      else next.cost = undefined;
    } else if (r.type === 'namespace') {
      this.checkEmpty(r.name);
    } else if (r.type === 'type') {
      const n = this.totalsOf('').counts.get(r.name) ?? 0;
      if (n > 0) throw new Rejection('schema', `type ${r.name} still has ${n} resources; delete them first`);
    }
    const ds: Delta[] = [];
    if (next) ds.push(this.usage(next, spec, 1));
    if (old) ds.push(this.usage(old, spec, -1));
    // Net change per dimension, checked against every ancestor's quota and budget.
    const net: Delta = { type: r.type, name: r.name, namespace: r.namespace, count: 0, cpu: 0, memoryMb: 0, cost: 0 };
    for (const d of ds) {
      net.count += d.count;
      net.cpu += d.cpu;
      net.memoryMb += d.memoryMb;
      net.cost += d.cost;
    }
    if (net.count > 0 || net.cpu > 0 || net.memoryMb > 0 || net.cost > 0) this.checkLimits(net, ctx);
    for (const d of ds) this.add(d);
    this.deltas.set(change, ds);
  }

  release(change: PlannedChange): void {
    const ds = this.deltas.get(change);
    if (!ds) return;
    this.deltas.delete(change);
    for (const d of ds) this.add(d, -1);
  }

  costOf(r: Resource, spec: TypeSpec | null): number | undefined {
    const p = spec?.pricing;
    if (!p) return r.cost;
    const u = this.usage(r, spec, 1);
    return round((p.perHour ?? 0) + (p.perCpuHour ?? 0) * u.cpu + ((p.perGiBHour ?? 0) * u.memoryMb) / 1024);
  }

  private checkLimits(net: Delta, ctx: FilterContext): void {
    for (const ns of lineage(net.namespace)) {
      if (ns === '') continue;
      const nsRes = ctx.view.get('', 'namespace', ns);
      const d = nsRes?.data as NamespaceData | undefined;
      if (!d) continue;
      const t = this.totalsOf(ns);
      const q = d.quota;
      if (q) {
        const limit = q.count?.[net.type];
        if (net.count > 0 && limit !== undefined && (t.counts.get(net.type) ?? 0) + net.count > limit) {
          throw new Rejection('quota', `namespace ${ns} allows ${limit} ${plural(net.type, limit)}`);
        }
        if (net.cpu > 0 && q.cpu !== undefined && t.cpu + net.cpu > q.cpu + 1e-9) {
          throw new Rejection('quota', `namespace ${ns} allows ${q.cpu} cpu and would hold ${round(t.cpu + net.cpu)}`);
        }
        if (net.memoryMb > 0 && q.memoryMb !== undefined && t.memoryMb + net.memoryMb > q.memoryMb + 1e-9) {
          throw new Rejection('quota', `namespace ${ns} allows ${q.memoryMb} MB of memory and would hold ${round(t.memoryMb + net.memoryMb)}`);
        }
      }
      if (net.cost > 0 && d.budget && t.cost + net.cost > d.budget.perHour + 1e-9) {
        throw new Rejection('budget', `namespace ${ns} would cost ${(t.cost + net.cost).toFixed(2)}/h, over its budget of ${d.budget.perHour.toFixed(2)}/h`);
      }
    }
  }

  private checkEmpty(ns: string): void {
    const t = this.totals.get(ns);
    if (t) for (const [type, n] of t.counts) if (n > 0) throw new Rejection('namespace', `namespace ${ns} is not empty (${n} ${plural(type, n)}); delete what is in it first`);
    const kids = this.children.get(ns) ?? 0;
    if (kids > 0) throw new Rejection('namespace', `namespace ${ns} has ${kids} child ${plural('namespace', kids)}; delete them first`);
  }
}

export function plural(type: string, n: number): string {
  if (n === 1) return type;
  if (type.endsWith('s')) return type + 'es';
  if (type.endsWith('y')) return type.slice(0, -1) + 'ies';
  return type + 's';
}
