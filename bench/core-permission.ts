/**
 * Part of `npm run bench -- core`: what the permission filter costs (issue 10).
 *
 * An actor holds 100 rules (80 allows on other types and namespaces, allow get/list on
 * configuration under `perm`, 10 denies on configuration in namespaces below `perm`, and more);
 * `perm` holds 10,000 configuration resources in 100 namespaces, none of them under a deny, so an
 * admin's list of configuration in `perm` has the same result as the actor's. Measured:
 *   - the filter's cost per command (admit of a create by that actor), p50 and p99;
 *   - that list for the actor and for an admin, median of repeated runs, and their ratio (the
 *     actor's list is filtered per resource because denies reach below `perm`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Actor } from '../core/auth/permission.ts';
import type { Resource } from '../core/resource.ts';

export interface PermissionCost {
  filterP50Us: number;
  filterP99Us: number;
  listActorMs: number;
  listAdminMs: number;
  listed: number;
}

const sortedPct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
};

export async function permissionCost(dir: string): Promise<PermissionCost> {
  fs.rmSync(dir, { recursive: true, force: true });
  const { System } = await import('../core/system.ts');
  const sys = await System.open({ dir: path.join(dir, 'data') });
  try {
    const admin = sys.authenticate(sys.adminToken);
    const actor: Actor = { name: 'bench', groups: [] };
    const ns = ['perm', ...Array.from({ length: 100 }, (_, i) => `perm/n${i}`), ...Array.from({ length: 10 }, (_, i) => `perm/x${i}`)];
    await sys.submit({ batch: ns.map((name) => ({ op: 'create', resource: { type: 'namespace', name } })) }, admin);
    for (let b = 0; b < 10; b++) {
      const batch = [];
      for (let i = 0; i < 1000; i++) batch.push({ op: 'create', resource: { type: 'configuration', namespace: `perm/n${b * 10 + (i % 10)}`, name: `c${b}-${i}`, data: { i } } });
      await sys.submit({ batch }, admin);
    }
    const rules: unknown[] = [];
    for (let i = 0; i < 80; i++) rules.push({ verbs: ['get', 'list'], types: [`other-${i}`], namespaces: [`elsewhere/${i}`] });
    rules.push({ verbs: ['get', 'list', 'create', 'update'], types: ['configuration'], namespaces: ['perm'] });
    for (let i = 0; i < 10; i++) rules.push({ effect: 'deny', verbs: ['*'], types: ['configuration'], namespaces: [`perm/x${i}`] });
    for (let i = 0; i < 9; i++) rules.push({ effect: 'deny', verbs: ['delete'], types: ['*'], namespaces: [`perm/n${i}`] });
    await sys.submit({ op: 'create', resource: { type: 'policy', name: 'bench', data: { subjects: ['user:bench'], rules } } }, admin);

    // The filter per command: admit of a create by an actor with 100 rules.
    const ctx = { actor: actor.name, view: sys.core.view };
    const samples: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const next = { apiVersion: 'os0/v1', id: `id${i}`, namespace: `perm/n${i % 100}`, type: 'configuration', name: `new${i}`, created: '', updated: '', revision: 1, tags: {}, data: {} };
      const change = { command: { op: 'create' as const, resource: next }, old: null, next };
      const t = process.hrtime.bigint();
      sys.permissions.admit(change, ctx);
      const el = Number(process.hrtime.bigint() - t) / 1000;
      if (i >= 2000) samples.push(el);
    }

    // The same list, for the actor (filtered per resource) and for an admin (straight from the index).
    const q = { type: 'configuration', namespace: 'perm' };
    const time = (a: Actor): { ms: number; out: Resource[] } => {
      const runs: number[] = [];
      let out: Resource[] = [];
      for (let r = 0; r < 40; r++) {
        const t = process.hrtime.bigint();
        out = sys.list(a, q);
        runs.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return { ms: sortedPct(runs.slice(10), 0.5), out };
    };
    time(actor);
    time(admin);
    const mine = time(actor);
    const theirs = time(admin);
    if (mine.out.length !== theirs.out.length || mine.out.length !== 10_000) throw new Error(`the lists differ: ${mine.out.length} vs ${theirs.out.length}`);
    return { filterP50Us: sortedPct(samples, 0.5), filterP99Us: sortedPct(samples, 0.99), listActorMs: mine.ms, listAdminMs: theirs.ms, listed: mine.out.length };
  } finally {
    await sys.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
