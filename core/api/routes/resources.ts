/**
 * Commands and reads (docs/api.md), mounted at /v1: POST /commands, GET /resources,
 * GET /resources/:id, GET /log.
 */
import { Hono } from 'hono';
import { OsError } from '../../errors.ts';
import type { System } from '../../system.ts';
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
