/**
 * The permission filter against a brute-force model of the rules (issue 10): seeded random
 * policies (allow and deny, namespace prefixes, app scopes, sensitive types named or not) over
 * random resources; for every actor, what list, get, a watch's filter and a capability's
 * ctx.resources.query return must equal what the model allows. A failure names the seed.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import type { Resource } from '../../core/resource.ts';
import { System } from '../../core/system.ts';
import { Invoker, type LoadedApp } from '../../runtime/invoke/index.ts';
import type { Sandbox } from '../../runtime/sandbox/index.ts';
import { prng } from '../helpers/tmp.ts';
import { tempDir } from '../helpers/tmp.ts';

const SEEDS = [1, 2, 3, 4, 5, 6];
const NAMESPACES = ['a', 'a/b', 'a/b/c', 'a/d', 'e', 'e/f'];
const NS_TYPES = ['configuration', 'machine', 'secret'];
const CLUSTER = ['capability', 'app'];
const RULE_TYPES = ['*', '*/observed', 'configuration', 'machine', 'secret', 'capability', 'app', 'machine/observed'];
const VERBS = ['get', 'list', 'watch', '*'];
const APPS = ['x', 'y'];
const SENSITIVE = new Set(['secret', 'token', 'policy', 'trusted-key', 'type']);
const SYSTEM: Actor = { name: 'system', groups: [] };
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };

interface ModelRule {
  effect: 'allow' | 'deny';
  verbs: string[];
  types: string[];
  namespaces?: string[];
  apps?: string[];
}

// ---- the model: written from the rules' text, sharing no code with core/auth ----

const observed = (t: string): boolean => t.endsWith('/observed');
function modelType(pattern: string, type: string, effect: string): boolean {
  if (pattern === type) return true;
  if (pattern === '*') return !observed(type) && (effect === 'deny' || !SENSITIVE.has(type));
  if (pattern === '*/observed') return observed(type);
  return false;
}
const modelNs = (p: string, ns: string): boolean => p === '*' || p === '' || ns === p || ns.startsWith(p + '/');
function modelApp(r: Resource): string | undefined {
  const base = r.type.replace(/\/observed$/, '');
  if (base === 'app') return r.name;
  if (base === 'capability') return r.tags['os0/app'];
  return undefined;
}
function modelAllows(rules: ModelRule[], verb: string, r: Resource): boolean {
  const app = modelApp(r);
  const applies = (x: ModelRule): boolean =>
    (x.verbs.includes(verb) || x.verbs.includes('*')) &&
    x.types.some((t) => modelType(t, r.type, x.effect)) &&
    (x.namespaces?.length ? x.namespaces : ['*']).some((p) => modelNs(p, r.namespace)) &&
    (!x.apps || (app !== undefined && x.apps.some((a) => a === '*' || a === app)));
  if (rules.some((x) => x.effect === 'deny' && applies(x))) return false;
  return rules.some((x) => x.effect === 'allow' && applies(x));
}

// ---- random worlds ----

function pick<T>(rnd: () => number, xs: T[]): T {
  return xs[Math.floor(rnd() * xs.length)];
}
function some<T>(rnd: () => number, xs: T[], max: number): T[] {
  const n = 1 + Math.floor(rnd() * max);
  return [...new Set(Array.from({ length: n }, () => pick(rnd, xs)))];
}
function randomRule(rnd: () => number): ModelRule {
  const r: ModelRule = { effect: rnd() < 0.3 ? 'deny' : 'allow', verbs: some(rnd, VERBS, 2), types: some(rnd, RULE_TYPES, 3) };
  if (rnd() < 0.7) r.namespaces = some(rnd, NAMESPACES, 2);
  if (rnd() < 0.2) r.apps = some(rnd, APPS, 1);
  return r;
}

const root = tempDir('perm-prop-');
let sys: System;

beforeAll(async () => {
  sys = await System.open({ dir: path.join(root, 'data') });
  await sys.submit({ batch: NAMESPACES.map((name) => ({ op: 'create', resource: { type: 'namespace', name } })) }, admin);
});
afterAll(async () => {
  await sys.close();
});

describe('the permission filter equals a brute-force model', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}`, async () => {
      const rnd = prng(seed);
      // Resources: namespaced ones everywhere, and the store's cluster-wide ones of apps x and y.
      const batch: unknown[] = [];
      for (let i = 0; i < 60; i++) {
        const type = pick(rnd, NS_TYPES);
        const ns = pick(rnd, NAMESPACES);
        batch.push({ op: 'create', resource: { type, namespace: ns, name: `s${seed}-${i}`, data: type === 'secret' ? { k: 'v' } : {}, tags: { seed: String(seed) } } });
        if (type === 'machine' && rnd() < 0.5) batch.push({ op: 'create', resource: { type: 'machine/observed', namespace: ns, name: `s${seed}-${i}`, data: {}, tags: { seed: String(seed) } } });
      }
      for (const app of APPS) {
        batch.push({ op: 'create', resource: { type: 'app', name: `s${seed}-${app}`, data: {}, tags: { seed: String(seed) } } });
        batch.push({ op: 'create', resource: { type: 'capability', name: `s${seed}-${app}.c`, data: {}, tags: { seed: String(seed), 'os0/app': app } } });
      }
      await sys.submit({ batch }, SYSTEM);
      // app resources are addressed by their own name in app scopes: give some rules those names.
      const users = Array.from({ length: 5 }, (_, u) => {
        const rules = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => randomRule(rnd)).map((r) =>
          r.apps && rnd() < 0.5 ? { ...r, apps: r.apps.map((a) => `s${seed}-${a}`) } : r,
        );
        return { actor: { name: `u${seed}-${u}`, groups: [] } as Actor, rules };
      });
      for (const u of users) {
        await sys.submit({ op: 'create', resource: { type: 'policy', name: u.actor.name, data: { subjects: [`user:${u.actor.name}`], rules: u.rules } } }, admin);
      }
      const mine = sys.core.query({ tags: { seed: String(seed) } });
      const ids = (rs: Resource[]): string[] => rs.map((r) => r.id).sort();
      const probe = { manifest: { name: 'probe', permissions: { resources: [{ types: ['*', 'secret', '*/observed'], verbs: ['get', 'list'] }] } } } as unknown as LoadedApp;
      const invoker = new Invoker(sys, null as unknown as Sandbox);
      const ctx = (a: Actor) => invoker.host(probe, a);
      for (const { actor, rules } of users) {
        const why = `seed ${seed}, ${actor.name}, rules ${JSON.stringify(rules)}`;
        // list: every (type, namespace) query; a refusal counts as an empty answer.
        for (const type of [...NS_TYPES, 'machine/observed', ...CLUSTER, undefined]) {
          for (const ns of ['', ...NAMESPACES]) {
            if (type && CLUSTER.includes(type) && ns !== '') continue;
            const q = { type, namespace: ns || undefined, tags: { seed: String(seed) } };
            let got: Resource[];
            try {
              got = sys.list(actor, q);
            } catch {
              got = [];
            }
            const want = mine.filter((r) => (type === undefined || r.type === type) && modelNs(ns, r.namespace) && modelAllows(rules, 'list', r));
            expect(ids(got), `${why}: list ${type} in ${ns}`).toEqual(ids(want));
            // The same query from a capability: the app's grants (get, list on everything) ∩ the invoker's.
            let hosted: Resource[];
            try {
              hosted = (await ctx(actor).call('resources.query', [{ ...(type ? { type } : {}), ...(ns ? { namespace: ns } : {}), tags: q.tags }])) as Resource[];
            } catch {
              hosted = [];
            }
            expect(ids(hosted), `${why}: ctx.resources.query ${type} in ${ns}`).toEqual(ids(want));
          }
        }
        // get, and a watch's per-event filter, resource by resource.
        const watchOk = sys.permissions.filterFor(actor, 'watch');
        for (const r of mine) {
          let got = true;
          try {
            sys.get(actor, r.type, r.name, r.namespace);
          } catch {
            got = false;
          }
          expect(got, `${why}: get ${r.type} ${r.namespace}/${r.name}`).toBe(modelAllows(rules, 'get', r));
          expect(watchOk(r), `${why}: watch ${r.type} ${r.namespace}/${r.name}`).toBe(modelAllows(rules, 'watch', r));
        }
      }
    });
  }
});
