/** appFromPackage: a package's bundles run as they are, in a real Sandbox; drivers and update travel in packages. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appFromPackage } from '../../registry/package/app.ts';
import { encodePackage, inspect, pack, UPDATE_BUNDLE } from '../../registry/package/pack.ts';
import { loadAppFolder } from '../../runtime/invoke/manifest.ts';
import { sha256 } from '../../runtime/sandbox/compile.ts';
import { Sandbox } from '../../runtime/sandbox/index.ts';
import { RecordingHost } from '../runtime/helpers.ts';
import { tempDir } from '../helpers/tmp.ts';
import { oneLine } from '../helpers/errors.ts';

const HELLO = path.join(import.meta.dirname, '..', '..', 'samples', 'hello');


describe('appFromPackage', () => {
  const dir = tempDir('pkgapp-');
  const cacheDir = path.join(dir, 'cache');
  let sandbox: Sandbox;

  /** An app with one program of every kind. */
  const ALL = {
    name: 'all-kinds',
    version: '0.3.0',
    capabilities: { go: { entry: 'src/go.ts', description: 'doubles' } },
    filters: { guard: { entry: 'src/filter.ts', description: 'allows', types: ['configuration'] } },
    handlers: { watch: { entry: 'src/handler.ts', description: 'logs', query: { type: 'configuration' } } },
    drivers: { things: { entry: 'src/driver.ts', description: 'acts', types: ['thing'] } },
    update: { entry: 'src/update.ts', description: 'migrates', timeoutMs: 3000 },
    permissions: { resources: [{ types: ['configuration'], verbs: ['list'] }] },
  };
  const allDir = path.join(dir, 'all-kinds');

  beforeAll(() => {
    sandbox = new Sandbox({ processes: 1 });
    const files: Record<string, string> = {
      'os0.json': JSON.stringify(ALL, null, 2),
      'src/go.ts': 'export default async (n: number) => n * 2;\n',
      'src/filter.ts': 'export default async () => ({ allow: true });\n',
      'src/handler.ts': 'export default async (ev: { action: string }, ctx: { log: (s: string) => void }) => ctx.log(ev.action);\n',
      'src/driver.ts': 'export default async (ev: { action: string }) => ev.action;\n',
      'src/update.ts':
        "import type { Ctx } from 'os0/sdk';\nexport default async (input: { from: { version: string } }, ctx: Ctx) => {\n  const found = await ctx.resources.query({ type: 'configuration' });\n  return { from: input.from.version, seen: found.length };\n};\n",
    };
    for (const [f, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(allDir, f)), { recursive: true });
      fs.writeFileSync(path.join(allDir, f), text);
    }
  });
  afterAll(async () => {
    await sandbox?.close();
  });

  it('hello: pack, inspect, appFromPackage, and greet in a real Sandbox', async () => {
    const { file } = await pack(HELLO, { out: path.join(dir, 'hello.tgz'), cacheDir });
    const pkg = inspect(file);
    const app = appFromPackage(pkg);
    expect(app.dir).toBe('hello@1.0.0');
    expect(appFromPackage(pkg, '/somewhere').dir).toBe('/somewhere');
    expect(app.manifest).toEqual(pkg.manifest);
    const greet = app.capabilities.get('greet')!;
    expect(greet.spec).toEqual(pkg.manifest.capabilities.greet);
    const p = greet.program;
    expect(Object.isFrozen(p)).toBe(true);
    expect(p).toMatchObject({ name: 'hello.greet', app: 'hello@1.0.0', entry: 'src/greet.ts' });
    expect(p.code).toBe(pkg.files.get('bundles/capabilities/greet.js')!.toString('utf8'));
    expect(p.id).toBe(sha256(p.code));
    expect(p.map).toBe(pkg.files.get('bundles/capabilities/greet.js.map')!.toString('utf8'));
    // the same program the folder compiles to
    const fromFolder = await loadAppFolder(HELLO, { cacheDir });
    expect(p.id).toBe(fromFolder.capabilities.get('greet')!.program.id);

    const host = new RecordingHost();
    const r = await sandbox.run(p, { name: 'world' }, host);
    expect(r.output).toEqual({ greeting: 'hello, world' });
    expect(r.logs).toEqual(['greeting world']);
    expect(host.calls).toEqual([]);
  });

  it('packs drivers to bundles/drivers/NAME.js and the update program to bundles/update.js, and loads every kind', async () => {
    const { file, files } = await pack(allDir, { out: path.join(dir, 'all.tgz'), cacheDir });
    const paths = files.map((f) => f.path);
    for (const p of ['bundles/capabilities/go.js', 'bundles/filters/guard.js', 'bundles/handlers/watch.js', 'bundles/drivers/things.js', UPDATE_BUNDLE, `${UPDATE_BUNDLE}.map`]) {
      expect(paths).toContain(p);
    }
    expect(UPDATE_BUNDLE).toBe('bundles/update.js');
    const app = appFromPackage(inspect(file));
    expect(app.capabilities.get('go')!.program.name).toBe('all-kinds.go');
    expect(app.filters.get('guard')!.spec.types).toEqual(['configuration']);
    expect(app.handlers.get('watch')!.spec.query).toEqual({ type: 'configuration' });
    expect(app.drivers!.get('things')).toMatchObject({ spec: { types: ['thing'] }, program: { name: 'all-kinds.things', app: 'all-kinds@0.3.0', entry: 'src/driver.ts' } });
    expect(app.update).toMatchObject({ spec: { timeoutMs: 3000 }, program: { name: 'all-kinds.update', app: 'all-kinds@0.3.0', entry: 'src/update.ts' } });

    expect((await sandbox.run(app.capabilities.get('go')!.program, 21, new RecordingHost())).output).toBe(42);
    const host = new RecordingHost(() => [{ type: 'configuration', name: 'a', namespace: 'x' }]);
    const r = await sandbox.run(app.update!.program, { from: { version: '0.2.0' }, to: { version: '0.3.0' } }, host);
    expect(r.output).toEqual({ from: '0.2.0', seen: 1 });
    expect(host.calls).toEqual([['resources.query', [{ type: 'configuration' }]]]);
  });

  it('inspect refuses a package without a driver or update bundle; appFromPackage too, in one line', async () => {
    const pkg = inspect(path.join(dir, 'all.tgz'));
    for (const missing of ['bundles/drivers/things.js', UPDATE_BUNDLE]) {
      const files = new Map(pkg.files);
      files.delete(missing);
      expect(oneLine(() => inspect(encodePackage(files)))).toBe(`package all-kinds@0.3.0: missing ${missing}`);
      expect(oneLine(() => appFromPackage({ manifest: pkg.manifest, files }))).toMatch(new RegExp(`^package all-kinds@0\\.3\\.0: missing ${missing.replace(/\./g, '\\.')} for (things|update); repack`));
    }
  });

  it('refuses an os0.json over 64 KiB before parsing it: in pack() and in inspect()', async () => {
    const big = '{' + ' '.repeat(64 * 1024); // not JSON either: the size is refused first
    const huge = path.join(dir, 'huge');
    fs.mkdirSync(huge, { recursive: true });
    fs.writeFileSync(path.join(huge, 'os0.json'), big);
    await expect(pack(huge, { out: path.join(dir, 'huge.tgz') })).rejects.toThrow(/os0\.json: 65537 bytes; a manifest is limited to 64 KiB$/);
    expect(fs.existsSync(path.join(dir, 'huge.tgz'))).toBe(false);
    expect(oneLine(() => inspect(encodePackage(new Map([['os0.json', Buffer.from(big)]]))))).toBe('package os0.json: 65537 bytes; a manifest is limited to 64 KiB');
    // exactly 64 KiB is fine, as far as size goes
    const padded = JSON.stringify({ name: 'pad', version: '1.0.0', capabilities: {} });
    const ok = Buffer.from(padded + ' '.repeat(64 * 1024 - padded.length));
    expect(inspect(encodePackage(new Map([['os0.json', ok]]))).manifest.name).toBe('pad');
  });
});
