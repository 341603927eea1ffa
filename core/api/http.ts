/**
 * What the API's routes share (server.ts and routes/): the Hono env, the error body, reading a
 * request's JSON within the body limit, and parsing queries and parameters.
 */
import type { Context } from 'hono';
import type { IncomingMessage } from 'node:http';
import type { Actor } from '../auth/permission.ts';
import { HTTP_STATUS, OsError } from '../errors.ts';
import type { HandlerQuery } from '../handlers.ts';
import { LIMITS, namespaceError, typeError, type Resource } from '../resource.ts';
import { parseSelector, residual } from '../tree/selector.ts';
import type { Query } from '../tree/tree.ts';

/** What the auth middleware (server.ts) sets on every /v1 request. */
export type Env = { Variables: { actor: Actor; tokenId: string } };

/** A resource as the API shows it (Api.present): secrets redacted, namespaces with their status. */
export type Present = (r: Resource) => Resource | (Resource & { status: unknown });

export function errorBody(e: unknown): { status: number; body: { error: { code: string; message: string; filter?: string } } } {
  const err = e instanceof OsError ? e : new OsError('internal', `internal error: ${(e as Error)?.message ?? String(e)}`);
  const status = err.code === 'rejected' && err.filter === 'permission' ? 403 : HTTP_STATUS[err.code];
  return { status, body: { error: err.toJSON() } };
}

const TAG_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._\/-]{0,61}[A-Za-z0-9])?$/;

/** A handler's query from a request body: {type?, namespace?, tags?} of strings, nothing else. */
export function handlerQueryOf(raw: unknown): HandlerQuery {
  const bad = (m: string): OsError => new OsError('invalid', `a handler's query ${m}; send {"type"?: TYPE, "namespace"?: NS, "tags"?: {KEY: VALUE}}`);
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be an object');
  const q = raw as Record<string, unknown>;
  for (const k of Object.keys(q)) if (k !== 'type' && k !== 'namespace' && k !== 'tags') throw bad(`has an unknown field "${k.slice(0, 40)}"`);
  const out: HandlerQuery = {};
  if (q.type !== undefined) {
    if (typeof q.type !== 'string' || typeError(q.type)) throw bad('type must be a type name');
    out.type = q.type;
  }
  if (q.namespace !== undefined) {
    if (typeof q.namespace !== 'string' || namespaceError(q.namespace)) throw bad('namespace must be a namespace path');
    out.namespace = q.namespace;
  }
  if (q.tags !== undefined) {
    if (q.tags === null || typeof q.tags !== 'object' || Array.isArray(q.tags)) throw bad('tags must be an object of strings');
    const tags: Record<string, string> = Object.create(null);
    const entries = Object.entries(q.tags as Record<string, unknown>);
    if (entries.length > LIMITS.tagCount) throw bad(`tags may name at most ${LIMITS.tagCount} tags`);
    for (const [k, v] of entries) {
      if (!TAG_KEY.test(k) || typeof v !== 'string' || v.length > LIMITS.tagValueChars) throw bad('tags must map tag keys to strings');
      tags[k] = v;
    }
    out.tags = { ...tags };
  }
  return out;
}

/** A list's or a watch's query from the URL: type, observed, namespace, exact, tags, limit. */
export function queryOf(c: Context): Query {
  const type = c.req.query('type') || undefined;
  const observed = c.req.query('observed') === 'true';
  const limit = c.req.query('limit');
  const sel = parseSelector(c.req.query('tags'));
  return {
    type: type && observed ? `${type}/observed` : type,
    namespace: c.req.query('namespace') || undefined,
    exact: c.req.query('exact') === 'true',
    tags: sel?.equal,
    select: residual(sel),
    limit: limit ? Math.max(1, Number(limit) | 0) : undefined,
  };
}

export function intParam(v: string | undefined, what: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new OsError('invalid', `${what} must be a log index (a non-negative integer)`);
  return n;
}

/**
 * The body as text: straight from node's IncomingMessage when served by node (no web streams).
 * The body limit is enforced while reading it: Hono's bodyLimit middleware would build a web
 * Request for every call, which costs more than the command itself.
 */
async function bodyText(c: Context): Promise<string> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > LIMITS.batchBytes * 2) throw new OsError('too_large', `request body over ${LIMITS.batchBytes * 2} bytes; split it`);
  if (!incoming || incoming.readableEnded || incoming.readableDidRead) return c.req.text();
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > LIMITS.batchBytes * 2) throw new OsError('too_large', `request body over ${LIMITS.batchBytes * 2} bytes; split it`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The request body as JSON, within the body limit; a one-line error otherwise. */
export async function readJson(c: Context): Promise<unknown> {
  const text = await bodyText(c);
  if (text.trim() === '') throw new OsError('invalid', 'the request body is empty; send a JSON command');
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new OsError('invalid', `the request body is not JSON (${(e as Error).message}); send a JSON command`);
  }
}

/** Resources in (namespace, type, name) order. */
export const byKey = (a: Resource, b: Resource): number =>
  a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
