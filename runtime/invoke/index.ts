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
import { SandboxError, type HostCalls, type Limits, type Program, type Sandbox } from '../sandbox/index.ts';
import type { HandlerSpec, HostVerb, LoadedApp, ResourceGrant } from './manifest.ts';
import { limitsOf, type AppFilters } from './app-filters.ts';

export { AppFilters } from './app-filters.ts';
export { loadAppFolder, checkManifest, type LoadedApp, type Manifest, type CapabilitySpec, type ResourceGrant } from './manifest.ts';
export { limitsOf } from './app-filters.ts';

/** Invocations and their observed state live here. */
export const INVOCATION_NAMESPACE = 'system';

export interface InvocationResult {
  /** The invocation resource's id. */
  id: string;
  /** Its name in namespace `system`: `APP.CAPABILITY.SHORTID`. */
  name: string;
  status: 'succeeded' | 'failed';
  output?: unknown;
  /** Why it failed: the sandbox's code ('threw', 'timeout', 'memory'…) and a one-line message. */
  error?: { code: string; message: string };
  logs: string[];
  durationMs: number;
  cpuMs: number;
}

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
export function handlersOf(app: LoadedApp): { name: string; query: HandlerSpec['query']; program: Program; limits: Partial<Limits> }[] {
  const out: { name: string; query: HandlerSpec['query']; program: Program; limits: Partial<Limits> }[] = [];
  for (const [name, h] of app.handlers) out.push({ name: `${app.manifest.name}.${name}`, query: h.spec.query, program: h.program, limits: limitsOf(h.spec) });
  for (const [name, d] of app.drivers ?? []) {
    for (const type of d.spec.types) out.push({ name: `${app.manifest.name}.${name}.${type}`, query: { type }, program: d.program, limits: limitsOf(d.spec) });
  }
  return out;
}

export class Invoker {
  readonly sys: System;
  readonly sandbox: Sandbox;
  private readonly apps = new Map<string, LoadedApp>();

  constructor(sys: System, sandbox: Sandbox) {
    this.sys = sys;
    this.sandbox = sandbox;
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
    const register = (name: string, query: HandlerSpec['query'], program: Program, limits: Partial<Limits>): void => {
      names.push(name);
      stops.push(
        this.sys.handlers.register({
          name,
          query,
          handle: async (ev) => {
            await this.sandbox.run(program, ev, this.host(app, actor), limits, actor.name);
          },
        }),
      );
    };
    for (const h of handlersOf(app)) register(h.name, h.query, h.program, h.limits);
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
    return result;
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
    const calls: Record<string, (args: unknown[]) => Promise<unknown> | unknown> = {
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
        const f = calls[method];
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
