/**
 * What a hostile user found (issue 10), each pinned by a test over a real System and its HTTP
 * API on 127.0.0.1: deny rules that lists must honour, app-scoped rules, reserved actors, bad
 * input that must be a one-line 4xx, values that must not persist, file modes, and the smaller
 * leaks (log, handlers, metrics, watches after revocation, caps, `__proto__` tags).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Api } from '../../core/api/server.ts';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { LIMITS } from '../../core/resource.ts';
import { System } from '../../core/system.ts';
import { http, sse } from '../helpers/os0.ts';
import { tempDir } from '../helpers/tmp.ts';

const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };
let sys: System;
let api: Api;
let url: string;
let adminToken: string;
const dir = path.join(tempDir('hostile-'), 'data');

const as = (token: string) => ({ url, token });
const get = (token: string, p: string) => http(as(token), 'GET', p);
const post = (token: string, p: string, body: unknown) => http(as(token), 'POST', p, body);

async function tokenFor(actor: string, groups: string[] = []): Promise<string> {
  return (await sys.createToken(admin, actor, groups)).token;
}

async function policy(name: string, subject: string, rules: unknown[]): Promise<void> {
  await sys.submit({ op: 'apply', resource: { type: 'policy', name, data: { subjects: [subject], rules } } }, admin);
}

function expectOneLine4xx(r: { status: number; body: any; text: string }, status?: number): void {
  if (status !== undefined) expect(r.status, r.text).toBe(status);
  expect(r.status, r.text).toBeGreaterThanOrEqual(400);
  expect(r.status, r.text).toBeLessThan(500);
  expect(typeof r.body?.error?.message).toBe('string');
  expect(r.body.error.message).not.toContain('\n');
}

beforeAll(async () => {
  const old = process.umask(0);
  try {
    sys = await System.open({ dir });
  } finally {
    process.umask(old);
  }
  sys.writeAdminToken(dir);
  adminToken = sys.adminToken!;
  api = new Api(sys, { bookmarkSeconds: 1 });
  url = `http://127.0.0.1:${await api.listen(0)}`;
  await sys.submit(
    {
      batch: [
        { op: 'create', resource: { type: 'namespace', name: 'dev' } },
        { op: 'create', resource: { type: 'namespace', name: 'dev/secret' } },
        { op: 'create', resource: { type: 'secret', namespace: 'dev', name: 's0', data: { k: 'open' } } },
        { op: 'create', resource: { type: 'secret', namespace: 'dev/secret', name: 's1', data: { k: 'hidden' } } },
        { op: 'create', resource: { type: 'configuration', namespace: 'dev', name: 'c0', data: {} } },
        { op: 'create', resource: { type: 'configuration', namespace: 'dev/secret', name: 'c1', data: {} } },
      ],
    },
    admin,
  );
});

afterAll(async () => {
  await api.close();
  await sys.close();
});

describe('a deny rule', () => {
  let dev: string;
  beforeAll(async () => {
    await policy('dev', 'user:dev', [
      { verbs: ['get', 'list', 'watch'], types: ['secret', 'configuration'], namespaces: ['dev'] },
      { effect: 'deny', verbs: ['*'], types: ['*'], namespaces: ['dev/secret'] },
    ]);
    await policy('glob', 'user:glob', [
      { verbs: ['get', 'list', 'watch'], types: ['secret', 'configuration'] },
      { effect: 'deny', verbs: ['*'], types: ['*'], namespaces: ['dev/secret'] },
    ]);
    dev = await tokenFor('dev');
  });

  it('hides what it covers from a list of a parent namespace', async () => {
    const r = await get(dev, '/v1/resources?type=secret&namespace=dev');
    expect(r.status, r.text).toBe(200);
    expect(r.body.map((x: any) => `${x.namespace}/${x.name}`)).toEqual(['dev/s0']);
    const all = await get(dev, '/v1/resources?namespace=dev');
    expect(all.body.map((x: any) => `${x.namespace}/${x.type}/${x.name}`).sort()).toEqual(['dev/configuration/c0', 'dev/secret/s0']);
  });

  it('hides what it covers from a plain list under a global allow', async () => {
    const glob = await tokenFor('glob');
    const r = await get(glob, '/v1/resources?type=secret');
    expect(r.status, r.text).toBe(200);
    expect(r.body.map((x: any) => `${x.namespace}/${x.name}`)).toEqual(['dev/s0']);
  });

  it('hides what it covers from a watch, the log and a remote handler', async () => {
    const w = await sse(as(dev), `/v1/watch?type=configuration&namespace=dev&since=${sys.core.index}`);
    expect(w.status).toBe(200);
    await w.take(1, 'bookmark');
    const reg = await post(dev, '/v1/handlers', { name: 'dev-h', query: { type: 'configuration', namespace: 'dev' } });
    expect(reg.status, reg.text).toBe(200);
    const since = sys.core.index;
    await sys.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'dev/secret', name: 'c1', data: { n: 1 } } }, admin);
    await sys.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'dev', name: 'c0', data: { n: 1 } } }, admin);
    const [ev] = await w.take(1, 'change');
    expect(ev.json.resource.name).toBe('c0');
    w.close();
    const log = await get(dev, `/v1/log?since=${since}`);
    expect(log.status, log.text).toBe(200);
    expect(log.body.map((x: any) => x.index)).toEqual([since + 2]);
    const evs = await get(dev, '/v1/handlers/dev-h/events');
    expect(evs.body.events.map((e: any) => e.new.name)).toEqual(['c0']);
  });

  it('refuses a get of what it covers', async () => {
    const r = await get(dev, '/v1/resources?type=secret&namespace=dev/secret&name=s1');
    expect(r.status).toBe(403);
    const c = sys.core.get('configuration', 'c1', 'dev/secret')!;
    expect((await get(dev, `/v1/resources/${c.id}`)).status).toBe(403);
  });
});

describe('sensitive types', () => {
  it('are not covered by a "*" grant', async () => {
    await policy('star', 'user:star', [{ verbs: ['*'], types: ['*'] }]);
    const star = await tokenFor('star');
    for (const type of ['secret', 'token', 'policy', 'trusted-key', 'type']) {
      expect(sys.permissions.allowed({ name: 'star', groups: [] }, 'get', type, 'dev'), type).toBe(false);
    }
    expect((await get(star, '/v1/resources?type=configuration&namespace=dev')).status).toBe(200);
    expect((await get(star, '/v1/resources?type=secret&namespace=dev')).status).toBe(403);
    const noSecrets = await get(star, '/v1/resources?namespace=dev');
    expect(noSecrets.body.map((x: any) => x.type)).not.toContain('secret');
    const r = await post(star, '/v1/commands', { op: 'create', resource: { type: 'policy', name: 'mine', data: { subjects: ['user:star'], rules: [{ verbs: ['*'], types: ['secret'] }] } } });
    expect(r.status).toBe(403);
  });
});

describe('an app-scoped rule', () => {
  it('binds every verb, not only invoke', async () => {
    await sys.submit({ op: 'create', resource: { type: 'app', name: 'other', data: { version: '1.0.0' } } }, { name: 'system', groups: [] });
    await policy('hello', 'user:hello', [{ verbs: ['*'], types: ['app'], apps: ['hello'] }]);
    const hello = await tokenFor('hello');
    const r = await post(hello, '/v1/commands', { op: 'apply', resource: { type: 'app', name: 'other', data: { broken: true } } });
    expectOneLine4xx(r, 403);
    expect((sys.core.get('app', 'other')!.data as any).version).toBe('1.0.0');
    const list = await get(hello, '/v1/resources?type=app');
    expect(list.body.map((x: any) => x.name)).not.toContain('other');
  });

  it('leaves the store\'s own resources to install, upgrade and uninstall, even for an admin', async () => {
    for (const type of ['app', 'capability', 'handler', 'filter', 'driver']) {
      const r = await post(adminToken, '/v1/commands', { op: 'create', resource: { type, name: `x-${type}`, data: {} } });
      expectOneLine4xx(r);
      expect(r.body.error.message).toMatch(/install/);
    }
    const del = await post(adminToken, '/v1/commands', { op: 'delete', resource: { type: 'app', name: 'other' } });
    expectOneLine4xx(del);
    expect(sys.core.get('app', 'other')).toBeDefined();
  });
});

describe('tokens', () => {
  it('cannot be minted for reserved actors', async () => {
    for (const actor of ['system', 'app:hello', 'node:n1']) {
      const r = await post(adminToken, '/v1/tokens', { actor });
      expectOneLine4xx(r, 400);
    }
    // Nor written as token resources directly.
    const r = await post(adminToken, '/v1/commands', { op: 'create', resource: { type: 'token', name: 'aaaaaaaaaaaa', data: { actor: 'system', hash: '00' } } });
    expectOneLine4xx(r);
  });

  it('refuse groups that are not strings', async () => {
    for (const groups of [[{ toString: 1 }], [{}], 'admins', [null]]) {
      expectOneLine4xx(await post(adminToken, '/v1/tokens', { actor: 'x', groups }), 400);
    }
  });

  it('once revoked, end the watches they opened', async () => {
    await policy('watcher', 'user:watcher', [{ verbs: ['list', 'watch'], types: ['configuration'] }]);
    const t = await sys.createToken(admin, 'watcher', []);
    const w = await sse(as(t.token), '/v1/watch?type=configuration');
    expect(w.status).toBe(200);
    await w.take(1, 'bookmark');
    await sys.submit({ op: 'delete', resource: { type: 'token', name: t.id } }, admin);
    await sys.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'dev', name: 'after', data: {} } }, admin);
    const deadline = Date.now() + 5000;
    const seen: string[] = [];
    while (!w.ended() && Date.now() < deadline) {
      try {
        const e = await w.next(Math.max(1, deadline - Date.now()));
        if (e.event === 'change') seen.push(e.json.resource.name);
      } catch {
        break;
      }
    }
    expect(w.ended()).toBe(true);
    expect(seen).not.toContain('after');
  });
});

describe('bad input', () => {
  const deep = (n: number): unknown => {
    let v: unknown = 1;
    for (let i = 0; i < n; i++) v = { a: v };
    return v;
  };

  it('nested too deep is a one-line 400, and what is accepted prints as YAML', async () => {
    const r = await post(adminToken, '/v1/commands', `{"op":"create","resource":{"type":"configuration","namespace":"dev","name":"deep","data":${'{"a":'.repeat(6000)}1${'}'.repeat(6000)}}}`);
    expectOneLine4xx(r, 400);
    expect(r.body.error.message).toContain(String(LIMITS.dataDepth));
    const ok = await post(adminToken, '/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'dev', name: 'deepest', data: deep(LIMITS.dataDepth - 1) } });
    expect(ok.status, ok.text).toBe(200);
    const back = await get(adminToken, '/v1/resources?type=configuration&namespace=dev&name=deepest');
    expect(stringify(back.body).length).toBeGreaterThan(0);
  });

  it('/v1/handlers refuses object-valued query fields and bad cursors', async () => {
    for (const body of [
      { name: 'h1', query: { type: { $gt: '' } } },
      { name: 'h1', query: { namespace: ['a'] } },
      { name: 'h1', query: { tags: { a: 1 } } },
      { name: 'h1', query: [] },
      { name: 'h1', query: {}, from: -100 },
      { name: 'h1', query: {}, from: 'abc' },
      { name: 'h1', query: {}, from: 1e300 },
      { name: 'h1', query: {}, from: sys.core.index + 1000 },
    ]) {
      expectOneLine4xx(await post(adminToken, '/v1/handlers', body), 400);
    }
    expect(sys.handlers.status().map((h) => h.name)).not.toContain('h1');
    expectOneLine4xx(await post(adminToken, '/v1/handlers/nope/ack', { index: 'x' }));
  });

  it('ids are the server\'s: a create with an id is refused, whatever the id', async () => {
    const gone = sys.core.get('configuration', 'c0', 'dev')!;
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'dev', name: 'short', data: {} } }, admin);
    const shortId = sys.core.get('configuration', 'short', 'dev')!.id;
    await sys.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'dev', name: 'short' } }, admin);
    for (const id of ['', 'a\u0000b', 'a\nb', 'x'.repeat(100_000), shortId, gone.id]) {
      const r = await post(adminToken, '/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'dev', name: 'chosen', id, data: {} } });
      expectOneLine4xx(r);
    }
    expect(sys.core.get('configuration', 'chosen', 'dev')).toBeUndefined();
  });

  it('?tags=__proto__=x matches nothing that lacks that tag', async () => {
    const r = await get(adminToken, '/v1/resources?tags=__proto__=x');
    expect(r.status === 200 ? r.body : []).toEqual([]);
    const t = await get(adminToken, '/v1/resources?tags=constructor=x');
    expect(t.status === 200 ? t.body : []).toEqual([]);
  });
});

describe('leaks', () => {
  it('/v1/log shows nothing of records the reader may not see', async () => {
    await policy('conf', 'user:conf', [{ verbs: ['list'], types: ['configuration'], namespaces: ['dev'] }]);
    const conf = await tokenFor('conf');
    const since = sys.core.index;
    await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'elsewhere' } }, admin);
    const r = await get(conf, `/v1/log?since=${since}`);
    expect(r.status).toBe(200);
    expect(r.body).toEqual([]);
  });

  it('/v1/handlers lists only the caller\'s own handlers', async () => {
    await policy('w2', 'user:w2', [{ verbs: ['list', 'watch'], types: ['configuration'] }]);
    const a = await tokenFor('w2');
    await post(a, '/v1/handlers', { name: 'w2-h', query: { type: 'configuration' } });
    const b = await tokenFor('conf');
    const list = await get(b, '/v1/handlers');
    expect(list.status).toBe(200);
    expect(list.body.map((h: any) => h.name)).not.toContain('w2-h');
    expect((await get(a, '/v1/handlers')).body.map((h: any) => h.name)).toEqual(['w2-h']);
  });

  it('/metrics needs a bearer token', async () => {
    expect((await http(as(''), 'GET', '/metrics', undefined, null)).status).toBe(401);
    const r = await http(as(adminToken), 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.text).toContain('os0_log_index');
  });

  it('caps the watches and remote handlers of one actor', async () => {
    await policy('many', 'user:many', [{ verbs: ['list', 'watch'], types: ['configuration'] }]);
    const t = await tokenFor('many');
    const open = [];
    let refusedAt = -1;
    for (let i = 0; i < LIMITS.watchesPerActor + 1; i++) {
      const w = await sse(as(t), '/v1/watch?type=configuration');
      if (w.status !== 200) {
        refusedAt = i;
        expect(w.status).toBe(429);
        break;
      }
      open.push(w);
    }
    expect(refusedAt).toBe(LIMITS.watchesPerActor);
    for (const w of open) w.close();
    let handlerRefused = -1;
    for (let i = 0; i < LIMITS.handlersPerActor + 1; i++) {
      const r = await post(t, '/v1/handlers', { name: `many-${i}`, query: { type: 'configuration' } });
      if (r.status !== 200) {
        expectOneLine4xx(r, 429);
        handlerRefused = i;
        break;
      }
    }
    expect(handlerRefused).toBe(LIMITS.handlersPerActor);
  });
});

describe('a disk that fails outside the WAL', () => {
  it('answers a handler registration with one line, and leaves no handler or file behind', async () => {
    // The handler cursors file cannot be written (its temporary path is taken by a directory:
    // the same path through the code as ENOSPC, which a test cannot cause on a real disk).
    const tmp = path.join(dir, 'handlers.json.tmp');
    fs.mkdirSync(tmp);
    const before = fs.readdirSync(dir).sort();
    try {
      const r = await post(adminToken, '/v1/handlers', { name: 'doomed', query: { type: 'configuration' } });
      expect(r.status).toBe(503);
      expect(r.body.error.message).not.toContain('\n');
      expect(r.body.error.message).toMatch(/saving handler doomed failed/);
      expect(sys.handlers.status().map((h) => h.name)).not.toContain('doomed');
      expect(fs.readdirSync(dir).sort()).toEqual(before);
    } finally {
      fs.rmdirSync(tmp);
    }
  });
});

describe('file modes', () => {
  it('are 0700 for directories and 0600 for files, whatever the umask', async () => {
    await sys.core.checkpoint();
    const bad: string[] = [];
    const walk = (d: string): void => {
      if ((fs.statSync(d).mode & 0o777) !== 0o700) bad.push(`${d} ${(fs.statSync(d).mode & 0o777).toString(8)}`);
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if ((fs.statSync(p).mode & 0o777) !== 0o600) bad.push(`${p} ${(fs.statSync(p).mode & 0o777).toString(8)}`);
      }
    };
    walk(dir);
    expect(bad).toEqual([]);
  });
});
