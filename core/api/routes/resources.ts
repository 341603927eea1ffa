/**
 * Commands and reads (docs/api.md), mounted at /v1: POST /commands, GET /resources,
 * GET /resources/:id, GET /log. A list with `limit` or `continue` is answered a page at a time
 * (page(), below).
 */
import { Hono, type Context } from 'hono';
import type { Committed } from '../../core.ts';
import { OsError } from '../../errors.ts';
import { matches } from '../../handlers.ts';
import type { Resource } from '../../resource.ts';
import type { System } from '../../system.ts';
import { selects } from '../../tree/selector.ts';
import type { Query } from '../../tree/tree.ts';
import { byKey, intParam, queryOf, readJson, type Env, type Present } from '../http.ts';

export function resourceRoutes(sys: System, present: Present): Hono<Env> {
  const app = new Hono<Env>();

  app.post('/commands', async (c) => {
    const body = await readJson(c);
    const res = await sys.submit(body, c.get('actor'));
    const resources = res.resources.map(present);
    return c.json(res.unchanged ? { index: res.index, resources, unchanged: res.unchanged.map(present) } : { index: res.index, resources });
  });

  app.get('/resources', (c) => {
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
          return c.json({ ...present(sys.get(c.get('actor'), q.type, name, ns)), data: values });
        }
        return c.json(present(sys.get(c.get('actor'), q.type, name, ns)));
      } catch (e) {
        if (e instanceof OsError && e.code === 'not_found' && ns && !sys.core.get('namespace', ns)) throw new OsError('not_found', `namespace ${ns} does not exist; 'os0 get namespace' lists them`);
        throw e;
      }
    }
    if (c.req.query('continue') !== undefined || q.limit !== undefined) return page(c, q, sys, present);
    const list = sys.list(c.get('actor'), q).sort(byKey);
    if (list.length === 0 && q.namespace && !sys.core.get('namespace', q.namespace)) {
      throw new OsError('not_found', `namespace ${q.namespace} does not exist; 'os0 get namespace' lists them`);
    }
    return c.json(list.map(present));
  });

  app.get('/resources/:id', (c) => c.json(present(sys.getById(c.get('actor'), c.req.param('id')))));

  app.get('/log', async (c) => {
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

  return app;
}

/**
 * One page of a list: at most `limit` resources in key order (namespace, type, name), and in
 * the x-os0-continue header a token for the next page. The token holds the log index the first
 * page was read at and the last key sent, so every page shows the tree as it was at that index:
 * a later page takes the tree now and undoes the changes made since (read back from the log).
 * A token whose index has left the retained log answers 409 with "re-list".
 */
export async function page(c: Context<Env>, q: Query, sys: System, present: Present): Promise<Response> {
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
  return c.json(page.map((r) => present(r)));
}

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
