/**
 * The HTTP API (docs/api.md): Hono over node's HTTP server. Other layers add their
 * routes with `api.app.route(...)`; nothing here knows about them.
 */
import { Hono, type Context } from 'hono';
import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Committed } from '../core.ts';
import { serve, type ServerType } from '@hono/node-server';
import { ADMIN_GROUP, Permissions, type Actor } from '../auth/permission.ts';
import { HTTP_STATUS, OsError, type ErrorCode } from '../errors.ts';
import { namespaceError, typeError } from '../resource.ts';
import { matches, matchesChange, type HandlerQuery } from '../handlers.ts';
import { checkDepth, LIMITS, type Resource } from '../resource.ts';
import type { System } from '../system.ts';
import { redact } from '../secrets/secrets.ts';
import { parseSelector, residual, selects } from '../tree/selector.ts';
import type { Query } from '../tree/tree.ts';

export interface ApiOptions {
  /** Seconds between bookmarks on an idle watch (15). */
  bookmarkSeconds?: number;
}

type Env = { Variables: { actor: Actor; tokenId: string } };

const STATUS = HTTP_STATUS;

export function errorBody(e: unknown): { status: number; body: { error: { code: string; message: string; filter?: string } } } {
  const err = e instanceof OsError ? e : new OsError('internal', `internal error: ${(e as Error)?.message ?? String(e)}`);
  const status = err.code === 'rejected' && err.filter === 'permission' ? 403 : STATUS[err.code];
  return { status, body: { error: err.toJSON() } };
}

const TAG_KEY = /^[A-Za-z0-9](?:[A-Za-z0-9._\/-]{0,61}[A-Za-z0-9])?$/;

/** A handler's query from a request body: {type?, namespace?, tags?} of strings, nothing else. */
function handlerQueryOf(raw: unknown): HandlerQuery {
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

function queryOf(c: Context): Query {
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

function intParam(v: string | undefined, what: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new OsError('invalid', `${what} must be a log index (a non-negative integer)`);
  return n;
}

export class Api {
  readonly app = new Hono<Env>();
  readonly sys: System;
  private server: ServerType | null = null;
  private readonly bookmarkMs: number;
  private readonly closing = new Set<() => void>();

  constructor(sys: System, opts: ApiOptions = {}) {
    this.sys = sys;
    this.bookmarkMs = (opts.bookmarkSeconds ?? 15) * 1000;
    const app = this.app;
    app.onError((e, c) => {
      const { status, body } = errorBody(e);
      return c.json(body, status as 400);
    });
    app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route ${c.req.method} ${c.req.path}; the routes are listed in docs/api.md` } }, 404));
    app.get('/healthz', (c) => c.json({ ok: true, index: sys.core.index }));
    const auth = async (c: Context<Env>, next: () => Promise<void>): Promise<void> => {
      const h = c.req.header('authorization');
      const token = h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
      const a = token ? sys.permissions.authenticate(token) : null;
      if (!a) throw Permissions.unauthorized();
      c.set('actor', { name: a.name, groups: a.groups });
      c.set('tokenId', a.tokenId);
      await next();
    };
    // Prometheus scrapes with a bearer token, like any client.
    app.use('/metrics', auth);
    app.get('/metrics', (c) => c.text(sys.metrics(), 200, { 'content-type': 'text/plain; version=0.0.4' }));
    app.use('/v1/*', auth);
    // A revoked token's watches end at once.
    sys.permissions.revoked.add((id) => {
      for (const w of this.watches) if (w.tokenId === id) w.stop();
    });
    // The body limit is enforced while reading it (bodyText): Hono's bodyLimit middleware would
    // build a web Request for every call, which costs more than the command itself.

    app.post('/v1/commands', async (c) => {
      const body = await readJson(c);
      const res = await sys.submit(body, c.get('actor'));
      const resources = res.resources.map((r) => this.present(r));
      return c.json(res.unchanged ? { index: res.index, resources, unchanged: res.unchanged.map((r) => this.present(r)) } : { index: res.index, resources });
    });

    app.get('/v1/resources', (c) => {
      const q = queryOf(c);
      const name = c.req.query('name');
      c.header('x-os0-index', String(sys.core.index));
      if (name) {
        if (!q.type) throw new OsError('invalid', 'a get by name needs a type');
        const ns = q.namespace ?? '';
        try {
          if (c.req.query('reveal') === 'true') {
            if (q.type !== 'secret') throw new OsError('invalid', 'reveal=true is for secrets');
            const values = sys.reveal(c.get('actor'), ns, name);
            return c.json({ ...this.present(sys.get(c.get('actor'), q.type, name, ns)), data: values });
          }
          return c.json(this.present(sys.get(c.get('actor'), q.type, name, ns)));
        } catch (e) {
          if (e instanceof OsError && e.code === 'not_found' && ns && !sys.core.get('namespace', ns)) throw new OsError('not_found', `namespace ${ns} does not exist; 'os0 get namespace' lists them`);
          throw e;
        }
      }
      if (c.req.query('continue') !== undefined || q.limit !== undefined) return this.page(c, q);
      const list = sys.list(c.get('actor'), q).sort(byKey);
      if (list.length === 0 && q.namespace && !sys.core.get('namespace', q.namespace)) {
        throw new OsError('not_found', `namespace ${q.namespace} does not exist; 'os0 get namespace' lists them`);
      }
      return c.json(list.map((r) => this.present(r)));
    });

    app.get('/v1/resources/:id', (c) => c.json(this.present(sys.getById(c.get('actor'), c.req.param('id')))));

    app.get('/v1/log', async (c) => {
      const actor = c.get('actor');
      const limit = Math.min(intParam(c.req.query('limit'), 'limit') || 1000, 10_000);
      // Without since: the newest records (the last 100, or the last `limit`).
      const since = intParam(c.req.query('since'), 'since') ?? Math.max(0, sys.core.index - (c.req.query('limit') ? limit : 100), sys.core.history.firstIndex - 1);
      const recs = await sys.core.history.read(since + 1, limit);
      if (recs === 'gone') throw new OsError('conflict', `index ${since} is older than the retained log (from ${sys.core.history.firstIndex}); ask for a later one`);
      // A record shows (with its time and actor) only if the reader may list something it changed.
      const ok = sys.permissions.filterFor(actor, 'list');
      const out = [];
      for (const r of recs) {
        const changes = r.changes
          .map((ch) => ({ action: ch.action, r: (ch.new ?? ch.old)! }))
          .filter(({ r }) => ok(r))
          .map(({ action, r }) => ({ action, type: r.type, namespace: r.namespace, name: r.name, id: r.id }));
        if (changes.length > 0) out.push({ index: r.index, time: r.time, actor: r.actor, changes });
      }
      return c.json(out);
    });

    app.get('/v1/watch', (c) => this.watch(c));

    // The key-encryption key secrets are sealed under: its state, and rotation (re-seals online).
    app.get('/v1/secrets/key', (c) => {
      sys.authorize(c.get('actor'), 'list', 'secret', '');
      return c.json(sys.keyStatus());
    });
    app.post('/v1/secrets/rotate-key', async (c) => c.json(await sys.rotateKey(c.get('actor'))));

    app.post('/v1/tokens', async (c) => {
      const body = (await readJson(c)) as { actor?: unknown; groups?: unknown; description?: unknown };
      const usage = 'a token needs {"actor": NAME, "groups"?: [GROUP, ...], "description"?: TEXT}';
      if (body === null || typeof body !== 'object' || Array.isArray(body) || typeof body.actor !== 'string') throw new OsError('invalid', usage);
      if (body.groups !== undefined && (!Array.isArray(body.groups) || body.groups.some((g) => typeof g !== 'string'))) throw new OsError('invalid', `groups must be a list of group names; ${usage}`);
      if (body.description !== undefined && typeof body.description !== 'string') throw new OsError('invalid', `description must be text; ${usage}`);
      const groups = (body.groups as string[] | undefined) ?? [];
      const t = await sys.createToken(c.get('actor'), body.actor, groups, body.description);
      return c.json({ id: t.id, actor: body.actor, groups, token: t.token }, 201);
    });
    app.get('/v1/tokens', (c) => {
      const list = sys.list(c.get('actor'), { type: 'token' }).map((r) => {
        const d = r.data as { actor: string; groups?: string[]; description?: string };
        return { id: r.name, actor: d.actor, groups: d.groups ?? [], description: d.description ?? '', created: r.created };
      });
      return c.json(list);
    });
    app.delete('/v1/tokens/:id', async (c) => {
      const res = await sys.submit({ op: 'delete', resource: { type: 'token', name: c.req.param('id') } }, c.get('actor'));
      return c.json({ index: res.index });
    });

    app.post('/v1/handlers', async (c) => {
      const body = (await readJson(c)) as { name?: unknown; query?: unknown; from?: unknown };
      if (body === null || typeof body !== 'object' || typeof body.name !== 'string' || !/^[a-z0-9][a-z0-9.-]{0,62}$/.test(body.name)) throw new OsError('invalid', 'a handler needs {"name": "lowercase-name", "query": {type?, namespace?, tags?}, "from"?: INDEX}');
      const query = handlerQueryOf(body.query);
      const from = body.from;
      if (from !== undefined && (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0 || from > sys.core.index)) {
        throw new OsError('invalid', `from must be a log index between 0 and ${sys.core.index} (the end of the log)`);
      }
      const actor = c.get('actor');
      sys.authorize(actor, 'watch', query.type ?? '*', query.namespace ?? '');
      if (sys.handlers.ownerOf(body.name) === undefined) {
        const remote = sys.handlers.status().filter((h) => h.remote);
        if (remote.filter((h) => h.owner === actor.name).length >= LIMITS.handlersPerActor) {
          throw new OsError('too_many', `${actor.name} has ${LIMITS.handlersPerActor} remote handlers, the most one actor may have; remove one first`);
        }
        if (remote.length >= LIMITS.handlersTotal) throw new OsError('too_many', `this server has ${LIMITS.handlersTotal} remote handlers, the most it keeps; remove unused ones first`);
      }
      const cursor = await sys.handlers.registerRemote(body.name, query, from, actor.name);
      return c.json({ name: body.name, cursor });
    });
    // Each actor sees its own remote handlers; admins see them all.
    app.get('/v1/handlers', (c) => {
      const actor = c.get('actor');
      const all = sys.handlers.status();
      return c.json(actor.groups.includes(ADMIN_GROUP) ? all : all.filter((h) => h.owner === actor.name));
    });
    // A remote handler is used only by the actor that registered it, or by an admin.
    const mine = (c: Context<Env>): void => {
      const actor = c.get('actor');
      const name = c.req.param('name')!;
      const owner = sys.handlers.ownerOf(name);
      if (owner !== undefined && owner !== actor.name && !actor.groups.includes(ADMIN_GROUP)) {
        throw new OsError('forbidden', `handler ${name} belongs to ${owner}; ${actor.name} may not use it`);
      }
    };
    app.use('/v1/handlers/:name/*', async (c, next) => {
      mine(c);
      await next();
    });
    app.get('/v1/handlers/:name/events', async (c) => {
      const max = Math.min(Number(c.req.query('max') ?? 100) || 100, 1000);
      const wait = Math.min(Number(c.req.query('wait') ?? 0) || 0, 30_000);
      const actor = c.get('actor');
      // What the caller may not see is dropped inside the poll, so a page is never short for it.
      const ok = sys.permissions.filterFor(actor, 'watch');
      const res = await sys.handlers.poll(c.req.param('name'), max, wait, ok);
      const events = res.events.map((e) => ({ ...e, old: e.old && this.present(e.old), new: e.new && this.present(e.new) }));
      return c.json({ ...res, events });
    });
    app.post('/v1/handlers/:name/ack', async (c) => {
      const body = (await readJson(c)) as { index?: unknown };
      const cursor = await sys.handlers.ack(c.req.param('name'), body?.index as number);
      return c.json({ cursor });
    });
    // Parked events of in-process handlers (the kernel's, apps'): an admin retries or drops them.
    const admin = (c: Context<Env>): void => {
      const actor = c.get('actor');
      if (!actor.groups.includes(ADMIN_GROUP)) throw new OsError('forbidden', `only an admin may retry or drop a handler's parked events; ${actor.name} is not one`);
    };
    app.post('/v1/handlers/:name/parked/retry', (c) => {
      admin(c);
      sys.handlers.retryParked(c.req.param('name'));
      return c.json({ ok: true });
    });
    app.delete('/v1/handlers/:name/parked', (c) => {
      admin(c);
      return c.json({ dropped: sys.handlers.dropParked(c.req.param('name')) });
    });
    app.delete('/v1/handlers/:name', async (c) => {
      mine(c);
      await sys.handlers.remove(c.req.param('name'));
      return c.json({ ok: true });
    });
  }

  /** Namespaces are shown with their rolled-up cost and usage; secrets with their values redacted. */
  present(r: Resource): Resource | (Resource & { status: unknown }) {
    if (r.type === 'secret') return redact(r);
    if (r.type !== 'namespace') return r;
    return { ...r, status: this.sys.namespaceStatus(r.name) };
  }

  /**
   * One page of a list: at most `limit` resources in key order (namespace, type, name), and in
   * the x-os0-continue header a token for the next page. The token holds the log index the first
   * page was read at and the last key sent, so every page shows the tree as it was at that index:
   * a later page takes the tree now and undoes the changes made since (read back from the log).
   * A token whose index has left the retained log answers 409 with "re-list".
   */
  private async page(c: Context<Env>, q: Query): Promise<Response> {
    const sys = this.sys;
    const actor = c.get('actor');
    const limit = Math.min(q.limit ?? PAGE_MAX, PAGE_MAX);
    const token = c.req.query('continue');
    const now = sys.core.index;
    const at = token ? continueOf(token, now) : { index: now, key: null };
    const all = sys.list(actor, { ...q, limit: undefined });
    if (!token && all.length === 0 && q.namespace && !sys.core.get('namespace', q.namespace)) {
      throw new OsError('not_found', `namespace ${q.namespace} does not exist; 'os0 get namespace' lists them`);
    }
    let items: Resource[];
    if (at.index === now) items = all;
    else {
      // Undo, newest first, what changed after the token's index.
      const byK = new Map<string, Resource>();
      for (const r of all) byK.set(keyOf(r), r);
      const changes: Committed['changes'] = [];
      for (let from = at.index + 1; from <= now; ) {
        const recs = await sys.core.history.read(from, 512);
        if (recs === 'gone') throw new OsError('conflict', `the list's index ${at.index} is older than the retained log (from ${sys.core.history.firstIndex}): re-list`);
        if (recs.length === 0) break;
        for (const rec of recs) if (rec.index <= now) changes.push(...rec.changes);
        if (changes.length > UNDO_MAX) throw new OsError('conflict', `over ${UNDO_MAX} changes since the list's index ${at.index}: re-list`);
        from = recs[recs.length - 1].index + 1;
      }
      const ok = sys.permissions.filterFor(actor, 'list');
      const hq = { type: q.type, namespace: q.namespace, tags: q.tags };
      for (let i = changes.length - 1; i >= 0; i--) {
        const ch = changes[i];
        const k = keyOf((ch.new ?? ch.old)!);
        const old = ch.old;
        if (old && matches(hq, old) && (!q.exact || old.namespace === (q.namespace ?? '')) && (!q.select || selects(q.select, old.tags)) && ok(old)) byK.set(k, old);
        else byK.delete(k);
      }
      items = [...byK.values()];
    }
    items.sort(byKey);
    let start = 0;
    if (at.key !== null) {
      const k = at.key;
      // The first key after the last one sent (binary search over the sorted list).
      let lo = 0;
      let hi = items.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keyOf(items[mid]) <= k) lo = mid + 1;
        else hi = mid;
      }
      start = lo;
    }
    const page = items.slice(start, start + limit);
    c.header('x-os0-index', String(at.index));
    if (start + limit < items.length) c.header('x-os0-continue', continueToken(at.index, keyOf(page[page.length - 1])));
    return c.json(page.map((r) => this.present(r)));
  }

  private watch(c: Context<Env>): Response {
    const sys = this.sys;
    const actor = c.get('actor');
    const q = queryOf(c);
    sys.authorize(actor, 'watch', q.type ?? '*', q.namespace ?? '');
    if (this.watchCount(actor.name) >= LIMITS.watchesPerActor) throw new OsError('too_many', `${actor.name} has ${LIMITS.watchesPerActor} open watches, the most one actor may have; close one first`);
    if (this.watches.size >= LIMITS.watchesTotal) throw new OsError('too_many', `this server has ${LIMITS.watchesTotal} open watches, the most it serves; retry later`);
    if (q.type !== undefined && !sys.core.get('type', q.type.replace(/\/observed$/, ''))) {
      throw new OsError('not_found', `unknown type "${q.type}"; 'os0 get type' lists the types there are`);
    }
    const since = intParam(c.req.query('since'), 'since');
    if (since !== undefined && since > sys.core.index) {
      throw new OsError('invalid', `since ${since} is beyond the end of the log (${sys.core.index}): this server does not have that history; re-list`);
    }
    const start = since ?? sys.core.index;
    if (start < sys.core.history.firstIndex - 1) {
      throw new OsError('conflict', `index ${start} is older than the retained log (from ${sys.core.history.firstIndex}): re-list, then watch from the list's index`);
    }
    const hq: HandlerQuery & { select?: Query['select'] } = { type: q.type, namespace: q.namespace, tags: q.tags, select: q.select };
    const res = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!res) throw new OsError('internal', 'watches need the node HTTP server');
    // Written straight to node's response: one event text per change is shared by every
    // watcher (fan-out to a thousand costs one JSON.stringify), and a slow client is waited for
    // ('drain'), never buffered without bound.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-os0-index': String(sys.core.index) });
    void this.pump(res, actor, c.get('tokenId'), hq, start);
    return RESPONSE_ALREADY_SENT;
  }

  private readonly eventCache = new Map<number, string[]>();

  private eventText(rec: Committed, i: number): string {
    let texts = this.eventCache.get(rec.index);
    if (!texts) {
      texts = new Array(rec.changes.length);
      this.eventCache.set(rec.index, texts);
      if (this.eventCache.size > 256) this.eventCache.delete(this.eventCache.keys().next().value!);
    }
    const ch = rec.changes[i];
    return (texts[i] ??= `event: change\nid: ${rec.index}\ndata: ${JSON.stringify({ action: ch.action, index: rec.index, resource: redact((ch.new ?? ch.old)!) })}\n\n`);
  }

  private readonly watches = new Set<{ actor: string; tokenId: string; stop: () => void }>();

  private watchCount(actor: string): number {
    let n = 0;
    for (const w of this.watches) if (w.actor === actor) n++;
    return n;
  }

  private async pump(res: ServerResponse, actor: Actor, tokenId: string, hq: HandlerQuery & { select?: Query['select'] }, start: number): Promise<void> {
    const sys = this.sys;
    sys.watchers++;
    let open = true;
    let wake!: () => void;
    const closed = new Promise<void>((r) => (wake = r));
    const stop = () => {
      open = false;
      wake();
    };
    const entry = { actor: actor.name, tokenId, stop };
    this.watches.add(entry);
    this.closing.add(stop);
    res.on('close', stop);
    const send = async (text: string): Promise<void> => {
      if (!res.write(text)) await Promise.race([new Promise((r) => res.once('drain', r)), closed]);
    };
    try {
      let cursor = start;
      let lastSent = Date.now();
      await send(`event: bookmark\ndata: {"index":${cursor}}\n\n`);
      while (open) {
        const recs = await sys.core.history.read(cursor + 1, 512);
        if (recs === 'gone') {
          const error = { code: 'conflict', message: `fell behind the retained log at ${cursor}: re-list, then watch again from the list's index` };
          await send(`event: gone\ndata: ${JSON.stringify({ error, relist: true, firstIndex: sys.core.history.firstIndex })}\n\n`);
          break;
        }
        if (!sys.permissions.tokenAlive(tokenId)) break;
        let chunk = '';
        const ok = sys.permissions.filterFor(actor, 'watch');
        for (const rec of recs) {
          for (let i = 0; i < rec.changes.length; i++) {
            const ch = rec.changes[i];
            const r = (ch.new ?? ch.old)!;
            if (!matchesChange(hq, ch) || (hq.select && !selects(hq.select, r.tags)) || !ok(r)) continue;
            chunk += this.eventText(rec, i);
          }
          cursor = rec.index;
        }
        if (chunk) {
          await send(chunk);
          lastSent = Date.now();
        }
        if (recs.length > 0) continue;
        const idle = this.bookmarkMs - (Date.now() - lastSent);
        if (idle <= 0) {
          await send(`event: bookmark\ndata: {"index":${cursor}}\n\n`);
          lastSent = Date.now();
          continue;
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([sys.core.history.waitAfter(cursor), closed, new Promise<void>((r) => (timer = setTimeout(r, idle)))]);
        clearTimeout(timer);
      }
    } catch {
      // The client went away mid-write.
    } finally {
      sys.watchers--;
      this.watches.delete(entry);
      this.closing.delete(stop);
      res.end();
    }
  }

  /** Starts listening; resolves with the port. */
  listen(port: number, hostname = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: this.app.fetch, port, hostname }, (info) => resolve(info.port));
      server.once('error', (e: NodeJS.ErrnoException) => {
        reject(new OsError('unavailable', e.code === 'EADDRINUSE' ? `port ${port} is in use; pass --port with a free one` : `cannot listen on ${hostname}:${port}: ${e.message}`));
      });
      this.server = server;
    });
  }

  async close(): Promise<void> {
    for (const stop of this.closing) stop();
    const s = this.server as (ServerType & { closeAllConnections?: () => void }) | null;
    if (!s) return;
    await new Promise<void>((r) => {
      s.close(() => r());
      s.closeAllConnections?.();
    });
    this.server = null;
  }
}

/** The body as text: straight from node's IncomingMessage when served by node (no web streams). */
async function bodyText(c: Context): Promise<string> {
  const incoming = (c.env as { incoming?: import('node:http').IncomingMessage } | undefined)?.incoming;
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

const byKey = (a: Resource, b: Resource): number =>
  a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** The most a page holds, and the most changes a later page undoes before it asks for a re-list. */
const PAGE_MAX = 5000;
const UNDO_MAX = 200_000;

/** A resource's list key: namespace, type, name, joined by a byte no name holds, so it sorts as byKey. */
const keyOf = (r: Resource): string => `${r.namespace}\u0000${r.type}\u0000${r.name}`;

function continueToken(index: number, key: string): string {
  return Buffer.from(JSON.stringify({ i: index, k: key }), 'utf8').toString('base64url');
}

function continueOf(token: string, now: number): { index: number; key: string } {
  const bad = new OsError('invalid', 'the continue token is not one this server gave; list again without it');
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad;
  }
  const t = v as { i?: unknown; k?: unknown };
  if (!t || typeof t !== 'object' || !Number.isSafeInteger(t.i) || (t.i as number) < 0 || typeof t.k !== 'string' || t.k.length > 4096) throw bad;
  if ((t.i as number) > now) throw new OsError('conflict', `the continue token's index ${t.i} is beyond this server's log (${now}): re-list`);
  return { index: t.i as number, key: t.k };
}
