/**
 * Actors, tokens and the permission filter: the one place that decides, for every actor alike.
 *
 * A token is `os0_<id>_<secret>`; the tree keeps a `token` resource named <id> holding only the
 * SHA-256 of the secret, the actor it stands for and the actor's groups. `policy` resources grant
 * (or deny: a deny wins) verbs on types within namespace prefixes to `user:NAME` and
 * `group:NAME` subjects. `app:NAME` actors (an installed app's handlers, filters and drivers)
 * hold exactly their manifest's grants, set by the runtime. The trusted zero-procs act as
 * `system`, which may do anything and which no token can name (nor `app:*`, nor `node:*`).
 *
 * Matching:
 * - a type `*` in an allow rule covers every type of desired state except the sensitive ones
 *   (secret, token, policy, trusted-key, type), which must be named; `*\/observed` covers
 *   observed state. In a deny rule `*` covers every type of desired state, sensitive included.
 * - a rule with `apps` applies only to resources of those apps (an `app` resource by its name,
 *   the store's declared resources and invocations by their app tag, invoke by `APP.CAPABILITY`),
 *   for every verb.
 * Decisions are compiled per (actor, verb, type) into the few rules that can apply, so a
 * command's check and a list's per-resource filter cost a handful of comparisons, not a walk
 * over every policy.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { OsError, Rejection } from '../errors.ts';
import type { Filter, FilterContext, PlannedChange } from '../filter.ts';
import type { Resource } from '../resource.ts';
import { baseType, isObserved } from '../types/schema-filter.ts';
import { nodeMayRead, nodeMayWrite, nodeOf } from './node.ts';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete' | 'invoke' | 'reveal';

export const SYSTEM_ACTOR = 'system';
export const ADMIN_GROUP = 'admins';
/** Types a `*` grant never covers: a rule must name them. */
export const SENSITIVE_TYPES: ReadonlySet<string> = new Set(['secret', 'token', 'policy', 'trusted-key', 'type']);
/** The store's own resources: they change only through install, upgrade and uninstall. */
export const STORE_TYPES: ReadonlySet<string> = new Set(['app', 'capability', 'handler', 'filter', 'driver']);
/** The tag that names the app a declared resource belongs to (store/declare.ts writes it). */
export const APP_TAG = 'os0/app';

/** `system`, `app:*` and `node:*` are the kernel's to name: no user token may stand for them. */
export function isReservedActor(name: string): boolean {
  return name === SYSTEM_ACTOR || name.startsWith('app:') || name.startsWith('node:');
}

export interface Actor {
  name: string;
  groups: string[];
}

interface Rule {
  effect: 'allow' | 'deny';
  verbs: Set<string>;
  types: string[];
  namespaces: string[];
  apps: string[] | null;
}

export interface PolicyRule {
  effect?: 'allow' | 'deny';
  verbs: string[];
  types: string[];
  namespaces?: string[];
  apps?: string[];
}

interface PolicyData {
  subjects: string[];
  rules: PolicyRule[];
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A fresh token: the text to hand out once, and the token resource to store. */
export function mintToken(actor: string, groups: string[], description?: string): { token: string; id: string; data: Record<string, unknown> } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { token: `os0_${id}_${secret}`, id, data: { actor, groups, hash: sha256(secret), ...(description ? { description } : {}) } };
}

export function typeMatches(pattern: string, type: string, effect: 'allow' | 'deny' = 'allow'): boolean {
  if (pattern === type) return true;
  if (pattern === '*') return !isObserved(type) && (effect === 'deny' || !SENSITIVE_TYPES.has(type));
  if (pattern === '*/observed') return isObserved(type);
  return false;
}

export function nsMatches(prefix: string, ns: string): boolean {
  return prefix === '*' || prefix === '' || ns === prefix || (ns.startsWith(prefix) && ns.charCodeAt(prefix.length) === 47);
}

/** A rule's `apps` entry against `APP.CAPABILITY` (or `APP`): `*`, the app, or that capability. */
const appMatches = (entry: string, target: string): boolean => entry === '*' || entry === target || (target.startsWith(entry) && target.charCodeAt(entry.length) === 46);

/** The app a resource belongs to, for app-scoped rules: undefined for everything else. */
export function appOf(r: Pick<Resource, 'type' | 'name' | 'tags'>): string | undefined {
  const t = baseType(r.type);
  if (t === 'app') return r.name;
  if (t === 'invocation') return r.tags?.app;
  if (STORE_TYPES.has(t)) return r.tags?.[APP_TAG];
  return undefined;
}

/** The rules of one (actor, verb, type), in the order they were declared. */
interface Compiled {
  rules: Rule[];
  /** Whether any applicable rule depends on the resource's app. */
  appScoped: boolean;
  /** Namespaces of the applicable deny rules (for the "is the whole subtree allowed" test). */
  denyNs: string[];
}

const decide = (c: Compiled, ns: string, app: string | undefined): boolean => {
  let allow = false;
  for (const r of c.rules) {
    if (r.apps && (app === undefined || !r.apps.some((a) => appMatches(a, app)))) continue;
    let hit = false;
    for (const n of r.namespaces) if (nsMatches(n, ns)) { hit = true; break; }
    if (!hit) continue;
    if (r.effect === 'deny') return false;
    allow = true;
  }
  return allow;
};

const toRule = (r: PolicyRule): Rule => ({
  effect: r.effect ?? 'allow',
  verbs: new Set(r.verbs),
  types: r.types,
  namespaces: r.namespaces?.length ? r.namespaces : ['*'],
  apps: r.apps ?? null,
});

export class Permissions implements Filter {
  readonly name = 'permission';
  private bySubject = new Map<string, Rule[]>();
  private tokens = new Map<string, { actor: string; groups: string[]; hash: Buffer }>();
  private policies = new Map<string, PolicyData>();
  private appGrants = new Map<string, Rule[]>();
  private readonly actorCache = new Map<string, Actor>();
  private readonly compiled = new Map<string, Compiled>();
  /** Called with the id of each token deleted (watches opened with it end). */
  readonly revoked = new Set<(tokenId: string) => void>();

  /** Rebuilds the token and policy indexes from the tree (after recovery). */
  load(view: { all(): Iterable<Resource> }): void {
    for (const r of view.all()) if (r.type === 'token' || r.type === 'policy') this.observe(r, null);
  }

  /** Keeps the indexes current: call with every applied change of a token or policy. */
  observe(next: Resource | null, old: Resource | null): void {
    const r = next ?? old!;
    if (r.type === 'token') {
      this.actorCache.clear();
      this.compiled.clear();
      if (next) {
        const d = next.data as { actor: string; groups?: string[]; hash: string };
        this.tokens.set(next.name, { actor: d.actor, groups: d.groups ?? [], hash: Buffer.from(d.hash, 'hex') });
      } else {
        this.tokens.delete(r.name);
        for (const f of this.revoked) f(r.name);
      }
    } else if (r.type === 'policy') {
      if (next) this.policies.set(next.name, next.data as PolicyData);
      else this.policies.delete(r.name);
      this.reindex();
    }
  }

  private reindex(): void {
    const by = new Map<string, Rule[]>();
    for (const p of this.policies.values()) {
      const rules = p.rules.map(toRule);
      for (const s of p.subjects) by.set(s, [...(by.get(s) ?? []), ...rules]);
    }
    this.bySubject = by;
    this.compiled.clear();
  }

  /** Sets (or, with null, clears) the rights of `app:NAME`: exactly its manifest's grants. */
  setAppGrants(app: string, grants: { types: string[]; verbs: string[]; namespaces?: string[] }[] | null): void {
    if (grants) this.appGrants.set(`app:${app}`, grants.map((g) => toRule({ verbs: g.verbs, types: g.types, namespaces: g.namespaces })));
    else this.appGrants.delete(`app:${app}`);
    this.compiled.clear();
  }

  /** The actor a bearer token stands for, or null. */
  authenticate(token: string): (Actor & { tokenId: string }) | null {
    const m = /^os0_([0-9a-f]{12})_([A-Za-z0-9_-]{20,64})$/.exec(token);
    if (!m) return null;
    const t = this.tokens.get(m[1]);
    if (!t) return null;
    const h = createHash('sha256').update(m[2]).digest();
    return h.length === t.hash.length && timingSafeEqual(h, t.hash) ? { name: t.actor, groups: t.groups, tokenId: m[1] } : null;
  }

  /** Whether the token with this id still exists. */
  tokenAlive(id: string): boolean {
    return this.tokens.has(id);
  }

  /** The groups an actor belongs to, from its tokens. */
  groupsOf(actor: string): string[] {
    const groups = new Set<string>();
    for (const t of this.tokens.values()) if (t.actor === actor) for (const g of t.groups) groups.add(g);
    return [...groups];
  }

  /** The rules that can apply to (actor, verb, type), compiled once and cached until a policy changes. */
  private compile(actor: Actor, verb: Verb, type: string): Compiled {
    const key = `${actor.name}\u0000${actor.groups.join(',')}\u0000${verb}\u0000${type}`;
    let c = this.compiled.get(key);
    if (c) return c;
    const rules: Rule[] = [];
    const take = (list: Rule[] | undefined): void => {
      if (list) for (const r of list) {
        if (!(r.verbs.has(verb) || r.verbs.has('*'))) continue;
        if (!r.types.some((t) => typeMatches(t, type, r.effect))) continue;
        rules.push(r);
      }
    };
    if (actor.name.startsWith('app:')) take(this.appGrants.get(actor.name));
    else if (!actor.name.startsWith('node:')) {
      take(this.bySubject.get(`user:${actor.name}`));
      for (const g of actor.groups) take(this.bySubject.get(`group:${g}`));
    }
    c = { rules, appScoped: rules.some((r) => r.apps !== null), denyNs: rules.filter((r) => r.effect === 'deny').flatMap((r) => r.namespaces) };
    if (this.compiled.size > 50_000) this.compiled.clear();
    this.compiled.set(key, c);
    return c;
  }

  /**
   * Whether the actor may do `verb` on `type` in `namespace`; `app` is the app the resource
   * belongs to (see appOf), or for invoke `APP` or `APP.CAPABILITY`.
   */
  allowed(actor: Actor, verb: Verb, type: string, namespace: string, app?: string): boolean {
    if (actor.name === SYSTEM_ACTOR) return true;
    return decide(this.compile(actor, verb, type), namespace, app);
  }

  /** Whether some allow rule could admit `verb` on `type` in `namespace` for some app (lists answer [] rather than 403 then). */
  couldAllow(actor: Actor, verb: Verb, type: string, namespace: string): boolean {
    if (actor.name === SYSTEM_ACTOR) return true;
    return this.compile(actor, verb, type).rules.some((r) => r.effect === 'allow' && r.namespaces.some((n) => nsMatches(n, namespace)));
  }

  /** Whether the actor may do `verb` on this resource: its rules, or a node's rights on it (node.ts). */
  allowedOn(actor: Actor, verb: Verb, r: Pick<Resource, 'type' | 'namespace' | 'name' | 'tags' | 'data'>): boolean {
    const node = nodeOf(actor.name);
    if (node !== null) {
      if (verb === 'get' || verb === 'list' || verb === 'watch') return nodeMayRead(node, r);
      if (verb === 'create' || verb === 'update' || verb === 'delete') return nodeMayWrite(node, r);
      return false;
    }
    return this.allowed(actor, verb, r.type, r.namespace, appOf(r));
  }

  /**
   * Whether every resource of `type` in the namespace prefix `ns` (and below) is allowed, with
   * nothing to check per resource: allowed at `ns`, no deny reaching below it, no app scope.
   */
  allowsSubtree(actor: Actor, verb: Verb, type: string, ns: string): boolean {
    if (actor.name === SYSTEM_ACTOR) return true;
    const c = this.compile(actor, verb, type);
    if (c.appScoped || !decide(c, ns, undefined)) return false;
    for (const d of c.denyNs) if (d !== '*' && d !== '' && ns !== d && (ns === '' || (d.startsWith(ns) && d.charCodeAt(ns.length) === 47))) return false;
    return true;
  }

  /**
   * For a list answered from the indexes: a decision per (namespace, type), to be applied once
   * per namespace node, or null when some rule depends on the resource itself (an app scope),
   * so that each resource must be checked (filterFor).
   */
  nsFilterFor(actor: Actor, verb: Verb, type: string | undefined): ((namespace: string, type: string) => boolean) | null {
    if (actor.name === SYSTEM_ACTOR) return () => true;
    if (nodeOf(actor.name) !== null) return null; // a node's rights depend on each resource
    if (type !== undefined && this.compile(actor, verb, type).appScoped) return null;
    let lastType = '';
    let last: Compiled | null = null;
    return (ns, t) => {
      if (t !== lastType || !last) {
        lastType = t;
        last = this.compile(actor, verb, t);
      }
      // A type with app-scoped rules cannot be decided per namespace: those resources are left to filterFor.
      return last.appScoped ? true : decide(last, ns, undefined);
    };
  }

  /**
   * A per-resource test for a list, watch or log of many resources: decisions are remembered
   * per (type, namespace) for the life of the returned function, so a list of 10,000 resources
   * in a few namespaces costs a few rule walks and a map lookup per resource.
   */
  filterFor(actor: Actor, verb: Verb): (r: Pick<Resource, 'type' | 'namespace' | 'name' | 'tags' | 'data'>) => boolean {
    if (actor.name === SYSTEM_ACTOR) return () => true;
    if (nodeOf(actor.name) !== null) return (r) => this.allowedOn(actor, verb, r);
    const memo = new Map<string, boolean>();
    let lastType = '';
    let last: Compiled | null = null;
    return (r) => {
      if (r.type !== lastType || !last) {
        lastType = r.type;
        last = this.compile(actor, verb, r.type);
      }
      if (last.appScoped) return decide(last, r.namespace, appOf(r));
      const key = r.type + '\u0000' + r.namespace;
      let ok = memo.get(key);
      if (ok === undefined) {
        ok = decide(last, r.namespace, undefined);
        if (memo.size > 100_000) memo.clear();
        memo.set(key, ok);
      }
      return ok;
    };
  }

  /**
   * Whether `actor` holds everything `grant` would hand to an app: each verb on each type
   * pattern in each namespace prefix, with no deny cutting into it. An admin holds everything.
   */
  holds(actor: Actor, grant: { types: string[]; verbs: string[]; namespaces?: string[] }): boolean {
    if (actor.name === SYSTEM_ACTOR || actor.groups.includes(ADMIN_GROUP)) return true;
    const prefixes = grant.namespaces?.length ? grant.namespaces : [''];
    for (const verb of grant.verbs) {
      for (const pattern of grant.types) {
        for (const raw of prefixes) {
          const ns = raw === '*' ? '' : raw;
          // Allowed for the pattern itself (a rule naming it, or a `*` covering it) on the whole prefix.
          if (!this.allowsSubtree(actor, verb as Verb, pattern, ns)) return false;
          // A `*` pattern also needs every deny on some type to stay out of its way.
          if (pattern === '*' || pattern === '*/observed') {
            const all = [...(this.bySubject.get(`user:${actor.name}`) ?? []), ...actor.groups.flatMap((g) => this.bySubject.get(`group:${g}`) ?? [])];
            for (const r of all) {
              if (r.effect !== 'deny' || !(r.verbs.has(verb) || r.verbs.has('*'))) continue;
              if (r.namespaces.some((n) => nsMatches(n, ns) || nsMatches(ns, n))) return false;
            }
          }
        }
      }
    }
    return true;
  }

  /** Throws a one-line refusal unless allowed. */
  authorize(actor: Actor, verb: Verb, type: string, namespace: string, app?: string): void {
    if (!this.allowed(actor, verb, type, namespace, app)) throw this.refusal(actor, verb, type, namespace, app);
  }

  refusal(actor: Actor, verb: Verb, type: string, namespace: string, app?: string): Rejection {
    const where = namespace ? ` in ${namespace}` : '';
    const what = isObserved(type) ? `the observed state of ${baseType(type)}` : type;
    return new Rejection('permission', `${actor.name} may not ${verb} ${what}${app ? ` (${app})` : ''}${where}; ask an admin for a policy that grants it`);
  }

  /** The Actor for a command's actor name (groups from its tokens). */
  actor(name: string): Actor {
    let a = this.actorCache.get(name);
    if (!a) {
      a = { name, groups: name.startsWith('app:') || name.startsWith('node:') ? [] : this.groupsOf(name) };
      if (this.actorCache.size > 10_000) this.actorCache.clear();
      this.actorCache.set(name, a);
    }
    return a;
  }

  admit(change: PlannedChange, ctx: FilterContext): void {
    if (ctx.actor === SYSTEM_ACTOR) return;
    const r = change.next ?? change.old!;
    const base = baseType(r.type);
    if (STORE_TYPES.has(base) && base === r.type && ctx.via !== 'store') {
      throw new Rejection('permission', `${base} resources change only through the app store: use os0 install, os0 upgrade or os0 uninstall`);
    }
    if (r.type === 'token' && change.next && isReservedActor(String((change.next.data as { actor?: unknown })?.actor))) {
      throw new Rejection('permission', `tokens cannot stand for ${(change.next.data as { actor: string }).actor}: system, app:* and node:* are reserved`);
    }
    const verb: Verb = !change.next ? 'delete' : change.old ? 'update' : 'create';
    const node = nodeOf(ctx.actor);
    if (node !== null) {
      if ((change.old && !nodeMayWrite(node, change.old)) || (change.next && !nodeMayWrite(node, change.next))) {
        throw new Rejection('permission', `${ctx.actor} may write only the observed state of its own machine and of what runs on it, not ${r.type} ${r.namespace ? r.namespace + '/' : ''}${r.name}`);
      }
      return;
    }
    const actor = this.actor(ctx.actor);
    if (!this.allowedOn(actor, verb, r)) throw this.refusal(actor, verb, r.type, r.namespace, appOf(r));
    // An update may not move a resource out of the actor's reach (e.g. re-tag it into another app).
    if (change.old && change.next && appOf(change.old) !== appOf(change.next) && !this.allowedOn(actor, verb, change.old)) {
      throw this.refusal(actor, verb, r.type, r.namespace, appOf(change.old));
    }
  }

  /** Forget cached groups and decisions (a token changed). */
  invalidate(): void {
    this.actorCache.clear();
    this.compiled.clear();
  }

  static unauthorized(): OsError {
    return new OsError('unauthorized', 'missing or unknown token: pass --token or set OS0_TOKEN (the admin token is in DATA/admin.token)');
  }
}
