/**
 * What `import ... from 'os0/sdk'` resolves to inside a sandboxed program: the bundler points the
 * specifier here, so a program's bundle carries only these few bytes. `defineCapability` only adds
 * types; the types describe the `ctx` the sandbox hands in (runtime/sandbox/prelude.ts builds it).
 */

export interface Resource {
  apiVersion?: string;
  id?: string;
  namespace: string;
  type: string;
  name: string;
  tags?: Record<string, string>;
  data?: unknown;
  [field: string]: unknown;
}

export interface ResourceQuery {
  type?: string;
  namespace?: string;
  tags?: Record<string, string>;
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
}

export type Capability<I = unknown, O = unknown> = (input: I, ctx: Ctx) => O | Promise<O>;

export function defineCapability<I = unknown, O = unknown>(fn: Capability<I, O>): Capability<I, O> {
  return fn;
}
