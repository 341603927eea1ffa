/**
 * The app store inside osØ (docs/apps.md): apps installed from
 * a registry as resources, made invocable in the sandbox, upgraded through their own migration
 * program, and removed with exactly what their install wrote. See README.md beside this file.
 *
 * Every install, upgrade and uninstall is one atomic batch: the packages are fetched and checked
 * (signature, trust, integrity, rollback) and the migration is run before anything is written,
 * so a failure at any step leaves the tree as it was. Operations run one at a time.
 */
import semver from 'semver';
import type { Actor } from '../core/auth/permission.ts';
import { OsError } from '../core/errors.ts';
import { newId, type Command, type Resource, type ResourceInput } from '../core/resource.ts';
import type { System } from '../core/system.ts';
import type { FetchedPackage } from '../registry/client/types.ts';
import { RegistryClient, RegistryError } from '../registry/client/index.ts';
import { appFromPackage } from '../registry/package/app.ts';
import { inspect } from '../registry/package/pack.ts';
import { handlersOf, type AppFilters, type Invoker, type LoadedApp, type Manifest } from '../runtime/invoke/index.ts';
import { APP_TAG, DECLARED_TYPES, declared, keyOfDeclared } from './declare.ts';
import { PackageFiles } from './packages.ts';
import { resolve, type Resolved, type Wanted } from './resolve.ts';
import { StoreClientState } from './state.ts';
import { trustPolicy } from './trust.ts';

export interface StoreOptions {
  sys: System;
  invoker: Invoker;
  appFilters?: AppFilters;
  /** Where installed apps' packages are kept. */
  dir: string;
  /** The registry installs come from. */
  registryUrl: string;
  /** Its metadata key (base64), when known (the embedded registry); otherwise pinned on first use. */
  registryKey?: string;
  report?: (message: string) => void;
}

/** What the app resource's data holds. */
export interface AppData {
  version: string;
  description: string;
  digest: string;
  integrity: string;
  keyId: string;
  registry: string;
  /** Dependencies, resolved: name → the range the manifest asks for. */
  dependencies: Record<string, string>;
  permissions: Manifest['permissions'];
  manifest: Manifest;
  installedBy: string;
  /** The version this one replaced, after an upgrade. */
  previous?: string;
}

export interface PlannedApp {
  name: string;
  version: string;
  /** install: new here; upgrade: replaces `from`. */
  action: 'install' | 'upgrade';
  from?: string;
  digest: string;
  keyId: string;
  description: string;
  capabilities: string[];
  permissions: Manifest['permissions'];
  dependencies: Record<string, string>;
}

export interface Plan {
  apps: PlannedApp[];
  notices: string[];
}

export interface Done extends Plan {
  index: number;
  /** The migration's log lines (upgrade). */
  logs?: string[];
}

export interface AppStatus {
  name: string;
  version: string;
  keyId: string;
  description: string;
  capabilities: string[];
  dependencies: Record<string, string>;
  status: string;
}

export interface Uninstalled {
  index: number;
  removed: string[];
  /** Installed apps that depend on it (only with force). */
  broken: string[];
}

interface Prepared {
  resolved: Resolved;
  pkg: FetchedPackage;
  app: LoadedApp;
}

const SERIAL_WAIT_MS_MAX = 120_000;

/** The registry client's refusals, as the API's errors: what the registry lacks, cannot give, or what failed a check. */
function asOsError(e: unknown): unknown {
  if (!(e instanceof RegistryError)) return e;
  if (e.status === 404) return new OsError('not_found', e.message);
  if (e.status === undefined && /cannot reach|timed out|broke off/i.test(e.message)) return new OsError('unavailable', e.message);
  if (e.status !== undefined && (e.status >= 500 || e.status === 429)) return new OsError('unavailable', e.message);
  return new OsError('rejected', e.message, 'store');
}

export class Store {
  readonly sys: System;
  readonly invoker: Invoker;
  readonly client: RegistryClient;
  private readonly appFilters: AppFilters | undefined;
  private readonly packages: PackageFiles;
  private readonly state: StoreClientState;
  private readonly registryUrl: string;
  private readonly report: (m: string) => void;
  private readonly loadErrors = new Map<string, string>();
  /** The registry of the install or upgrade under way (they run one at a time: serial). */
  private active: { client: RegistryClient; url: string } | null = null;
  private readonly clients = new Map<string, RegistryClient>();
  private tail: Promise<void> = Promise.resolve();

  private constructor(opts: StoreOptions) {
    this.sys = opts.sys;
    this.invoker = opts.invoker;
    this.appFilters = opts.appFilters;
    this.packages = new PackageFiles(opts.dir);
    this.state = new StoreClientState(opts.sys.core);
    this.registryUrl = opts.registryUrl.replace(/\/+$/, '');
    this.report = opts.report ?? (() => {});
    this.client = new RegistryClient({ url: this.registryUrl, trust: () => trustPolicy(this.sys.core), state: this.state, registryKey: opts.registryKey });
  }

  /**
   * The registry to install from: the embedded one (undefined, or its URL), one added with
   * `os0 registry add` (by name or URL: its pinned metadata key), or another URL (its key pinned
   * on first use, as the client always did). Every client check holds for each.
   */
  private registryFor(nameOrUrl: string | undefined): { client: RegistryClient; url: string } {
    if (nameOrUrl === undefined || nameOrUrl.replace(/\/+$/, '') === this.registryUrl) return { client: this.client, url: this.registryUrl };
    const isUrl = /^https?:\/\//.test(nameOrUrl);
    const url = nameOrUrl.replace(/\/+$/, '');
    const added = isUrl
      ? this.sys.core.query({ type: 'registry' }).find((r) => (r.data as { url: string }).url.replace(/\/+$/, '') === url)
      : this.sys.core.get('registry', nameOrUrl);
    if (!isUrl && !added) throw new OsError('not_found', `no registry named ${nameOrUrl}; 'os0 registry ls' lists them, 'os0 registry add NAME URL' adds one`);
    const d = added?.data as { url: string; metadataKey: string } | undefined;
    const target = d ? d.url.replace(/\/+$/, '') : url;
    const key = `${target} ${d?.metadataKey ?? ''}`;
    let client = this.clients.get(key);
    if (!client) {
      if (this.clients.size >= 64) this.clients.clear();
      client = new RegistryClient({ url: target, trust: () => trustPolicy(this.sys.core), state: this.state, registryKey: d?.metadataKey });
      this.clients.set(key, client);
    }
    return { client, url: target };
  }

  /** Opens the store and makes every installed app invocable again. */
  static async open(opts: StoreOptions): Promise<Store> {
    const store = new Store(opts);
    store.loadInstalled();
    return store;
  }

  private installedApps(): Resource[] {
    return this.sys.core.query({ type: 'app' });
  }

  private installedVersions(): Map<string, string> {
    return new Map(this.installedApps().map((r) => [r.name, (r.data as AppData).version]));
  }

  private loadInstalled(): void {
    const keep = new Set<string>();
    for (const r of this.installedApps()) {
      const d = r.data as AppData;
      keep.add(d.digest);
      try {
        const inspected = inspect(this.packages.read(d.digest));
        if (inspected.digest !== d.digest) throw new Error(`its package on disk hashes to ${inspected.digest}, not ${d.digest}`);
        this.activate(appFromPackage(inspected));
      } catch (e) {
        const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `its package ${d.digest} is missing from ${this.packages.dir}` : (e as Error).message;
        this.loadErrors.set(r.name, why);
        this.report(`app ${r.name}@${d.version} is installed but cannot run: ${why}; reinstall it (os0 uninstall ${r.name}, os0 install ${r.name}@${d.version})`);
      }
    }
    const swept = this.packages.sweep(keep);
    if (swept > 0) this.report(`removed ${swept} package file(s) no installed app uses`);
  }

  private activate(app: LoadedApp): void {
    this.invoker.add(app, this.appFilters);
    this.loadErrors.delete(app.manifest.name);
  }

  /**
   * One store operation at a time: each plans against the tree the previous one left. Only the
   * wait for the one before is bounded: an operation that gives up waiting never runs, and one
   * that runs is never reported as given up.
   */
  private serial<T>(f: () => Promise<T>): Promise<T> {
    const before = this.tail;
    const turn = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new OsError('unavailable', 'the store is busy with another install, upgrade or uninstall; try again')), SERIAL_WAIT_MS_MAX);
      void before.then(() => {
        clearTimeout(t);
        resolve();
      });
    });
    const run = turn.then(f);
    this.tail = Promise.allSettled([before, run]).then(() => {});
    return run;
  }

  list(actor: Actor): AppStatus[] {
    this.sys.authorize(actor, 'list', 'app', '');
    const installed = this.installedApps();
    const names = new Set(installed.map((r) => r.name));
    // Folders loaded with `os0 up --app` are listed too: unsigned, from their folder.
    const folders: AppStatus[] = this.invoker
      .loaded()
      .filter((a) => !names.has(a.manifest.name))
      .map((a) => ({ name: a.manifest.name, version: a.manifest.version, keyId: '-', description: a.manifest.description ?? '', capabilities: Object.keys(a.manifest.capabilities), dependencies: a.manifest.dependencies ?? {}, status: `loaded from ${a.dir}` }));
    return installed
      .map((r) => {
        const d = r.data as AppData;
        const live = this.invoker.app(r.name);
        const status = this.loadErrors.get(r.name) ?? (live?.manifest.version === d.version ? 'active' : 'not loaded');
        return { name: r.name, version: d.version, keyId: d.keyId, description: d.description, capabilities: Object.keys(d.manifest.capabilities), dependencies: d.dependencies, status };
      })
      .concat(folders)
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** What install (or upgrade) would do, with every package fetched and verified; writes nothing. */
  plan(actor: Actor, name: string, range: string, action: 'install' | 'upgrade', opts: { allowDowngrade?: boolean; registry?: string } = {}): Promise<Plan> {
    return this.serial(async () => {
      try {
        const { prepared, notices } = await this.prepare(actor, name, range, action, opts.allowDowngrade === true, opts.registry);
        return { apps: prepared.map((p) => this.describe(p)), notices };
      } finally {
        this.state.discard();
      }
    });
  }

  install(actor: Actor, name: string, range: string, opts: { expect?: Record<string, string>; allowDowngrade?: boolean; registry?: string } = {}): Promise<Done> {
    return this.serial(async () => {
      try {
        const { prepared, notices } = await this.prepare(actor, name, range, 'install', opts.allowDowngrade === true, opts.registry);
        this.checkExpected(prepared, opts.expect);
        const apps = prepared.map((p) => this.describe(p));
        const commands: Command[] = [];
        for (const p of prepared) commands.push(...this.installCommands(actor, p));
        const index = await this.commit(actor, prepared, commands);
        return { apps, notices, index };
      } finally {
        this.state.discard();
      }
    });
  }

  upgrade(actor: Actor, name: string, range: string, opts: { allowDowngrade?: boolean; expect?: Record<string, string>; registry?: string } = {}): Promise<Done> {
    return this.serial(async () => {
      try {
        const { prepared, notices } = await this.prepare(actor, name, range, 'upgrade', opts.allowDowngrade === true, opts.registry);
        this.checkExpected(prepared, opts.expect);
        const current = this.sys.core.get('app', name)!;
        const from = current.data as AppData;
        const target = prepared.find((p) => p.resolved.name === name)!;
        const to = target.pkg.manifest;
        let staged: { commands: Command[]; logs: string[] };
        try {
          staged = await this.invoker.migrate(target.app, actor, {
            from: { version: from.version, manifest: from.manifest },
            to: { version: to.version, manifest: to },
          });
        } catch (e) {
          throw new OsError('rejected', `the update migration of ${name}@${to.version} failed: ${(e as Error).message}; ${name}@${from.version} is still active and nothing was written`, 'update');
        }
        const apps = prepared.map((p) => this.describe(p));
        const commands: Command[] = [];
        for (const p of prepared) if (p !== target) commands.push(...this.installCommands(actor, p));
        commands.push(...this.upgradeCommands(actor, current, target), ...staged.commands);
        const index = await this.commit(actor, prepared, commands);
        return { apps, notices, index, logs: staged.logs };
      } finally {
        this.state.discard();
      }
    });
  }

  uninstall(actor: Actor, name: string, opts: { force?: boolean } = {}): Promise<Uninstalled> {
    return this.serial(async () => {
      this.sys.authorize(actor, 'delete', 'app', '');
      const app = this.sys.core.get('app', name);
      if (!app) throw new OsError('not_found', `no app "${name}" is installed; 'os0 apps' lists the installed apps`);
      const d = app.data as AppData;
      const dependents = this.installedApps().filter((r) => r.name !== name && Object.hasOwn((r.data as AppData).dependencies ?? {}, name)).map((r) => `${r.name}@${(r.data as AppData).version}`);
      if (dependents.length > 0 && !opts.force) {
        throw new OsError('conflict', `${dependents.join(', ')} depend${dependents.length === 1 ? 's' : ''} on ${name}; uninstall ${dependents.length === 1 ? 'it' : 'them'} first, or pass --force to break ${dependents.length === 1 ? 'it' : 'them'}`);
      }
      const commands: Command[] = [];
      // Resources of the app's own types cannot outlive their type.
      for (const type of Object.keys(d.manifest.types ?? {})) {
        const live = this.sys.core.query({ type });
        if (live.length > 0 && !opts.force) {
          const one = live.length === 1;
          const first = `${live[0].namespace ? live[0].namespace + '/' : ''}${live[0].name}`;
          throw new OsError('conflict', `${one ? `a ${type} resource (${first}) still exists` : `${live.length} ${type} resources (${first}, …) still exist`}, and ${name} brings the type ${type}; delete ${one ? 'it' : 'them'} first, or pass --force to delete ${one ? 'it' : 'them'} too`);
        }
        for (const r of live) commands.push({ op: 'delete', resource: { type, name: r.name, namespace: r.namespace } });
      }
      // Observed state its drivers wrote for the app's own types goes with them (what they wrote
      // for built-in or other apps' types belongs to those, and stays).
      const own = new Set(Object.keys(d.manifest.types ?? {}));
      for (const driver of Object.values(d.manifest.drivers ?? {})) {
        for (const type of driver.types) {
          if (!own.has(type) || !this.sys.core.get('type', type)) continue;
          own.delete(type);
          for (const r of this.sys.core.query({ type: `${type}/observed` })) commands.push({ op: 'delete', resource: { type: r.type, name: r.name, namespace: r.namespace } });
        }
      }
      commands.push({ op: 'delete', resource: { type: 'app', name } });
      const res = await this.sys.submit({ batch: commands }, actor, { via: 'store' });
      this.invoker.remove(name, this.appFilters, { forget: true });
      this.loadErrors.delete(name);
      const removed = res.resources.map((r) => `${r.type} ${r.namespace ? r.namespace + '/' : ''}${r.name}`);
      return { index: res.index, removed, broken: dependents };
    });
  }

  // ---- planning ----

  private async prepare(actor: Actor, name: string, range: string, action: 'install' | 'upgrade', allowDowngrade: boolean, registry?: string): Promise<{ prepared: Prepared[]; notices: string[] }> {
    try {
      // An upgrade comes from the registry the app was installed from, unless told otherwise.
      // (only one still added: the embedded registry's URL changes with the instance's port).
      const recorded = action === 'upgrade' ? (this.sys.core.get('app', name)?.data as AppData | undefined)?.registry?.replace(/\/+$/, '') : undefined;
      const stillAdded = recorded !== undefined && this.sys.core.query({ type: 'registry' }).some((r) => (r.data as { url: string }).url.replace(/\/+$/, '') === recorded);
      const from = registry ?? (stillAdded ? recorded : undefined);
      this.active = this.registryFor(from);
      return await this.prepareOrThrow(actor, name, range, action, allowDowngrade);
    } catch (e) {
      throw asOsError(e);
    }
  }

  private async prepareOrThrow(actor: Actor, name: string, range: string, action: 'install' | 'upgrade', allowDowngrade: boolean): Promise<{ prepared: Prepared[]; notices: string[] }> {
    if (typeof name !== 'string' || name === '') throw new OsError('invalid', 'name the app to install: {"app": NAME, "range"?: RANGE}');
    if (semver.validRange(range) === null) throw new OsError('invalid', `"${range}" is not a semver range (e.g. ^1.2.0, 1.x, 2.0.1)`);
    this.sys.authorize(actor, action === 'install' ? 'create' : 'update', 'app', '');
    const installed = this.installedVersions();
    const current = installed.get(name);
    if (action === 'install' && current !== undefined) throw new OsError('conflict', `${name}@${current} is installed already; use os0 upgrade ${name} to change its version`);
    if (action === 'upgrade' && current === undefined) throw new OsError('not_found', `${name} is not installed; use os0 install ${name}`);
    const dependents: Wanted[] = [];
    if (action === 'upgrade') {
      for (const r of this.installedApps()) {
        const d = r.data as AppData;
        const want = d.dependencies?.[name];
        if (want !== undefined) dependents.push({ name, range: want, by: `${r.name}@${d.version}` });
      }
    }
    const client = this.active?.client ?? this.client;
    const resolved = await resolve(client, { name, range, by: 'you' }, installed, action === 'upgrade' ? name : undefined, dependents);
    if (action === 'upgrade') {
      const target = resolved.find((r) => r.name === name)!;
      if (target.version === current) throw new OsError('conflict', `${name}@${current} is installed and is the highest version matching ${range}; nothing to upgrade`);
      if (semver.lt(target.version, current!) && !allowDowngrade) {
        throw new OsError('conflict', `${name}@${target.version} is older than the installed ${current}; pass --allow-downgrade to go back`);
      }
    }
    const notices: string[] = [];
    const prepared: Prepared[] = [];
    for (const r of resolved) {
      const pkg = await client.fetch(r.name, r.version, { allowRollback: allowDowngrade });
      if (pkg.version !== r.version || pkg.digest !== r.entry.digest) {
        throw new OsError('conflict', `the registry served ${r.name}@${pkg.version} (${pkg.digest}) for ${r.name}@${r.version} (${r.entry.digest}); refusing it`);
      }
      notices.push(...pkg.notices);
      const signed = pkg.manifest.dependencies ?? {};
      const listed = r.entry.dependencies ?? {};
      if (JSON.stringify(Object.entries(signed).sort()) !== JSON.stringify(Object.entries(listed).sort())) {
        throw new OsError('conflict', `the registry lists dependencies for ${r.name}@${r.version} that differ from its signed manifest; refusing it`);
      }
      this.checkInstallerHolds(actor, pkg.manifest);
      const app = appFromPackage(pkg);
      const taken = this.sys.handlers.status().filter((h) => h.remote);
      for (const h of handlersOf(app)) {
        if (taken.some((t) => t.name === h.name)) throw new OsError('conflict', `${r.name} runs a handler named ${h.name}, which a remote handler has taken; remove that one first`);
      }
      prepared.push({ resolved: r, pkg, app });
    }
    return { prepared, notices: [...new Set(notices)] };
  }

  /**
   * An install never hands an app more than its installer holds: every grant its manifest asks
   * for (each verb on each type in each namespace prefix, with no deny of the installer's
   * cutting into it) and `reveal` on each secret it names. An admin may grant anything.
   */
  private checkInstallerHolds(actor: Actor, m: Manifest): void {
    const refuse = (what: string): never => {
      throw new OsError('forbidden', `${actor.name} cannot install ${m.name}@${m.version}: its os0.json asks for ${what}, which ${actor.name} does not hold; ask an admin to install it`);
    };
    for (const g of m.permissions.resources) {
      if (!this.sys.permissions.holds(actor, g)) refuse(`${g.verbs.join(', ')} on ${g.types.join(', ')}${g.namespaces?.length ? ` in ${g.namespaces.join(', ')}` : ' everywhere'}`);
    }
    for (const sec of m.permissions.secrets ?? []) {
      if (!this.sys.permissions.holds(actor, { verbs: ['reveal'], types: ['secret'], namespaces: [sec.namespace ?? ''] })) refuse(`the secret ${sec.namespace ? sec.namespace + '/' : ''}${sec.name}`);
    }
  }

  private checkExpected(prepared: Prepared[], expect: Record<string, string> | undefined): void {
    if (!expect) return;
    const got = Object.fromEntries(prepared.map((p) => [p.resolved.name, p.pkg.digest]));
    for (const [n, digest] of Object.entries(got)) {
      if (expect[n] !== digest) throw new OsError('conflict', `the registry now offers a different ${n} than the one confirmed; run the command again to review it`);
    }
    for (const n of Object.keys(expect)) if (!(n in got)) throw new OsError('conflict', `${n} is no longer part of this install; run the command again to review it`);
  }

  private describe(p: Prepared): PlannedApp {
    const m = p.pkg.manifest;
    const from = this.sys.core.get('app', m.name);
    return {
      name: m.name,
      version: m.version,
      action: from ? 'upgrade' : 'install',
      ...(from ? { from: (from.data as AppData).version } : {}),
      digest: p.pkg.digest,
      keyId: p.pkg.keyId,
      description: m.description ?? '',
      capabilities: Object.keys(m.capabilities),
      permissions: m.permissions,
      dependencies: m.dependencies ?? {},
    };
  }

  private appData(actor: Actor, p: Prepared, previous?: string): AppData {
    const m = p.pkg.manifest;
    return {
      version: m.version,
      description: m.description ?? '',
      digest: p.pkg.digest,
      integrity: p.pkg.integrity,
      keyId: p.pkg.keyId,
      registry: this.active?.url ?? this.registryUrl,
      dependencies: m.dependencies ?? {},
      permissions: m.permissions,
      manifest: m,
      installedBy: actor.name,
      ...(previous ? { previous } : {}),
    };
  }

  /** The app resource and everything it declares, new. */
  private installCommands(actor: Actor, p: Prepared): Command[] {
    const m = p.pkg.manifest;
    const appId = newId(Date.now());
    const out: Command[] = [{ op: 'create', resource: { type: 'app', name: m.name, id: appId, tags: { publisher: p.pkg.keyId }, data: this.appData(actor, p) } }];
    const ids = new Map<string, string>();
    for (const d of declared(m)) {
      if (d.resource.type === 'type') this.checkTypeFree(m.name, d.resource.name);
      const id = newId(Date.now());
      ids.set(d.key, id);
      out.push({ op: 'create', resource: { ...d.resource, id, owner: [d.parent ? ids.get(d.parent)! : appId] } });
    }
    return out;
  }

  /** The switch of an installed app to a new version: the app updated, its declared resources brought in line. */
  private upgradeCommands(actor: Actor, current: Resource, p: Prepared): Command[] {
    const m = p.pkg.manifest;
    const existing = new Map<string, Resource>();
    for (const type of DECLARED_TYPES) for (const r of this.sys.core.query({ type, tags: { [APP_TAG]: m.name } })) existing.set(keyOfDeclared(r), r);
    const out: Command[] = [
      { op: 'update', expect: current.revision, resource: { type: 'app', name: m.name, tags: { publisher: p.pkg.keyId }, data: this.appData(actor, p, (current.data as AppData).version) } },
    ];
    const want = declared(m);
    const wanted = new Set(want.map((d) => d.key));
    const ids = new Map<string, string>();
    for (const d of want) {
      const old = existing.get(d.key);
      if (d.resource.type === 'type' && !old) this.checkTypeFree(m.name, d.resource.name);
      const id = old?.id ?? newId(Date.now());
      ids.set(d.key, id);
      const resource: ResourceInput = { ...d.resource, id, owner: [d.parent ? ids.get(d.parent)! : current.id] };
      out.push({ op: old ? 'update' : 'create', resource });
    }
    // Gone from the new version: deleted, unless an owner being deleted takes it along. A type
    // still in use cannot go: its resources would outlive their schema.
    for (const [k, r] of existing) {
      if (wanted.has(k) || r.type !== 'type') continue;
      const live = this.sys.core.query({ type: r.name, limit: 1 });
      if (live.length > 0) {
        throw new OsError('conflict', `${m.name}@${m.version} no longer brings the type ${r.name}, but ${r.name} resources exist (e.g. ${live[0].namespace ? live[0].namespace + '/' : ''}${live[0].name}); delete them first`);
      }
    }
    const goneIds = new Set([...existing].filter(([k]) => !wanted.has(k)).map(([, r]) => r.id));
    for (const [k, r] of existing) {
      if (wanted.has(k) || (r.owner ?? []).some((o) => goneIds.has(o))) continue;
      out.push({ op: 'delete', resource: { type: r.type, name: r.name, namespace: r.namespace } });
    }
    return out;
  }

  private checkTypeFree(app: string, type: string): void {
    const t = this.sys.core.get('type', type);
    if (t && t.tags[APP_TAG] !== app) {
      throw new OsError('conflict', `${app} declares the type "${type}", which exists already (${t.tags[APP_TAG] ? `from the app ${t.tags[APP_TAG]}` : 'built in'}); it cannot be installed beside it`);
    }
  }

  /** Keeps the packages, then submits everything as one batch and makes the apps invocable. */
  private async commit(actor: Actor, prepared: Prepared[], commands: Command[]): Promise<number> {
    for (const p of prepared) this.packages.write(p.pkg.digest, p.pkg.tgz);
    const state = this.state.command();
    if (state) commands.push(state);
    const res = await this.sys.submit({ batch: commands }, actor, { via: 'store' });
    for (const p of prepared) this.activate(p.app);
    return res.index;
  }
}
