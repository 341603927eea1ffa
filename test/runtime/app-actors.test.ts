/**
 * Apps as actors (issue 10): a capability's host calls run with the intersection of the app's
 * grants and the invoker's rights, deny rules included (ctx.resources.query drops what a deny
 * covers); ctx.secrets.get reads only the secrets the manifest names, and a person's invocation
 * needs `reveal` too; a failed invocation reports the CPU it used; the sandbox queue is fair
 * between owners.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { System } from '../../core/system.ts';
import { Invoker, loadAppFolder } from '../../runtime/invoke/index.ts';
import { Sandbox, compile } from '../../runtime/sandbox/index.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('app-actors-');
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };
const dev: Actor = { name: 'dev', groups: [] };

async function app(name: string, manifest: Record<string, unknown>, files: Record<string, string>) {
  const dir = path.join(root, 'apps', name);
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'os0.json'), JSON.stringify({ name, version: '1.0.0', description: name, ...manifest }));
  for (const [f, t] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), t);
  return loadAppFolder(dir, { cacheDir: path.join(root, 'cache') });
}

describe('apps as actors', () => {
  let sys: System;
  let sandbox: Sandbox;
  let invoker: Invoker;

  beforeAll(async () => {
    sys = await System.open({ dir: path.join(root, 'os0') });
    sandbox = new Sandbox({ processes: 1, concurrency: 2 });
    invoker = new Invoker(sys, sandbox);
    await sys.submit(
      {
        batch: [
          { op: 'create', resource: { type: 'namespace', name: 'dev' } },
          { op: 'create', resource: { type: 'namespace', name: 'dev/secret' } },
          { op: 'create', resource: { type: 'configuration', namespace: 'dev', name: 'c0', data: {} } },
          { op: 'create', resource: { type: 'configuration', namespace: 'dev/secret', name: 'c1', data: {} } },
          { op: 'create', resource: { type: 'secret', namespace: 'dev', name: 'db', data: { password: 'hunter2' } } },
          { op: 'create', resource: { type: 'secret', namespace: 'dev', name: 'other', data: { password: 'nope' } } },
          {
            op: 'create',
            resource: {
              type: 'policy',
              name: 'dev',
              data: {
                subjects: ['user:dev'],
                rules: [
                  { verbs: ['get', 'list', 'invoke'], types: ['configuration', 'app', 'secret'], namespaces: ['*'] },
                  { effect: 'deny', verbs: ['*'], types: ['*'], namespaces: ['dev/secret'] },
                ],
              },
            },
          },
        ],
      },
      admin,
    );
    invoker.add(
      await app(
        'lister',
        {
          capabilities: { list: { entry: 'src/list.ts', description: 'lists' }, spin: { entry: 'src/spin.ts', description: 'spins', timeoutMs: 200 } },
          permissions: { resources: [{ types: ['configuration'], verbs: ['get', 'list'] }] },
        },
        {
          'src/list.ts': `export default async (_: unknown, ctx: any) => (await ctx.resources.query({ type: 'configuration', namespace: 'dev' })).map((r: any) => r.namespace + '/' + r.name).sort();`,
          'src/spin.ts': `export default async () => { for (;;) {} };`,
        },
      ),
    );
    invoker.add(
      await app(
        'vault',
        { capabilities: { read: { entry: 'src/read.ts', description: 'reads' } }, permissions: { resources: [], secrets: [{ name: 'db', namespace: 'dev' }] } },
        { 'src/read.ts': `export default async (name: string, ctx: any) => ctx.secrets.get(name, 'dev');` },
      ),
    );
  }, 60_000);

  afterAll(async () => {
    await sandbox.close();
    await sys.close();
  });

  it('ctx.resources.query drops what a deny rule of the invoker covers', async () => {
    const r = await invoker.invoke(dev, 'lister', 'list', null);
    expect(r.status, JSON.stringify(r.error)).toBe('succeeded');
    expect(r.output).toEqual(['dev/c0']);
    expect((await invoker.invoke(admin, 'lister', 'list', null)).output).toEqual(['dev/c0', 'dev/secret/c1']);
  });

  it('ctx.secrets.get reads only named secrets, and a person needs reveal', async () => {
    const ok = await invoker.invoke(admin, 'vault', 'read', 'db');
    expect(ok.output).toEqual({ password: 'hunter2' });
    const other = await invoker.invoke(admin, 'vault', 'read', 'other');
    expect(other.status).toBe('failed');
    expect(other.error!.message).toMatch(/permissions\.secrets does not name it/);
    const noReveal = await invoker.invoke(dev, 'vault', 'read', 'db');
    expect(noReveal.status).toBe('failed');
    expect(noReveal.error!.message).toMatch(/dev may not reveal secret/);
    expect(JSON.stringify(noReveal)).not.toContain('hunter2');
  });

  it('a failed invocation reports the CPU it used', async () => {
    const r = await invoker.invoke(admin, 'lister', 'spin', null);
    expect(r.status).toBe('failed');
    expect(r.error!.code).toBe('timeout');
    expect(r.cpuMs).toBeGreaterThan(0);
  });

  it('inputs nested too deep are refused before anything runs', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 6000; i++) deep = [deep];
    await expect(invoker.invoke(admin, 'lister', 'list', deep)).rejects.toThrow(/nests deeper than 64/);
  });
});

describe('the sandbox queue', () => {
  it("serves owners in turn: one owner's hanging invocations do not hold another's back", async () => {
    const dir = path.join(root, 'q');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'hang.ts'), 'export default async () => new Promise(() => {});');
    fs.writeFileSync(path.join(dir, 'quick.ts'), 'export default async () => 1;');
    const hang = await compile(path.join(dir, 'hang.ts'), { rootDir: dir });
    const quick = await compile(path.join(dir, 'quick.ts'), { rootDir: dir });
    const sb = new Sandbox({ processes: 1, concurrency: 2 });
    await sb.ready();
    const host = { call: async () => null };
    const order: string[] = [];
    const hangs = Array.from({ length: 3 }, (_, i) =>
      sb.run(hang, null, host, { wallMs: 1500 }, 'user:a').then(
        () => order.push(`a${i}`),
        () => order.push(`a${i}`),
      ),
    );
    const b = sb.run(quick, null, host, {}, 'user:b').then(() => order.push('b'));
    await Promise.all([...hangs, b]);
    await sb.close();
    // One slot of two is the most one owner holds while another waits: b runs at once.
    expect(order[0]).toBe('b');
  });
});
