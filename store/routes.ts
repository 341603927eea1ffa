/**
 * The store's HTTP routes, mounted on the core's API (base /v1/store):
 *   POST /v1/store/plan      {app, range?, action?: install|upgrade, allowDowngrade?} → Plan (writes nothing)
 *   POST /v1/store/install   {app, range?, allowDowngrade?, expect?: {APP: digest}} → Done
 *   POST /v1/store/upgrade   {app, range?, allowDowngrade?, expect?}                 → Done
 *   DELETE /v1/store/apps/:name[?force=true]                                         → Uninstalled
 *   GET  /v1/store/apps                                                               → AppStatus[]
 * `expect` (the digests a person confirmed after a plan) makes an install refuse anything else.
 */
import { readJson, type Api } from '../core/api/server.ts';
import { OsError } from '../core/errors.ts';
import type { Store } from './store.ts';

const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);

interface Body {
  app: string;
  range: string;
  allowDowngrade: boolean;
  expect?: Record<string, string>;
  action: 'install' | 'upgrade';
  /** A registry added with os0 registry add (its name), or a registry URL; default the embedded one. */
  registry?: string;
}

function body(raw: unknown): Body {
  if (!isRecord(raw) || typeof raw.app !== 'string' || raw.app === '') throw new OsError('invalid', 'send {"app": NAME, "range"?: SEMVER_RANGE}');
  if (raw.range !== undefined && typeof raw.range !== 'string') throw new OsError('invalid', '"range" must be a semver range string such as "^1.0.0"');
  if (raw.action !== undefined && raw.action !== 'install' && raw.action !== 'upgrade') throw new OsError('invalid', '"action" must be install or upgrade');
  if (raw.registry !== undefined && (typeof raw.registry !== 'string' || raw.registry === '')) throw new OsError('invalid', '"registry" must name a registry (os0 registry ls) or be its URL');
  if (raw.expect !== undefined && (!isRecord(raw.expect) || Object.values(raw.expect).some((v) => typeof v !== 'string'))) throw new OsError('invalid', '"expect" must map app names to package digests');
  return {
    app: raw.app,
    range: (raw.range as string | undefined) ?? '*',
    allowDowngrade: raw.allowDowngrade === true,
    expect: raw.expect as Record<string, string> | undefined,
    action: (raw.action as 'install' | 'upgrade' | undefined) ?? 'install',
    registry: raw.registry as string | undefined,
  };
}

export function mountStore(api: Api, store: Store): void {
  const app = api.app;
  app.post('/v1/store/plan', async (c) => {
    const b = body(await readJson(c));
    return c.json(await store.plan(c.get('actor'), b.app, b.range, b.action, { allowDowngrade: b.allowDowngrade, registry: b.registry }));
  });
  app.post('/v1/store/install', async (c) => {
    const b = body(await readJson(c));
    return c.json(await store.install(c.get('actor'), b.app, b.range, { expect: b.expect, allowDowngrade: b.allowDowngrade, registry: b.registry }), 201);
  });
  app.post('/v1/store/upgrade', async (c) => {
    const b = body(await readJson(c));
    return c.json(await store.upgrade(c.get('actor'), b.app, b.range, { allowDowngrade: b.allowDowngrade, expect: b.expect, registry: b.registry }));
  });
  app.delete('/v1/store/apps/:name', async (c) => c.json(await store.uninstall(c.get('actor'), c.req.param('name'), { force: c.req.query('force') === 'true' })));
  app.get('/v1/store/apps', (c) => c.json(store.list(c.get('actor'))));
}
