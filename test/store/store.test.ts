/**
 * The store over a real instance (sdk/cli/instance.ts) and Registry (HTTP on 127.0.0.1): install with
 * dependencies, trust, refusals that write nothing, upgrade through a migration whose writes
 * commit with the switch (or not at all), uninstall of exactly what install wrote, restart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import type { Resource } from '../../core/resource.ts';
import type { System } from '../../core/system.ts';
import { RegistryClient } from '../../registry/client/index.ts';
import { generateKeyPair, keyIdOf, type KeyPair } from '../../registry/package/keys.ts';
import { pack } from '../../registry/package/pack.ts';
import { Registry } from '../../registry/server/index.ts';
import type { Invoker } from '../../runtime/invoke/index.ts';
import { Instance } from '../../sdk/cli/instance.ts';
import { Store } from '../../store/index.ts';
import { refused } from '../helpers/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('store-');
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };

function writeApp(name: string, version: string, manifest: Record<string, unknown>, files: Record<string, string>): string {
  const dir = path.join(root, 'apps', `${name}-${version}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'os0.json'), JSON.stringify({ name, version, description: `${name} for the store tests`, permissions: { resources: [] }, capabilities: {}, ...manifest }));
  for (const [f, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), text);
  }
  return dir;
}

const WIDGETS = { resources: [{ types: ['widget'], verbs: ['get', 'list', 'create', 'update'] }] };
const CONFIG = { resources: [{ types: ['configuration'], verbs: ['get', 'list', 'create', 'update'], namespaces: ['system'] }] };

const apps = {
  base1: () =>
    writeApp(
      'base',
      '1.0.0',
      {
        types: { widget: { description: 'A widget', schema: { type: 'object', properties: { size: { type: 'integer' } }, required: ['size'], additionalProperties: false } } },
        capabilities: { make: { entry: 'src/make.ts', description: 'Makes a widget' } },
        permissions: WIDGETS,
      },
      { 'src/make.ts': `export default async (i: { name: string; size: number }, ctx: any) => (await ctx.commands.apply({ type: 'widget', namespace: 'system', name: i.name, data: { size: i.size } })).name;` },
    ),
  base2: () => writeApp('base', '2.0.0', { types: { widget: { description: 'A widget v2' } }, capabilities: {}, permissions: WIDGETS }, {}),
  top1: () =>
    writeApp(
      'top',
      '1.0.0',
      { dependencies: { base: '^1.0.0' }, capabilities: { count: { entry: 'src/count.ts', description: 'Counts widgets' } }, permissions: WIDGETS },
      { 'src/count.ts': `export default async (_: unknown, ctx: any) => (await ctx.resources.query({ type: 'widget' })).length;` },
    ),
  gadgets: () =>
    writeApp(
      'gadgets',
      '1.0.0',
      {
        types: { gadget: { description: 'A gadget', observed: true } },
        drivers: { gadgetd: { entry: 'src/driver.ts', description: 'Observes gadgets', types: ['gadget'] } },
        permissions: { resources: [{ types: ['gadget/observed'], verbs: ['get', 'create', 'update'] }] },
      },
      {
        // A driver gets {reason, ref, desired, observed}; what it returns is recorded as gadget/observed.
        'src/driver.ts': `export default async (input: any) => (input.desired ? { observed: { seen: input.desired.revision } } : null);`,
      },
    ),
  shapes: (version: string, withType: boolean) => writeApp('shapes', version, withType ? { types: { shape: { description: 'A shape' } }, capabilities: {} } : { capabilities: {} }, {}),
  wantsBase2: () => writeApp('wants-base-two', '1.0.0', { dependencies: { base: '^2.0.0' }, capabilities: {} }, {}),
  shady: () => writeApp('shady', '1.0.0', { capabilities: {} }, {}),
  needsShady: () => writeApp('needs-shady', '1.0.0', { dependencies: { shady: '1.0.0' }, capabilities: {} }, {}),
  counter: (version: string, migration: string | null) =>
    writeApp(
      'counter',
      version,
      {
        capabilities: { read: { entry: 'src/read.ts', description: 'Reads the counter' } },
        permissions: CONFIG,
        services: { ticker: { command: ['node', '-e', '0'], replicas: version === '1.0.0' ? 2 : 1 } },
        ...(migration ? { update: { entry: 'src/update.ts', description: 'Migrates the counter' } } : {}),
      },
      {
        'src/read.ts': `export default async (_: unknown, ctx: any) => ({ version: '${version}', data: (await ctx.resources.get('configuration', 'counter', 'system'))?.data ?? null });`,
        ...(migration ? { 'src/update.ts': migration } : {}),
      },
    ),
};

/** v2's migration: {count} → {value, bumps}. */
const MIGRATE = `
export default async (input: any, ctx: any) => {
  ctx.log('from', input.from.version, 'to', input.to.version);
  const c = await ctx.resources.get('configuration', 'counter', 'system');
  if (c && 'count' in c.data) await ctx.commands.apply({ type: 'configuration', namespace: 'system', name: 'counter', data: { value: c.data.count, bumps: 0 } });
  return 'ok';
};`;
/** v3's migration writes, then throws: none of it may land. */
const MIGRATE_THROWS = `
export default async (input: any, ctx: any) => {
  await ctx.commands.apply({ type: 'configuration', namespace: 'system', name: 'counter', data: { broken: true } });
  await ctx.commands.apply({ type: 'configuration', namespace: 'system', name: 'stray', data: {} });
  throw new Error('cannot migrate ' + input.from.version);
};`;

describe('the store', () => {
  let sys: System;
  let inst: Instance;
  let invoker: Invoker;
  let registry: Registry;
  let store: Store;
  let publisher: RegistryClient;
  let registryUrl: string;
  const trusted: KeyPair = generateKeyPair();
  const stranger: KeyPair = generateKeyPair();
  const dataDir = path.join(root, 'os0');
  let pristine: Map<string, number>;

  /** The instance os0 up builds, without HTTP, its store pointed at the registry of this test. */
  const openStore = async (): Promise<void> => {
    inst = new Instance({ data: dataDir, port: null, registry: { url: registryUrl, key: registry.info().keys.metadata.publicKey } });
    await inst.start();
    sys = inst.sys;
    invoker = inst.invoker;
    store = inst.store;
  };
  const closeStore = async (): Promise<void> => {
    await inst.stop();
  };

  const publish = async (dir: string, key: KeyPair = trusted): Promise<void> => {
    const out = path.join(root, 'tgz', `${path.basename(dir)}-${keyIdOf(key.publicKey)}.tgz`);
    await pack(dir, { key: key.secretKey, out, cacheDir: path.join(root, 'cache') });
    await publisher.publish(fs.readFileSync(out), { publicKey: key.publicKey });
  };

  /** Everything in the tree but invocations (and their observed state), as type/ns/name → revision. */
  const snapshot = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const r of sys.core.query({})) if (!r.type.startsWith('invocation')) m.set(`${r.type} ${r.namespace}/${r.name}`, r.revision);
    return m;
  };
  const invoke = async (app: string, cap: string, input: unknown = null): Promise<unknown> => {
    const r = await invoker.invoke(admin, app, cap, input);
    if (r.status !== 'succeeded') throw new Error(`${app}.${cap} failed: ${r.error?.message}`);
    return r.output;
  };

  beforeAll(async () => {
    registry = await Registry.open({ dir: path.join(root, 'registry') });
    registryUrl = `http://127.0.0.1:${await registry.listen(0)}`;
    publisher = new RegistryClient({ url: registryUrl, token: registry.adminToken!, trust: { publisherKeys: [] } });
    await openStore();
    for (const dir of [apps.gadgets(), apps.shapes('1.0.0', true), apps.shapes('2.0.0', false), apps.base1(), apps.base2(), apps.top1(), apps.wantsBase2(), apps.needsShady(), apps.counter('1.0.0', null), apps.counter('2.0.0', MIGRATE), apps.counter('3.0.0', MIGRATE_THROWS)]) {
      await publish(dir);
    }
    await publish(apps.shady(), stranger);
  }, 120_000);

  afterAll(async () => {
    await closeStore();
    await registry.close();
  });

  it('refuses an app signed by a key the instance does not trust, naming the key, and writes nothing', async () => {
    const before = sys.core.index;
    const m = await refused(store.install(admin, 'top', '*'));
    expect(m).toContain(keyIdOf(trusted.publicKey));
    expect(m).toContain('os0 trust add');
    expect(sys.core.index).toBe(before);
  });

  it('installs an app and its dependency in one batch, declaring their types and capabilities', async () => {
    await sys.submit({ op: 'create', resource: { type: 'trusted-key', name: keyIdOf(trusted.publicKey), data: { kind: 'publisher', publicKey: Buffer.from(trusted.publicKey).toString('base64') } } }, admin);
    pristine = snapshot();
    const plan = await store.plan(admin, 'top', '^1', 'install');
    expect(plan.apps.map((a) => `${a.name}@${a.version}`)).toEqual(['base@1.0.0', 'top@1.0.0']);
    expect(plan.apps[0].permissions).toEqual(WIDGETS);
    const done = await store.install(admin, 'top', '^1', { expect: Object.fromEntries(plan.apps.map((a) => [a.name, a.digest])) });
    const base = sys.core.get('app', 'base')!;
    const top = sys.core.get('app', 'top')!;
    expect(base.revision).toBe(done.index);
    expect(top.revision).toBe(done.index);
    expect((top.data as { keyId: string }).keyId).toBe(keyIdOf(trusted.publicKey));
    const type = sys.core.get('type', 'widget')!;
    expect(type.owner).toEqual([base.id]);
    expect(sys.core.get('capability', 'top.count')!.owner).toEqual([top.id]);
    // The new type validates, and the capabilities run with their app's permissions.
    expect(await invoke('base', 'make', { name: 'w1', size: 3 })).toBe('w1');
    await expect(sys.submit({ op: 'create', resource: { type: 'widget', namespace: 'system', name: 'bad', data: { size: 'big' } } }, admin)).rejects.toThrow(/size/);
    expect(await invoke('top', 'count')).toBe(1);
    expect(store.list(admin).map((a) => [a.name, a.version, a.status])).toEqual([
      ['base', '1.0.0', 'active'],
      ['top', '1.0.0', 'active'],
    ]);
  });

  it("runs a driver on its types' changes; uninstall takes the observed state it wrote along", async () => {
    await store.install(admin, 'gadgets', '*');
    expect(sys.core.get('driver', 'gadgets.gadgetd')!.data).toMatchObject({ types: ['gadget'] });
    await sys.submit({ op: 'create', resource: { type: 'gadget', namespace: 'system', name: 'g1', data: {} } }, admin);
    const deadline = Date.now() + 10_000;
    while (!sys.core.get('gadget/observed', 'g1', 'system') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sys.core.get('gadget/observed', 'g1', 'system')!.data).toEqual({ seen: sys.core.get('gadget', 'g1', 'system')!.revision });
    expect(await refused(store.uninstall(admin, 'gadgets'))).toBe('a gadget resource (system/g1) still exists, and gadgets brings the type gadget; delete it first, or pass --force to delete it too');
    await store.uninstall(admin, 'gadgets', { force: true });
    for (const [t, n] of [['gadget', 'g1'], ['gadget/observed', 'g1']]) expect(sys.core.get(t, n, 'system')).toBeUndefined();
    expect(sys.core.get('type', 'gadget')).toBeUndefined();
    expect(sys.core.get('driver', 'gadgets.gadgetd')).toBeUndefined();
    // Its driver's cursor is forgotten: a later install starts afresh, not from where this one stopped.
    expect(sys.handlers.status().map((h) => h.name)).not.toContain('gadgets.gadgetd.gadget');
  });

  it('names the conflict when a dependency is installed at a version that does not satisfy', async () => {
    const before = sys.core.index;
    const m = await refused(store.install(admin, 'wants-base-two', '*'));
    expect(m).toBe('wants-base-two@1.0.0 needs base@^2.0.0, but base@1.0.0 is installed; upgrade it first (os0 upgrade base@^2.0.0)');
    expect(sys.core.index).toBe(before);
  });

  it('refuses an upgrade that would break an installed app depending on it, naming both ranges', async () => {
    const before = sys.core.index;
    const m = await refused(store.upgrade(admin, 'base', '^2'));
    expect(m).toBe('no version of base satisfies top@1.0.0 needs ^1.0.0, you ask for ^2; it has 1.0.0, 2.0.0');
    expect(sys.core.index).toBe(before);
  });

  it('refuses an upgrade that drops a type still in use', async () => {
    await store.install(admin, 'shapes', '1.0.0');
    await sys.submit({ op: 'create', resource: { type: 'shape', namespace: 'system', name: 'circle', data: {} } }, admin);
    const before = snapshot();
    const m = await refused(store.upgrade(admin, 'shapes', '2.0.0'));
    expect(m).toBe('shapes@2.0.0 no longer brings the type shape, but shape resources exist (e.g. system/circle); delete them first');
    expect(snapshot()).toEqual(before);
    await sys.submit({ op: 'delete', resource: { type: 'shape', namespace: 'system', name: 'circle' } }, admin);
    await store.upgrade(admin, 'shapes', '2.0.0');
    expect(sys.core.get('type', 'shape')).toBeUndefined();
    await store.uninstall(admin, 'shapes');
  });

  it('an install whose dependency fails its signature check leaves nothing behind', async () => {
    const before = snapshot();
    const m = await refused(store.install(admin, 'needs-shady', '*'));
    expect(m).toContain(keyIdOf(stranger.publicKey));
    expect(sys.core.get('app', 'needs-shady')).toBeUndefined();
    expect(sys.core.get('app', 'shady')).toBeUndefined();
    expect(snapshot()).toEqual(before);
  });

  it('refuses a package altered at rest in the registry, and writes nothing', async () => {
    await publish(apps.counter('0.9.0', null));
    const meta = await publisher.metadata('counter');
    const integrity = meta.versions['0.9.0'].integrity;
    const hex = Buffer.from(integrity.slice('sha256-'.length), 'base64').toString('hex');
    const blob = path.join(root, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
    const files = fs.existsSync(blob) ? [blob] : fs.readdirSync(path.join(root, 'registry', 'blobs'), { recursive: true }).map(String).filter((f) => f.includes(hex)).map((f) => path.join(root, 'registry', 'blobs', f));
    expect(files.length).toBe(1);
    const bytes = fs.readFileSync(files[0]);
    bytes[bytes.length - 5] ^= 0xff;
    fs.writeFileSync(files[0], bytes);
    const before = snapshot();
    const m = await refused(store.install(admin, 'counter', '0.9.0'));
    expect(m).toMatch(/altered|integrity|does not match/);
    expect(snapshot()).toEqual(before);
  });

  it('upgrades through the migration: its writes land with the switch, and the new version serves', async () => {
    await store.install(admin, 'counter', '1.0.0');
    expect(sys.core.query({ type: 'task', tags: { 'os0/app': 'counter' } }).map((r) => r.name).sort()).toEqual(['counter.ticker.0', 'counter.ticker.1']);
    await sys.submit({ op: 'apply', resource: { type: 'configuration', namespace: 'system', name: 'counter', data: { count: 7 } } }, admin);
    expect(await invoke('counter', 'read')).toEqual({ version: '1.0.0', data: { count: 7 } });
    const done = await store.upgrade(admin, 'counter', '^2');
    expect(done.logs).toEqual(['from 1.0.0 to 2.0.0']);
    const app = sys.core.get('app', 'counter')!;
    expect(app.data).toMatchObject({ version: '2.0.0', previous: '1.0.0' });
    const config = sys.core.get('configuration', 'counter', 'system')!;
    expect(config.data).toEqual({ value: 7, bumps: 0 });
    expect(config.revision).toBe(done.index);
    // Declared resources follow the new manifest: one replica now, in the same batch.
    expect(sys.core.query({ type: 'task', tags: { 'os0/app': 'counter' } }).map((r) => r.name)).toEqual(['counter.ticker.0']);
    expect(sys.core.get('task', 'counter.ticker.1', 'system')).toBeUndefined();
    expect(await invoke('counter', 'read')).toEqual({ version: '2.0.0', data: { value: 7, bumps: 0 } });
  });

  it('a migration that throws leaves the old version serving and writes nothing', async () => {
    const before = snapshot();
    const m = await refused(store.upgrade(admin, 'counter', '3.0.0'));
    expect(m).toMatch(/^the update migration of counter@3\.0\.0 failed: Error: cannot migrate 2\.0\.0 \(at src\/update\.ts:\d+:\d+\); counter@2\.0\.0 is still active and nothing was written$/);
    expect(snapshot()).toEqual(before);
    expect(sys.core.get('configuration', 'stray', 'system')).toBeUndefined();
    expect(await invoke('counter', 'read')).toEqual({ version: '2.0.0', data: { value: 7, bumps: 0 } });
  });

  it('refuses a downgrade unless allowed, and a rollback below what it accepted', async () => {
    const m = await refused(store.upgrade(admin, 'counter', '1.0.0'));
    expect(m).toBe('counter@1.0.0 is older than the installed 2.0.0; pass --allow-downgrade to go back');
  });

  it('finds every installed app again after a restart', async () => {
    await closeStore();
    await openStore();
    expect(store.list(admin).map((a) => `${a.name}@${a.version}:${a.status}`)).toEqual(['base@1.0.0:active', 'counter@2.0.0:active', 'top@1.0.0:active']);
    expect(await invoke('top', 'count')).toBe(1);
  });

  it('uninstall: refused while others depend on it; --force names them; removes exactly what install wrote', async () => {
    let m = await refused(store.uninstall(admin, 'base'));
    expect(m).toBe('top@1.0.0 depends on base; uninstall it first, or pass --force to break it');
    const counterOwned = (r: Resource) => r.tags['os0/app'] === 'counter' || (r.type === 'app' && r.name === 'counter');
    expect(sys.core.query({}).filter(counterOwned).length).toBeGreaterThan(3);
    const res = await store.uninstall(admin, 'counter');
    expect(res.broken).toEqual([]);
    expect(sys.core.query({}).filter(counterOwned)).toEqual([]);
    await expect(invoker.invoke(admin, 'counter', 'read', null)).rejects.toThrow(/no app "counter"/);
    // The app's data (its configuration) is not what install wrote: it stays.
    expect(sys.core.get('configuration', 'counter', 'system')).toBeDefined();
    // Rollback protection outlives the install: going back to 1.0.0 needs saying so.
    expect(await refused(store.install(admin, 'counter', '1.0.0'))).toBe('counter@1.0.0 is older than 2.0.0, installed before: refusing a rollback (pass --allow-downgrade)');
    await store.install(admin, 'counter', '1.0.0', { allowDowngrade: true });
    await store.uninstall(admin, 'counter');

    await store.uninstall(admin, 'top');
    // A widget (of base's type) exists: refused, unless forced.
    m = await refused(store.uninstall(admin, 'base'));
    expect(m).toBe('a widget resource (system/w1) still exists, and base brings the type widget; delete it first, or pass --force to delete it too');
    await store.install(admin, 'top', '*');
    m = await refused(store.uninstall(admin, 'base'));
    expect(m).toContain('top@1.0.0 depends on base');
    const forced = await store.uninstall(admin, 'base', { force: true });
    expect(forced.broken).toEqual(['top@1.0.0']);
    expect(sys.core.get('type', 'widget')).toBeUndefined();
    expect(sys.core.query({ type: 'widget' })).toEqual([]);
    await store.uninstall(admin, 'top');
    expect(sys.core.query({ type: 'app' })).toEqual([]);
    for (const t of ['capability', 'handler', 'filter', 'driver', 'service', 'component', 'task-group', 'task']) expect(sys.core.query({ type: t })).toEqual([]);
    // Everything there before the first install, and nothing else but the apps' own data and the client's memory.
    const now = [...snapshot().keys()].filter((k) => k !== 'configuration system/counter' && k !== 'configuration system/store-client');
    expect(now.sort()).toEqual([...pristine.keys()].sort());
  });

  it('a key no longer trusted (os0 trust rm) installs nothing more', async () => {
    await sys.submit({ op: 'delete', resource: { type: 'trusted-key', name: keyIdOf(trusted.publicKey) } }, admin);
    const before = sys.core.index;
    expect(await refused(store.install(admin, 'top', '*'))).toBe(`base is signed by key ${keyIdOf(trusted.publicKey)}, which is not trusted (add its .pub with os0 trust add)`);
    expect(sys.core.index).toBe(before);
  });
});
