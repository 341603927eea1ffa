/**
 * `os0/sdk/testing`: runs an app or a driver against a real in-process core (the System, the
 * sandbox and the invoker osØ runs), with a recording node in place of the fleet: what the app
 * sends with ctx.nodes.send is kept in `h.sent`, and nothing leaves the process.
 *
 *   const h = await harness({ app: dir });
 *   await h.invoke('greet', { name: 'x' });     // the capability's output (throws if it failed)
 *   await h.apply({ type: 'dns-record', name: 'www', namespace: 'demo', data: {...} });
 *   h.observed('dns-record', 'www', 'demo');     // what the driver recorded
 *   h.sent;                                      // [{machine, command}]
 *   await h.close();
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ADMIN_GROUP, type Actor } from '../core/auth/permission.ts';
import type { Resource, ResourceInput } from '../core/resource.ts';
import { System } from '../core/system.ts';
import { Invoker, loadAppFolder, type InvocationResult, type LoadedApp, type NodeCommand, type NodesPort, type Retention, type RunStats } from '../runtime/invoke/index.ts';
import { Sandbox } from '../runtime/sandbox/index.ts';

export interface HarnessOptions {
  /** The app's folder (with os0.json). */
  app: string;
  /** The machines ctx.nodes.list() answers (['local']). */
  machines?: string[];
  /** How often drivers resync (0: never, the default here, so tests see only what they cause). */
  resyncMs?: number;
  retention?: Partial<Retention>;
  /** How long settle() waits for the app's handlers and drivers at most (10 s). */
  settleMs?: number;
}

export interface SentCommand {
  machine: string;
  command: NodeCommand;
}

const ADMIN: Actor = { name: 'admin', groups: [ADMIN_GROUP] };

/** A node that keeps what it is sent. */
class RecordingNode implements NodesPort {
  readonly sent: SentCommand[] = [];
  private readonly machines: string[];
  constructor(machines: string[]) {
    this.machines = machines;
  }
  async send(machine: string, command: NodeCommand): Promise<{ stream: string; seq: number }> {
    if (!this.machines.includes(machine)) throw new Error(`no machine "${machine}": the harness has ${this.machines.join(', ')}`);
    this.sent.push({ machine, command: structuredClone(command) });
    return { stream: `cmd.${machine}`, seq: this.sent.length };
  }
  list(): string[] {
    return [...this.machines];
  }
}

export class Harness {
  readonly sys: System;
  readonly sandbox: Sandbox;
  readonly invoker: Invoker;
  readonly app: LoadedApp;
  private readonly node: RecordingNode;
  private readonly dir: string;
  private readonly settleMs: number;
  private seenParked = 0;

  constructor(sys: System, sandbox: Sandbox, invoker: Invoker, app: LoadedApp, node: RecordingNode, dir: string, settleMs: number) {
    this.sys = sys;
    this.sandbox = sandbox;
    this.invoker = invoker;
    this.app = app;
    this.node = node;
    this.dir = dir;
    this.settleMs = settleMs;
  }

  /** What ctx.nodes.send sent, in order. */
  get sent(): SentCommand[] {
    return this.node.sent;
  }

  /** Runs a capability as an admin; its output, or an Error with the program's one-line failure. */
  async invoke(capability: string, input?: unknown): Promise<unknown> {
    const r = await this.invokeResult(capability, input);
    if (r.status === 'failed') throw new Error(`${this.app.manifest.name}.${capability} failed (${r.error?.code}): ${r.error?.message}`);
    return r.output;
  }

  /** Runs a capability; the whole result (status, output or error, logs). */
  invokeResult(capability: string, input?: unknown, actor: Actor = ADMIN): Promise<InvocationResult> {
    return this.invoker.invoke(actor, this.app.manifest.name, capability, input);
  }

  /** Creates or updates a resource (as an admin), then waits until the app's handlers and drivers have seen it. */
  async apply(doc: ResourceInput): Promise<Resource> {
    const res = await this.sys.submit({ op: 'apply', resource: doc }, ADMIN);
    await this.settle();
    return res.resources[0];
  }

  /** Deletes a resource, then waits for the app's handlers and drivers. */
  async delete(type: string, name: string, namespace = ''): Promise<void> {
    await this.sys.submit({ op: 'delete', resource: { type, name, namespace } }, ADMIN);
    await this.settle();
  }

  get(type: string, name: string, namespace = ''): Resource | null {
    return this.sys.core.get(type, name, namespace) ?? null;
  }

  /** The data of TYPE/observed for a resource (what its driver recorded), or null. */
  observed(type: string, name: string, namespace = ''): unknown {
    return this.get(`${type}/observed`, name, namespace)?.data ?? null;
  }

  /** Runs of the app's handlers and drivers (runs, failures, the last failures). */
  runs(): Record<string, RunStats> {
    return this.invoker.runs(this.app.manifest.name);
  }

  /**
   * Waits until every handler and driver of the app has caught up with the log (and stays so);
   * throws the first failure of an event its handler gave up on since the last settle().
   */
  async settle(): Promise<void> {
    const prefix = `${this.app.manifest.name}.`;
    const deadline = Date.now() + this.settleMs;
    let steady = 0;
    while (Date.now() < deadline) {
      const mine = this.sys.handlers.status().filter((s) => s.name.startsWith(prefix));
      if (mine.every((s) => s.lag === 0)) {
        if (++steady >= 3) {
          // An event its handler gave up on (after its attempts) is a failure the test should see.
          const parked = mine.flatMap((s) => s.parked.filter((p) => p.index > this.seenParked).map((p) => ({ ...p, handler: s.name })));
          for (const p of parked) this.seenParked = Math.max(this.seenParked, p.index);
          if (parked.length) throw new Error(`${parked[0].handler} failed on ${parked[0].type} ${parked[0].namespace ? parked[0].namespace + '/' : ''}${parked[0].name}: ${parked[0].error}`);
          return;
        }
      } else steady = 0;
      await new Promise((r) => setTimeout(r, 10));
    }
    const behind = this.sys.handlers.status().filter((s) => s.name.startsWith(prefix) && s.lag > 0);
    throw new Error(`the app's handlers did not catch up within ${this.settleMs} ms: ${behind.map((s) => `${s.name} (${s.lastError ?? `lag ${s.lag}`})`).join('; ')}`);
  }

  async close(): Promise<void> {
    this.invoker.remove(this.app.manifest.name);
    await this.sandbox.close();
    await this.sys.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a core in a temporary folder, defines the app's types, loads the app (compiling its
 * programs) and starts its handlers and drivers.
 */
export async function harness(opts: HarnessOptions): Promise<Harness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-harness-'));
  let sys: System | undefined;
  let sandbox: Sandbox | undefined;
  try {
    const app = await loadAppFolder(path.resolve(opts.app), { cacheDir: path.join(dir, 'cache') });
    sys = await System.open({ dir: path.join(dir, 'core') });
    sandbox = new Sandbox({ processes: 1 });
    const node = new RecordingNode(opts.machines ?? ['local']);
    const invoker = new Invoker(sys, sandbox, { nodes: node, resyncMs: opts.resyncMs ?? 0, retention: opts.retention });
    // The app's types, as an install defines them: a driver's types name it as their driver.
    const drivers = new Map<string, string>();
    for (const [name, d] of app.drivers ?? []) for (const t of d.spec.types) drivers.set(t, name);
    for (const [type, spec] of Object.entries(app.manifest.types ?? {})) {
      const data = { ...spec, ...(drivers.has(type) ? { driver: app.manifest.name } : {}) };
      await sys.submit({ op: 'apply', resource: { type: 'type', name: type, data } }, ADMIN);
    }
    invoker.add(app);
    return new Harness(sys, sandbox, invoker, app, node, dir, opts.settleMs ?? 10_000);
  } catch (e) {
    await sandbox?.close().catch(() => {});
    await sys?.close().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

export type { InvocationResult, RunStats, NodeCommand };
