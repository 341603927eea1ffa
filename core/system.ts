/**
 * The core as a system people and programs talk to: the durable Core with the built-in filters
 * (schema → permission → namespace/quota/budget), tokens and policies, handlers, watches and
 * metrics; bootstrapped on first start. Still a library: core/api serves it over HTTP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_GROUP, isReservedActor, mintToken, Permissions, SENSITIVE_TYPES, SYSTEM_ACTOR, type Actor, type Verb } from './auth/permission.ts';
import { Core, type CoreOptions, type SubmitOptions, type SubmitResult } from './core.ts';
import { Economy, type Totals } from './economy/economy.ts';
import { OsError } from './errors.ts';
import type { Filter } from './filter.ts';
import { Handlers } from './handlers.ts';
import type { Resource } from './resource.ts';
import type { Query } from './tree/tree.ts';
import { BUILTIN_TYPES } from './types/builtin.ts';
import { SchemaFilter } from './types/schema-filter.ts';
import { isSealed, Keyring, KEY_FILE, kidOf, seal, SecretSealer, unseal } from './secrets/secrets.ts';

export interface SystemOptions extends Omit<CoreOptions, 'filters'> {
  /** Filters that run after the built-ins (app filters). */
  filters?: Filter[];
}

export interface NamespaceStatus {
  costPerHour: number;
  budgetPerHour: number | null;
  cpu: number;
  memoryMb: number;
  counts: Record<string, number>;
}

const OLD_ADMINS_POLICY = { subjects: [`group:${ADMIN_GROUP}`], rules: [{ verbs: ['*'], types: ['*', '*/observed'], namespaces: ['*'] }] };
/** Admins hold every verb on every type; sensitive types must be named even for them. */
const ADMINS_POLICY = { subjects: [`group:${ADMIN_GROUP}`], rules: [{ verbs: ['*'], types: ['*', '*/observed', ...SENSITIVE_TYPES], namespaces: ['*'] }] };

export class System {
  readonly core: Core;
  readonly schema: SchemaFilter;
  readonly permissions: Permissions;
  readonly economy: Economy;
  readonly handlers: Handlers;
  /** Set on the first start only: the admin token, to be written to DIR/admin.token. */
  readonly adminToken: string | null;
  watchers = 0;
  /** The key-encryption keys secrets are sealed under (DATA/secrets.key). */
  readonly keyring: Keyring;
  private resealing: Promise<void> | null = null;
  private closing = false;
  private readonly report: (m: string) => void;

  private constructor(core: Core, handlers: Handlers, schema: SchemaFilter, permissions: Permissions, economy: Economy, adminToken: string | null, keyring: Keyring, report?: (m: string) => void) {
    this.report = report ?? (() => {});
    this.core = core;
    this.schema = schema;
    this.permissions = permissions;
    this.economy = economy;
    this.adminToken = adminToken;
    this.handlers = handlers;
    this.keyring = keyring;
  }

  static async open(opts: SystemOptions): Promise<System> {
    const schema = new SchemaFilter();
    const permissions = new Permissions();
    const economy = new Economy((view, type) => schema.spec(view, type));
    let ring = Keyring.load(opts.dir);
    const sealer = new SecretSealer(() => ring!);
    const core = await Core.open({ ...opts, filters: [schema, permissions, economy, sealer, ...(opts.filters ?? [])] });
    try {
      ring = System.checkKeyring(core, ring);
    } catch (e) {
      await core.close();
      throw e;
    }
    core.subscribe((c) => {
      for (const ch of c.changes) {
        const r = ch.new ?? ch.old!;
        if (r.type === 'token' || r.type === 'policy') permissions.observe(ch.new, ch.old);
      }
    });
    let adminToken: string | null = null;
    if (core.index === 0) adminToken = await System.bootstrap(core);
    else await System.addMissingTypes(core);
    const handlers = await Handlers.open(core, core.dir, opts.io);
    const sys = new System(core, handlers, schema, permissions, economy, adminToken, ring, opts.report);
    sys.resealInBackground();
    return sys;
  }

  /**
   * The key file must open every secret in the tree: refuse to start (one line, nothing
   * changed) when it is missing or is not the one they were sealed with. A data directory with
   * no secrets and no key file gets a fresh one.
   */
  private static checkKeyring(core: Core, ring: Keyring | null): Keyring {
    const secrets = core.query({ type: 'secret' }).filter((r) => isSealed(r.data));
    const file = `${core.dir}/${KEY_FILE}`;
    if (!ring) {
      if (secrets.length > 0) throw new OsError('corrupt', `${file} is missing, so the ${secrets.length} secret(s) in this data directory cannot be opened; restore that file from a backup (nothing was changed)`);
      return Keyring.create(core.dir);
    }
    const sample = new Map<string, Resource>();
    for (const r of secrets) if (!sample.has(kidOf(r.data as never))) sample.set(kidOf(r.data as never), r);
    for (const [kid, r] of sample) {
      if (!ring.has(kid)) throw new OsError('corrupt', `${file} lacks key ${kid}, which secrets here are sealed under; restore the right key file from a backup (nothing was changed)`);
      try {
        unseal(ring, r);
      } catch {
        throw new OsError('corrupt', `${file} holds a different key ${kid} than the one secrets here are sealed under; restore the right key file from a backup (nothing was changed)`);
      }
    }
    return ring;
  }

  /** A secret's values, for an actor granted `reveal` on it. */
  reveal(actor: Actor, namespace: string, name: string): Record<string, string> {
    const r = this.get(actor, 'secret', name, namespace);
    this.permissions.authorize(actor, 'reveal', 'secret', namespace);
    return unseal(this.keyring, r);
  }

  /** A secret's values, for trusted callers that did their own checks (ctx.secrets). */
  unsealSecret(r: Resource): Record<string, string> {
    return unseal(this.keyring, r);
  }

  /** Starts using a new key-encryption key; every secret is re-sealed under it in the background. */
  async rotateKey(actor: Actor): Promise<{ key: string; resealing: number }> {
    if (!this.permissions.allowsSubtree(actor, 'update', 'secret', '')) throw this.permissions.refusal(actor, 'update', 'secret', '');
    const key = this.keyring.rotate();
    const resealing = this.pendingSecrets().length;
    this.resealInBackground();
    return { key, resealing };
  }

  /** The key file's state: the current key, the keys still held, and the secrets not yet re-sealed. */
  keyStatus(): { current: string; keys: string[]; resealing: number } {
    return { current: this.keyring.current, keys: this.keyring.kids, resealing: this.pendingSecrets().length };
  }

  private pendingSecrets(): Resource[] {
    const cur = this.keyring.current;
    return this.core.query({ type: 'secret' }).filter((r) => isSealed(r.data) && kidOf(r.data) !== cur);
  }

  /** Resolves when no re-sealing is under way (tests, and close). */
  async resealed(): Promise<void> {
    while (this.resealing) await this.resealing;
  }

  /**
   * Re-seals every secret sealed under an old key, one durable command each (compare-and-set on
   * its revision, so a concurrent write simply wins and is sealed under the new key already);
   * then drops the keys nothing uses. Bounded: at most 5 passes per call.
   */
  private resealInBackground(): void {
    if (this.resealing) return;
    const run = async (): Promise<void> => {
      for (let pass = 0; pass < 5 && !this.closing; pass++) {
        const pending = this.pendingSecrets();
        if (pending.length === 0) break;
        // In atomic batches of 32 (one fsync each); a batch that loses a race with a write is
        // retried one by one, and what still conflicts is left to the next pass.
        for (let at = 0; at < pending.length && !this.closing; at += 32) {
          const cmds = pending.slice(at, at + 32).map((r) => ({
            op: 'update' as const,
            expect: r.revision,
            resource: { type: 'secret', namespace: r.namespace, name: r.name, tags: r.tags, owner: r.owner, cost: r.cost, data: seal(this.keyring, r.namespace, r.name, unseal(this.keyring, r)) },
          }));
          try {
            await this.core.submit({ batch: cmds }, { actor: SYSTEM_ACTOR });
          } catch {
            for (const c of cmds) await this.core.submit(c, { actor: SYSTEM_ACTOR }).catch(() => {});
          }
        }
      }
      if (this.closing) return;
      const inUse = new Set(this.core.query({ type: 'secret' }).filter((r) => isSealed(r.data)).map((r) => kidOf(r.data as never)));
      this.keyring.retire(inUse);
    };
    this.resealing = run()
      .catch((e: Error) => this.report(`re-sealing secrets under the new key stopped: ${e.message}; it resumes at the next start`))
      .finally(() => (this.resealing = null));
  }

  /** First start: the built-in types, namespace `system`, the admins policy and an admin token. */
  private static async bootstrap(core: Core): Promise<string> {
    const types = Object.entries(BUILTIN_TYPES).map(([name, spec]) => ({ op: 'create' as const, resource: { type: 'type', name, data: spec } }));
    // The `type` type validates the others: it goes first, alone.
    await core.submit(types.find((t) => t.resource.name === 'type')!, { actor: SYSTEM_ACTOR });
    await core.submit({ batch: types.filter((t) => t.resource.name !== 'type') }, { actor: SYSTEM_ACTOR });
    const admin = mintToken('admin', [ADMIN_GROUP], 'created at first start');
    await core.submit(
      {
        batch: [
          { op: 'create', resource: { type: 'namespace', name: 'system', data: { description: "osØ's own resources" } } },
          {
            op: 'create',
            resource: {
              type: 'policy',
              name: 'admins',
              data: ADMINS_POLICY,
            },
          },
          { op: 'create', resource: { type: 'token', name: admin.id, data: admin.data } },
        ],
      },
      { actor: SYSTEM_ACTOR },
    );
    return admin.token;
  }

  /**
   * A data directory made by an older osØ lacks the built-in types added since: declare them;
   * changed built-in schemas are brought up to date, and the first-start admins policy (which
   * predates sensitive types) names them.
   */
  private static async addMissingTypes(core: Core): Promise<void> {
    const commands: { op: 'create' | 'update'; resource: { type: string; name: string; data: unknown } }[] = [];
    for (const [name, spec] of Object.entries(BUILTIN_TYPES)) {
      const t = core.get('type', name);
      if (!t) commands.push({ op: 'create', resource: { type: 'type', name, data: spec } });
      else if (name === 'secret' || name === 'policy' || name === 'token') {
        if (JSON.stringify(t.data) !== JSON.stringify(spec)) commands.push({ op: 'update', resource: { type: 'type', name, data: spec } });
      }
    }
    const admins = core.get('policy', 'admins');
    if (admins && JSON.stringify(admins.data) === JSON.stringify(OLD_ADMINS_POLICY)) commands.push({ op: 'update', resource: { type: 'policy', name: 'admins', data: ADMINS_POLICY } });
    if (commands.length === 0) return;
    await core.submit({ batch: commands }, { actor: SYSTEM_ACTOR });
  }

  /** The actor for a bearer token; throws 'unauthorized'. */
  authenticate(token: string | undefined | null): Actor {
    const a = token ? this.permissions.authenticate(token) : null;
    if (!a) throw Permissions.unauthorized();
    return a;
  }

  submit(submission: unknown, actor: Actor, opts: Omit<SubmitOptions, 'actor'> = {}): Promise<SubmitResult> {
    return this.core.submit(submission, { ...opts, actor: actor.name });
  }

  authorize(actor: Actor, verb: Verb, type: string, namespace: string): void {
    this.permissions.authorize(actor, verb, type, namespace);
  }

  /**
   * A query, checked. When the actor's rules allow the whole namespace prefix with no deny
   * reaching below it, it is answered straight from the indexes; otherwise the indexed result
   * is filtered resource by resource (decisions remembered per namespace), so a deny on a
   * deeper namespace or an app-scoped rule always holds. Never a scan of the whole tree.
   */
  list(actor: Actor, q: Query, verb: Verb = 'list'): Resource[] {
    const ns = q.namespace ?? '';
    if (q.type !== undefined && !this.core.get('type', q.type.replace(/\/observed$/, ''))) {
      throw new OsError('not_found', `unknown type "${q.type}"; 'os0 get type' lists the types there are`);
    }
    if (q.type !== undefined && this.permissions.allowsSubtree(actor, verb, q.type, ns)) return this.core.query(q);
    // Decided once per namespace node and type inside the index walk; app-scoped types are
    // then checked resource by resource.
    const admit = this.permissions.nsFilterFor(actor, verb, q.type);
    const ok = this.permissions.filterFor(actor, verb);
    let out: Resource[];
    if (admit && q.type !== undefined) out = this.core.query({ ...q, admit });
    else {
      const limit = q.limit ?? Infinity;
      out = [];
      for (const r of this.core.query({ ...q, limit: undefined, ...(admit ? { admit } : {}) })) if (ok(r) && out.push(r) >= limit) break;
    }
    if (q.type !== undefined && out.length === 0 && !this.permissions.couldAllow(actor, verb, q.type, ns)) this.authorize(actor, verb, q.type, ns);
    return out;
  }

  get(actor: Actor, type: string, name: string, namespace: string): Resource {
    const r = this.core.get(type, name, namespace);
    // What the actor may not read is refused whether it exists or not (an app scope may still grant one by name).
    if (!r) {
      if (!this.permissions.couldAllow(actor, 'get', type, namespace)) this.authorize(actor, 'get', type, namespace);
      throw new OsError('not_found', `${type} ${namespace ? namespace + '/' : ''}${name} does not exist`);
    }
    if (!this.permissions.allowedOn(actor, 'get', r)) throw this.permissions.refusal(actor, 'get', type, namespace);
    return r;
  }

  getById(actor: Actor, id: string): Resource {
    const r = this.core.getById(id);
    if (!r) throw new OsError('not_found', `no resource with id ${id}`);
    if (!this.permissions.allowedOn(actor, 'get', r)) throw this.permissions.refusal(actor, 'get', r.type, r.namespace);
    return r;
  }

  /** Rolled-up usage and cost of a namespace and everything below it, against its budget. */
  namespaceStatus(ns: string): NamespaceStatus {
    const t: Totals = this.economy.totalsOf(ns);
    const res = this.core.get('namespace', ns);
    const budget = (res?.data as { budget?: { perHour: number } } | undefined)?.budget?.perHour ?? null;
    const counts: Record<string, number> = {};
    for (const [type, n] of t.counts) if (n > 0) counts[type] = n;
    return { costPerHour: t.cost, budgetPerHour: budget, cpu: t.cpu, memoryMb: t.memoryMb, counts };
  }

  /** Creates a token for an actor; returns the token text (shown once). */
  async createToken(by: Actor, actor: string, groups: string[], description?: string): Promise<{ token: string; id: string }> {
    if (typeof actor !== 'string' || isReservedActor(actor)) throw new OsError('invalid', `no token can stand for "${String(actor).slice(0, 64)}": system, app:* and node:* are reserved; name a user`);
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(actor)) throw new OsError('invalid', `actor name "${actor.slice(0, 64)}" must be 1-64 letters, digits, '.', '_', '@', '-'`);
    if (!Array.isArray(groups) || groups.length > 64 || groups.some((g) => typeof g !== 'string')) throw new OsError('invalid', 'groups must be a list of at most 64 group names');
    if (description !== undefined && (typeof description !== 'string' || description.length > 1000)) throw new OsError('invalid', 'a token description must be text of at most 1000 characters');
    for (const g of groups) if (!/^[A-Za-z0-9._@-]{1,64}$/.test(g)) throw new OsError('invalid', `group name "${g}" must be 1-64 letters, digits, '.', '_', '@', '-'`);
    const t = mintToken(actor, groups, description);
    await this.submit({ op: 'create', resource: { type: 'token', name: t.id, data: t.data } }, by);
    return { token: t.token, id: t.id };
  }

  metrics(): string {
    const lines: string[] = [];
    const c = this.core.counters;
    lines.push('# HELP os0_commands_accepted_total Commands accepted into the log.', '# TYPE os0_commands_accepted_total counter', `os0_commands_accepted_total ${c.accepted}`);
    lines.push('# HELP os0_commands_rejected_total Commands refused, by the filter (or error code) that refused them.', '# TYPE os0_commands_rejected_total counter');
    for (const [f, n] of c.rejected) lines.push(`os0_commands_rejected_total{filter="${f}"} ${n}`);
    const s = [...this.core.fsyncSamples()].sort((a, b) => a - b);
    const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] / 1000 : 0);
    lines.push('# HELP os0_wal_fsync_seconds Write + fdatasync time of recent WAL group commits.', '# TYPE os0_wal_fsync_seconds summary');
    for (const p of [0.5, 0.9, 0.99]) lines.push(`os0_wal_fsync_seconds{quantile="${p}"} ${q(p)}`);
    lines.push(`os0_wal_fsync_seconds_count ${this.core.stats().fsyncs}`);
    lines.push('# HELP os0_log_index Index of the last applied log record.', '# TYPE os0_log_index gauge', `os0_log_index ${this.core.index}`);
    lines.push('# HELP os0_apply_lag_records Records accepted but not yet durable and applied.', '# TYPE os0_apply_lag_records gauge', `os0_apply_lag_records ${this.core.pendingCount}`);
    lines.push('# HELP os0_resources Live resources in the tree.', '# TYPE os0_resources gauge', `os0_resources ${this.core.tree.size}`);
    lines.push('# HELP os0_watchers Open watches.', '# TYPE os0_watchers gauge', `os0_watchers ${this.watchers}`);
    lines.push('# HELP os0_handler_lag_records Records a handler has yet to process.', '# TYPE os0_handler_lag_records gauge');
    const handlers = this.handlers.status();
    for (const h of handlers) lines.push(`os0_handler_lag_records{handler="${h.name}"} ${h.lag}`);
    lines.push('# HELP os0_handler_parked_events Events that kept failing, parked until someone retries or drops them.', '# TYPE os0_handler_parked_events gauge');
    for (const h of handlers) lines.push(`os0_handler_parked_events{handler="${h.name}"} ${h.parked.length}`);
    lines.push('# HELP os0_handler_relists_total Times a handler fell behind the retained log and had to re-list.', '# TYPE os0_handler_relists_total counter');
    for (const h of handlers) lines.push(`os0_handler_relists_total{handler="${h.name}"} ${h.relists}`);
    return lines.join('\n') + '\n';
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.resealed();
    await this.handlers.close();
    await this.core.close();
  }

  /** Writes the admin token file (mode 0600) if this was the first start. */
  writeAdminToken(dir: string): void {
    if (!this.adminToken) return;
    const file = path.join(dir, 'admin.token');
    fs.writeFileSync(file, this.adminToken + '\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
  }
}
