/**
 * An app folder: `os0.json` checked against its JSON Schema (manifest.schema.ts), and each
 * program compiled by the sandbox's compile(). Every failure is one line naming the file and
 * what to fix.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import semver from 'semver';
import { BUILTIN_TYPES, type TypeSpec } from '../../core/types/builtin.ts';
import type { CompileOptions, Program } from '../sandbox/index.ts';
import { HOST_VERBS, MANIFEST_BYTES_MAX, MANIFEST_SCHEMA } from './manifest.schema.ts';

export { MANIFEST_BYTES_MAX, MANIFEST_SCHEMA, HOST_VERBS } from './manifest.schema.ts';

/** A verb an app may be granted on resources through its host calls. */
export type HostVerb = (typeof HOST_VERBS)[number];

export interface ResourceGrant {
  /** Type names; '*' is every type of desired state, '*\/observed' every observed one. */
  types: string[];
  verbs: HostVerb[];
  /** Namespace prefixes; absent: every namespace. */
  namespaces?: string[];
}

/** The node devices an app sends commands to with ctx.nodes.send (a command's type starts with one of them). */
export interface NodesGrant {
  devices: string[];
}

/** A secret an app reads with ctx.secrets.get(name, namespace?), asked for by name. */
export interface SecretGrant {
  name: string;
  namespace?: string;
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

/** A service the app runs on the fleet (docs/cli.md): install declares it, the scheduler runs it. */
export interface ServiceSpec {
  description?: string;
  replicas?: number;
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  resources?: { cpu?: number; memoryMb?: number };
  loadBalancer?: { port: number };
}

/** A resource type an app brings: a `type` resource's data, but for its driver (the store sets that). */
export type AppTypeSpec = Omit<TypeSpec, 'driver'>;

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
  permissions: { resources: ResourceGrant[]; secrets?: SecretGrant[]; nodes?: NodesGrant };
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

const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);

const ajv = new Ajv({ allErrors: false, verbose: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'reason', schemaType: 'string' });
ajv.addFormat('semver', { type: 'string', validate: (v: string) => semver.valid(v) === v });
ajv.addFormat('semver-range', { type: 'string', validate: (v: string) => semver.validRange(v) !== null });
let validator: ValidateFunction | null = null;
/** Compiled on first use, once. */
/** Type schemas (as JSON text) known to compile; bounded. */
const schemasCompiled = new Set<string>();
const SCHEMAS_COMPILED_MAX = 512;
const validateManifest = (m: unknown): boolean => (validator ??= ajv.compile(MANIFEST_SCHEMA))(m);

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** A JSON Pointer as a readable path: /capabilities/greet/timeoutMs → capabilities.greet.timeoutMs; a lone top-level field is quoted. */
export function readablePath(pointer: string): string {
  if (pointer === '') return 'the manifest';
  const parts = pointer.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (parts.length === 1) return JSON.stringify(parts[0]);
  let out = '';
  for (const p of parts) {
    if (/^\d+$/.test(p)) out += `[${p}]`;
    else if (IDENT.test(p) || /^[a-z0-9][a-z0-9-]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}

const child = (pointer: string, key: string): string => `${pointer}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;

function valueText(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
}

const ARTICLE: Record<string, string> = { object: 'an object', array: 'an array', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'a boolean', null: 'null' };
/** Keywords where a node's `reason` says it better than Ajv's message. */
const REASONED = new Set(['type', 'pattern', 'format', 'enum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'uniqueItems', 'const']);

/** Ajv's first error as `PATH REASON`. */
function explain(e: ErrorObject): string {
  const parent = (e.parentSchema ?? {}) as { reason?: string; properties?: Record<string, { reason?: string }> };
  // The value is worth repeating when it is a scalar (or of the wrong type), not a whole array.
  const withValue = (reason: string, value: unknown): string => {
    if (reason.includes('{value}')) return reason.replace('{value}', valueText(value));
    if (e.keyword === 'type' || value === null || typeof value !== 'object') return `${reason}, not ${valueText(value)}`;
    if (Array.isArray(value) && (e.keyword === 'maxItems' || e.keyword === 'minItems')) return `${reason} (it has ${value.length})`;
    return reason;
  };
  if (e.keyword === 'additionalProperties') {
    const field = (e.params as { additionalProperty: string }).additionalProperty;
    const known = Object.keys(parent.properties ?? {});
    return `unknown field ${JSON.stringify(field)} at ${e.instancePath || 'the top level'}${known.length ? `; the fields there are ${known.join(', ')}` : ''}`;
  }
  if (e.keyword === 'required') {
    const field = (e.params as { missingProperty: string }).missingProperty;
    const reason = parent.properties?.[field]?.reason;
    return `${readablePath(child(e.instancePath, field))} ${reason ? `${reason} (it is missing)` : 'is required'}`;
  }
  if (e.propertyName !== undefined) {
    // An error inside propertyNames: the key itself is wrong.
    return `${readablePath(e.instancePath)}: name ${JSON.stringify(e.propertyName)} ${parent.reason ?? e.message ?? 'is not allowed'}`;
  }
  if (e.keyword === 'propertyNames') return `${readablePath(e.instancePath)} has a bad name ${JSON.stringify((e.params as { propertyName: string }).propertyName)}`;
  const at = readablePath(e.instancePath);
  if (parent.reason && REASONED.has(e.keyword)) return `${at} ${withValue(parent.reason, e.data)}`;
  if (e.keyword === 'type') return `${at} must be ${(e.params as { type: string }).type.split(',').map((t) => ARTICLE[t] ?? t).join(' or ')}, not ${valueText(e.data)}`;
  if (e.keyword === 'enum') return `${at} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')}, not ${valueText(e.data)}`;
  if (e.keyword === 'maxProperties') return `${at} has too many entries; at most ${(e.params as { limit: number }).limit}`;
  return `${at} ${e.message ?? 'is invalid'}`;
}

/** Entry files are relative paths that stay inside the app folder. */
const entryInside = (entry: string): boolean => {
  if (path.isAbsolute(entry) || path.win32.isAbsolute(entry) || entry.includes('\\') || entry.includes('\0')) return false;
  return path.posix.normalize(entry).split('/')[0] !== '..';
};

/** Checks a parsed os0.json: the schema, then what a schema cannot say. Returns the manifest or throws a one-line Error `WHERE: PATH REASON`. */
export function checkManifest(m: unknown, where = 'os0.json'): Manifest {
  const bad = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (!isRecord(m)) bad(`must be a JSON object, not ${valueText(m)}`);
  if (!validateManifest(m)) bad(explain(validator!.errors![0]));
  const o = m as unknown as Manifest;
  for (const kind of ['capabilities', 'filters', 'handlers', 'drivers'] as const) {
    for (const [name, spec] of Object.entries(o[kind] ?? {})) {
      if (!entryInside(spec.entry)) bad(`${kind}.${name}.entry must be a path inside the app folder, not ${JSON.stringify(spec.entry)}`);
    }
  }
  if (o.update && !entryInside(o.update.entry)) bad(`update.entry must be a path inside the app folder, not ${JSON.stringify(o.update.entry)}`);
  if (o.dependencies && Object.hasOwn(o.dependencies, o.name)) bad(`dependencies.${o.name}: an app may not depend on itself; remove it`);
  for (const [name, t] of Object.entries(o.types ?? {})) {
    if (Object.hasOwn(BUILTIN_TYPES, name)) bad(`types.${name}: "${name}" is a built-in type; an app cannot redefine it, choose another name`);
    if (t.schema) {
      // Compiled as core's schema filter will compile it on install (a fresh Ajv: nothing cached
      // across apps). A fresh Ajv costs tens of ms, and the same schema is checked again at every
      // step of an install: remember the texts that compiled.
      const text = JSON.stringify(t.schema);
      if (!schemasCompiled.has(text)) {
        try {
          new Ajv({ strict: false, allowUnionTypes: true }).compile(t.schema);
        } catch (e) {
          bad(`types.${name}.schema is not a valid JSON Schema (draft-07): ${(e as Error).message.split('\n')[0]}`);
        }
        if (schemasCompiled.size >= SCHEMAS_COMPILED_MAX) schemasCompiled.clear();
        schemasCompiled.add(text);
      }
    }
  }
  return { ...o, permissions: { resources: o.permissions?.resources ?? [], ...(o.permissions?.secrets ? { secrets: o.permissions.secrets } : {}), ...(o.permissions?.nodes ? { nodes: o.permissions.nodes } : {}) } };
}

/** Reads and checks DIR/os0.json and compiles every program: capabilities, filters, handlers, drivers, update (rootDir = DIR). */
export async function loadAppFolder(dir: string, opts: Omit<CompileOptions, 'rootDir'> = {}): Promise<LoadedApp> {
  const root = path.resolve(dir);
  const { file, bytes } = readManifestFile(dir);
  const manifest = parseManifest(bytes, file);
  const build = async (kind: string, name: string, spec: CapabilitySpec): Promise<Program> => {
    const entry = path.join(root, spec.entry);
    if (!fs.existsSync(entry)) throw new Error(`${file}: ${kind} "${name}": entry ${spec.entry} does not exist`);
    let p: Program;
    try {
      // esbuild loads only when a folder is compiled: checking manifests never needs it.
      p = await (await import('../sandbox/compile.ts')).compile(entry, { ...opts, rootDir: root });
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
  const drivers = new Map<string, { spec: DriverSpec; program: Program }>();
  for (const [name, spec] of Object.entries(manifest.drivers ?? {})) drivers.set(name, { spec, program: await build('driver', name, spec) });
  const app: LoadedApp = { dir: root, manifest, capabilities, filters, handlers, drivers };
  if (manifest.update) app.update = { spec: manifest.update, program: await build('update', 'update', manifest.update) };
  return app;
}

/** Reads DIR/os0.json, refusing one over MANIFEST_BYTES_MAX before reading it. */
export function readManifestFile(dir: string): { file: string; bytes: Buffer } {
  const file = path.join(path.resolve(dir), 'os0.json');
  try {
    const size = fs.statSync(file).size;
    if (size > MANIFEST_BYTES_MAX) throw new Error(`${file}: ${size} bytes; a manifest is limited to ${MANIFEST_BYTES_MAX / 1024} KiB`);
    return { file, bytes: fs.readFileSync(file) };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === undefined) throw e;
    throw new Error(code === 'ENOENT' ? `${dir}: no os0.json; an app folder needs a manifest (docs/apps.md describes it)` : `${file}: cannot read it (${(e as Error).message})`);
  }
}

/**
 * The bytes of an os0.json, bounded (MANIFEST_BYTES_MAX, before parsing), parsed and checked;
 * `where` starts every error (a file name, or e.g. "package os0.json").
 */
export function parseManifest(bytes: Buffer, where = 'os0.json'): Manifest {
  if (bytes.length > MANIFEST_BYTES_MAX) throw new Error(`${where}: ${bytes.length} bytes; a manifest is limited to ${MANIFEST_BYTES_MAX / 1024} KiB`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new Error(`${where}: not JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return checkManifest(parsed, where);
}
