/**
 * Every host call a program can make, defined once. The table is plain data (it crosses into the
 * isolate as JSON), and everything else follows it:
 *
 * - the sandbox's prelude (prelude.ts) builds `ctx` from it: `ctx.GROUP.CALL(...)` for each
 *   `GROUP.CALL`, checking the arguments by their kinds before they leave the isolate;
 * - the host checks the same kinds again (`checkHostCall`, used by pool.ts): what comes out of
 *   an isolate is untrusted;
 * - the manifest's `permissions` vocabulary is the set of `permission` sections named here, each
 *   with its schema (runtime/invoke/manifest.schema.ts reads `PERMISSION_SCHEMAS`);
 * - the SDK's `Ctx` type (sdk/index.ts) declares one method per entry; test/sdk/host-calls.test.ts
 *   checks, at type level and in a real sandbox, that both sides have exactly these.
 *
 * Adding a host call: one entry here, its implementation in runtime/invoke/index.ts (Invoker.host),
 * and its signature in sdk/index.ts's Ctx. This file imports nothing.
 */

/**
 * How an argument is checked on both sides:
 * - `name`: a non-empty string of at most 1,024 characters; `name?` may be left out (trailing only);
 * - `object`: a JSON object (not an array, not null);
 * - `query`: an object with only `type?`, `namespace?` (names) and `tags?` (an object of strings).
 */
export type ArgKind = 'name' | 'name?' | 'object' | 'query';

/** The sections of os0.json `permissions` a host call is governed by. */
export type PermissionSection = 'resources' | 'secrets' | 'nodes';

export interface HostCallSpec {
  /** How the arguments are checked, in order. */
  readonly args: readonly ArgKind[];
  /** The call as a program writes it, for error messages: `(type, name, namespace?)`. */
  readonly signature: string;
  /** What is wrong when the arguments do not fit, after the call's name. */
  readonly takes: string;
  /** The os0.json permissions section that says whether an app may make this call. */
  readonly permission: PermissionSection;
}

export const HOST_CALLS = {
  'resources.get': { args: ['name', 'name', 'name?'], signature: '(type, name, namespace?)', takes: 'takes non-empty strings', permission: 'resources' },
  'resources.query': { args: ['query'], signature: '({type?, namespace?, tags?})', takes: 'takes an object', permission: 'resources' },
  'commands.apply': { args: ['object'], signature: '(doc)', takes: 'takes a resource object', permission: 'resources' },
  'commands.delete': { args: ['name', 'name', 'name?'], signature: '(type, name, namespace?)', takes: 'takes non-empty strings', permission: 'resources' },
  'secrets.get': { args: ['name', 'name?'], signature: '(name, namespace?)', takes: 'takes non-empty strings', permission: 'secrets' },
  'nodes.send': { args: ['name', 'object'], signature: '(machine, command)', takes: 'takes a machine name and a command object {type, ...}', permission: 'nodes' },
  'nodes.list': { args: [], signature: '()', takes: 'takes no arguments', permission: 'nodes' },
} as const satisfies Record<string, HostCallSpec>;

export type HostMethod = keyof typeof HOST_CALLS;
export const HOST_METHODS = Object.keys(HOST_CALLS) as HostMethod[];

/** Longest name argument, in characters (the prelude uses the same figure). */
export const NAME_CHARS_MAX = 1024;

const isName = (s: unknown): boolean => typeof s === 'string' && s.length > 0 && s.length <= NAME_CHARS_MAX;
const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);

/**
 * What is wrong with a call's arguments, or null. `prefix` names the call in the message
 * ('ctx.' inside the isolate, '' on the host). The prelude has its own copy of this logic (it
 * must be self-contained); both follow `HOST_CALLS`.
 */
export function checkHostCall(method: string, args: unknown, prefix = ''): string | null {
  if (!Object.prototype.hasOwnProperty.call(HOST_CALLS, method)) return `no host call ${JSON.stringify(String(method).slice(0, 64))}`;
  const spec: HostCallSpec = HOST_CALLS[method as HostMethod];
  if (!Array.isArray(args)) return `${method}: arguments must be an array`;
  const usage = `${prefix}${method}${spec.signature} ${spec.takes}`;
  const required = spec.args.filter((k) => !k.endsWith('?')).length;
  if (args.length < required || args.length > spec.args.length) return usage;
  for (let i = 0; i < args.length; i++) {
    const kind = spec.args[i];
    const a = args[i];
    if (kind === 'name' || kind === 'name?') {
      if (!isName(a)) return usage;
    } else if (kind === 'object') {
      if (!isRecord(a)) return usage;
    } else if (kind === 'query') {
      if (!isRecord(a)) return usage;
      for (const k of Object.keys(a)) if (k !== 'type' && k !== 'namespace' && k !== 'tags') return `${prefix}${method}: unknown field ${JSON.stringify(k)}`;
      if ((a.type !== undefined && !isName(a.type)) || (a.namespace !== undefined && !isName(a.namespace))) return `${prefix}${method}: type and namespace are non-empty strings`;
      if (a.tags !== undefined && (!isRecord(a.tags) || !Object.values(a.tags).every((v) => typeof v === 'string'))) return `${prefix}${method}: tags is an object of strings`;
    }
  }
  return null;
}

/** Device names a manifest may grant in `permissions.nodes.devices`. */
export const DEVICE_PATTERN = '^[a-z][a-z0-9-]{0,31}$';

/**
 * The JSON Schema of each os0.json `permissions` section (draft-07, with manifest.schema.ts's
 * `reason` annotation). Only sections some host call names are accepted.
 */
export const PERMISSION_SCHEMAS: Record<PermissionSection, Record<string, unknown>> = {
  // Filled by manifest.schema.ts for 'resources' (it owns the grant vocabulary of verbs).
  resources: {},
  // Secrets the app reads with ctx.secrets.get, each by name (install shows them).
  secrets: {
    type: 'array',
    maxItems: 100,
    items: {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 253, minLength: 1, pattern: '^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$', reason: 'must be a secret name' },
        namespace: { type: 'string', maxLength: 253, pattern: '^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:/[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)?$', reason: 'must be a namespace path' },
      },
      required: ['name'],
      additionalProperties: false,
      reason: 'must be an object {name, namespace?}',
    },
    reason: 'must be an array of {name, namespace?}',
  },
  // The node devices whose commands the app sends with ctx.nodes.send (a command's type starts with one).
  nodes: {
    type: 'object',
    properties: {
      devices: {
        type: 'array',
        minItems: 1,
        maxItems: 32,
        uniqueItems: true,
        items: { type: 'string', pattern: DEVICE_PATTERN, reason: "must be a device name such as \"dns\" or \"proxy\" (lowercase letters, digits, '-')" },
        reason: 'must be a non-empty array of device names',
      },
    },
    required: ['devices'],
    additionalProperties: false,
    reason: 'must be an object {devices: [DEVICE, ...]}',
  },
};

/** The sections the table uses, in its order. */
export const PERMISSION_SECTIONS = [...new Set(Object.values(HOST_CALLS).map((c) => c.permission))] as PermissionSection[];
