/**
 * Invoking app capabilities: the invoker's right to invoke, an `invocation` resource and its
 * observed state, the program run in the sandbox, and every host call checked twice — against
 * the app's manifest permissions and against the invoker's own rights. See README.md.
 */
import { randomBytes } from 'node:crypto';
import { readJson, type Api } from '../../core/api/server.ts';
import { SENSITIVE_TYPES, SYSTEM_ACTOR, type Actor, type Verb } from '../../core/auth/permission.ts';
import { OsError } from '../../core/errors.ts';
import { checkDepth, type Command, type Resource, type ResourceInput } from '../../core/resource.ts';
import type { System } from '../../core/system.ts';
import type { Query } from '../../core/tree/tree.ts';
import { SandboxError, type HostCalls, type HostMethod, type Limits, type Program, type Sandbox } from '../sandbox/index.ts';
import type { HandlerSpec, HostVerb, LoadedApp, ResourceGrant } from './manifest.ts';
import type { NodeCommand, NodesPort } from './nodes.ts';
import { limitsOf, type AppFilters } from './app-filters.ts';

export { AppFilters } from './app-filters.ts';
export { loadAppFolder, checkManifest, type LoadedApp, type Manifest, type CapabilitySpec, type ResourceGrant } from './manifest.ts';
export { limitsOf } from './app-filters.ts';
export { busNodes, type NodesPort, type NodeCommand } from './nodes.ts';

/** Invocations and their observed state live here. */
export const INVOCATION_NAMESPACE = 'system';

/** What an invocation answers: the typed client's InvocationResult (core/api/client), defined once. */
export type { InvocationResult } from '../../core/api/client/client.ts';
import type { InvocationResult } from '../../core/api/client/client.ts';

export interface StartedInvocation {
  id: string;
  name: string;
  /** Settles (never rejects) once the observed state is written. */
  done: Promise<InvocationResult>;
}

const SYSTEM: Actor = { name: SYSTEM_ACTOR, groups: [] };
const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);
const isObserved = (t: string): boolean => t.endsWith('/observed');

function grantTypeMatches(pattern: string, type: string): boolean {
  if (pattern === type) return true;
  if (pattern === '*') return !isObserved(type) && !SENSITIVE_TYPES.has(type);
  if (pattern === '*/observed') return isObserved(type);
  return false;
}

function grantNsMatches(prefixes: string[] | undefined, ns: string): boolean {
  if (prefixes === undefined) return true;
  return prefixes.some((p) => p === '*' || p === '' || ns === p || (ns.startsWith(p) && ns.charCodeAt(p.length) === 47));
}

/** Whether the app's manifest grants `verb` on `type` in `ns`. */
export function appAllows(grants: ResourceGrant[], verb: HostVerb, type: string, ns: string): boolean {
  return grants.some((g) => g.verbs.includes(verb) && g.types.some((t) => grantTypeMatches(t, type)) && grantNsMatches(g.namespaces, ns));
}

/** The actor an app's handlers, filters and drivers run as: exactly its manifest's grants. */
export const appActor = (name: string): Actor => ({ name: `app:${name}`, groups: [] });

/** The secrets an app's manifest asks for by name. */
export function secretAsked(app: LoadedApp, name: string, namespace: string): boolean {
  return (app.manifest.permissions.secrets ?? []).some((s) => s.name === name && (s.namespace ?? '') === namespace);
}

const nameSafe = (s: string): string => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'x';

/**
 * The handlers an app runs, under the names the core keeps their cursors by: `APP.HANDLER`, and
 * for a driver one per type, `APP.DRIVER.TYPE` (it acts on desired state and writes TYPE/observed).
 */
export function handlersOf(app: LoadedApp): HandlerRun[] {
  const out: HandlerRun[] = [];
  for (const [name, h] of app.handlers) out.push({ name: `${app.manifest.name}.${name}`, query: h.spec.query, program: h.program, limits: limitsOf(h.spec) });
  for (const [name, d] of app.drivers ?? []) {
    for (const type of d.spec.types) out.push({ name: `${app.manifest.name}.${name}.${type}`, query: { type }, program: d.program, limits: limitsOf(d.spec), driverOf: type });
  }
  return out;
}

interface HandlerRun {
  name: string;
  query: HandlerSpec['query'];
  program: Program;
  limits: Partial<Limits>;
  /** For a driver: the type it reconciles (its program gets {reason, desired, observed}). */
  driverOf?: string;
}

/** How many invocation records are kept, and for how long (the oldest beyond either are collected). */
export interface Retention {
  count: number;
  ageMs: number;
}
export const DEFAULT_RETENTION: Retention = { count: 1000, ageMs: 7 * 24 * 3600_000 };
/** The last failures kept per handler or driver. */
export const FAILURES_KEPT = 10;
/** Most resources of one type a driver reconciles per resync. */
export const RESYNC_RESOURCES_MAX = 10_000;

/** A handler's or a driver's runs, counted (never stored one resource per run). */
export interface RunStats {
  runs: number;
  failures: number;
  lastRunAt: string | null;
  /** Milliseconds spent in all runs. */
  totalMs: number;
  /** The last FAILURES_KEPT failures, newest last. */
  lastFailures: { at: string; message: string }[];
}

export interface InvokerOptions {
  /** Where ctx.nodes sends node-commands: the composition root wires it to busØ. Absent: ctx.nodes fails with a one-line error. */
  nodes?: NodesPort;
  retention?: Partial<Retention>;
  /** How often each driver reconciles every resource of its types again (60 s; 0: never). */
  resyncMs?: number;
}

export class Invoker {
  readonly sys: System;
  readonly sandbox: Sandbox;
  private readonly apps = new Map<string, LoadedApp>();

  nodes: NodesPort | undefined;
  readonly retention: Retention;
  readonly resyncMs: number;
  private readonly stats = new Map<string, RunStats>();
  /** Invocation records by age (oldest first), read from the tree once, then kept up to date. */
  private records: { name: string; at: number }[] | null = null;
  private collecting: Promise<void> | null = null;

  constructor(sys: System, sandbox: Sandbox, opts: InvokerOptions = {}) {
    this.sys = sys;
    this.sandbox = sandbox;
    this.nodes = opts.nodes;
    this.retention = { ...DEFAULT_RETENTION, ...opts.retention };
    if (!(this.retention.count >= 0) || !(this.retention.ageMs >= 0)) throw new OsError('invalid', 'the invocation retention needs a count and an age of at least 0');
    this.resyncMs = opts.resyncMs ?? 60_000;
  }

  /** Runs of each handler and driver (by handler name, `APP.HANDLER` or `APP.DRIVER.TYPE`), of one app or all. */
  runs(app?: string): Record<string, RunStats> {
    const out: Record<string, RunStats> = {};
    for (const [k, v] of this.stats) if (app === undefined || k.startsWith(`${app}.`)) out[k] = structuredClone(v);
    return out;
  }

  private count(name: string, ms: number, error?: unknown): void {
    let st = this.stats.get(name);
    if (!st) this.stats.set(name, (st = { runs: 0, failures: 0, lastRunAt: null, totalMs: 0, lastFailures: [] }));
    st.runs++;
    st.totalMs += Math.round(ms);
    st.lastRunAt = new Date().toISOString();
    if (error !== undefined) {
      st.failures++;
      st.lastFailures.push({ at: st.lastRunAt, message: (error instanceof Error ? error.message : String(error)).split('\n')[0].slice(0, 500) });
      if (st.lastFailures.length > FAILURES_KEPT) st.lastFailures.shift();
    }
  }

  /** Runs a driver's reconcile for one resource and records what it returned as TYPE/observed. */
  private async reconcile(app: LoadedApp, actor: Actor, h: HandlerRun, reason: 'change' | 'resync', desired: Resource | null, ref: { name: string; namespace: string }): Promise<void> {
    const type = h.driverOf!;
    const obsType = `${type}/observed`;
    const prev = this.sys.core.get(obsType, ref.name, ref.namespace);
    const r = await this.sandbox.run(h.program, { reason, ref: { type, name: ref.name, namespace: ref.namespace }, desired, observed: prev ? prev.data ?? null : null }, this.host(app, actor), h.limits, actor.name);
    const out = r.output as { observed?: unknown; cost?: unknown } | null | undefined;
    if (isRecord(out) && 'observed' in out) {
      const data = isRecord(out.cost) ? { ...(isRecord(out.observed) ? out.observed : { value: out.observed }), cost: out.cost } : out.observed;
      await this.sys.submit({ op: 'apply', resource: { type: obsType, name: ref.name, namespace: ref.namespace, data } }, SYSTEM);
    } else if (desired === null && prev && out === null) {
      await this.sys.submit({ op: 'delete', resource: { type: obsType, name: ref.name, namespace: ref.namespace } }, SYSTEM).catch(() => {});
    }
  }

  private readonly stopHandlers = new Map<string, (() => void)[]>();
  /** Per app, the names its handlers (and drivers) run under: their cursors are kept by the core. */
  private readonly handlerNames = new Map<string, string[]>();

  /**
   * Makes an app invocable (replacing one of the same name), installs its filters into
   * `appFilters` (when given) and starts its handlers: each change matching a handler's query
   * runs its program with {action, index, old, new}, with the app's manifest permissions.
   */
  /** The manifests of the apps loaded here (for the web console's apps view). */
  manifests(): LoadedApp['manifest'][] {
    return [...this.apps.values()].map((a) => a.manifest);
  }

  add(app: LoadedApp, appFilters?: AppFilters): void {
    const before = this.handlerNames.get(app.manifest.name) ?? [];
    this.remove(app.manifest.name, appFilters);
    this.apps.set(app.manifest.name, app);
    this.sys.permissions.setAppGrants(app.manifest.name, app.manifest.permissions.resources);
    appFilters?.set(app);
    const actor = appActor(app.manifest.name);
    const stops: (() => void)[] = [];
    const names: string[] = [];
    const register = (h: HandlerRun): void => {
      names.push(h.name);
      stops.push(
        this.sys.handlers.register({
          name: h.name,
          query: h.query,
          handle: async (ev) => {
            const t0 = performance.now();
            try {
              if (h.driverOf) {
                const e = ev as unknown as { new?: Resource | null; old?: Resource | null };
                const ref = (e.new ?? e.old)!;
                await this.reconcile(app, actor, h, 'change', e.new ?? null, { name: ref.name, namespace: ref.namespace });
              } else {
                await this.sandbox.run(h.program, ev, this.host(app, actor), h.limits, actor.name);
              }
            } catch (err) {
              this.count(h.name, performance.now() - t0, err);
              throw err;
            }
            this.count(h.name, performance.now() - t0);
          },
          // A driver also reconciles every resource of its type now and then (level-triggered):
          // what a change event missed, or a resource that drifted, is repaired at the next resync.
          ...(h.driverOf && this.resyncMs > 0
            ? {
                resyncMs: this.resyncMs,
                resync: async (snap: { resources: Resource[] }) => {
                  for (const res of snap.resources.slice(0, RESYNC_RESOURCES_MAX)) {
                    const t0 = performance.now();
                    try {
                      await this.reconcile(app, actor, h, 'resync', res, res);
                      this.count(h.name, performance.now() - t0);
                    } catch (e) {
                      this.count(h.name, performance.now() - t0, e);
                    }
                  }
                },
              }
            : {}),
        }),
      );
    };
    for (const h of handlersOf(app)) register(h);
    this.stopHandlers.set(app.manifest.name, stops);
    this.handlerNames.set(app.manifest.name, names);
    // Handlers a new version no longer has: their cursors would only linger.
    this.forget(before.filter((n) => !names.includes(n)));
  }

  private forget(handlers: string[]): void {
    for (const n of handlers) {
      try {
        this.sys.handlers.remove(n);
      } catch {} // never started, or removed already
    }
  }

  /** The app of that name that is invocable now, if any. */
  app(name: string): LoadedApp | undefined {
    return this.apps.get(name);
  }

  /** Every app invocable now (installed ones and folders loaded with `os0 up --app`). */
  loaded(): LoadedApp[] {
    return [...this.apps.values()];
  }

  /**
   * Stops an app's handlers and makes it no longer invocable. Its handlers' cursors are kept (a
   * restart resumes them) unless `forget` (an uninstall: a later install starts afresh).
   */
  remove(name: string, appFilters?: AppFilters, opts: { forget?: boolean } = {}): boolean {
    for (const stop of this.stopHandlers.get(name) ?? []) stop();
    this.stopHandlers.delete(name);
    if (opts.forget) this.forget(this.handlerNames.get(name) ?? []);
    this.handlerNames.delete(name);
    appFilters?.remove(name);
    this.sys.permissions.setAppGrants(name, null);
    return this.apps.delete(name);
  }

  /** Runs a capability and waits for it; a program's failure is a result with status 'failed', not a rejection. */
  async invoke(actor: Actor, app: string, capability: string, input: unknown): Promise<InvocationResult> {
    return (await this.start(actor, app, capability, input)).done;
  }

  /**
   * Checks the right to invoke, records the invocation and starts it. Rejects (OsError) when the
   * actor may not invoke the app, the app or capability is unknown, or the record cannot be written.
   */
  async start(actor: Actor, appName: string, capability: string, input: unknown): Promise<StartedInvocation> {
    if (typeof appName !== 'string' || appName === '') throw new OsError('invalid', 'an invocation needs {"app": NAME, "capability": NAME, "input"?: JSON}');
    if (typeof capability !== 'string' || capability === '') throw new OsError('invalid', `an invocation of ${appName} needs a "capability" name`);
    this.sys.permissions.authorize(actor, 'invoke', 'app', '', `${appName}.${capability}`);
    const app = this.apps.get(appName);
    if (!app) throw new OsError('not_found', `no app "${appName}" is installed; 'os0 apps' lists the installed apps`);
    const cap = app.capabilities.get(capability);
    if (!cap) {
      throw new OsError('not_found', `app ${appName} has no capability "${capability}"; it has: ${[...app.capabilities.keys()].join(', ') || 'none'}`);
    }
    if (input === undefined) input = null;
    checkDepth(input, 'the input');
    const name = `${nameSafe(appName)}.${nameSafe(capability)}.${randomBytes(4).toString('hex')}`;
    const res = await this.sys.submit(
      {
        op: 'create',
        resource: {
          type: 'invocation',
          namespace: INVOCATION_NAMESPACE,
          name,
          tags: { app: appName, capability },
          data: { app: appName, version: app.manifest.version, capability, input, invoker: actor.name },
        },
      },
      SYSTEM,
    );
    const id = res.resources[0].id;
    const limits: Partial<Limits> = {};
    if (cap.spec.timeoutMs !== undefined) {
      limits.cpuMs = cap.spec.timeoutMs;
      limits.wallMs = cap.spec.timeoutMs;
    }
    if (cap.spec.memoryMb !== undefined) limits.memoryMb = cap.spec.memoryMb;
    const done = this.run(id, name, app, cap.program, input, actor, limits);
    return { id, name, done };
  }

  private async run(id: string, name: string, app: LoadedApp, program: Program, input: unknown, actor: Actor, limits: Partial<Limits>): Promise<InvocationResult> {
    const t0 = performance.now();
    let result: InvocationResult;
    try {
      const r = await this.sandbox.run(program, input, this.host(app, actor), limits, actor.name);
      result = { id, name, status: 'succeeded', output: r.output, logs: r.logs, durationMs: Math.round(r.wallMs), cpuMs: r.cpuMs };
    } catch (e) {
      const code = e instanceof SandboxError ? e.code : 'internal';
      const message = e instanceof Error ? e.message : String(e);
      const cpuMs = e instanceof SandboxError && e.cpuMs !== undefined ? e.cpuMs : 0;
      result = { id, name, status: 'failed', error: { code, message }, logs: [], durationMs: Math.round(performance.now() - t0), cpuMs };
    }
    const observed: Record<string, unknown> = { status: result.status, logs: result.logs, durationMs: result.durationMs, cpuMs: result.cpuMs };
    if (result.status === 'succeeded') observed.output = result.output ?? null;
    else observed.error = result.error;
    try {
      await this.sys.submit({ op: 'apply', resource: { type: 'invocation/observed', namespace: INVOCATION_NAMESPACE, name, data: observed } }, SYSTEM);
    } catch (e) {
      // The answer still reaches the caller; the record says why it is missing.
      const why = `the observed state was not written: ${(e as Error).message}`;
      await this.sys
        .submit(
          {
            op: 'apply',
            resource: { type: 'invocation/observed', namespace: INVOCATION_NAMESPACE, name, data: { status: result.status, error: { code: 'internal', message: why }, logs: [], durationMs: result.durationMs, cpuMs: result.cpuMs } },
          },
          SYSTEM,
        )
        .catch(() => {});
    }
    await this.collect(name);
    return result;
  }

  /**
   * Keeps the invocation records within the retention: after each invocation, the oldest beyond
   * `retention.count` and those older than `retention.ageMs` are deleted (both resources). Never
   * fails an invocation: a record that cannot be deleted now is tried again after the next one.
   */
  private async collect(added: string): Promise<void> {
    while (this.collecting) await this.collecting;
    let done!: () => void;
    this.collecting = new Promise<void>((r) => (done = r));
    try {
      if (!this.records) {
        this.records = this.sys
          .list(SYSTEM, { type: 'invocation', namespace: INVOCATION_NAMESPACE, exact: true })
          .map((r) => ({ name: r.name, at: Date.parse(r.created) || 0 }))
          .sort((a, b) => a.at - b.at);
      } else if (!this.records.some((r) => r.name === added)) {
        this.records.push({ name: added, at: Date.now() });
      }
      const cutoff = Date.now() - this.retention.ageMs;
      while (this.records.length > 0 && (this.records.length > this.retention.count || this.records[0].at < cutoff)) {
        const old = this.records[0];
        try {
          for (const type of ['invocation/observed', 'invocation']) {
            if (this.sys.core.get(type, old.name, INVOCATION_NAMESPACE)) await this.sys.submit({ op: 'delete', resource: { type, name: old.name, namespace: INVOCATION_NAMESPACE } }, SYSTEM);
          }
        } catch {
          break;
        }
        this.records.shift();
      }
    } finally {
      this.collecting = null;
      done();
    }
  }

  /**
   * Runs an app version's `update` program (its migration) with the ctx of a capability, except
   * that writes are not submitted: they are checked like any host call and returned as commands,
   * for the caller to commit atomically with the switch to the new version. Reads see the live
   * state (not the staged writes). Rejects with the program's one-line error if it fails.
   */
  async migrate(app: LoadedApp, actor: Actor, input: unknown): Promise<{ commands: Command[]; logs: string[] }> {
    if (!app.update) return { commands: [], logs: [] };
    const staged: Command[] = [];
    const r = await this.sandbox.run(app.update.program, input, this.host(app, actor, staged), limitsOf(app.update.spec), actor.name);
    return { commands: staged, logs: r.logs };
  }

  /**
   * The host calls of one invocation: each allowed by the app's manifest AND by the invoker's
   * rights (for a handler, filter or driver the invoker is `app:NAME`, whose rights are the
   * manifest's). With `stage`, writes are appended there instead of submitted.
   */
  host(app: LoadedApp, invoker: Actor, stage?: Command[]): HostCalls {
    const sys = this.sys;
    const grants = app.manifest.permissions.resources;
    const appName = app.manifest.name;
    const refuse = (verb: string, type: string, ns: string): never => {
      throw new OsError('forbidden', `app ${appName} may not ${verb} ${type}${ns ? ` in ${ns}` : ''}: its os0.json permissions do not grant it`);
    };
    const check = (verb: HostVerb, type: string, ns: string): void => {
      if (!appAllows(grants, verb, type, ns)) refuse(verb, type, ns);
      sys.permissions.authorize(invoker, verb as Verb, type, ns);
    };
    const str = (v: unknown, what: string): string => {
      if (typeof v !== 'string') throw new OsError('invalid', `${what} must be a string`);
      return v;
    };
    const calls: Record<HostMethod, (args: unknown[]) => Promise<unknown> | unknown> = {
      'resources.get': ([type, name, namespace]) => {
        const t = str(type, 'type');
        const ns = namespace === undefined || namespace === null ? '' : str(namespace, 'namespace');
        check('get', t, ns);
        return sys.core.get(t, str(name, 'name'), ns) ?? null;
      },
      'resources.query': ([q]) => {
        const query = isRecord(q) ? q : {};
        const type = query.type === undefined ? undefined : str(query.type, 'type');
        const ns = query.namespace === undefined ? '' : str(query.namespace, 'namespace');
        if (type !== undefined && !grants.some((g) => g.verbs.includes('list') && g.types.some((t) => grantTypeMatches(t, type)))) refuse('list', type, ns);
        const clean: Query = {};
        if (type !== undefined) clean.type = type;
        if (query.namespace !== undefined) clean.namespace = ns;
        if (isRecord(query.tags)) clean.tags = query.tags as Record<string, string>;
        if (typeof query.exact === 'boolean') clean.exact = query.exact;
        const limit = typeof query.limit === 'number' && query.limit >= 0 ? Math.floor(query.limit) : undefined;
        const out = sys.list(invoker, clean).filter((r: Resource) => appAllows(grants, 'list', r.type, r.namespace));
        return limit !== undefined ? out.slice(0, limit) : out;
      },
      'commands.apply': async ([doc]) => {
        if (!isRecord(doc)) throw new OsError('invalid', 'commands.apply needs a resource document {type, name, namespace?, data?}');
        const type = str(doc.type, 'type');
        const name = str(doc.name, 'name');
        const ns = doc.namespace === undefined ? '' : str(doc.namespace, 'namespace');
        check(sys.core.get(type, name, ns) ? 'update' : 'create', type, ns);
        checkDepth(doc, 'the document');
        if (stage) {
          const { id: _id, ...clean } = structuredClone(doc);
          void _id;
          stage.push({ op: 'apply', resource: clean as unknown as ResourceInput });
          return { ...doc, namespace: ns };
        }
        const res = await sys.submit({ op: 'apply', resource: doc }, invoker);
        return res.resources[0] ?? null;
      },
      'secrets.get': ([name, namespace]) => {
        const n = str(name, 'name');
        const ns = namespace === undefined || namespace === null ? '' : str(namespace, 'namespace');
        const where = `${ns ? ns + '/' : ''}${n}`;
        if (!secretAsked(app, n, ns)) throw new OsError('forbidden', `app ${appName} may not read secret ${where}: its os0.json permissions.secrets does not name it`);
        if (!invoker.name.startsWith('app:')) sys.permissions.authorize(invoker, 'reveal', 'secret', ns);
        const r = sys.core.get('secret', n, ns);
        return r ? sys.unsealSecret(r) : null;
      },
      'nodes.send': async ([machine, command]) => {
        const m = str(machine, 'machine');
        if (!isRecord(command) || typeof command.type !== 'string' || command.type === '') throw new OsError('invalid', 'ctx.nodes.send(machine, command) needs a command {type: "DEVICE.ACTION", ...}');
        const devices = app.manifest.permissions.nodes?.devices ?? [];
        const t = command.type;
        if (!devices.some((d) => t === d || t.startsWith(`${d}.`))) {
          throw new OsError('forbidden', `app ${appName} may not send a "${t}" command: its os0.json permissions.nodes.devices ${devices.length ? `names only ${devices.join(', ')}` : 'names no device'}`);
        }
        if (stage) throw new OsError('invalid', 'ctx.nodes.send cannot run in an update (migration) program: it only stages resource writes');
        if (!this.nodes) throw new OsError('unavailable', 'ctx.nodes.send: this instance has no bus to send node-commands on; start it with a bus (os0 up)');
        return this.nodes.send(m, command as NodeCommand);
      },
      'nodes.list': async () => {
        if (!(app.manifest.permissions.nodes?.devices ?? []).length) throw new OsError('forbidden', `app ${appName} may not list machines: its os0.json names no device in permissions.nodes.devices`);
        if (!this.nodes) throw new OsError('unavailable', 'ctx.nodes.list: this instance has no bus and no machines; start it with a bus (os0 up)');
        return this.nodes.list();
      },
      'commands.delete': async ([type, name, namespace]) => {
        const t = str(type, 'type');
        const ns = namespace === undefined || namespace === null ? '' : str(namespace, 'namespace');
        check('delete', t, ns);
        if (stage) {
          stage.push({ op: 'delete', resource: { type: t, name: str(name, 'name'), namespace: ns } });
          return null;
        }
        const res = await sys.submit({ op: 'delete', resource: { type: t, name: str(name, 'name'), namespace: ns } }, invoker);
        return res.resources[0] ?? null;
      },
    };
    return {
      call: async (method, args) => {
        const f = Object.prototype.hasOwnProperty.call(calls, method) ? calls[method as HostMethod] : undefined;
        if (!f) throw new OsError('invalid', `no host call ${method}`);
        return f(args);
      },
    };
  }

  /**
   * `POST /v1/invocations {app, capability, input}`: waits and answers 200 with the result — a
   * program that failed is still 200, with status 'failed' and error {code, message}; the
   * invocation itself worked. `?wait=false` answers 202 {id, name} at once. Refusals before the
   * program runs (no right to invoke, unknown app) are the usual error statuses (403, 404).
   */
  mount(api: Api): void {
    api.app.post('/v1/invocations', async (c) => {
      const body = await readJson(c);
      if (!isRecord(body)) throw new OsError('invalid', 'an invocation needs {"app": NAME, "capability": NAME, "input"?: JSON}');
      const started = await this.start(c.get('actor'), body.app as string, body.capability as string, body.input);
      if (c.req.query('wait') === 'false') return c.json({ id: started.id, name: started.name }, 202);
      return c.json(await started.done, 200);
    });
  }
}
