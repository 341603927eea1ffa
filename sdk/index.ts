/**
 * `os0/sdk`: what an app's programs import. Types and identity helpers only, with no imports, so
 * a program's bundle carries a few bytes of it (the sandbox's bundler points `os0/sdk` here).
 *
 * The `ctx` a program gets is built in the sandbox from the host-call table
 * (runtime/sandbox/host-calls.ts); `Ctx` below declares exactly those calls (a test checks it).
 * See README.md beside this file.
 */

export interface Resource<D = unknown> {
  apiVersion?: string;
  id?: string;
  namespace: string;
  type: string;
  name: string;
  tags?: Record<string, string>;
  data?: D;
  [field: string]: unknown;
}

export interface ResourceQuery {
  type?: string;
  namespace?: string;
  tags?: Record<string, string>;
}

/** A command for a node's device, published to the node's command stream. `type` starts with a device the manifest names (`dns.set`, `proxy.route`…). */
export interface NodeCommand {
  type: string;
  [field: string]: unknown;
}

export interface Ctx {
  /** Appends one line to the invocation's log (arguments joined by spaces, objects as JSON). */
  log(...args: unknown[]): void;
  resources: {
    get(type: string, name: string, namespace?: string): Promise<Resource | null>;
    query(query: ResourceQuery): Promise<Resource[]>;
  };
  commands: {
    /** Create-or-update, through all of the core's filters. */
    apply(doc: Partial<Resource> & { type: string; name: string }): Promise<Resource>;
    delete(type: string, name: string, namespace?: string): Promise<unknown>;
  };
  secrets: {
    /** A secret's values, {KEY: VALUE}; only for secrets the app's os0.json names in permissions.secrets. Null if missing. */
    get(name: string, namespace?: string): Promise<Record<string, string> | null>;
  };
  nodes: {
    /**
     * Sends a command to a machine's agent (its bus stream `cmd.MACHINE`); only for the devices the
     * app's os0.json names in permissions.nodes.devices. Resolves with the stream sequence it got.
     */
    send(machine: string, command: NodeCommand): Promise<{ stream: string; seq: number }>;
    /** The machines of the fleet, by name. */
    list(): Promise<string[]>;
  };
}

/** What a handler gets on each change of a resource its query matches. */
export interface ChangeEvent<D = unknown> {
  action: 'create' | 'update' | 'delete';
  /** The change's index in the command log. */
  index: number;
  old: Resource<D> | null;
  new: Resource<D> | null;
}

/** One command of a batch a filter sees. */
export interface FilterCommand {
  op: 'create' | 'update' | 'apply' | 'delete';
  resource: Partial<Resource> & { type: string; name: string };
}

/** What a filter gets: the commands of its types about to be committed together, and who sent them. */
export interface FilterInput {
  commands: FilterCommand[];
  actor: string;
}

/** A filter's verdict: `{allow: true}` lets the batch through; anything else refuses it, with `reason`. Filters have no host calls. */
export interface FilterVerdict {
  allow: boolean;
  reason?: string;
}

/** What a driver's reconcile gets, for one resource of one of its types. */
export interface ReconcileInput<D = unknown, O = unknown> {
  /** Why it runs: a change of the resource, or the periodic resync. */
  reason: 'change' | 'resync';
  /** Which resource: still there when `desired` is null. */
  ref: { type: string; name: string; namespace: string };
  /** The desired resource; null once it is deleted (undo what was done, return null). */
  desired: Resource<D> | null;
  /** What the last reconcile reported (TYPE/observed's data), null at first. */
  observed: O | null;
}

/** What reconcile returns: the observed state to record (TYPE/observed), with its cost; or nothing (it wrote it itself, or there is nothing to record). */
export type ReconcileResult<O = unknown> = { observed: O; cost?: { perHour: number } } | null | undefined | void;

export type Capability<I = unknown, O = unknown> = (input: I, ctx: Ctx) => O | Promise<O>;
export type Handler<D = unknown> = (event: ChangeEvent<D>, ctx: Ctx) => void | Promise<void>;
export type Filter = (input: FilterInput) => FilterVerdict | Promise<FilterVerdict>;
export type Reconcile<D = unknown, O = unknown> = (input: ReconcileInput<D, O>, ctx: Ctx) => ReconcileResult<O> | Promise<ReconcileResult<O>>;

export interface DriverSpec<D = unknown, O = unknown> {
  /** The resource types it drives (the same as its os0.json `drivers.NAME.types`). */
  types: string[];
  reconcile: Reconcile<D, O>;
}

/** A driver as a program: the sandbox calls it with a ReconcileInput; `types` stays on it for tests. */
export interface Driver<D = unknown, O = unknown> {
  (input: ReconcileInput<D, O>, ctx: Ctx): Promise<ReconcileResult<O>>;
  types: string[];
}

export function defineCapability<I = unknown, O = unknown>(fn: Capability<I, O>): Capability<I, O> {
  return fn;
}

export function defineHandler<D = unknown>(fn: Handler<D>): Handler<D> {
  return fn;
}

export function defineFilter(fn: Filter): Filter {
  return fn;
}

export function defineDriver<D = unknown, O = unknown>(spec: DriverSpec<D, O>): Driver<D, O> {
  const run = async (input: ReconcileInput<D, O>, ctx: Ctx): Promise<ReconcileResult<O>> => spec.reconcile(input, ctx);
  return Object.assign(run, { types: spec.types });
}
