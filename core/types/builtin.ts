/**
 * The built-in resource types, declared as `type` resources at bootstrap like any app's types.
 * Later issues refine the fleet types' schemas; today they fix what the contract names.
 */
export interface TypeSpec {
  description?: string;
  /** namespaced (the default) or cluster-wide. */
  scope?: 'namespaced' | 'cluster';
  /** JSON Schema for `data`. Absent: any JSON object. */
  schema?: Record<string, unknown>;
  /** Has observed state, kept as the resource `TYPE/observed` with the same namespace and name. */
  observed?: boolean;
  /** What a resource holds of its namespace's cpu and memory quota: paths into the document. */
  usage?: { cpu?: string; memoryMb?: string; multiplier?: string };
  /** Cost units per hour: flat, and per cpu and GiB of memory held (see usage). */
  pricing?: { perHour?: number; perCpuHour?: number; perGiBHour?: number };
  /** The app whose driver acts on resources of this type. */
  driver?: string;
}

const obj = (properties: Record<string, unknown>, required: string[] = [], extra = false) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: extra,
});
const nonNeg = { type: 'number', minimum: 0 };
const count = { type: 'integer', minimum: 0 };
const capacity = obj({ cpu: nonNeg, memoryMb: nonNeg });
const stringMap = { type: 'object', additionalProperties: { type: 'string' } };
const free = { type: 'object' };

export const TYPE_SPEC_SCHEMA = obj({
  description: { type: 'string', maxLength: 1000 },
  scope: { enum: ['namespaced', 'cluster'] },
  schema: { type: 'object' },
  observed: { type: 'boolean' },
  usage: obj({ cpu: { type: 'string' }, memoryMb: { type: 'string' }, multiplier: { type: 'string' } }),
  pricing: obj({ perHour: nonNeg, perCpuHour: nonNeg, perGiBHour: nonNeg }),
  driver: { type: 'string' },
});

const VERBS = ['get', 'list', 'watch', 'create', 'update', 'delete', 'invoke', 'reveal', '*'];

export const BUILTIN_TYPES: Record<string, TypeSpec> = {
  namespace: {
    description: 'A node of the namespace tree, with its budget, quota and reservation',
    scope: 'cluster',
    schema: obj({
      budget: obj({ perHour: nonNeg }),
      quota: obj({ count: { type: 'object', additionalProperties: count }, cpu: nonNeg, memoryMb: nonNeg }),
      reservation: capacity,
      description: { type: 'string' },
    }),
  },
  type: { description: 'A resource type: the schema of its data, its scope, usage and pricing', scope: 'cluster', schema: TYPE_SPEC_SCHEMA },
  configuration: { description: 'Free-form configuration', schema: free },
  secret: {
    description: 'Named secret values, sealed at rest (AES-256-GCM): only the key names are readable without the reveal verb',
    // What is stored: the key names and one sealed blob (core/secrets). People write {KEY: VALUE}.
    schema: obj({ keys: { type: 'array', maxItems: 64, items: { type: 'string' } }, sealed: { type: 'string', maxLength: 262144 } }, ['keys', 'sealed']),
  },
  policy: {
    description: 'Grants (or denies) verbs on types within namespace prefixes to users and groups',
    scope: 'cluster',
    schema: obj(
      {
        subjects: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^(user|group):[A-Za-z0-9._@-]+$' } },
        rules: {
          type: 'array',
          items: obj(
            {
              effect: { enum: ['allow', 'deny'] },
              verbs: { type: 'array', minItems: 1, items: { enum: VERBS } },
              types: { type: 'array', minItems: 1, items: { type: 'string' } },
              namespaces: { type: 'array', items: { type: 'string' } },
              apps: { type: 'array', items: { type: 'string' } },
            },
            ['verbs', 'types'],
          ),
        },
      },
      ['subjects', 'rules'],
    ),
  },
  token: {
    description: 'An API token: only its hash is kept',
    scope: 'cluster',
    schema: obj({ actor: { type: 'string' }, groups: { type: 'array', items: { type: 'string' } }, hash: { type: 'string' }, description: { type: 'string' } }, ['actor', 'hash']),
  },
  app: { description: 'An installed app', scope: 'cluster', schema: free, observed: true },
  capability: { description: "An installed app's capability: a program people invoke", scope: 'cluster', schema: free },
  handler: { description: "An installed app's handler: a program run on each change matching its query", scope: 'cluster', schema: free },
  filter: { description: "An installed app's filter: a program run before the log on commands of its types", scope: 'cluster', schema: free },
  driver: { description: "An installed app's driver: acts on resources of its types and writes their observed state", scope: 'cluster', schema: free },
  'trusted-key': {
    description: 'A publisher key (or a registry root key) whose signed packages this instance installs',
    scope: 'cluster',
    schema: obj(
      {
        publicKey: { type: 'string', pattern: '^[A-Za-z0-9+/]{43}=$' },
        kind: { enum: ['publisher', 'root'] },
        description: { type: 'string', maxLength: 1000 },
      },
      ['publicKey', 'kind'],
    ),
  },
  invocation: { description: 'One run of an app capability', schema: free, observed: true },
  machine: {
    description: 'A machine of the fleet',
    schema: free,
    observed: true,
    usage: { cpu: 'data.cpu', memoryMb: 'data.memoryMb' },
    pricing: { perCpuHour: 0.02, perGiBHour: 0.005 },
  },
  volume: { description: 'A directory with a size quota on a machine', schema: free, observed: true },
  'load-balancer': { description: 'An L4 TCP load balancer', schema: free, observed: true },
  'dns-record': {
    description: 'A DNS record in the os0. zone',
    schema: obj({ type: { enum: ['A', 'AAAA', 'CNAME', 'SRV', 'TXT'] }, value: { type: 'string' }, ttl: count }, ['type', 'value'], true),
  },
  service: {
    description: 'Replicas of a process, scheduled, restarted, load balanced and named in DNS',
    schema: obj(
      {
        replicas: count,
        command: { type: 'array', minItems: 1, items: { type: 'string' } },
        cwd: { type: 'string' },
        env: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, obj({ secret: { type: 'string' }, key: { type: 'string' } }, ['secret', 'key'])] } },
        resources: capacity,
        loadBalancer: obj({ port: { type: 'integer', minimum: 1, maximum: 65535 } }),
      },
      ['command'],
      true,
    ),
    observed: true,
    usage: { cpu: 'data.resources.cpu', memoryMb: 'data.resources.memoryMb', multiplier: 'data.replicas' },
    pricing: { perCpuHour: 0.04, perGiBHour: 0.01 },
  },
  component: { description: 'A part of a service: one program with its replicas', schema: free },
  'task-group': { description: "A component's replicas, placed together", schema: free },
  task: { description: 'One replica of a service', schema: free, observed: true },
  process: { description: 'A process running on a machine (observed)', schema: free },
  'assignment-request': { description: 'A request to place work on a machine', schema: free },
  assignment: { description: 'Work placed on a machine', schema: free, observed: true },
  registry: {
    description: 'A package registry apps install from (os0 registry add), with its pinned metadata key',
    scope: 'cluster',
    schema: obj({ url: { type: 'string', pattern: '^https?://' }, metadataKey: { type: 'string' }, description: { type: 'string', maxLength: 1000 } }, ['url', 'metadataKey']),
  },
};
