/**
 * Tokens and the secrets' key (docs/api.md), mounted at /v1: POST/GET /tokens, DELETE /tokens/:id,
 * GET /secrets/key, POST /secrets/rotate-key.
 */
import { Hono } from 'hono';
import { OsError } from '../../errors.ts';
import type { System } from '../../system.ts';
import { readJson, type Env } from '../http.ts';

export function tokenRoutes(sys: System): Hono<Env> {
  const app = new Hono<Env>();

  // The key-encryption key secrets are sealed under: its state, and rotation (re-seals online).
  app.get('/secrets/key', (c) => {
    sys.authorize(c.get('actor'), 'list', 'secret', '');
    return c.json(sys.keyStatus());
  });
  app.post('/secrets/rotate-key', async (c) => c.json(await sys.rotateKey(c.get('actor'))));

  app.post('/tokens', async (c) => {
    const body = (await readJson(c)) as { actor?: unknown; groups?: unknown; description?: unknown };
    const usage = 'a token needs {"actor": NAME, "groups"?: [GROUP, ...], "description"?: TEXT}';
    if (body === null || typeof body !== 'object' || Array.isArray(body) || typeof body.actor !== 'string') throw new OsError('invalid', usage);
    if (body.groups !== undefined && (!Array.isArray(body.groups) || body.groups.some((g) => typeof g !== 'string'))) throw new OsError('invalid', `groups must be a list of group names; ${usage}`);
    if (body.description !== undefined && typeof body.description !== 'string') throw new OsError('invalid', `description must be text; ${usage}`);
    const groups = (body.groups as string[] | undefined) ?? [];
    const t = await sys.createToken(c.get('actor'), body.actor, groups, body.description);
    return c.json({ id: t.id, actor: body.actor, groups, token: t.token }, 201);
  });
  app.get('/tokens', (c) => {
    const list = sys.list(c.get('actor'), { type: 'token' }).map((r) => {
      const d = r.data as { actor: string; groups?: string[]; description?: string };
      return { id: r.name, actor: d.actor, groups: d.groups ?? [], description: d.description ?? '', created: r.created };
    });
    return c.json(list);
  });
  app.delete('/tokens/:id', async (c) => {
    const res = await sys.submit({ op: 'delete', resource: { type: 'token', name: c.req.param('id') } }, c.get('actor'));
    return c.json({ index: res.index });
  });

  return app;
}
