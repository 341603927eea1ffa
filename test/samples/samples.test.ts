/**
 * The sample apps: each packs and passes inspect(); their capabilities run in a real Invoker over
 * a real System; counter 2.0.0's update program migrates 1.x counters.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../core/auth/permission.ts';
import type { Command } from '../../core/resource.ts';
import type { System } from '../../core/system.ts';
import { appFromPackage } from '../../registry/package/app.ts';
import { inspect, pack, UPDATE_BUNDLE } from '../../registry/package/pack.ts';
import { type Invoker, loadAppFolder, type LoadedApp } from '../../runtime/invoke/index.ts';
import { openInstance } from '../helpers/instance.ts';
import { tempDir } from '../helpers/tmp.ts';

const SAMPLES = path.resolve(import.meta.dirname, '../../samples');
const APPS = ['hello', 'notes', 'notes-stats', 'counter/1.0.0', 'counter/2.0.0'];

describe('sample apps', () => {
  let dir: string;
  let sys: System;
  let invoker: Invoker;
  let admin: Actor;
  let counter2: LoadedApp;

  const ok = async (app: string, capability: string, input: unknown): Promise<unknown> => {
    const r = await invoker.invoke(admin, app, capability, input);
    if (r.status !== 'succeeded') throw new Error(`${app}.${capability} ${r.status}: ${r.error?.code} ${r.error?.message}`);
    return r.output;
  };

  beforeAll(async () => {
    dir = tempDir('samples-');
    const inst = await openInstance({ data: path.join(dir, 'data'), port: null });
    sys = inst.sys;
    admin = inst.admin;
    invoker = inst.invoker;
    const cacheDir = path.join(dir, 'cache');
    const notes = await loadAppFolder(path.join(SAMPLES, 'notes'), { cacheDir });
    invoker.add(notes);
    invoker.add(await loadAppFolder(path.join(SAMPLES, 'notes-stats'), { cacheDir }));
    invoker.add(await loadAppFolder(path.join(SAMPLES, 'counter/1.0.0'), { cacheDir }));
    counter2 = await loadAppFolder(path.join(SAMPLES, 'counter/2.0.0'), { cacheDir });
    // No store yet: the type notes brings is declared by hand, as install would.
    await sys.submit(
      {
        batch: [
          { op: 'create', resource: { type: 'type', name: 'note', data: notes.manifest.types!.note } },
          { op: 'create', resource: { type: 'namespace', name: 'acme', data: {} } },
        ],
      },
      admin,
    );
  }, 30_000);

  it.each(APPS)('%s packs, and its package passes inspect() and loads', async (app) => {
    const out = path.join(dir, 'pkgs', `${app.replace('/', '-')}.tgz`);
    const packed = await pack(path.join(SAMPLES, app), { out, cacheDir: path.join(dir, 'cache') });
    const pkg = inspect(fs.readFileSync(packed.file));
    expect(pkg.digest).toBe(packed.digest);
    expect(pkg.files.has('README.md')).toBe(true);
    const loaded = appFromPackage(pkg);
    expect([...loaded.capabilities.keys()].sort()).toEqual(Object.keys(pkg.manifest.capabilities).sort());
    for (const name of loaded.capabilities.keys()) expect(pkg.files.has(`bundles/capabilities/${name}.js`)).toBe(true);
    expect(pkg.files.has(UPDATE_BUNDLE)).toBe(app === 'counter/2.0.0');
    expect(loaded.update?.program.name).toBe(app === 'counter/2.0.0' ? 'counter.update' : undefined);
  });

  it('notes.add applies notes of the type notes brings; notes.list lists one namespace', async () => {
    expect(await ok('notes', 'add', { name: 'first', text: 'hello there' })).toEqual({ namespace: 'system', name: 'first', created: true });
    expect(await ok('notes', 'add', { name: 'second', text: 'three small words', author: 'ann' })).toMatchObject({ created: true });
    expect(await ok('notes', 'add', { namespace: 'acme', name: 'elsewhere', text: 'not in system' })).toMatchObject({ namespace: 'acme' });
    expect(await ok('notes', 'add', { name: 'first', text: 'hello again, world' })).toMatchObject({ created: false });
    expect(sys.core.get('note', 'second', 'system')?.data).toEqual({ text: 'three small words', author: 'ann' });

    expect(await ok('notes', 'list', null)).toEqual({
      namespace: 'system',
      notes: [
        { name: 'first', text: 'hello again, world' },
        { name: 'second', text: 'three small words' },
      ],
    });
    expect(await ok('notes', 'list', { namespace: 'acme' })).toEqual({ namespace: 'acme', notes: [{ name: 'elsewhere', text: 'not in system' }] });

    // the program checks its input, and the type's schema holds for anyone
    const bad = await invoker.invoke(admin, 'notes', 'add', { name: 'empty', text: 5 });
    expect(bad.status).toBe('failed');
    expect(bad.error?.message).toMatch(/"text" string/);
    await expect(sys.submit({ op: 'create', resource: { type: 'note', namespace: 'system', name: 'bad', data: { author: 'x' } } }, admin)).rejects.toThrow(/text/);
  });

  it('notes-stats.count counts the notes (of the type its dependency brings) and their words', async () => {
    expect(await ok('notes-stats', 'count', null)).toEqual({ namespace: 'system', count: 2, words: 6 });
    expect(await ok('notes-stats', 'count', { namespace: 'acme' })).toEqual({ namespace: 'acme', count: 1, words: 3 });
    expect(await ok('notes-stats', 'count', { namespace: 'empty-ns' })).toEqual({ namespace: 'empty-ns', count: 0, words: 0 });
  });

  it('notes-stats may only list notes: its permissions say so', async () => {
    const host = invoker.host(invoker.app('notes-stats')!, admin);
    await expect(host.call('commands.apply', [{ type: 'note', namespace: 'system', name: 'x', data: { text: 'x' } }])).rejects.toThrow(/app notes-stats may not create note in system/);
    await expect(host.call('resources.get', ['note', 'first', 'system'])).rejects.toThrow(/app notes-stats may not get note/);
    expect(((await host.call('resources.query', [{ type: 'note', namespace: 'acme' }])) as unknown[]).length).toBe(1);
  });

  it('counter 1.0.0 bump keeps {count} in the configuration counter', async () => {
    expect(await ok('counter', 'bump', null)).toEqual({ count: 1 });
    expect(await ok('counter', 'bump', { by: 4 })).toEqual({ count: 5 });
    expect(await ok('counter', 'bump', { namespace: 'acme', by: 2 })).toEqual({ count: 2 });
    expect(sys.core.get('configuration', 'counter', 'system')?.data).toEqual({ count: 5 });
    const bad = await invoker.invoke(admin, 'counter', 'bump', { by: 'two' });
    expect(bad.status).toBe('failed');
    expect(bad.error?.message).toContain('"by" must be an integer, not "two"');
  });

  const migration = (to = '2.0.0') => ({ from: { version: '1.0.0', manifest: invoker.app('counter')!.manifest }, to: { version: to, manifest: counter2.manifest } });

  it('counter 2.0.0 update converts {count} into {value, bumps: 0}, and 2.0.0 bump goes on from there', async () => {
    await sys.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'other', data: { count: 9 } } }, admin);
    const { commands, logs } = await invoker.migrate(counter2, admin, migration());
    // staged, not written
    expect(sys.core.get('configuration', 'counter', 'system')?.data).toEqual({ count: 5 });
    const byNs = Object.fromEntries(commands.map((c: Command) => [(c.resource as { namespace: string }).namespace, c]));
    expect(commands).toHaveLength(2);
    expect(byNs.system).toMatchObject({ op: 'apply', resource: { type: 'configuration', name: 'counter', data: { value: 5, bumps: 0 } } });
    expect(byNs.acme).toMatchObject({ op: 'apply', resource: { type: 'configuration', name: 'counter', data: { value: 2, bumps: 0 } } });
    expect(logs.at(-1)).toContain('migrated 2 counter(s) from 1.0.0 to 2.0.0');

    await sys.submit({ batch: commands }, admin);
    expect(sys.core.get('configuration', 'counter', 'system')?.data).toEqual({ value: 5, bumps: 0 });
    expect(sys.core.get('configuration', 'other', 'acme')?.data).toEqual({ count: 9 });
    // run again: nothing left to migrate
    expect((await invoker.migrate(counter2, admin, migration())).commands).toEqual([]);

    invoker.add(counter2);
    expect(await ok('counter', 'bump', { by: 3 })).toEqual({ value: 8, bumps: 1 });
  });

  it('counter 2.0.0 update refuses a target that is not 2.x, and fails on purpose when counter-fail-migration is set', async () => {
    await expect(invoker.migrate(counter2, admin, migration('3.0.0'))).rejects.toThrow(/upgrades counter to 2\.x, not to "3\.0\.0"/);
    await sys.submit(
      {
        batch: [
          { op: 'apply', resource: { type: 'configuration', namespace: 'acme', name: 'counter', data: { count: 7 } } },
          { op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'counter-fail-migration', data: {} } },
        ],
      },
      admin,
    );
    await expect(invoker.migrate(counter2, admin, migration())).rejects.toThrow(/migration refused: counter-fail-migration is set/);
    expect(sys.core.get('configuration', 'counter', 'acme')?.data).toEqual({ count: 7 });
  });
});
