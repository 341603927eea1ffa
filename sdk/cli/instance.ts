/**
 * The composition root: one osØ instance as services that start in order and stop in reverse
 * (services.ts). `os0 up` builds it, and so do the tests and the benches that need a whole
 * instance in their own process; nothing below sdk/cli knows the whole.
 *
 *   data      the data directory, locked (datadir.ts)
 *   core      the System: the log, the tree, permissions, economy, handlers
 *   bus       busØ: the embedded bus in DATA/bus, or NATS JetStream (--bus nats://...)
 *   machines  (see below)
 *   kernel    the zero-procs (core/kernel): reconciler, scheduler, executor, sensor, health
 *   sandbox   the sandbox processes, the app filters and the invoker
 *   registry  the embedded package registry (optional)
 *   store     the app store, installing from that registry (optional)
 *   apps      app folders loaded for development (--app)
 *   http      the HTTP API, with the invoker's and the store's routes and the web console
 *             (sdk/console/), then the registry's port
 *
 *   machines  the machines zero-proc: registered/heartbeat events -> machine, machine/observed
 *   agent     the host's node agent (os0 up), on that bus, once the API serves (optional)
 *
 * The http service also serves the embedded bus at /v1/bus for agents on other machines, and
 * POST /v1/nodes/:name/token (runtime/agent/routes.ts).
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Api } from '../../core/api/server.ts';
import { ADMIN_GROUP, SYSTEM_ACTOR } from '../../core/auth/permission.ts';
import { openBus, type Bus } from '../../core/bus/index.ts';
import { Kernel } from '../../core/kernel/index.ts';
import { Machines } from '../../core/kernel/machines.ts';
import type { Resource } from '../../core/resource.ts';
import { System } from '../../core/system.ts';
import { Agent, type AgentOptions } from '../../runtime/agent/agent.ts';
import { mountNodeRoutes } from '../../runtime/agent/routes.ts';
import { Registry } from '../../registry/server/index.ts';
import { AppFilters, busNodes, Invoker, loadAppFolder, type Retention } from '../../runtime/invoke/index.ts';
import { Sandbox, type SandboxOptions } from '../../runtime/sandbox/index.ts';
import { mountStore, Store } from '../../store/index.ts';
import { mountConsole } from '../console/serve.ts';
import { DataDir } from './datadir.ts';
import { Services, service, type Service } from './services.ts';

export interface InstanceOptions {
  /** The data directory (created if missing). */
  data: string;
  /** The API's port: 0 for any free one, null for no HTTP at all (in-process use). Default 7070. */
  port?: number | null;
  /** Run the kernel's zero-procs (default true). */
  kernel?: boolean;
  /** The bus: 'embedded' (default, in DATA/bus) or nats://HOST:PORT[,HOST:PORT...]. */
  bus?: string;
  /** Streams' prefix on a shared NATS (default os0). */
  busPrefix?: string;
  /**
   * The host's node agent (`os0 up` runs one; default none): its name (default `local`), its
   * DNS device's port on 127.0.0.1 (default 7053; 0 for any free one; null for none), and the
   * rest of its settings.
   */
  agent?: false | (Partial<Omit<AgentOptions, 'bus' | 'dataDir'>> & { dnsPort?: number | null });
  /** How often the machines zero-proc checks for missed heartbeats (ms, default 1000). */
  machinesCheckMs?: number;
  /** App folders to load and make invocable (development; the store installs the real ones). */
  apps?: string[];
  /** The core's log and memory settings. */
  retainRecords?: number;
  historyRecords?: number;
  segmentBytes?: number;
  /** Seconds between bookmarks on an idle watch. */
  bookmarkSeconds?: number;
  sandbox?: SandboxOptions;
  /**
   * The registry the store installs from: 'embedded' (default: served at port + 1, taking this
   * instance's tokens), another one by URL (and its metadata key, if known), or false for
   * neither registry nor store.
   */
  registry?: 'embedded' | { url: string; key?: string } | false;
  /** How many invocation records are kept, and for how long (runtime/invoke DEFAULT_RETENTION). */
  invocations?: Partial<Retention>;
  /** Lock the data directory against a second instance (default true). */
  lock?: boolean;
}

function need<T>(v: T | null, what: string): T {
  if (v === null) throw new Error(`the ${what} is not running (start the instance first)`);
  return v;
}

export class Instance extends Services {
  readonly opts: InstanceOptions;
  readonly data: DataDir;
  /** Built before the core: the core runs app filters, and the sandbox attaches to them. */
  readonly appFilters = new AppFilters();
  private sysNow: System | null = null;
  private kernelNow: Kernel | null = null;
  private sandboxNow: Sandbox | null = null;
  private invokerNow: Invoker | null = null;
  private busNow: Bus | null = null;
  private registryNow: Registry | null = null;
  private storeNow: Store | null = null;
  private apiNow: Api | null = null;
  private portNow = 0;
  private registryUrlNow: string | null = null;
  private machinesNow: Machines | null = null;
  private agentNow: Agent | null = null;

  /** Builds (does not start) an instance: `await inst.start()`, later `await inst.stop()`. */
  constructor(opts: InstanceOptions) {
    super();
    if (opts.bus && opts.bus !== 'embedded' && !opts.bus.startsWith('nats://')) throw new Error(`--bus ${opts.bus}: use embedded or nats://HOST:PORT[,HOST:PORT...]`);
    this.opts = opts;
    this.data = new DataDir(opts.data, { lock: opts.lock });
    const port = opts.port === undefined ? 7070 : opts.port;
    const registry = opts.registry ?? 'embedded';
    this.add(this.data);
    // A port that is taken is found before anything writes to the data directory (the zero-procs
    // write as soon as they start), so a failed start leaves an existing directory as it was.
    if (port) this.add(this.portsFree(registry === 'embedded' ? [port, port + 1] : [port]));
    this.add(this.core());
    this.add(this.fleetBus());
    this.add(this.machines());
    if (opts.kernel !== false) this.add(this.kernel());
    this.add(this.sandboxes());
    if (registry === 'embedded') this.add(this.embeddedRegistry(port));
    else if (registry) this.registryUrlNow = registry.url;
    if (registry) this.add(this.appStore(registry === 'embedded' ? undefined : registry.key));
    if (opts.apps?.length) this.add(this.devApps(opts.apps));
    if (port !== null) this.add(this.http(port, registry === 'embedded'));
    if (opts.agent) this.add(this.hostAgent(opts.agent));
  }

  /** Checks that the API's (and the embedded registry's) ports are free; the http service binds them later. */
  private portsFree(ports: number[]): Service {
    return service(
      'ports',
      async () => {
        for (const p of ports) {
          const srv = net.createServer();
          try {
            await new Promise<void>((resolve, reject) => {
              srv.once('error', reject);
              srv.listen(p, '127.0.0.1', resolve);
            });
          } catch (e) {
            const code = (e as NodeJS.ErrnoException).code;
            const whose = p === ports[0] ? '' : " (the embedded registry's, port + 1)";
            throw new Error(code === 'EADDRINUSE' ? `port ${p}${whose} is in use; pass --port with a free one` : `cannot listen on 127.0.0.1:${p}: ${(e as Error).message}`);
          }
          await new Promise<void>((resolve) => srv.close(() => resolve()));
        }
      },
      async () => {},
    );
  }

  /** busØ: embedded in DATA/bus, or NATS; agents elsewhere reach the embedded one at /v1/bus. */
  private fleetBus(): Service {
    return service(
      'bus',
      async () => {
        const spec = this.opts.bus ?? 'embedded';
        try {
          this.busNow = await openBus(spec, { dir: path.join(this.dir, 'bus'), prefix: this.opts.busPrefix });
        } catch (e) {
          throw new Error(`the bus (${spec}): ${(e as Error).message}`);
        }
      },
      async () => {
        await this.busNow?.close();
        this.busNow = null;
      },
    );
  }

  /** The machines zero-proc (core/kernel/machines.ts). */
  private machines(): Service {
    return service(
      'machines',
      async (ctx) => {
        const m = new Machines({ core: this.sys.core, bus: this.bus, checkMs: this.opts.machinesCheckMs, report: ctx.report });
        await m.start();
        this.machinesNow = m;
      },
      async () => {
        await this.machinesNow?.stop();
        this.machinesNow = null;
      },
    );
  }

  /** The host's node agent: the same Agent as `os0 node join`, on this instance's bus. */
  private hostAgent(settings: NonNullable<InstanceOptions['agent']> & object): Service {
    return service(
      'agent',
      async (ctx) => {
        const agent = new Agent({
          ...settings,
          name: settings.name ?? 'local',
          dataDir: path.join(this.dir, 'agent'),
          bus: this.bus,
          dnsPort: settings.dnsPort === undefined ? 7053 : settings.dnsPort,
          dnsHost: '127.0.0.1',
          report: ctx.report,
        });
        try {
          await agent.start();
        } catch (e) {
          throw new Error(`the host agent: ${(e as Error).message}${/EADDRINUSE/.test(String((e as Error).message)) ? '; pass --dns-port N with a free port' : ''}`);
        }
        this.agentNow = agent;
        // `ready` means the host is a machine with its observed capacity: wait for the machines
        // zero-proc to have written it (bounded; a slow one is reported, not fatal).
        const until = Date.now() + 10_000;
        while (!this.sys.core.get('machine/observed', agent.name, 'system') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (!this.sys.core.get('machine/observed', agent.name, 'system')) ctx.report(`machine ${agent.name} is not observed yet; it will be once its heartbeats arrive`);
      },
      async () => {
        await this.agentNow?.stop();
        this.agentNow = null;
      },
    );
  }

  private core(): Service {
    const opts = this.opts;
    const dir = this.dir;
    return service(
      'core',
      async (ctx) => {
        try {
          this.sysNow = await System.open({
            dir,
            retainRecords: opts.retainRecords,
            historyRecords: opts.historyRecords,
            segmentBytes: opts.segmentBytes,
            filters: [this.appFilters],
            report: ctx.report,
          });
        } catch (e) {
          throw new Error(`cannot open ${dir}: ${(e as Error).message}`);
        }
        this.sysNow.writeAdminToken(dir);
        if (this.sysNow.core.torn) ctx.report(`repaired a torn WAL tail in ${this.sysNow.core.torn.file}`);
      },
      async () => {
        await this.sysNow?.close();
        this.sysNow = null;
      },
    );
  }

  /** The kernel's zero-procs (core/kernel): reconciler, scheduler, executor, sensor. */
  private kernel(): Service {
    return service(
      'kernel',
      async (ctx) => {
        const k = new Kernel(this.sys, this.bus, { report: ctx.report, resolveSecret: (ns, name, key) => this.resolveSecret(ns, name, key) });
        await k.start();
        this.kernelNow = k;
      },
      async () => {
        await this.kernelNow?.stop();
        this.kernelNow = null;
      },
    );
  }

  /** One key of a secret, for a process's env: read only when the executor sends the start. */
  private async resolveSecret(ns: string, name: string, key: string): Promise<string> {
    const r = this.sys.core.get('secret', name, ns);
    if (!r) throw new Error(`secret ${ns}/${name} does not exist`);
    const v = this.sys.unsealSecret(r)[key];
    if (v === undefined) throw new Error(`secret ${ns}/${name} has no key ${key}`);
    return v;
  }

  /** The sandbox processes, the app filters attached to them, and the invoker that runs apps there. */
  private sandboxes(): Service {
    return service(
      'sandbox',
      () => {
        const sandbox = new Sandbox(this.opts.sandbox);
        this.appFilters.attach(sandbox);
        this.sandboxNow = sandbox;
        const bus = this.busNow;
        const sys = this.sys;
        // ctx.nodes: commands to cmd.MACHINE on the bus; the machines are the tree's `machine` resources.
        const nodes = bus ? busNodes(bus, () => machineNames(sys)) : undefined;
        this.invokerNow = new Invoker(this.sys, sandbox, { nodes, retention: this.opts.invocations });
      },
      async () => {
        await this.sandboxNow?.close();
        this.sandboxNow = null;
        this.invokerNow = null;
      },
    );
  }

  private embeddedRegistry(port: number | null): Service {
    const regDir = path.join(this.dir, 'registry');
    return service(
      'registry',
      async () => {
        const sys = this.sys;
        let reg: Registry;
        try {
          // The embedded registry takes this instance's tokens as its own; admins are its admins.
          reg = await Registry.open({
            dir: regDir,
            authenticate: (token) => {
              const actor = sys.permissions.authenticate(token);
              return actor ? { actor: actor.name, admin: actor.groups.includes(ADMIN_GROUP), parent: actor.tokenId } : null;
            },
            // Registry tokens made with an osØ token die with it.
            parentAlive: (id) => sys.permissions.tokenAlive(id),
          });
        } catch (e) {
          throw new Error(`the embedded registry in ${regDir}: ${(e as Error).message}`);
        }
        this.registryNow = reg;
        // Its port is port + 1, taken by the http service after the API's, so that "port in use"
        // names the port the user asked for; with port 0 (or no API) it takes any free port now.
        if (port === 0 || port === null) {
          try {
            this.registryUrlNow = `http://127.0.0.1:${await reg.listen(0)}`;
          } catch (e) {
            await reg.close();
            this.registryNow = null;
            throw e;
          }
        } else this.registryUrlNow = `http://127.0.0.1:${port + 1}`;
      },
      async () => {
        await this.registryNow?.close();
        this.registryNow = null;
        this.registryUrlNow = null;
      },
    );
  }

  /** The app store; `key` is another registry's metadata key, when known (the embedded one's is read). */
  private appStore(key: string | undefined): Service {
    return service(
      'store',
      async (ctx) => {
        this.storeNow = await Store.open({
          sys: this.sys,
          invoker: this.invoker,
          appFilters: this.appFilters,
          dir: path.join(this.dir, 'packages'),
          registryUrl: this.registryUrl,
          registryKey: this.registryNow ? this.registryNow.info().keys.metadata.publicKey : key,
          report: ctx.report,
        });
      },
      () => {
        this.storeNow = null;
      },
    );
  }

  /** App folders loaded without a package (`os0 up --app`). */
  private devApps(folders: string[]): Service {
    return service('apps', async (ctx) => {
      for (const appDir of folders) {
        try {
          // Compiled programs are cached in the data directory, not in the app's folder.
          const app = await loadAppFolder(path.resolve(appDir), { cacheDir: path.join(this.dir, 'cache') });
          this.invoker.add(app, this.appFilters);
          ctx.report(`loaded app ${app.manifest.name}@${app.manifest.version} from ${appDir}`);
        } catch (e) {
          throw new Error(`--app ${appDir}: ${(e as Error).message}`);
        }
      }
    });
  }

  /** The HTTP API with the invoker's and the store's routes; then the embedded registry's port. */
  private http(port: number, registryPort: boolean): Service {
    return service(
      'http',
      async () => {
        const api = new Api(this.sys, { bookmarkSeconds: this.opts.bookmarkSeconds });
        this.invoker.mount(api);
        mountNodeRoutes(api, this.sys, this.bus);
        if (this.storeNow) mountStore(api, this.storeNow);
        // The web console at `/`, with the apps loaded here for its apps view.
        const invoker = this.invoker;
        mountConsole(api, { apps: () => invoker.manifests(), mayInvoke: (actor, app, cap) => this.sys.permissions.allowed(actor, 'invoke', 'app', '', `${app}.${cap}`) });
        this.apiNow = api;
        try {
          this.portNow = await api.listen(port);
          if (registryPort && port !== 0) {
            try {
              await this.registry.listen(port + 1);
            } catch (e) {
              throw new Error(`the embedded registry cannot use port ${port + 1}: ${(e as Error).message.replace(/;.*$/, '')}; pass --port P with P and P+1 free`);
            }
          }
        } catch (e) {
          await api.close();
          this.apiNow = null;
          this.portNow = 0;
          throw e;
        }
      },
      async () => {
        await this.apiNow?.close();
        this.apiNow = null;
        this.portNow = 0;
      },
    );
  }

  get dir(): string {
    return this.data.dir;
  }
  get sys(): System {
    return need(this.sysNow, 'core');
  }
  get kernelProcs(): Kernel {
    return need(this.kernelNow, 'kernel');
  }
  get sandbox(): Sandbox {
    return need(this.sandboxNow, 'sandbox');
  }
  get bus(): Bus {
    return need(this.busNow, 'bus');
  }
  get machinesProc(): Machines {
    return need(this.machinesNow, 'machines zero-proc');
  }
  /** The host's node agent (with `agent` set). */
  get agent(): Agent {
    return need(this.agentNow, 'host agent');
  }
  get invoker(): Invoker {
    return need(this.invokerNow, 'sandbox');
  }
  get registry(): Registry {
    return need(this.registryNow, 'embedded registry');
  }
  get store(): Store {
    return need(this.storeNow, 'store');
  }
  get api(): Api {
    return need(this.apiNow, 'HTTP API');
  }
  /** The API's bound port. */
  get port(): number {
    return need(this.portNow || null, 'HTTP API');
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get registryUrl(): string {
    return need(this.registryUrlNow, 'registry');
  }
  /** The admin token: DATA/admin.token, written on the first start. */
  get adminToken(): string {
    return fs.readFileSync(path.join(this.dir, 'admin.token'), 'utf8').trim();
  }
}

/** The machines' names: the tree's `machine` resources (none while the type is not defined). */
function machineNames(sys: System): string[] {
  try {
    return sys.list({ name: SYSTEM_ACTOR, groups: [] }, { type: 'machine' }).map((r) => r.name);
  } catch {
    return [];
  }
}

/** The instance `os0 up` runs, from its options (see Instance). */
export function buildInstance(opts: InstanceOptions): Instance {
  return new Instance(opts);
}
