/**
 * Install-time escalation (issue 10, finding 3) over a real System, Sandbox and Registry: an
 * install is refused unless the installer holds every right the manifest asks for; an app's
 * handler runs as app:NAME with exactly its manifest's grants (the log shows app:NAME), so a
 * handler cannot write a policy that makes its installer an admin.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { System } from '../../core/system.ts';
import { RegistryClient } from '../../registry/client/index.ts';
import { generateKeyPair, keyIdOf } from '../../registry/package/keys.ts';
import { pack } from '../../registry/package/pack.ts';
import { Registry } from '../../registry/server/index.ts';
import { AppFilters, Invoker } from '../../runtime/invoke/index.ts';
import { Sandbox } from '../../runtime/sandbox/index.ts';
import { Store } from '../../store/index.ts';
import { refused } from '../helpers/errors.ts';
import { until } from '../helpers/os0.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('escalation-');
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };
const mallory: Actor = { name: 'mallory', groups: [] };

function writeApp(name: string, manifest: Record<string, unknown>, files: Record<string, string>): string {
  const dir = path.join(root, 'apps', name);
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'os0.json'), JSON.stringify({ name, version: '1.0.0', description: name, capabilities: {}, ...manifest }));
  for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
  return dir;
}

/** On every configuration in `play`, tries to make mallory an admin, then notes that it ran. */
const ESCALATE = `export default async (ev: any, ctx: any) => {
  if (!ev.new || ev.new.name.startsWith('seen-')) return;
  try {
    await ctx.commands.apply({ type: 'policy', name: 'pwned', data: { subjects: ['user:mallory'], rules: [{ verbs: ['*'], types: ['*', 'policy'] }] } });
  } catch (e) {
    await ctx.commands.apply({ type: 'configuration', namespace: 'play', name: 'seen-' + ev.new.name, data: { refused: String(e.message ?? e) } });
  }
};`;

describe('installing an app', () => {
  let sys: System;
  let sandbox: Sandbox;
  let store: Store;
  let registry: Registry;

  beforeAll(async () => {
    registry = await Registry.open({ dir: path.join(root, 'registry') });
    const url = `http://127.0.0.1:${await registry.listen(0)}`;
    const publisher = new RegistryClient({ url, token: registry.adminToken!, trust: { publisherKeys: [] } });
    const key = generateKeyPair();
    const appFilters = new AppFilters();
    sys = await System.open({ dir: path.join(root, 'os0'), filters: [appFilters] });
    sandbox = new Sandbox({ processes: 1 });
    appFilters.attach(sandbox);
    const invoker = new Invoker(sys, sandbox);
    store = await Store.open({ sys, invoker, appFilters, dir: path.join(root, 'packages'), registryUrl: url, registryKey: registry.info().keys.metadata.publicKey });
    await sys.submit({ op: 'create', resource: { type: 'trusted-key', name: keyIdOf(key.publicKey), data: { kind: 'publisher', publicKey: Buffer.from(key.publicKey).toString('base64') } } }, admin);
    await sys.submit({ op: 'create', resource: { type: 'namespace', name: 'play' } }, admin);
    // mallory may install apps and write configuration in play, nothing more.
    await sys.submit(
      {
        op: 'create',
        resource: {
          type: 'policy',
          name: 'mallory',
          data: { subjects: ['user:mallory'], rules: [{ verbs: ['create', 'update', 'get', 'list'], types: ['app', 'capability', 'handler', 'configuration'], namespaces: ['*'] }] },
        },
      },
      admin,
    );
    const evil = writeApp(
      'evil',
      {
        handlers: { on: { entry: 'src/on.ts', description: 'escalates', query: { type: 'configuration', namespace: 'play' } } },
        permissions: { resources: [{ types: ['configuration'], verbs: ['get', 'create', 'update'], namespaces: ['play'] }] },
      },
      { 'src/on.ts': ESCALATE },
    );
    const greedy = writeApp('greedy', { permissions: { resources: [{ types: ['policy'], verbs: ['create'] }] } }, {});
    const starry = writeApp('starry', { permissions: { resources: [{ types: ['*'], verbs: ['get'] }] } }, {});
    for (const dir of [evil, greedy, starry]) {
      const out = path.join(root, `${path.basename(dir)}.tgz`);
      await pack(dir, { key: key.secretKey, out, cacheDir: path.join(root, 'cache') });
      await publisher.publish(fs.readFileSync(out), { publicKey: key.publicKey });
    }
  }, 120_000);

  afterAll(async () => {
    await sandbox.close();
    await sys.close();
    await registry.close();
  });

  it('is refused when the manifest asks for a right the installer lacks, and writes nothing', async () => {
    const before = sys.core.index;
    const m = await refused(store.install(mallory, 'greedy', '*'));
    expect(m).toMatch(/mallory cannot install greedy@1\.0\.0: its os0\.json asks for create on policy/);
    const star = await refused(store.install(mallory, 'starry', '*'));
    expect(star).toMatch(/asks for get on \*/);
    expect(sys.core.index).toBe(before);
    expect(sys.core.get('app', 'greedy')).toBeUndefined();
  });

  it("runs the app's handler as app:NAME with only its grants: it cannot make its installer an admin", async () => {
    await store.install(mallory, 'evil', '*');
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'play', name: 'trigger', data: {} } }, mallory);
    const seen = (await until(() => sys.core.get('configuration', 'seen-trigger', 'play'), 20_000, 'the handler to run'))!;
    expect((seen.data as { refused: string }).refused).toMatch(/app evil may not create policy/);
    expect(sys.core.get('policy', 'pwned')).toBeUndefined();
    expect(sys.permissions.allowed(mallory, 'create', 'policy', '')).toBe(false);
    // The log says who wrote it: the app, not the kernel.
    const recs = await sys.core.history.read(seen.revision, 1);
    expect(recs !== 'gone' && recs[0].actor).toBe('app:evil');
  });

  it('cannot be undone by deleting the app resource: the app stays installed and invocable', async () => {
    expect(await refused(sys.submit({ op: 'delete', resource: { type: 'app', name: 'evil' } }, admin))).toMatch(/os0 uninstall/);
    expect(store.invoker.app('evil')).toBeDefined();
    await store.uninstall(admin, 'evil');
    expect(store.invoker.app('evil')).toBeUndefined();
  });
});
