/**
 * The resource model: what every thing osØ manages looks like, the commands that change it, and
 * the validation of both. Pure functions, no I/O.
 */
import { randomBytes } from 'node:crypto';
import { invalid, OsError } from './errors.ts';

export const API_VERSION = 'os0/v1';

export interface Resource {
  apiVersion: string;
  /** Globally unique, assigned at create, never reused. */
  id: string;
  /** Namespace path (`acme/prod`); '' for cluster-wide resources such as namespaces. */
  namespace: string;
  type: string;
  name: string;
  created: string;
  updated: string;
  /** Log index of the last write: the compare-and-set token for `expect`. */
  revision: number;
  /** Ids of the resources that own this one. */
  owner?: string[];
  tags: Record<string, string>;
  /** Cost units per hour, computed from the type's pricing. */
  cost?: number;
  data: unknown;
}

/** What a client writes: everything but the fields the core assigns. */
export interface ResourceInput {
  apiVersion?: string;
  id?: string;
  type: string;
  namespace?: string;
  name: string;
  owner?: string[];
  tags?: Record<string, string>;
  cost?: number;
  data?: unknown;
}

export type Op = 'create' | 'update' | 'apply' | 'delete';

export interface Command {
  op: Op;
  resource: ResourceInput;
  /** Compare-and-set: the command applies only if the resource's revision is this (0: must not exist). */
  expect?: number;
}

/** One command or an atomic batch: all of it is applied at one log index, or none of it. */
export type Submission = Command | { batch: Command[] };

export const LIMITS = {
  nameChars: 253,
  labelChars: 63,
  namespaceDepth: 16,
  typeChars: 63,
  tagCount: 64,
  tagKeyChars: 63,
  tagValueChars: 256,
  ownerCount: 32,
  /** A resource's JSON, data included. */
  resourceBytes: 256 * 1024,
  batchCommands: 1000,
  batchBytes: 4 * 1024 * 1024,
  /** How deep objects and arrays may nest in `data`, an invocation's input or any request body. */
  dataDepth: 64,
  /** Open watches: per actor, and in all. */
  watchesPerActor: 64,
  watchesTotal: 4096,
  /** Remote handlers: per actor, and in all. */
  handlersPerActor: 32,
  handlersTotal: 1024,
} as const;

/** What newId() makes: 20 characters of Crockford base32. */
export const ID_PATTERN = /^[0-9a-hjkmnp-tv-z]{20}$/;

/**
 * The nesting depth of a JSON value, counted without recursion (a hostile value nested 100,000
 * deep must not overflow the stack): 0 for a scalar, 1 for `{}` or `[]`. Stops counting past `max`.
 */
export function depthOf(value: unknown, max: number = LIMITS.dataDepth): number {
  if (value === null || typeof value !== 'object') return 0;
  let deepest = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (d > deepest) deepest = d;
    if (deepest > max) return deepest;
    if (Array.isArray(v)) {
      for (const x of v) if (x !== null && typeof x === 'object') stack.push([x, d + 1]);
    } else {
      for (const k in v as Record<string, unknown>) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== null && typeof x === 'object') stack.push([x, d + 1]);
      }
    }
  }
  return deepest;
}

/** Throws `invalid` when a value nests deeper than LIMITS.dataDepth. */
export function checkDepth(value: unknown, what: string): void {
  if (value !== null && typeof value === 'object' && depthOf(value) > LIMITS.dataDepth) {
    throw invalid(`${what} nests deeper than ${LIMITS.dataDepth} levels of objects and arrays; flatten it`);
  }
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const NAME = /^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/;
const TYPE = /^[a-z](?:[a-z0-9.-]*[a-z0-9])?(?:\/observed)?$/;
const TAG_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._\/-]*[A-Za-z0-9])?$/;
const TAG_VALUE = /^[A-Za-z0-9._:\/@+=-]*$/;

// Namespaces and tag keys repeat across commands: remember the valid ones (bounded).
const validNamespaces = new Set<string>();
const validTagKeys = new Set<string>();
const remember = (set: Set<string>, v: string): void => {
  if (set.size >= 65536) set.clear();
  set.add(v);
};

export function namespaceError(ns: string): string | null {
  if (ns === '' || validNamespaces.has(ns)) return null;
  if (typeof ns !== 'string') return 'namespace must be a string';
  if (ns.length > LIMITS.nameChars) return `namespace is longer than ${LIMITS.nameChars} characters`;
  const parts = ns.split('/');
  if (parts.length > LIMITS.namespaceDepth) return `namespace is deeper than ${LIMITS.namespaceDepth} levels`;
  for (const p of parts) {
    if (!LABEL.test(p)) return `namespace "${ns}" is not a path of DNS labels (lowercase letters, digits, '-', e.g. acme/prod)`;
  }
  remember(validNamespaces, ns);
  return null;
}

export function nameError(name: unknown): string | null {
  if (typeof name !== 'string' || name === '') return 'name is required';
  if (name.length > LIMITS.nameChars) return `name is longer than ${LIMITS.nameChars} characters`;
  if (!NAME.test(name)) return `name "${name}" must be lowercase letters, digits, '-', '.', '_', starting and ending with a letter or digit`;
  return null;
}

export function typeError(type: unknown): string | null {
  if (typeof type !== 'string' || type === '') return 'type is required';
  if (type.length > LIMITS.typeChars || !TYPE.test(type)) return `type "${String(type).slice(0, 80)}" must be lowercase letters, digits, '-', '.', starting with a letter`;
  return null;
}

function tagsError(tags: unknown): string | null {
  if (tags === undefined) return null;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) return 'tags must be an object of key: value strings';
  const keys = Object.keys(tags);
  if (keys.length > LIMITS.tagCount) return `a resource may have at most ${LIMITS.tagCount} tags`;
  for (const k of keys) {
    if (!validTagKeys.has(k) && (k.length > LIMITS.tagKeyChars || !TAG_KEY.test(k))) return `tag key "${k.slice(0, 80)}" must be letters, digits, '.', '_', '/', '-' (at most ${LIMITS.tagKeyChars})`;
    const v = (tags as Record<string, unknown>)[k];
    if (typeof v !== 'string') return `tag "${k}" must have a string value`;
    if (v.length > LIMITS.tagValueChars || !TAG_VALUE.test(v)) return `tag "${k}" has an invalid value "${v.slice(0, 80)}"`;
    remember(validTagKeys, k);
  }
  return null;
}

const OPS: ReadonlySet<string> = new Set(['create', 'update', 'apply', 'delete']);

/** The namespace a resource of this type lives in: namespaces themselves are cluster-wide. */
export function scopeOf(input: { type: string; namespace?: string }): string {
  return input.namespace ?? '';
}

/** Checks one command's shape and returns it normalised; throws `invalid` naming the first problem. */
export function checkCommand(raw: unknown, where = 'command'): Command {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`${where} must be an object with "op" and "resource"`);
  const c = raw as Record<string, unknown>;
  if (typeof c.op !== 'string' || !OPS.has(c.op)) throw invalid(`${where}.op must be one of create, update, apply, delete (got ${JSON.stringify(c.op)})`);
  const r = c.resource as Record<string, unknown> | undefined;
  if (r === null || typeof r !== 'object' || Array.isArray(r)) throw invalid(`${where}.resource must be an object`);
  const fail = (m: string) => invalid(`${where}.resource: ${m}`);
  if (r.apiVersion !== undefined && r.apiVersion !== API_VERSION) throw fail(`apiVersion must be ${API_VERSION}`);
  let e = typeError(r.type);
  if (e) throw fail(e);
  if (r.namespace !== undefined && typeof r.namespace !== 'string') throw fail('namespace must be a string');
  const ns = (r.namespace as string | undefined) ?? '';
  if ((e = namespaceError(ns))) throw fail(e);
  if (r.type === 'namespace') {
    if (ns !== '') throw fail('a namespace is cluster-wide: give its full path as its name and no namespace');
    if ((e = namespaceError(r.name as string)) || r.name === '') throw fail(e ?? 'name is required');
  } else if (r.id === undefined || c.op !== 'delete' || r.name !== undefined) {
    if ((e = nameError(r.name))) throw fail(e);
  }
  if (r.id !== undefined && (typeof r.id !== 'string' || !/^[0-9a-z]{1,64}$/.test(r.id))) throw fail('id must be a resource id as the server assigned it (lowercase letters and digits)');
  if ((e = tagsError(r.tags))) throw fail(e);
  if (r.owner !== undefined) {
    if (!Array.isArray(r.owner) || r.owner.length > LIMITS.ownerCount || r.owner.some((o) => typeof o !== 'string' || o === '')) {
      throw fail(`owner must be a list of at most ${LIMITS.ownerCount} resource ids`);
    }
  }
  if (r.cost !== undefined && (typeof r.cost !== 'number' || !Number.isFinite(r.cost) || r.cost < 0)) throw fail('cost must be a non-negative number');
  if (c.expect !== undefined && (typeof c.expect !== 'number' || !Number.isSafeInteger(c.expect) || c.expect < 0)) {
    throw invalid(`${where}.expect must be a revision (a non-negative integer)`);
  }
  const data = r.data === undefined ? {} : r.data;
  if (typeof data === 'function' || typeof data === 'symbol' || typeof data === 'bigint') throw fail('data must be JSON');
  if (data !== null && typeof data === 'object' && depthOf(data) > LIMITS.dataDepth) throw fail(`data nests deeper than ${LIMITS.dataDepth} levels of objects and arrays; flatten it`);
  // Normalised in place (no copy on the hot path): the core reads only the fields it knows.
  if (r.namespace === undefined) r.namespace = '';
  if (r.data === undefined) r.data = data;
  return c as unknown as Command;
}

/** Checks a submission (one command or `{batch}`) and returns its commands. */
export function checkSubmission(raw: unknown): Command[] {
  if (raw !== null && typeof raw === 'object' && 'batch' in raw) {
    const b = (raw as { batch: unknown }).batch;
    if (!Array.isArray(b) || b.length === 0) throw invalid('batch must be a non-empty list of commands');
    if (b.length > LIMITS.batchCommands) throw new OsError('too_large', `a batch may hold at most ${LIMITS.batchCommands} commands (got ${b.length}); split it`);
    return b.map((c, i) => checkCommand(c, `batch[${i}]`));
  }
  return [checkCommand(raw)];
}

/** The unique address of a resource: namespace, type, name. */
export const keyOf = (namespace: string, type: string, name: string): string => `${namespace}\u0000${type}\u0000${name}`;

// Ids: 10 chars of millisecond time (sortable by creation) + 10 of randomness, Crockford base32.
const B32 = '0123456789abcdefghjkmnpqrstvwxyz';
let randomText = '';
let randomAt = 0;
let idMs = -1;
let idPrefix = '';
export function newId(nowMs: number): string {
  if (nowMs !== idMs) {
    idMs = nowMs;
    let p = '';
    let t = nowMs;
    for (let i = 0; i < 10; i++) {
      p = B32[t % 32] + p;
      t = Math.floor(t / 32);
    }
    idPrefix = p;
  }
  if (randomAt + 10 > randomText.length) {
    const bytes = randomBytes(8000);
    let text = '';
    for (let i = 0; i < bytes.length; i++) text += B32[bytes[i] & 31];
    randomText = text;
    randomAt = 0;
  }
  randomAt += 10;
  return idPrefix + randomText.slice(randomAt - 10, randomAt);
}
