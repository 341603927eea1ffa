/**
 * An app folder: `os0.json` checked, and each capability compiled by the sandbox's compile().
 * Every failure is one line naming the folder and what to fix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { compile, MAX_LIMITS, type CompileOptions, type Program } from '../sandbox/index.ts';

/** A verb an app may be granted on resources through its host calls. */
export type HostVerb = 'get' | 'list' | 'create' | 'update' | 'delete';
export const HOST_VERBS: readonly HostVerb[] = ['get', 'list', 'create', 'update', 'delete'];

export interface ResourceGrant {
  /** Type names; '*' is every type of desired state, '*\/observed' every observed one. */
  types: string[];
  verbs: HostVerb[];
  /** Namespace prefixes; absent: every namespace. */
  namespaces?: string[];
}

export interface CapabilitySpec {
  entry: string;
  description: string;
  /** CPU and wall-clock limit of one invocation (default 1000 ms CPU, 10 s wall). */
  timeoutMs?: number;
  /** The isolate's heap (default 64). */
  memoryMb?: number;
}

/** A sandboxed filter: runs before the log on commands of its types; refuses by returning {allow: false, reason}. */
export interface FilterSpec extends CapabilitySpec {
  types?: string[];
}

/** A sandboxed handler: gets each change matching its query after apply, in log order. */
export interface HandlerSpec extends CapabilitySpec {
  query: { type?: string; namespace?: string; tags?: Record<string, string> };
}

/**
 * A driver: a handler on the app's (or built-in) types that acts on desired state and writes
 * `TYPE/observed`. It gets the same event as a handler: {action, index, old, new}.
 */
export interface DriverSpec extends CapabilitySpec {
  types: string[];
}

/** A service the app runs on the fleet (CONTRACT.md "Fleet"): install declares it, the scheduler runs it. */
export interface ServiceSpec {
  description?: string;
  replicas?: number;
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  resources?: { cpu?: number; memoryMb?: number };
  loadBalancer?: { port: number };
}

/** A resource type an app brings: the same fields as a built-in `type` resource's data. */
export interface AppTypeSpec {
  description?: string;
  scope?: 'namespaced' | 'cluster';
  schema?: Record<string, unknown>;
  observed?: boolean;
  usage?: { cpu?: string; memoryMb?: string; multiplier?: string };
  pricing?: { perHour?: number; perCpuHour?: number; perGiBHour?: number };
}

export interface Manifest {
  name: string;
  version: string;
  description?: string;
  keywords?: string[];
  license?: string;
  capabilities: Record<string, CapabilitySpec>;
  filters?: Record<string, FilterSpec>;
  handlers?: Record<string, HandlerSpec>;
  drivers?: Record<string, DriverSpec>;
  permissions: { resources: ResourceGrant[] };
  /** Other apps this one needs, by name, with semver ranges. */
  dependencies?: Record<string, string>;
  types?: Record<string, AppTypeSpec>;
  services?: Record<string, ServiceSpec>;
  /**
   * The migration run by `os0 upgrade` when this version replaces an older one: input
   * {from: {version, manifest}, to: {version, manifest}}, the ctx of a capability. Its writes
   * are staged and committed with the switch, atomically; if it throws, nothing is written.
   */
  update?: CapabilitySpec;
}

export interface LoadedCapability {
  spec: CapabilitySpec;
  program: Program;
}

export interface LoadedApp {
  dir: string;
  manifest: Manifest;
  capabilities: Map<string, LoadedCapability>;
  filters: Map<string, { spec: FilterSpec; program: Program }>;
  handlers: Map<string, { spec: HandlerSpec; program: Program }>;
  drivers?: Map<string, { spec: DriverSpec; program: Program }>;
  update?: { spec: CapabilitySpec; program: Program };
}

const APP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const CAP_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const VERSION = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$/;
const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);
const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((s) => typeof s === 'string');

/** Checks a parsed os0.json; returns the manifest or throws a one-line Error. */
export function checkManifest(m: unknown, where = 'os0.json'): Manifest {
  const bad = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (!isRecord(m)) bad('must be a JSON object');
  const o = m as Record<string, unknown>;
  if (typeof o.name !== 'string' || !APP_NAME.test(o.name)) bad(`"name" must be lowercase letters, digits and '-' (1-63), not ${JSON.stringify(o.name)}`);
  if (typeof o.version !== 'string' || !VERSION.test(o.version)) bad(`"version" must be a semantic version such as "1.0.0", not ${JSON.stringify(o.version)}`);
  if (o.description !== undefined && typeof o.description !== 'string') bad('"description" must be a string');
  if (!isRecord(o.capabilities)) bad('"capabilities" must be an object of {NAME: {entry, description}}');
  const caps = o.capabilities as Record<string, unknown>;
  const programs = (kind: string, group: Record<string, unknown>, extra: (name: string, cs: Record<string, unknown>) => void): void => {
    for (const [name, c] of Object.entries(group)) {
      if (!CAP_NAME.test(name)) bad(`${kind} name "${name}" must be lowercase letters, digits and '-'`);
      if (!isRecord(c)) bad(`${kind} "${name}" must be an object {entry, description}`);
      const cs = c as Record<string, unknown>;
      if (typeof cs.entry !== 'string' || cs.entry === '') bad(`${kind} "${name}" needs "entry": the program's file, relative to the app folder`);
      if (path.isAbsolute(cs.entry as string) || path.normalize(cs.entry as string).split(/[\\/]/)[0] === '..') bad(`${kind} "${name}": entry "${cs.entry}" must be inside the app folder`);
      if (typeof cs.description !== 'string') bad(`${kind} "${name}" needs a "description" string`);
      if (cs.timeoutMs !== undefined && !(Number.isInteger(cs.timeoutMs) && (cs.timeoutMs as number) > 0 && (cs.timeoutMs as number) <= MAX_LIMITS.cpuMs)) {
        bad(`${kind} "${name}": timeoutMs must be an integer from 1 to ${MAX_LIMITS.cpuMs}`);
      }
      if (cs.memoryMb !== undefined && !(Number.isInteger(cs.memoryMb) && (cs.memoryMb as number) >= 8 && (cs.memoryMb as number) <= MAX_LIMITS.memoryMb)) {
        bad(`${kind} "${name}": memoryMb must be an integer from 8 to ${MAX_LIMITS.memoryMb}`);
      }
      extra(name, cs);
    }
  };
  programs('capability', caps, () => {});
  if (o.filters !== undefined && !isRecord(o.filters)) bad('"filters" must be an object of {NAME: {entry, description, types?}}');
  programs('filter', (o.filters ?? {}) as Record<string, unknown>, (name, cs) => {
    if (cs.types !== undefined && (!isStrings(cs.types) || cs.types.length === 0)) bad(`filter "${name}": types must be a non-empty array of type names`);
  });
  if (o.handlers !== undefined && !isRecord(o.handlers)) bad('"handlers" must be an object of {NAME: {entry, description, query}}');
  programs('handler', (o.handlers ?? {}) as Record<string, unknown>, (name, cs) => {
    const q = cs.query as Record<string, unknown> | undefined;
    if (!isRecord(q) || (q.type !== undefined && typeof q.type !== 'string') || (q.namespace !== undefined && typeof q.namespace !== 'string') || (q.tags !== undefined && !isRecord(q.tags))) {
      bad(`handler "${name}" needs "query": {type?, namespace?, tags?}`);
    }
  });
  const perms = o.permissions ?? { resources: [] };
  if (!isRecord(perms)) bad('"permissions" must be an object {resources: [...]}');
  const res = (perms as Record<string, unknown>).resources ?? [];
  if (!Array.isArray(res)) bad('"permissions.resources" must be an array of {types, verbs, namespaces?}');
  (res as unknown[]).forEach((g, i) => {
    if (!isRecord(g)) bad(`permissions.resources[${i}] must be an object {types, verbs, namespaces?}`);
    const gr = g as Record<string, unknown>;
    if (!isStrings(gr.types) || gr.types.length === 0) bad(`permissions.resources[${i}].types must be a non-empty array of type names`);
    if (!isStrings(gr.verbs) || gr.verbs.length === 0) bad(`permissions.resources[${i}].verbs must be a non-empty array of ${HOST_VERBS.join(', ')}`);
    for (const v of gr.verbs as string[]) if (!(HOST_VERBS as readonly string[]).includes(v)) bad(`permissions.resources[${i}]: unknown verb "${v}"; use ${HOST_VERBS.join(', ')}`);
    if (gr.namespaces !== undefined && !isStrings(gr.namespaces)) bad(`permissions.resources[${i}].namespaces must be an array of namespace prefixes`);
  });
  return {
    ...(o as unknown as Manifest),
    capabilities: caps as unknown as Record<string, CapabilitySpec>,
    permissions: { resources: res as ResourceGrant[] },
  };
}

/** Reads and checks DIR/os0.json and compiles every capability (rootDir = DIR). */
export async function loadAppFolder(dir: string, opts: Omit<CompileOptions, 'rootDir'> = {}): Promise<LoadedApp> {
  const root = path.resolve(dir);
  const file = path.join(root, 'os0.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${dir}: no os0.json; an app folder needs a manifest (see CONTRACT.md "Apps")` : `${file}: cannot read it (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON (${(e as Error).message})`);
  }
  const manifest = checkManifest(parsed, file);
  const build = async (kind: string, name: string, spec: CapabilitySpec): Promise<Program> => {
    const entry = path.join(root, spec.entry);
    if (!fs.existsSync(entry)) throw new Error(`${file}: ${kind} "${name}": entry ${spec.entry} does not exist`);
    let p: Program;
    try {
      p = await compile(entry, { ...opts, rootDir: root });
    } catch (e) {
      throw new Error(`${manifest.name}.${name} does not compile: ${(e as Error).message}`);
    }
    return Object.freeze({ ...p, name: `${manifest.name}.${name}`, app: `${manifest.name}@${manifest.version}` });
  };
  const capabilities = new Map<string, LoadedCapability>();
  for (const [name, spec] of Object.entries(manifest.capabilities)) capabilities.set(name, { spec, program: await build('capability', name, spec) });
  const filters = new Map<string, { spec: FilterSpec; program: Program }>();
  for (const [name, spec] of Object.entries(manifest.filters ?? {})) filters.set(name, { spec, program: await build('filter', name, spec) });
  const handlers = new Map<string, { spec: HandlerSpec; program: Program }>();
  for (const [name, spec] of Object.entries(manifest.handlers ?? {})) handlers.set(name, { spec, program: await build('handler', name, spec) });
  return { dir: root, manifest, capabilities, filters, handlers };
}
