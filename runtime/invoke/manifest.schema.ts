/**
 * The JSON Schema (draft-07) of `os0.json`. manifest.ts compiles it once with Ajv and turns the
 * first error into one line; what a schema cannot say (entries inside the app folder, no
 * dependency on itself, a type's schema being a schema) is checked there after it.
 *
 * Two additions to plain draft-07: the formats `semver` (semver.valid, canonical) and
 * `semver-range` (semver.validRange), and the annotation `reason`: the words an error on that
 * node says after its path (`{value}` is replaced by the offending value).
 */
import { MAX_LIMITS, MIN_MEMORY_MB } from '../sandbox/protocol.ts';
import { PERMISSION_SCHEMAS, PERMISSION_SECTIONS } from '../sandbox/host-calls.ts';

/** Longest os0.json accepted, in bytes: checked before parsing. */
export const MANIFEST_BYTES_MAX = 64 * 1024;
/** Most entries in any one group (capabilities, types, dependencies…). */
export const GROUP_ENTRIES_MAX = 100;

export const NAME_PATTERN = '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$';
const NAME_REASON = "must be lowercase letters, digits and '-' (1-63), starting and ending with a letter or digit";
/** Like core's type names (core/resource.ts), without `/observed`. */
export const TYPE_NAME_PATTERN = '^[a-z](?:[a-z0-9.-]{0,61}[a-z0-9])?$';
const TYPE_REASON = "must be a type name: lowercase letters, digits, '-' and '.', starting with a letter (1-63)";
const TYPE_OR_OBSERVED = '^[a-z](?:[a-z0-9.-]{0,61}[a-z0-9])?(?:/observed)?$';
const GRANT_TYPE = '^(?:\\*|[a-z](?:[a-z0-9.-]{0,61}[a-z0-9])?)(?:/observed)?$';
/** The verbs an app may be granted on resources through its host calls. */
export const HOST_VERBS = ['get', 'list', 'create', 'update', 'delete'] as const;
const VERBS = [...HOST_VERBS];

const str = (maxLength: number, extra: Record<string, unknown> = {}) => ({ type: 'string', maxLength, ...extra });
const nonNeg = { type: 'number', minimum: 0 };
const closed = (properties: Record<string, unknown>, required: string[] = [], extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
  ...extra,
});
const group = (what: string, namePattern: string, nameReason: string, item: unknown) => ({
  type: 'object',
  maxProperties: GROUP_ENTRIES_MAX,
  propertyNames: { pattern: namePattern, reason: nameReason },
  additionalProperties: item,
  reason: `must be an object of ${what}`,
});
const typeList = (pattern: string, reason: string) => ({
  type: 'array',
  minItems: 1,
  maxItems: 100,
  items: { type: 'string', pattern, reason },
  reason: 'must be a non-empty array of type names',
});

/** entry, description and the sandbox limits: what every program has. */
const program = (extra: Record<string, unknown> = {}, required: string[] = []) =>
  closed(
    {
      entry: str(256, { minLength: 1, reason: "must be the program's file, relative to the app folder, e.g. \"src/main.ts\"" }),
      description: str(1000, { reason: 'must be a string saying what it does' }),
      timeoutMs: { type: 'integer', minimum: 1, maximum: MAX_LIMITS.cpuMs },
      memoryMb: { type: 'integer', minimum: MIN_MEMORY_MB, maximum: MAX_LIMITS.memoryMb },
      ...extra,
    },
    ['entry', 'description', ...required],
    { reason: 'must be an object {entry, description, timeoutMs?, memoryMb?}' },
  );

const grant = closed(
  {
    types: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: { type: 'string', pattern: GRANT_TYPE, reason: "must be a type name, '*' (every type) or '*/observed'" },
      reason: 'must be a non-empty array of type names',
    },
    verbs: {
      type: 'array',
      minItems: 1,
      maxItems: VERBS.length,
      items: { enum: VERBS, reason: `is an unknown verb {value}; use ${VERBS.join(', ')}` },
      reason: `must be a non-empty array of ${VERBS.join(', ')}`,
    },
    namespaces: { type: 'array', maxItems: 100, items: str(253, { minLength: 1 }), reason: 'must be an array of namespace prefixes' },
  },
  ['types', 'verbs'],
  { reason: 'must be an object {types, verbs, namespaces?}' },
);

/** A `type` resource's data (core/types/builtin.ts TYPE_SPEC_SCHEMA) without `driver`, which install sets. */
const appType = closed(
  {
    description: str(1000),
    scope: { enum: ['namespaced', 'cluster'] },
    schema: { type: 'object', reason: "must be a JSON Schema object for the resources' data" },
    observed: { type: 'boolean' },
    usage: closed({ cpu: str(256), memoryMb: str(256), multiplier: str(256) }),
    pricing: closed({ perHour: nonNeg, perCpuHour: nonNeg, perGiBHour: nonNeg }),
  },
  [],
  { reason: 'must be an object {description?, scope?, schema?, observed?, usage?, pricing?}' },
);

const service = closed(
  {
    description: str(1000),
    replicas: { type: 'integer', minimum: 0, maximum: 1000 },
    command: {
      type: 'array',
      minItems: 1,
      maxItems: 256,
      items: str(4096, { minLength: 1 }),
      reason: 'must be a non-empty array of strings (argv, e.g. ["node", "server.js"])',
    },
    cwd: str(1024),
    env: {
      type: 'object',
      maxProperties: 256,
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$', reason: 'must be an environment variable name (letters, digits, _)' },
      additionalProperties: str(32768),
    },
    resources: closed({ cpu: nonNeg, memoryMb: nonNeg }),
    loadBalancer: closed({ port: { type: 'integer', minimum: 1, maximum: 65535 } }, ['port']),
  },
  ['command'],
  { reason: 'must be an object {command, replicas?, cwd?, env?, resources?, loadBalancer?, description?}' },
);

export const MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'osØ app manifest (os0.json)',
  type: 'object',
  additionalProperties: false,
  required: ['name', 'version', 'capabilities'],
  reason: 'must be a JSON object',
  properties: {
    name: { type: 'string', pattern: NAME_PATTERN, reason: NAME_REASON },
    version: { type: 'string', maxLength: 64, format: 'semver', reason: 'must be a semantic version such as "1.0.0" or "1.1.0-beta.1" (no leading "v", no "+build")' },
    description: str(1000),
    keywords: {
      type: 'array',
      maxItems: 20,
      uniqueItems: true,
      items: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,31}$', reason: "must be a short keyword: lowercase letters, digits and '-' (1-32)" },
      reason: 'must be an array of at most 20 distinct keywords',
    },
    license: str(128, { minLength: 1, reason: 'must be a license name such as "MIT"' }),
    capabilities: group('{NAME: {entry, description}}', NAME_PATTERN, NAME_REASON, program()),
    filters: group('{NAME: {entry, description, types?}}', NAME_PATTERN, NAME_REASON, program({ types: typeList(TYPE_OR_OBSERVED, TYPE_REASON) })),
    handlers: group(
      '{NAME: {entry, description, query}}',
      NAME_PATTERN,
      NAME_REASON,
      program(
        {
          query: closed(
            {
              type: str(128, { pattern: TYPE_OR_OBSERVED, reason: TYPE_REASON }),
              namespace: str(253),
              tags: { type: 'object', maxProperties: 32, additionalProperties: str(253) },
            },
            [],
            { reason: 'must be an object {type?, namespace?, tags?}' },
          ),
        },
        ['query'],
      ),
    ),
    drivers: group('{NAME: {entry, description, types}}', NAME_PATTERN, NAME_REASON, program({ types: typeList(TYPE_NAME_PATTERN, TYPE_REASON) }, ['types'])),
    // One section per kind of host call (runtime/sandbox/host-calls.ts): resources, secrets, nodes.
    permissions: closed(
      Object.fromEntries(PERMISSION_SECTIONS.map((p) => [p, p === 'resources' ? { type: 'array', maxItems: 100, items: grant, reason: 'must be an array of {types, verbs, namespaces?}' } : PERMISSION_SCHEMAS[p]])),
      [],
      { reason: 'must be an object {resources: [{types, verbs, namespaces?}], secrets?: [{name, namespace?}], nodes?: {devices: [DEVICE, ...]}}' },
    ),
    dependencies: {
      type: 'object',
      maxProperties: GROUP_ENTRIES_MAX,
      propertyNames: { pattern: NAME_PATTERN, reason: `must be an app name: ${NAME_REASON.replace('must be ', '')}` },
      additionalProperties: { type: 'string', maxLength: 256, format: 'semver-range', reason: 'must be a semver range such as "^1.0.0"' },
      reason: 'must be an object of {APP: SEMVER_RANGE}',
    },
    types: group('{TYPE: {description?, scope?, schema?, observed?, usage?, pricing?}}', TYPE_NAME_PATTERN, TYPE_REASON, appType),
    services: group('{NAME: {command, replicas?, cwd?, env?, resources?, loadBalancer?}}', NAME_PATTERN, NAME_REASON, service),
    update: program(),
  },
} as const;
