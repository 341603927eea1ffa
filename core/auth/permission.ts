/**
 * Actors, tokens and the permission filter.
 *
 * A token is `os0_<id>_<secret>`; the tree keeps a `token` resource named <id> holding only the
 * SHA-256 of the secret, the actor it stands for and the actor's groups. `policy` resources grant
 * (or deny: a deny wins) verbs on types within namespace prefixes to `user:NAME` and
 * `group:NAME` subjects. The trusted zero-procs act as `system`, which may do anything.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { OsError, Rejection } from '../errors.ts';
import type { Filter, FilterContext, PlannedChange } from '../filter.ts';
import type { Resource } from '../resource.ts';
import { baseType, isObserved } from '../types/schema-filter.ts';
import { nodeMayRead, nodeMayWrite, nodeOf } from './node.ts';

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'delete' | 'invoke';

export const SYSTEM_ACTOR = 'system';
export const ADMIN_GROUP = 'admins';

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

interface PolicyData {
  subjects: string[];
  rules: { effect?: 'allow' | 'deny'; verbs: string[]; types: string[]; namespaces?: string[]; apps?: string[] }[];
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** A fresh token: the text to hand out once, and the token resource to store. */
export function mintToken(actor: string, groups: string[], description?: string): { token: string; id: string; data: Record<string, unknown> } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return { token: `os0_${id}_${secret}`, id, data: { actor, groups, hash: sha256(secret), ...(description ? { description } : {}) } };
}

function typeMatches(pattern: string, type: string): boolean {
  if (pattern === type) return true;
  // '*' is every type of desired state; observed state must be granted by name or '*/observed'.
  if (pattern === '*') return !isObserved(type);
  if (pattern === '*/observed') return isObserved(type);
  return false;
}

function nsMatches(prefix: string, ns: string): boolean {
  return prefix === '*' || prefix === '' || ns === prefix || (ns.startsWith(prefix) && ns.charCodeAt(prefix.length) === 47);
}

/** A rule's `apps` entry against `APP.CAPABILITY` (or `APP`): `*`, the app, or that capability. */
const appMatches = (entry: string, target: string): boolean => entry === '*' || entry === target || (target.startsWith(entry) && target.charCodeAt(entry.length) === 46);

export class Permissions implements Filter {
  readonly name = 'permission';
  private bySubject = new Map<string, Rule[]>();
  private tokens = new Map<string, { actor: string; groups: string[]; hash: Buffer }>();
  private policies = new Map<string, PolicyData>();
  private readonly actorCache = new Map<string, Actor>();

  /** Rebuilds the token and policy indexes from the tree (after recovery). */
  load(view: { all(): Iterable<Resource> }): void {
    for (const r of view.all()) this.observe(r, null);
  }

  /** Keeps the indexes current: call with every applied change of a token or policy. */
  observe(next: Resource | null, old: Resource | null): void {
    const r = next ?? old!;
    if (r.type === 'token') {
      this.actorCache.clear();
      if (next) {
        const d = next.data as { actor: string; groups?: string[]; hash: string };
        this.tokens.set(next.name, { actor: d.actor, groups: d.groups ?? [], hash: Buffer.from(d.hash, 'hex') });
      } else this.tokens.delete(r.name);
    } else if (r.type === 'policy') {
      if (next) this.policies.set(next.name, next.data as PolicyData);
      else this.policies.delete(r.name);
      this.reindex();
    }
  }

  private reindex(): void {
    const by = new Map<string, Rule[]>();
    for (const p of this.policies.values()) {
      const rules = p.rules.map((r) => ({
        effect: r.effect ?? 'allow',
        verbs: new Set(r.verbs),
        types: r.types,
        namespaces: r.namespaces?.length ? r.namespaces : ['*'],
        apps: r.apps ?? null,
      }));
      for (const s of p.subjects) by.set(s, [...(by.get(s) ?? []), ...rules]);
    }
    this.bySubject = by;
  }

  /** The actor a bearer token stands for, or null. */
  authenticate(token: string): Actor | null {
    const m = /^os0_([0-9a-f]{12})_([A-Za-z0-9_-]{20,64})$/.exec(token);
    if (!m) return null;
    const t = this.tokens.get(m[1]);
    if (!t) return null;
    const h = createHash('sha256').update(m[2]).digest();
    return h.length === t.hash.length && timingSafeEqual(h, t.hash) ? { name: t.actor, groups: t.groups } : null;
  }

  /** The groups an actor belongs to, from its tokens. */
  groupsOf(actor: string): string[] {
    const groups = new Set<string>();
    for (const t of this.tokens.values()) if (t.actor === actor) for (const g of t.groups) groups.add(g);
    return [...groups];
  }

  /**
   * Whether the actor may do `verb` on `type` in `namespace` (and, for invoke, on `app`: `APP` or
   * `APP.CAPABILITY`; a rule's `apps` entry `APP` covers all of APP's capabilities).
   */
  allowed(actor: Actor, verb: Verb, type: string, namespace: string, app?: string): boolean {
    if (actor.name === SYSTEM_ACTOR) return true;
    // A node's rights depend on each resource (node.ts): see allowedOn.
    if (nodeOf(actor.name) !== null) return false;
    let allow = false;
    const visit = (rules: Rule[] | undefined): boolean => {
      if (!rules) return false;
      for (const r of rules) {
        if (!(r.verbs.has(verb) || r.verbs.has('*'))) continue;
        if (!r.types.some((t) => typeMatches(t, type))) continue;
        if (!r.namespaces.some((n) => nsMatches(n, namespace))) continue;
        if (r.apps && app !== undefined && !r.apps.some((a) => appMatches(a, app))) continue;
        if (r.effect === 'deny') return true;
        allow = true;
      }
      return false;
    };
    if (visit(this.bySubject.get(`user:${actor.name}`))) return false;
    for (const g of actor.groups) if (visit(this.bySubject.get(`group:${g}`))) return false;
    return allow;
  }

  /** Whether the actor may do `verb` on this resource: `allowed`, or a node's rights on it. */
  allowedOn(actor: Actor, verb: Verb, r: Pick<Resource, 'type' | 'namespace' | 'name' | 'data'>): boolean {
    const node = nodeOf(actor.name);
    if (node === null) return this.allowed(actor, verb, r.type, r.namespace);
    if (verb === 'get' || verb === 'list' || verb === 'watch') return nodeMayRead(node, r);
    if (verb === 'create' || verb === 'update' || verb === 'delete') return nodeMayWrite(node, r);
    return false;
  }

  /** Throws a one-line refusal unless allowed. */
  authorize(actor: Actor, verb: Verb, type: string, namespace: string, app?: string): void {
    if (!this.allowed(actor, verb, type, namespace, app)) {
      const where = namespace ? ` in ${namespace}` : '';
      const what = isObserved(type) ? `the observed state of ${baseType(type)}` : type;
      throw new Rejection('permission', `${actor.name} may not ${verb} ${what}${app ? ` (${app})` : ''}${where}; ask an admin for a policy that grants it`);
    }
  }

  /** The Actor for a command's actor name (groups from its tokens). */
  actor(name: string): Actor {
    let a = this.actorCache.get(name);
    if (!a) {
      a = { name, groups: this.groupsOf(name) };
      if (this.actorCache.size > 10_000) this.actorCache.clear();
      this.actorCache.set(name, a);
    }
    return a;
  }

  admit(change: PlannedChange, ctx: FilterContext): void {
    if (ctx.actor === SYSTEM_ACTOR) return;
    const r = change.next ?? change.old!;
    const verb: Verb = !change.next ? 'delete' : change.old ? 'update' : 'create';
    const node = nodeOf(ctx.actor);
    if (node !== null) {
      if ((change.old && !nodeMayWrite(node, change.old)) || (change.next && !nodeMayWrite(node, change.next))) {
        throw new Rejection('permission', `${ctx.actor} may write only the observed state of its own machine and of what runs on it, not ${r.type} ${r.namespace ? r.namespace + '/' : ''}${r.name}`);
      }
      return;
    }
    this.authorize(this.actor(ctx.actor), verb, r.type, r.namespace);
  }

  /** Forget cached groups (a token changed). */
  invalidate(): void {
    this.actorCache.clear();
  }

  static unauthorized(): OsError {
    return new OsError('unauthorized', 'missing or unknown token: pass --token or set OS0_TOKEN (the admin token is in DATA/admin.token)');
  }
}
