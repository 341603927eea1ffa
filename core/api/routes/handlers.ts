/**
 * Remote handlers and parked events (docs/api.md), mounted at /v1: POST/GET /handlers,
 * GET /handlers/:name/events, POST /handlers/:name/ack, POST /handlers/:name/parked/retry,
 * DELETE /handlers/:name/parked, DELETE /handlers/:name.
 */
import { Hono, type Context } from 'hono';
import { ADMIN_GROUP } from '../../auth/permission.ts';
import { OsError } from '../../errors.ts';
import { LIMITS } from '../../resource.ts';
import type { System } from '../../system.ts';
import { handlerQueryOf, readJson, type Env, type Present } from '../http.ts';

export function handlerRoutes(sys: System, present: Present): Hono<Env> {
  const app = new Hono<Env>();

  app.post('/handlers', async (c) => {
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
  app.get('/handlers', (c) => {
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
  app.use('/handlers/:name/*', async (c, next) => {
    mine(c);
    await next();
  });
  app.get('/handlers/:name/events', async (c) => {
    const max = Math.min(Number(c.req.query('max') ?? 100) || 100, 1000);
    const wait = Math.min(Number(c.req.query('wait') ?? 0) || 0, 30_000);
    const actor = c.get('actor');
    // What the caller may not see is dropped inside the poll, so a page is never short for it.
    const ok = sys.permissions.filterFor(actor, 'watch');
    const res = await sys.handlers.poll(c.req.param('name'), max, wait, ok);
    const events = res.events.map((e) => ({ ...e, old: e.old && present(e.old), new: e.new && present(e.new) }));
    return c.json({ ...res, events });
  });
  app.post('/handlers/:name/ack', async (c) => {
    const body = (await readJson(c)) as { index?: unknown };
    const cursor = await sys.handlers.ack(c.req.param('name'), body?.index as number);
    return c.json({ cursor });
  });
  // Parked events of in-process handlers (the kernel's, apps'): an admin retries or drops them.
  const admin = (c: Context<Env>): void => {
    const actor = c.get('actor');
    if (!actor.groups.includes(ADMIN_GROUP)) throw new OsError('forbidden', `only an admin may retry or drop a handler's parked events; ${actor.name} is not one`);
  };
  app.post('/handlers/:name/parked/retry', (c) => {
    admin(c);
    sys.handlers.retryParked(c.req.param('name'));
    return c.json({ ok: true });
  });
  app.delete('/handlers/:name/parked', (c) => {
    admin(c);
    return c.json({ dropped: sys.handlers.dropParked(c.req.param('name')) });
  });
  app.delete('/handlers/:name', async (c) => {
    mine(c);
    await sys.handlers.remove(c.req.param('name'));
    return c.json({ ok: true });
  });

  return app;
}
