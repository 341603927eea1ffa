/** The invoker over real HTTP: an in-process instance (the composition root's System, sandbox, invoker and API). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../core/auth/permission.ts';
import { System } from '../../core/system.ts';
import { Invoker, loadAppFolder } from '../../runtime/invoke/index.ts';
import { openInstance } from '../helpers/instance.ts';
import { tempDir } from '../helpers/tmp.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies, checked by the assertions
type Json = any;

const HELLO = path.resolve(import.meta.dirname, '../../samples/hello');

function writeApp(root: string, manifest: unknown, files: Record<string, string>): string {
  fs.mkdirSync(root, { recursive: true });
  fs.writeFileSync(path.join(root, 'os0.json'), typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  }
  return root;
}

const NOSY = `
export default async (input, ctx) => {
  const out = {};
  const attempt = async (k, f) => { try { out[k] = { ok: await f() }; } catch (e) { out[k] = { error: String(e && e.message) }; } };
  await attempt('getGranted', () => ctx.resources.get('configuration', 'c1', 'acme'));
  await attempt('getSecret', () => ctx.resources.get('secret', 's1', 'acme'));
  await attempt('getOtherNs', () => ctx.resources.get('configuration', 'c2', 'other'));
  await attempt('queryGranted', () => ctx.resources.query({ type: 'configuration' }));
  await attempt('querySecrets', () => ctx.resources.query({ type: 'secret' }));
  await attempt('apply', () => ctx.commands.apply({ type: 'configuration', name: 'made', namespace: 'acme', data: {} }));
  await attempt('delete', () => ctx.commands.delete('configuration', 'c1', 'acme'));
  await attempt('applyDns', () => ctx.commands.apply({ type: 'dns-record', name: 'www', namespace: 'acme', data: { type: 'A', value: '10.0.0.1' } }));
  await attempt('updateDns', () => ctx.commands.apply({ type: 'dns-record', name: 'www', namespace: 'acme', data: { type: 'A', value: '10.0.0.2' } }));
  await attempt('applyDnsOther', () => ctx.commands.apply({ type: 'dns-record', name: 'www', namespace: 'other', data: { type: 'A', value: '10.0.0.1' } }));
  await attempt('badDns', () => ctx.commands.apply({ type: 'dns-record', name: 'bad', namespace: 'acme', data: { type: 'MX', value: 'x' } }));
  await attempt('deleteDns', () => ctx.commands.delete('dns-record', 'www', 'acme'));
  return out;
};
`;

describe('Invoker', () => {
  let sys: System;
  let invoker: Invoker;
  let url: string;
  let admin: string;
  let admActor: Actor;
  let appsDir: string;

  const post = (token: string, body: unknown, q = '') =>
    fetch(`${url}/v1/invocations${q}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  beforeAll(async () => {
    const dir = tempDir('invoke-');
    appsDir = path.join(dir, 'apps');
    const inst = await openInstance({ data: path.join(dir, 'data') });
    sys = inst.sys;
    admin = inst.adminToken;
    admActor = inst.admin;
    invoker = inst.invoker;
    url = inst.url;
    invoker.add(await loadAppFolder(HELLO));
    invoker.add(
      await loadAppFolder(
        writeApp(path.join(appsDir, 'boom'), { name: 'boom', version: '0.1.0', capabilities: { go: { entry: 'go.ts', description: 'throws' } } }, {
          'go.ts': `export default async (input: { n: number }) => {\n  if (input.n > 2) throw new RangeError('n is ' + input.n + '; at most 2');\n  return input.n;\n};\n`,
        }),
      ),
    );
    invoker.add(
      await loadAppFolder(
        writeApp(
          path.join(appsDir, 'nosy'),
          {
            name: 'nosy',
            version: '1.0.0',
            capabilities: { look: { entry: 'look.js', description: 'looks around', timeoutMs: 2000 } },
            permissions: {
              resources: [
                { types: ['configuration'], verbs: ['get', 'list'], namespaces: ['acme', 'other'] },
                { types: ['dns-record'], verbs: ['create', 'update', 'delete'] },
              ],
            },
          },
          { 'look.js': NOSY },
        ),
      ),
    );
    await sys.submit(
      {
        batch: [
          { op: 'create', resource: { type: 'namespace', name: 'acme', data: {} } },
          { op: 'create', resource: { type: 'namespace', name: 'other', data: {} } },
          { op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'c1', data: { v: 1 } } },
          { op: 'create', resource: { type: 'configuration', namespace: 'other', name: 'c2', data: { v: 2 } } },
          { op: 'create', resource: { type: 'secret', namespace: 'acme', name: 's1', data: { pw: 'x' } } },
          {
            op: 'create',
            resource: {
              type: 'policy',
              name: 'carol',
              data: {
                subjects: ['user:carol'],
                rules: [
                  { verbs: ['invoke'], types: ['app'], apps: ['nosy', 'boom.go'] },
                  { effect: 'deny', verbs: ['invoke'], types: ['app'], apps: ['nosy.forbidden'] },
                  { verbs: ['get', 'list', 'create', 'update', 'delete'], types: ['*'], namespaces: ['acme'] },
                ],
              },
            },
          },
        ],
      },
      admActor,
    );
  }, 30_000);

  it('invokes hello.greet over HTTP and records the invocation and its observed state', async () => {
    const res = await post(admin, { app: 'hello', capability: 'greet', input: { name: 'world' } });
    expect(res.status).toBe(200);
    const body = await res.json() as Json;
    expect(body.status).toBe('succeeded');
    expect(body.output).toEqual({ greeting: 'hello, world' });
    expect(body.logs).toHaveLength(1);
    expect(body.logs[0]).toContain('greeting');
    expect(body.logs[0]).toContain('world');
    expect(typeof body.durationMs).toBe('number');
    expect(typeof body.cpuMs).toBe('number');
    expect(body.name).toMatch(/^hello\.greet\.[0-9a-f]{8}$/);

    const inv = sys.core.get('invocation', body.name, 'system')!;
    expect(inv.id).toBe(body.id);
    expect(inv.data).toMatchObject({ app: 'hello', capability: 'greet', input: { name: 'world' }, invoker: 'admin' });
    const obs = sys.core.get('invocation/observed', body.name, 'system')!;
    expect(obs.data).toMatchObject({ status: 'succeeded', output: { greeting: 'hello, world' }, logs: body.logs });

    // and over the API too
    const got = await fetch(`${url}/v1/resources/${body.id}`, { headers: { authorization: `Bearer ${admin}` } });
    expect(got.status).toBe(200);
  });

  it('a program that throws is a failed invocation with the message', async () => {
    const res = await post(admin, { app: 'boom', capability: 'go', input: { n: 3 } });
    expect(res.status).toBe(200);
    const body = await res.json() as Json;
    expect(body.status).toBe('failed');
    expect(body.error.code).toBe('threw');
    expect(body.error.message).toContain('RangeError: n is 3; at most 2');
    expect(body.error.message).toContain('go.ts:2');
    const obs = sys.core.get('invocation/observed', body.name, 'system')!;
    expect(obs.data).toMatchObject({ status: 'failed', error: { code: 'threw' } });

    const ok = await (await post(admin, { app: 'boom', capability: 'go', input: { n: 2 } })).json() as Json;
    expect(ok).toMatchObject({ status: 'succeeded', output: 2 });
  });

  it('refuses a token without invoke rights (403), unknown apps (404) and bad bodies (400)', async () => {
    const bob = await sys.createToken(admActor, 'bob', []);
    const res = await post(bob.token, { app: 'hello', capability: 'greet', input: { name: 'x' } });
    expect(res.status).toBe(403);
    expect((await res.json() as Json).error.message).toMatch(/bob may not invoke app \(hello\.greet\)/);

    // carol may invoke nosy (all of it but what a deny names) and boom's capability go only
    const carol = await sys.createToken(admActor, 'carol', []);
    expect((await post(carol.token, { app: 'hello', capability: 'greet', input: { name: 'x' } })).status).toBe(403);
    expect((await (await post(carol.token, { app: 'boom', capability: 'go', input: { n: 1 } })).json() as Json).status).toBe('succeeded');
    const other = await post(carol.token, { app: 'boom', capability: 'other', input: null });
    expect(other.status).toBe(403);
    expect((await other.json() as Json).error.message).toMatch(/carol may not invoke app \(boom\.other\)/);
    const denied = await post(carol.token, { app: 'nosy', capability: 'forbidden', input: null });
    expect(denied.status).toBe(403);

    const r404 = await post(admin, { app: 'nope', capability: 'greet' });
    expect(r404.status).toBe(404);
    expect((await r404.json() as Json).error.message).toContain('"nope"');
    const cap404 = await post(admin, { app: 'hello', capability: 'wave' });
    expect(cap404.status).toBe(404);
    expect((await cap404.json() as Json).error.message).toContain('has no capability "wave"; it has: greet');
    expect((await post(admin, [1, 2])).status).toBe(400);
    expect((await post(admin, { app: 'hello' })).status).toBe(400);
  });

  it('?wait=false answers 202 with the id at once', async () => {
    const res = await post(admin, { app: 'hello', capability: 'greet', input: { name: 'later' } }, '?wait=false');
    expect(res.status).toBe(202);
    const { id, name } = await res.json() as Json;
    expect(typeof id).toBe('string');
    expect(sys.core.get('invocation', name, 'system')?.id).toBe(id);
    const t0 = Date.now();
    while (!sys.core.get('invocation/observed', name, 'system') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    expect(sys.core.get('invocation/observed', name, 'system')?.data).toMatchObject({ status: 'succeeded', output: { greeting: 'hello, later' } });
  });

  it("refuses host calls beyond the app's permissions or the invoker's rights, inside the program", async () => {
    const carol = await sys.createToken(admActor, 'carol', [], 'second token');
    const body = await (await post(carol.token, { app: 'nosy', capability: 'look', input: null })).json() as Json;
    expect(body.status).toBe('succeeded');
    const o = body.output;
    expect(o.getGranted.ok).toMatchObject({ type: 'configuration', name: 'c1', data: { v: 1 } });
    expect(o.getSecret.error).toBe('app nosy may not get secret in acme: its os0.json permissions do not grant it');
    // the app may, carol may not
    expect(o.getOtherNs.error).toMatch(/rejected by permission: carol may not get configuration in other/);
    // query: only what both allow
    expect(o.queryGranted.ok.map((r: { name: string }) => r.name)).toEqual(['c1']);
    expect(o.querySecrets.error).toMatch(/app nosy may not list secret/);
    expect(o.apply.error).toMatch(/app nosy may not create configuration in acme/);
    expect(o.delete.error).toMatch(/app nosy may not delete configuration in acme/);
    expect(sys.core.get('configuration', 'c1', 'acme')).not.toBeNull();
    expect(sys.core.get('configuration', 'made', 'acme')).toBeUndefined();
    // granted by both: applied through all filters, with carol as the actor
    expect(o.applyDns.ok).toMatchObject({ type: 'dns-record', namespace: 'acme', name: 'www', data: { value: '10.0.0.1' } });
    expect(o.updateDns.ok).toMatchObject({ data: { value: '10.0.0.2' } });
    expect(o.applyDnsOther.error).toMatch(/rejected by permission: carol may not create dns-record in other/);
    expect(o.badDns.error).toMatch(/schema/);
    expect(o.deleteDns.ok).toMatchObject({ name: 'www' });
    expect(sys.core.get('dns-record', 'www', 'acme')).toBeUndefined();

    // the admin sees both configurations through the same app
    const adm = await invoker.invoke(admActor, 'nosy', 'look', null);
    expect((adm.output as { queryGranted: { ok: { name: string }[] } }).queryGranted.ok.map((r) => r.name).sort()).toEqual(['c1', 'c2']);
  });

  it('loadAppFolder fails in one line on a missing or malformed manifest and on a program that does not compile', async () => {
    const none = path.join(appsDir, 'empty');
    fs.mkdirSync(none, { recursive: true });
    await expect(loadAppFolder(none)).rejects.toThrow(/no os0\.json/);
    const bad = writeApp(path.join(appsDir, 'badjson'), '{"name": ', {});
    await expect(loadAppFolder(bad)).rejects.toThrow(/os0\.json: not JSON/);
    const noCaps = writeApp(path.join(appsDir, 'nocaps'), { name: 'x', version: '1.0.0' }, {});
    await expect(loadAppFolder(noCaps)).rejects.toThrow(/"capabilities" must be an object/);
    const badVerb = writeApp(path.join(appsDir, 'badverb'), { name: 'x', version: '1.0.0', capabilities: {}, permissions: { resources: [{ types: ['secret'], verbs: ['steal'] }] } }, {});
    await expect(loadAppFolder(badVerb)).rejects.toThrow(/unknown verb "steal"/);
    const broken = writeApp(path.join(appsDir, 'broken'), { name: 'broken', version: '1.0.0', capabilities: { go: { entry: 'go.ts', description: 'x' } } }, { 'go.ts': 'export default async () => { return ; ; ) }\n' });
    const err = await loadAppFolder(broken).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^broken\.go does not compile: go\.ts:1:\d+: /);
    expect((err as Error).message).not.toContain('\n');
  });
});
