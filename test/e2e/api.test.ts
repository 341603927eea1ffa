/**
 * The HTTP API end to end: a real `os0 up` process, real HTTP. Apply, get, delete over
 * /v1/commands and /v1/resources, and every way a command is refused (docs/api.md,
 * "Resources").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { client, http, startOs0, type HttpResult, type Os0 } from '../helpers/os0.ts';

let s: Os0;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  s = await startOs0();
  api = client(s);
});

/** Asserts the contract's error shape: JSON {error: {code, message, filter?}} with the status. */
function expectError(r: HttpResult, status: number, code: string, message: string | RegExp, filter?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get('content-type')).toMatch(/application\/json/);
  expect(Object.keys(r.body)).toEqual(['error']);
  expect(r.body.error.code).toBe(code);
  if (typeof message === 'string') expect(r.body.error.message).toBe(message);
  else expect(r.body.error.message).toMatch(message);
  if (filter === undefined) expect(r.body.error.filter).toBeUndefined();
  else expect(r.body.error.filter).toBe(filter);
}

const ns = (name: string, data: Record<string, unknown> = {}) => ({ op: 'create', resource: { type: 'namespace', name, data } });
const conf = (namespace: string, name: string, extra: Record<string, unknown> = {}) => ({
  op: 'create',
  resource: { type: 'configuration', namespace, name, data: {}, ...extra },
});
const machine = (namespace: string, name: string, cpu: number, memoryMb: number) => ({
  op: 'create',
  resource: { type: 'machine', namespace, name, data: { cpu, memoryMb } },
});

/** Submits commands one after another (each must be accepted). */
async function seq(...cmds: unknown[]): Promise<void> {
  for (const c of cmds) await api.submit(c);
}

async function exists(type: string, namespace: string, name: string): Promise<boolean> {
  const r = await api.get(`/v1/resources?type=${type}&namespace=${encodeURIComponent(namespace)}&name=${name}`);
  if (r.status === 404) return false;
  expect(r.status, r.text).toBe(200);
  return true;
}

async function metric(name: string): Promise<number> {
  const r = await http(s, 'GET', '/metrics');
  const line = r.text.split('\n').find((l) => l.startsWith(name + ' '));
  return line ? Number(line.slice(name.length + 1)) : 0;
}

describe('the server', () => {
  it('answers /healthz without a token, and wrote the admin token with mode 0600', async () => {
    const r = await http({ url: s.url, token: '' }, 'GET', '/healthz', undefined, null);
    expect(r.status).toBe(200);
    expect(r.body.ok).toBe(true);
    expect(Number.isInteger(r.body.index)).toBe(true);
    expect(r.body.index).toBeGreaterThan(0); // bootstrap wrote the built-ins
    const st = fs.statSync(path.join(s.dataDir, 'admin.token'));
    expect(st.mode & 0o777).toBe(0o600);
    expect(s.token).toMatch(/^os0_[0-9a-f]{12}_[A-Za-z0-9_-]{20,64}$/);
  });

  it('refuses every /v1 route without a valid token: 401 JSON', async () => {
    const message = 'missing or unknown token: pass --token or set OS0_TOKEN (the admin token is in DATA/admin.token)';
    expectError(await http(s, 'GET', '/v1/resources?type=namespace', undefined, null), 401, 'unauthorized', message);
    expectError(await http(s, 'POST', '/v1/commands', conf('system', 'x'), null), 401, 'unauthorized', message);
    expectError(await http(s, 'GET', '/v1/watch', undefined, null), 401, 'unauthorized', message);
    // Every sub-app of core/api/routes, and the routes other layers mount later (store, invoker).
    for (const [method, route] of [['GET', '/v1/log'], ['GET', '/v1/tokens'], ['GET', '/v1/secrets/key'], ['GET', '/v1/handlers'], ['GET', '/v1/handlers/h/events'], ['DELETE', '/v1/handlers/h'], ['GET', '/v1/store/apps'], ['POST', '/v1/invocations'], ['GET', '/v1/nothing-here']] as const) {
      expectError(await http(s, method, route, undefined, null), 401, 'unauthorized', message);
    }
    // A well-formed token that does not exist, and a token with the right id but a wrong secret.
    const id = s.token.split('_')[1];
    expectError(await http(s, 'GET', '/v1/resources', undefined, 'os0_000000000000_aaaaaaaaaaaaaaaaaaaaaaaa'), 401, 'unauthorized', message);
    expectError(await http(s, 'GET', '/v1/resources', undefined, `os0_${id}_aaaaaaaaaaaaaaaaaaaaaaaa`), 401, 'unauthorized', message);
    expectError(await http(s, 'GET', '/v1/resources', undefined, 'garbage'), 401, 'unauthorized', message);
    expect(await exists('configuration', 'system', 'x')).toBe(false);
  });

  it('answers an unknown route with 404 JSON', async () => {
    const r = await api.get('/v1/nothing-here');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('not_found');
    expect(r.body.error.message).toBe('no route GET /v1/nothing-here; the routes are listed in docs/api.md');
  });
});

describe('apply, get and delete', () => {
  it('creates one resource, reads it by id and by name, updates it and deletes it', async () => {
    const before = (await http(s, 'GET', '/healthz')).body.index as number;
    const created = await api.post('/v1/commands', conf('system', 'app-1', { tags: { role: 'web' }, data: { a: 1 } }));
    expect(created.status, created.text).toBe(200);
    expect(Object.keys(created.body).sort()).toEqual(['index', 'resources']);
    expect(created.body.index).toBe(before + 1);
    const r = created.body.resources[0];
    expect(r).toMatchObject({ apiVersion: 'os0/v1', type: 'configuration', namespace: 'system', name: 'app-1', revision: created.body.index, tags: { role: 'web' }, data: { a: 1 } });
    expect(typeof r.id).toBe('string');

    const byId = await api.get(`/v1/resources/${r.id}`);
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(r);
    const byName = await api.get('/v1/resources?type=configuration&namespace=system&name=app-1');
    expect(byName.status).toBe(200);
    expect(byName.body).toEqual(r);
    expect(Number(byName.headers.get('x-os0-index'))).toBeGreaterThanOrEqual(created.body.index);

    const updated = await api.post('/v1/commands', { op: 'update', resource: { type: 'configuration', namespace: 'system', name: 'app-1', data: { a: 2 } } });
    expect(updated.status, updated.text).toBe(200);
    expect(updated.body.resources[0]).toMatchObject({ id: r.id, revision: updated.body.index, data: { a: 2 }, created: r.created });

    const applied = await api.post('/v1/commands', { op: 'apply', resource: { type: 'configuration', namespace: 'system', name: 'app-1', data: { a: 3 } } });
    expect(applied.status).toBe(200);
    expect(applied.body.resources[0]).toMatchObject({ id: r.id, data: { a: 3 } });

    const deleted = await api.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'system', name: 'app-1' } });
    expect(deleted.status, deleted.text).toBe(200);
    expect(deleted.body.resources[0]).toMatchObject({ id: r.id, name: 'app-1' });
    expectError(await api.get(`/v1/resources/${r.id}`), 404, 'not_found', `no resource with id ${r.id}`);
    expectError(await api.get('/v1/resources?type=configuration&namespace=system&name=app-1'), 404, 'not_found', 'configuration system/app-1 does not exist');
  });

  it('create of an existing resource is 409; update and delete of a missing one are 404', async () => {
    expect((await api.post('/v1/commands', conf('system', 'dup'))).status).toBe(200);
    const again = await api.post('/v1/commands', conf('system', 'dup'));
    expectError(again, 409, 'conflict', /^configuration system\/dup already exists \(revision \d+\); use apply or update to change it$/);
    expectError(
      await api.post('/v1/commands', { op: 'update', resource: { type: 'configuration', namespace: 'system', name: 'ghost', data: {} } }),
      404,
      'not_found',
      'configuration system/ghost does not exist',
    );
    expectError(await api.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'system', name: 'ghost' } }), 404, 'not_found', 'configuration system/ghost does not exist');
  });

  it('a batch is atomic: all at one index, or nothing when any command is refused', async () => {
    expect((await api.post('/v1/commands', ns('batch'))).status).toBe(200);
    const bad = await api.post('/v1/commands', {
      batch: [conf('batch', 'b1'), conf('batch', 'b2'), { op: 'create', resource: { type: 'service', namespace: 'batch', name: 'svc', data: { command: ['x'], replicas: -1 } } }],
    });
    expectError(bad, 422, 'rejected', 'rejected by schema: service batch/svc: data.replicas must be >= 0', 'schema');
    expect(await exists('configuration', 'batch', 'b1')).toBe(false);
    expect(await exists('configuration', 'batch', 'b2')).toBe(false);

    // A conflict in the middle refuses the whole batch too.
    expect((await api.post('/v1/commands', conf('batch', 'taken'))).status).toBe(200);
    expectError(await api.post('/v1/commands', { batch: [conf('batch', 'b1'), conf('batch', 'taken'), conf('batch', 'b3')] }), 409, 'conflict', /configuration batch\/taken already exists/);
    expect(await exists('configuration', 'batch', 'b1')).toBe(false);
    expect(await exists('configuration', 'batch', 'b3')).toBe(false);

    const good = await api.post('/v1/commands', { batch: [conf('batch', 'b1'), conf('batch', 'b2'), conf('batch', 'b3')] });
    expect(good.status, good.text).toBe(200);
    expect(good.body.resources.map((r: { name: string }) => r.name)).toEqual(['b1', 'b2', 'b3']);
    for (const r of good.body.resources) expect(r.revision).toBe(good.body.index);
    const log = await api.get(`/v1/log?since=${good.body.index - 1}`);
    expect(log.body[0].index).toBe(good.body.index);
    expect(log.body[0].changes.map((c: { name: string }) => c.name)).toEqual(['b1', 'b2', 'b3']);
  });

  // BUG (core/core.ts sequence(): admit filters get `this.view`, which does not see the earlier
  // changes of the same record): a batch that creates a namespace and something in it is refused
  // with "the parent namespace ... does not exist". Remove `.fails` once fixed.
  it('a batch can create a namespace and what goes in it', async () => {
    const r = await api.post('/v1/commands', { batch: [ns('fresh'), ns('fresh/kid'), conf('fresh/kid', 'c')] });
    expect(r.status, r.text).toBe(200);
    expect(await exists('configuration', 'fresh/kid', 'c')).toBe(true);
  });

  it('lists by type, namespace prefix, tags, name and observed state', async () => {
    await seq(ns('lst'), ns('lst/a'), ns('lst/a/deep'), ns('lstx'));
    await api.submit({
      batch: [
        conf('lst', 'top', { tags: { role: 'web', tier: '1' } }),
        conf('lst/a', 'mid', { tags: { role: 'db' } }),
        conf('lst/a/deep', 'low', { tags: { role: 'web', tier: '2' } }),
        conf('lstx', 'other', { tags: { role: 'web' } }),
        { op: 'create', resource: { type: 'secret', namespace: 'lst', name: 'pw', data: { v: 'x' } } },
      ],
    });
    const names = (r: HttpResult) => (r.body as { namespace: string; name: string }[]).map((x) => `${x.namespace}/${x.name}`).sort();
    // -n matches the namespace and everything below it, never a sibling that shares the prefix.
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst'))).toEqual(['lst/top', 'lst/a/mid', 'lst/a/deep/low'].sort());
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst/a'))).toEqual(['lst/a/deep/low', 'lst/a/mid']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=role=web'))).toEqual(['lst/a/deep/low', 'lst/top']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=role=web,tier=2'))).toEqual(['lst/a/deep/low']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=role=none'))).toEqual([]);
    // Without a type: everything in the namespace subtree.
    const all = await api.get('/v1/resources?namespace=lst');
    expect(all.status).toBe(200);
    expect((all.body as { type: string }[]).map((r) => r.type).sort()).toEqual(['configuration', 'configuration', 'configuration', 'secret']);
    // Unknown type: 404 naming it.
    expectError(await api.get('/v1/resources?type=bogus'), 404, 'not_found', `unknown type "bogus"; 'os0 get type' lists the types there are`);
    expectError(await api.get('/v1/resources?type=configuration&tags=k%20v'), 400, 'invalid', 'tag selector "k v" must be key=value, key!=value, key or !key');
    // The other selector forms: a key present, absent, a value that differs (or is absent).
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=tier'))).toEqual(['lst/a/deep/low', 'lst/top']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=!tier'))).toEqual(['lst/a/mid']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=tier!=1'))).toEqual(['lst/a/deep/low', 'lst/a/mid']);
    expect(names(await api.get('/v1/resources?type=configuration&namespace=lst&tags=role=web,tier!=2'))).toEqual(['lst/top']);
    // A namespace that does not exist is an error, not an empty list.
    expectError(await api.get('/v1/resources?type=configuration&namespace=nowhere'), 404, 'not_found', `namespace nowhere does not exist; 'os0 get namespace' lists them`);

    // Observed state: its own resource TYPE/observed, read with observed=true.
    await api.submit({ batch: [machine('lst', 'm1', 1, 1024)] });
    expect((await api.get('/v1/resources?type=machine&namespace=lst&observed=true')).body).toEqual([]);
    await api.submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'lst', name: 'm1', data: { state: 'up' } } });
    const obs = await api.get('/v1/resources?type=machine&namespace=lst&observed=true');
    expect(obs.body).toHaveLength(1);
    expect(obs.body[0]).toMatchObject({ type: 'machine/observed', name: 'm1', data: { state: 'up' } });
    const one = await api.get('/v1/resources?type=machine&namespace=lst&name=m1&observed=true');
    expect(one.body).toMatchObject({ type: 'machine/observed', data: { state: 'up' } });
    const desired = await api.get('/v1/resources?type=machine&namespace=lst&name=m1');
    expect(desired.body).toMatchObject({ type: 'machine', data: { cpu: 1, memoryMb: 1024 } });
  });
});

describe('refusals', () => {
  it('schema: bad data names the path; unknown type; wrong scope', async () => {
    await api.submit(ns('sch'));
    const svc = (data: unknown) => ({ op: 'create', resource: { type: 'service', namespace: 'sch', name: 'web', data } });
    expectError(await api.post('/v1/commands', svc({ command: ['node'], replicas: 'three' })), 422, 'rejected', 'rejected by schema: service sch/web: data.replicas must be integer', 'schema');
    expectError(await api.post('/v1/commands', svc({ replicas: 1 })), 422, 'rejected', "rejected by schema: service sch/web: data must have required property 'command'", 'schema');
    expectError(
      await api.post('/v1/commands', svc({ command: ['node'], loadBalancer: { port: 70000 } })),
      422,
      'rejected',
      'rejected by schema: service sch/web: data.loadBalancer.port must be <= 65535',
      'schema',
    );
    expectError(
      await api.post('/v1/commands', { op: 'create', resource: { type: 'dns-record', namespace: 'sch', name: 'x', data: { type: 'MX', value: 'a' } } }),
      422,
      'rejected',
      'rejected by schema: dns-record sch/x: data.type must be one of A, AAAA, CNAME, SRV, TXT',
      'schema',
    );
    expectError(
      await api.post('/v1/commands', { op: 'create', resource: { type: 'bogus', namespace: 'sch', name: 'x', data: {} } }),
      422,
      'rejected',
      `rejected by schema: unknown type "bogus"; see 'os0 get type' for the types there are, or apply a type resource first`,
      'schema',
    );
    expectError(await api.post('/v1/commands', { op: 'create', resource: { type: 'configuration', name: 'x', data: {} } }), 422, 'rejected', /configuration lives in a namespace/, 'schema');
    expectError(
      await api.post('/v1/commands', { op: 'create', resource: { type: 'namespace', namespace: 'sch', name: 'x', data: {} } }),
      400,
      'invalid',
      'command.resource: a namespace is cluster-wide: give its full path as its name and no namespace',
    );
    expectError(await api.post('/v1/commands', { op: 'create', resource: { type: 'policy', namespace: 'sch', name: 'x', data: {} } }), 422, 'rejected', 'rejected by schema: policy is cluster-wide: give no namespace', 'schema');
    expect(await exists('service', 'sch', 'web')).toBe(false);
  });

  it('a body that is not JSON, or not a command, is 400', async () => {
    expectError(await api.post('/v1/commands', '{"op": "create", '), 400, 'invalid', /^the request body is not JSON \(.*\); send a JSON command$/);
    expectError(await api.post('/v1/commands', ''), 400, 'invalid', 'the request body is empty; send a JSON command');
    const notCmd = await api.post('/v1/commands', { op: 'explode', resource: { type: 'configuration', namespace: 'system', name: 'x' } });
    expect(notCmd.status).toBe(400);
    expect(notCmd.body.error.code).toBe('invalid');
  });

  it('a stale `expect` is 409 and changes nothing; the right one applies', async () => {
    const c = await api.submit(conf('system', 'exp', { data: { v: 1 } }));
    const rev = c.resources[0].revision as number;
    const u = await api.submit({ op: 'update', resource: { type: 'configuration', namespace: 'system', name: 'exp', data: { v: 2 } }, expect: rev });
    const rev2 = u.resources[0].revision as number;
    const stale = await api.post('/v1/commands', { op: 'update', resource: { type: 'configuration', namespace: 'system', name: 'exp', data: { v: 3 } }, expect: rev });
    expectError(stale, 409, 'conflict', `configuration system/exp is at revision ${rev2}, not ${rev} as expected; read it again and retry`);
    expect((await api.get('/v1/resources?type=configuration&namespace=system&name=exp')).body.data).toEqual({ v: 2 });
    // expect 0: "must not exist yet".
    expectError(await api.post('/v1/commands', { op: 'apply', resource: { type: 'configuration', namespace: 'system', name: 'exp', data: {} }, expect: 0 }), 409, 'conflict', /is at revision \d+, not 0/);
    const fresh = await api.post('/v1/commands', { op: 'apply', resource: { type: 'configuration', namespace: 'system', name: 'exp-new', data: {} }, expect: 0 });
    expect(fresh.status).toBe(200);
  });

  it('namespace: the parent must exist, and so must a resource namespace', async () => {
    expectError(await api.post('/v1/commands', ns('nowhere/child')), 422, 'rejected', 'rejected by namespace: the parent namespace nowhere does not exist; create it first', 'namespace');
    expectError(await api.post('/v1/commands', conf('nowhere', 'x')), 422, 'rejected', 'rejected by namespace: namespace nowhere does not exist; create it first', 'namespace');
    expect(await exists('namespace', '', 'nowhere/child')).toBe(false);
  });

  it('namespace: a namespace with resources or children cannot be deleted until emptied', async () => {
    await seq(ns('full'), ns('full/kid'));
    await api.submit(conf('full', 'c'));
    const del = (name: string) => api.post('/v1/commands', { op: 'delete', resource: { type: 'namespace', name } });
    expectError(await del('full'), 422, 'rejected', 'rejected by namespace: namespace full is not empty (1 configuration); delete what is in it first', 'namespace');
    await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'full', name: 'c' } });
    expectError(await del('full'), 422, 'rejected', 'rejected by namespace: namespace full has 1 child namespace; delete them first', 'namespace');
    expect((await del('full/kid')).status).toBe(200);
    expect((await del('full')).status).toBe(200);
    expect(await exists('namespace', '', 'full')).toBe(false);
  });
});

describe('permissions', () => {
  let carol: string;
  const asCarol = () => client(s, carol);

  beforeAll(async () => {
    await seq(ns('perm'), ns('perm/locked'), ns('elsewhere'));
    const t = await api.post('/v1/tokens', { actor: 'carol', groups: ['devs'] });
    expect(t.status, t.text).toBe(201);
    expect(t.body).toMatchObject({ actor: 'carol', groups: ['devs'] });
    carol = t.body.token;
  });

  it('a user without a policy gets 403 naming actor, verb and type; a policy grants it', async () => {
    const c = asCarol();
    expectError(await c.post('/v1/commands', conf('perm', 'p1')), 403, 'rejected', 'rejected by permission: carol may not create configuration in perm; ask an admin for a policy that grants it', 'permission');
    expectError(await c.get('/v1/resources?type=configuration&namespace=perm'), 403, 'rejected', /carol may not list configuration in perm/, 'permission');
    expectError(await c.get('/v1/resources?type=namespace&name=perm'), 403, 'rejected', /carol may not get namespace/, 'permission');
    expectError(await c.get('/v1/watch?type=configuration&namespace=perm'), 403, 'rejected', /carol may not watch configuration in perm/, 'permission');
    expect(await exists('configuration', 'perm', 'p1')).toBe(false);

    await api.submit({
      op: 'create',
      resource: { type: 'policy', name: 'carol-perm', data: { subjects: ['user:carol'], rules: [{ verbs: ['*'], types: ['*'], namespaces: ['perm'] }] } },
    });
    const ok = await c.post('/v1/commands', conf('perm', 'p1'));
    expect(ok.status, ok.text).toBe(200);
    expect((await c.get('/v1/log?since=' + (ok.body.index - 1))).body[0].actor).toBe('carol');
    expect((await c.get('/v1/resources?type=configuration&namespace=perm')).body.map((r: { name: string }) => r.name)).toEqual(['p1']);
    // Still nothing outside perm.
    expectError(await c.post('/v1/commands', conf('elsewhere', 'p1')), 403, 'rejected', /carol may not create configuration in elsewhere/, 'permission');
    // Writing policies is not granted by '*' in a namespace: policies are cluster-wide.
    expectError(
      await c.post('/v1/commands', { op: 'create', resource: { type: 'policy', name: 'mine', data: { subjects: ['user:carol'], rules: [{ verbs: ['*'], types: ['*'] }] } } }),
      403,
      'rejected',
      /carol may not create policy/,
      'permission',
    );
  });

  it('a deny rule beats an allow (for the user and through a group)', async () => {
    const c = asCarol();
    expect((await c.post('/v1/commands', conf('perm/locked', 'keep'))).status).toBe(200);
    expect((await c.post('/v1/commands', conf('perm/locked', 'grp'))).status).toBe(200);
    await api.submit({
      op: 'create',
      resource: {
        type: 'policy',
        name: 'carol-deny',
        data: { subjects: ['user:carol'], rules: [{ effect: 'deny', verbs: ['delete'], types: ['configuration'], namespaces: ['perm/locked'] }] },
      },
    });
    const delKeep = await c.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'perm/locked', name: 'keep' } });
    expectError(delKeep, 403, 'rejected', 'rejected by permission: carol may not delete configuration in perm/locked; ask an admin for a policy that grants it', 'permission');
    expect(await exists('configuration', 'perm/locked', 'keep')).toBe(true);
    // The deny is narrow: other verbs and namespaces still work.
    expect((await c.post('/v1/commands', { op: 'update', resource: { type: 'configuration', namespace: 'perm/locked', name: 'keep', data: { v: 1 } } })).status).toBe(200);
    expect((await c.post('/v1/commands', conf('perm', 'gone-soon'))).status).toBe(200);
    expect((await c.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'perm', name: 'gone-soon' } })).status).toBe(200);

    // A deny on the group carol is in also wins over her user's allow.
    await api.submit({
      op: 'create',
      resource: { type: 'policy', name: 'devs-deny', data: { subjects: ['group:devs'], rules: [{ effect: 'deny', verbs: ['update'], types: ['*'], namespaces: ['perm'] }] } },
    });
    expectError(
      await c.post('/v1/commands', { op: 'update', resource: { type: 'configuration', namespace: 'perm', name: 'p1', data: { v: 9 } } }),
      403,
      'rejected',
      /carol may not update configuration in perm/,
      'permission',
    );
    // Removing the deny policies restores the allow.
    await api.submit({ batch: ['carol-deny', 'devs-deny'].map((name) => ({ op: 'delete', resource: { type: 'policy', name } })) });
    expect((await c.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'perm/locked', name: 'keep' } })).status).toBe(200);
  });

  it("a plain user can't write machine/observed unless granted '*/observed' or the type by name", async () => {
    const c = asCarol();
    await api.submit(machine('perm', 'box', 1, 512));
    const obs = { op: 'apply', resource: { type: 'machine/observed', namespace: 'perm', name: 'box', data: { state: 'up' } } };
    expectError(await c.post('/v1/commands', obs), 403, 'rejected', 'rejected by permission: carol may not create the observed state of machine in perm; ask an admin for a policy that grants it', 'permission');
    expectError(await c.get('/v1/resources?type=machine&namespace=perm&observed=true'), 403, 'rejected', /carol may not list the observed state of machine in perm/, 'permission');
    await api.submit({
      op: 'create',
      resource: { type: 'policy', name: 'carol-observed', data: { subjects: ['user:carol'], rules: [{ verbs: ['*'], types: ['*/observed'], namespaces: ['perm'] }] } },
    });
    expect((await c.post('/v1/commands', obs)).status).toBe(200);
    expect((await c.get('/v1/resources?type=machine&namespace=perm&observed=true')).body).toHaveLength(1);
  });

  it('a revoked token gets 401', async () => {
    const t = await api.post('/v1/tokens', { actor: 'dave' });
    const mine = await http(s, 'GET', '/v1/resources', undefined, t.body.token);
    expect(mine.status).toBe(200);
    expect(mine.body).toEqual([]); // no policy: it may list nothing
    const list = await api.get('/v1/tokens');
    const entry = list.body.find((x: { id: string }) => x.id === t.body.id);
    expect(entry).toMatchObject({ id: t.body.id, actor: 'dave', groups: [] });
    expect(JSON.stringify(list.body)).not.toContain(t.body.token.split('_').slice(2).join('_')); // never the secret (which may hold '_')
    expect((await api.del(`/v1/tokens/${t.body.id}`)).status).toBe(200);
    expectError(await http(s, 'GET', '/v1/resources', undefined, t.body.token), 401, 'unauthorized', /missing or unknown token/);
  });
});

describe('quotas and budgets', () => {
  it('a count quota counts everything below the namespace', async () => {
    await seq(ns('q', { quota: { count: { configuration: 3 } } }), ns('q/a'), ns('q/b', { quota: { count: { configuration: 1 } } }));
    await api.submit({ batch: [conf('q/a', 'c1'), conf('q/a', 'c2')] });
    // q/b's own quota of 1.
    await api.submit(conf('q/b', 'c1'));
    expectError(await api.post('/v1/commands', conf('q/b', 'c2')), 422, 'rejected', 'rejected by quota: namespace q/b allows 1 configuration', 'quota');
    // q/a has no quota of its own, but q (its parent) is full: 2 in q/a + 1 in q/b.
    expectError(await api.post('/v1/commands', conf('q/a', 'c3')), 422, 'rejected', 'rejected by quota: namespace q allows 3 configurations', 'quota');
    expectError(await api.post('/v1/commands', conf('q', 'c3')), 422, 'rejected', 'rejected by quota: namespace q allows 3 configurations', 'quota');
    expect(await exists('configuration', 'q/a', 'c3')).toBe(false);
    // Other types are not counted against configuration's quota; an update does not count again.
    expect((await api.post('/v1/commands', { op: 'create', resource: { type: 'secret', namespace: 'q/a', name: 's', data: {} } })).status).toBe(200);
    expect((await api.post('/v1/commands', { op: 'apply', resource: { type: 'configuration', namespace: 'q/a', name: 'c1', data: { v: 2 } } })).status).toBe(200);
    const st = await api.get('/v1/resources?type=namespace&name=q');
    expect(st.body.status.counts).toMatchObject({ configuration: 3, secret: 1 });
    // Freeing one makes room again.
    await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'q/a', name: 'c2' } });
    expect((await api.post('/v1/commands', conf('q/a', 'c3'))).status).toBe(200);
  });

  it('cpu and memory quotas, from the machines below', async () => {
    await api.submit(ns('cpuq', { quota: { cpu: 8, memoryMb: 16384 } }));
    await api.submit(machine('cpuq', 'm1', 6, 4096));
    expectError(await api.post('/v1/commands', machine('cpuq', 'm2', 4, 1024)), 422, 'rejected', 'rejected by quota: namespace cpuq allows 8 cpu and would hold 10', 'quota');
    expectError(await api.post('/v1/commands', machine('cpuq', 'm2', 1, 16384)), 422, 'rejected', 'rejected by quota: namespace cpuq allows 16384 MB of memory and would hold 20480', 'quota');
    expect((await api.post('/v1/commands', machine('cpuq', 'm2', 2, 12288))).status).toBe(200);
  });

  it('machines cost cpu×0.02 + GiB×0.005 per hour; the budget refuses the one that goes over', async () => {
    await seq(ns('bud', { budget: { perHour: 0.25 } }), ns('bud/team'));
    const m1 = await api.submit(machine('bud/team', 'm1', 4, 4096)); // 0.08 + 0.02
    expect(m1.resources[0].cost).toBeCloseTo(0.1, 9);
    const m2 = await api.submit(machine('bud', 'm2', 2, 2048)); // 0.04 + 0.01
    expect(m2.resources[0].cost).toBeCloseTo(0.05, 9);
    // Exactly at the budget fits.
    const m3 = await api.submit(machine('bud/team', 'm3', 4, 4096));
    expect(m3.resources[0].cost).toBeCloseTo(0.1, 9);
    const st = await api.get('/v1/resources?type=namespace&name=bud');
    expect(st.body.status.costPerHour).toBeCloseTo(0.25, 9);
    expect(st.body.status.budgetPerHour).toBe(0.25);
    expect((await api.get('/v1/resources?type=namespace&name=bud/team')).body.status.costPerHour).toBeCloseTo(0.2, 9);
    // The one that goes over, counted from a child namespace, is refused by the parent's budget.
    expectError(
      await api.post('/v1/commands', machine('bud/team', 'm4', 2, 2048)),
      422,
      'rejected',
      'rejected by budget: namespace bud would cost 0.30/h, over its budget of 0.25/h',
      'budget',
    );
    expect(await exists('machine', 'bud/team', 'm4')).toBe(false);
    // Growing a machine is refused the same way; shrinking one is fine and makes room.
    const grow = await api.post('/v1/commands', { op: 'update', resource: { type: 'machine', namespace: 'bud/team', name: 'm1', data: { cpu: 8, memoryMb: 4096 } } });
    expectError(grow, 422, 'rejected', 'rejected by budget: namespace bud would cost 0.33/h, over its budget of 0.25/h', 'budget');
    const shrink = await api.submit({ op: 'update', resource: { type: 'machine', namespace: 'bud/team', name: 'm1', data: { cpu: 1, memoryMb: 1024 } } });
    expect(shrink.resources[0].cost).toBeCloseTo(0.025, 9);
    expect((await api.post('/v1/commands', machine('bud/team', 'm4', 2, 2048))).status).toBe(200);
  });

  it('50 concurrent creates against a count quota of 10: exactly 10 succeed', async () => {
    await api.submit(ns('race', { quota: { count: { configuration: 10 } } }));
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => api.post('/v1/commands', conf('race', `c${i}`))));
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status !== 200);
    expect(ok).toHaveLength(10);
    expect(refused).toHaveLength(40);
    for (const r of refused) expectError(r, 422, 'rejected', 'rejected by quota: namespace race allows 10 configurations', 'quota');
    expect(new Set(ok.map((r) => r.body.index)).size).toBe(10);
    const list = await api.get('/v1/resources?type=configuration&namespace=race');
    expect(list.body).toHaveLength(10);
    expect(list.body.map((r: { name: string }) => r.name).sort()).toEqual(ok.map((r) => r.body.resources[0].name).sort());
    expect((await api.get('/v1/resources?type=namespace&name=race')).body.status.counts.configuration).toBe(10);
  });

  it('50 concurrent batches of 3 against a quota of 10: at most 3 whole batches, never a partial one', async () => {
    await api.submit(ns('race-b', { quota: { count: { configuration: 10 } } }));
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => api.post('/v1/commands', { batch: [0, 1, 2].map((j) => conf('race-b', `b${i}-${j}`)) })),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(3);
    const list = await api.get('/v1/resources?type=configuration&namespace=race-b');
    expect(list.body).toHaveLength(9);
  });
});

describe('metrics', () => {
  it('/metrics is Prometheus text with accepted and rejected-per-filter counters', async () => {
    const r = await http(s, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(r.text).toMatch(/^# HELP os0_commands_accepted_total .+\n# TYPE os0_commands_accepted_total counter\nos0_commands_accepted_total \d+$/m);
    expect(r.text).toContain('# TYPE os0_commands_rejected_total counter');
    // Every sample line is NAME{labels}? VALUE.
    for (const line of r.text.trimEnd().split('\n')) {
      if (!line.startsWith('#')) expect(line).toMatch(/^[a-z0-9_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+-]+$/);
    }

    await api.submit(ns('met', { quota: { count: { configuration: 0 } } }));
    const accepted = await metric('os0_commands_accepted_total');
    const quota = await metric('os0_commands_rejected_total{filter="quota"}');
    const schema = await metric('os0_commands_rejected_total{filter="schema"}');
    const perm = await metric('os0_commands_rejected_total{filter="permission"}');
    await api.submit(conf('system', 'met-1'));
    await api.submit(conf('system', 'met-2'));
    expect((await api.post('/v1/commands', conf('met', 'x'))).status).toBe(422);
    expect((await api.post('/v1/commands', { op: 'create', resource: { type: 'nope', namespace: 'met', name: 'x', data: {} } })).status).toBe(422);
    const t = await api.post('/v1/tokens', { actor: 'metric-user' });
    expect((await http(s, 'POST', '/v1/commands', conf('met', 'y'), t.body.token)).status).toBe(403);
    expect(await metric('os0_commands_accepted_total')).toBe(accepted + 3); // two configurations and the token
    expect(await metric('os0_commands_rejected_total{filter="quota"}')).toBe(quota + 1);
    expect(await metric('os0_commands_rejected_total{filter="schema"}')).toBe(schema + 1);
    expect(await metric('os0_commands_rejected_total{filter="permission"}')).toBe(perm + 1);
    expect(await metric('os0_log_index')).toBe((await http(s, 'GET', '/healthz')).body.index);
  });
});

describe('ownership', () => {
  it('deleting an owner deletes what it owns, transitively, in one index', async () => {
    await api.submit(ns('own'));
    const owner = (await api.submit(conf('own', 'parent'))).resources[0];
    const kids = await api.submit({ batch: [conf('own', 'kid-1', { owner: [owner.id] }), conf('own', 'kid-2', { owner: [owner.id] })] });
    const grand = await api.submit(conf('own', 'grandkid', { owner: [kids.resources[0].id] }));
    await api.submit(conf('own', 'bystander'));
    expectError(await api.post('/v1/commands', conf('own', 'orphan', { owner: ['00000000000000000000'] })), 404, 'not_found', 'configuration own/orphan names owner 00000000000000000000, which does not exist');

    const del = await api.post('/v1/commands', { op: 'delete', resource: { type: 'configuration', namespace: 'own', name: 'parent' } });
    expect(del.status, del.text).toBe(200);
    expect(del.body.index).toBeGreaterThan(grand.index);
    for (const n of ['parent', 'kid-1', 'kid-2', 'grandkid']) expect(await exists('configuration', 'own', n)).toBe(false);
    expect(await exists('configuration', 'own', 'bystander')).toBe(true);
    const log = await api.get(`/v1/log?since=${del.body.index - 1}`);
    expect(log.body).toHaveLength(1);
    expect(log.body[0].index).toBe(del.body.index);
    expect(log.body[0].changes.map((c: { action: string; name: string }) => `${c.action} ${c.name}`).sort()).toEqual(
      ['delete parent', 'delete kid-1', 'delete kid-2', 'delete grandkid'].sort(),
    );
  });
});
