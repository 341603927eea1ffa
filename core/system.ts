/**
 * The core as a system people and programs talk to: the durable Core with the built-in filters
 * (schema → permission → namespace/quota/budget), tokens and policies, handlers, watches and
 * metrics; bootstrapped on first start. Still a library: core/api serves it over HTTP.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ADMIN_GROUP, mintToken, Permissions, SYSTEM_ACTOR, type Actor, type Verb } from './auth/permission.ts';
import { Core, type CoreOptions, type SubmitResult } from './core.ts';
import { Economy, type Totals } from './economy/economy.ts';
import { OsError } from './errors.ts';
import type { Filter } from './filter.ts';
import { Handlers } from './handlers.ts';
import type { Resource } from './resource.ts';
import type { Query } from './tree/tree.ts';
import { BUILTIN_TYPES } from './types/builtin.ts';
import { SchemaFilter } from './types/schema-filter.ts';

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

export class System {
  readonly core: Core;
  readonly schema: SchemaFilter;
  readonly permissions: Permissions;
  readonly economy: Economy;
  readonly handlers: Handlers;
  /** Set on the first start only: the admin token, to be written to DIR/admin.token. */
  readonly adminToken: string | null;
  watchers = 0;

  private constructor(core: Core, handlers: Handlers, schema: SchemaFilter, permissions: Permissions, economy: Economy, adminToken: string | null) {
    this.core = core;
    this.schema = schema;
    this.permissions = permissions;
    this.economy = economy;
    this.adminToken = adminToken;
    this.handlers = handlers;
  }

  static async open(opts: SystemOptions): Promise<System> {
    const schema = new SchemaFilter();
    const permissions = new Permissions();
    const economy = new Economy((view, type) => schema.spec(view, type));
    const core = await Core.open({ ...opts, filters: [schema, permissions, economy, ...(opts.filters ?? [])] });
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
    return new System(core, handlers, schema, permissions, economy, adminToken);
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
              data: { subjects: [`group:${ADMIN_GROUP}`], rules: [{ verbs: ['*'], types: ['*', '*/observed'], namespaces: ['*'] }] },
            },
          },
          { op: 'create', resource: { type: 'token', name: admin.id, data: admin.data } },
        ],
      },
      { actor: SYSTEM_ACTOR },
    );
    return admin.token;
  }

  /** A data directory made by an older osØ lacks the built-in types added since: declare them. */
  private static async addMissingTypes(core: Core): Promise<void> {
    const missing = Object.entries(BUILTIN_TYPES).filter(([name]) => !core.get('type', name));
    if (missing.length === 0) return;
    await core.submit({ batch: missing.map(([name, spec]) => ({ op: 'create' as const, resource: { type: 'type', name, data: spec } })) }, { actor: SYSTEM_ACTOR });
  }

  /** The actor for a bearer token; throws 'unauthorized'. */
  authenticate(token: string | undefined | null): Actor {
    const a = token ? this.permissions.authenticate(token) : null;
    if (!a) throw Permissions.unauthorized();
    return a;
  }

  submit(submission: unknown, actor: Actor): Promise<SubmitResult> {
    return this.core.submit(submission, { actor: actor.name });
  }

  authorize(actor: Actor, verb: Verb, type: string, namespace: string): void {
    this.permissions.authorize(actor, verb, type, namespace);
  }

  /** A query, checked: with rights on the whole namespace prefix it is answered from the indexes; otherwise filtered to what the actor may list. */
  list(actor: Actor, q: Query): Resource[] {
    const ns = q.namespace ?? '';
    if (q.type !== undefined && !this.core.get('type', q.type.replace(/\/observed$/, ''))) {
      throw new OsError('not_found', `unknown type "${q.type}"; 'os0 get type' lists the types there are`);
    }
    if (q.type !== undefined && this.permissions.allowed(actor, 'list', q.type, ns)) return this.core.query(q);
    const out = this.core.query({ ...q, limit: undefined }).filter((r) => this.permissions.allowedOn(actor, 'list', r));
    if (q.type !== undefined && out.length === 0) this.authorize(actor, 'list', q.type, ns);
    return q.limit !== undefined ? out.slice(0, q.limit) : out;
  }

  get(actor: Actor, type: string, name: string, namespace: string): Resource {
    const r = this.core.get(type, name, namespace);
    if (!(r ? this.permissions.allowedOn(actor, 'get', r) : this.permissions.allowed(actor, 'get', type, namespace))) this.authorize(actor, 'get', type, namespace);
    if (!r) throw new OsError('not_found', `${type} ${namespace ? namespace + '/' : ''}${name} does not exist`);
    return r;
  }

  getById(actor: Actor, id: string): Resource {
    const r = this.core.getById(id);
    if (!r) throw new OsError('not_found', `no resource with id ${id}`);
    if (!this.permissions.allowedOn(actor, 'get', r)) this.authorize(actor, 'get', r.type, r.namespace);
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
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(actor)) throw new OsError('invalid', `actor name "${actor}" must be 1-64 letters, digits, '.', '_', '@', '-'`);
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
