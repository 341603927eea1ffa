/** os0.json: the JSON Schema and the checks after it, each refusal one line `WHERE: PATH REASON`; loadAppFolder's drivers and update. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkManifest, loadAppFolder, MANIFEST_BYTES_MAX, type Manifest } from '../../runtime/invoke/manifest.ts';
import { tempDir } from '../helpers/tmp.ts';

const base = (): Record<string, unknown> => ({
  name: 'demo',
  version: '1.0.0',
  capabilities: { greet: { entry: 'src/greet.ts', description: 'greets' } },
});

/** Every field the manifest has, each used once. */
const FULL = {
  name: 'full-app',
  version: '2.1.0-beta.1',
  description: 'Uses every field',
  keywords: ['example', 'all-fields'],
  license: 'MIT',
  capabilities: { greet: { entry: 'src/greet.ts', description: 'greets', timeoutMs: 2000, memoryMb: 32 } },
  filters: { guard: { entry: 'src/guard.ts', description: 'refuses', types: ['configuration', 'thing/observed'] } },
  handlers: { mirror: { entry: 'src/mirror.ts', description: 'mirrors', query: { type: 'configuration', namespace: 'a', tags: { k: 'v' } } } },
  drivers: { things: { entry: 'src/driver.ts', description: 'acts on things', types: ['thing'], timeoutMs: 5000 } },
  permissions: { resources: [{ types: ['thing', 'thing/observed', '*'], verbs: ['get', 'list', 'create', 'update', 'delete'], namespaces: ['acme'] }] },
  dependencies: { notes: '^1.0.0', other: '1.x || >=2.5.0 <3' },
  types: {
    thing: {
      description: 'A thing',
      scope: 'namespaced',
      schema: { type: 'object', properties: { size: { type: 'integer' } } },
      observed: true,
      usage: { cpu: 'data.cpu' },
      pricing: { perHour: 0.5 },
    },
    'a.b-c': { scope: 'cluster' },
  },
  services: {
    web: { description: 'a web server', replicas: 2, command: ['node', 'server.js'], cwd: '/srv', env: { PORT_BASE: '8000' }, resources: { cpu: 0.5, memoryMb: 128 }, loadBalancer: { port: 8080 } },
    idle: { command: ['sleep', '1000'], replicas: 0 },
  },
  update: { entry: 'src/update.ts', description: 'migrates', timeoutMs: 10000, memoryMb: 64 },
};

const refusal = (m: unknown, where?: string): string => {
  try {
    checkManifest(m, where);
  } catch (e) {
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error(`expected ${JSON.stringify(m)} to be refused`);
};

const withCap = (extra: Record<string, unknown>) => ({ ...base(), capabilities: { greet: { entry: 'src/greet.ts', description: 'greets', ...extra } } });

describe('checkManifest', () => {
  it('accepts a manifest that uses every field, and one with only what is required', () => {
    const m: Manifest = checkManifest(structuredClone(FULL));
    expect(m).toEqual(FULL);
    const min = checkManifest(base());
    expect(min.permissions).toEqual({ resources: [] });
    expect(checkManifest({ ...base(), permissions: {} }).permissions).toEqual({ resources: [] });
  });

  it.each([
    // the messages the older hand-written checks gave, still matched by tests elsewhere
    [{ ...base(), name: 'Bad Name' }, `os0.json: "name" must be lowercase letters, digits and '-' (1-63), starting and ending with a letter or digit, not "Bad Name"`],
    [{ name: 'x', version: '1.0.0' }, 'os0.json: "capabilities" must be an object of {NAME: {entry, description}} (it is missing)'],
    [{ ...base(), permissions: { resources: [{ types: ['secret'], verbs: ['steal'] }] } }, 'os0.json: permissions.resources[0].verbs[0] is an unknown verb "steal"; use get, list, create, update, delete'],
    // names
    [{ ...base(), name: '-x' }, `os0.json: "name" must be lowercase letters, digits and '-' (1-63), starting and ending with a letter or digit, not "-x"`],
    [{ ...base(), name: 'a'.repeat(64) }, /^os0\.json: "name" must be lowercase .*, not "a{50,}/],
    [{ ...base(), name: 7 }, /^os0\.json: "name" must be lowercase .*, not 7$/],
    [{ ...base(), capabilities: { Greet: { entry: 'a.ts', description: '' } } }, `os0.json: "capabilities": name "Greet" must be lowercase letters, digits and '-' (1-63), starting and ending with a letter or digit`],
    // versions: semver, canonical
    [{ ...base(), version: '1.0' }, 'os0.json: "version" must be a semantic version such as "1.0.0" or "1.1.0-beta.1" (no leading "v", no "+build"), not "1.0"'],
    [{ ...base(), version: 'v1.0.0' }, 'os0.json: "version" must be a semantic version such as "1.0.0" or "1.1.0-beta.1" (no leading "v", no "+build"), not "v1.0.0"'],
    [{ ...base(), version: '1.0.0+build.5' }, 'os0.json: "version" must be a semantic version such as "1.0.0" or "1.1.0-beta.1" (no leading "v", no "+build"), not "1.0.0+build.5"'],
    [{ ...base(), version: '01.0.0' }, 'os0.json: "version" must be a semantic version such as "1.0.0" or "1.1.0-beta.1" (no leading "v", no "+build"), not "01.0.0"'],
    // unknown fields, anywhere
    [{ ...base(), colour: 'red' }, /^os0\.json: unknown field "colour" at the top level; the fields there are name, version, .*, update$/],
    [withCap({ colour: 'red' }), 'os0.json: unknown field "colour" at /capabilities/greet; the fields there are entry, description, timeoutMs, memoryMb'],
    [{ ...base(), services: { web: { command: ['x'], port: 80 } } }, /^os0\.json: unknown field "port" at \/services\/web; the fields there are description, replicas, command/],
    [{ ...base(), types: { thing: { driver: 'me' } } }, /^os0\.json: unknown field "driver" at \/types\/thing/],
    // limits
    [withCap({ timeoutMs: 60001 }), 'os0.json: capabilities.greet.timeoutMs must be <= 60000'],
    [withCap({ timeoutMs: 0 }), 'os0.json: capabilities.greet.timeoutMs must be >= 1'],
    [withCap({ timeoutMs: 1.5 }), 'os0.json: capabilities.greet.timeoutMs must be an integer, not 1.5'],
    [withCap({ memoryMb: 4 }), 'os0.json: capabilities.greet.memoryMb must be >= 8'],
    // programs
    [{ ...base(), capabilities: { greet: { description: 'x' } } }, `os0.json: capabilities.greet.entry must be the program's file, relative to the app folder, e.g. "src/main.ts" (it is missing)`],
    [{ ...base(), capabilities: { greet: { entry: 'a.ts' } } }, 'os0.json: capabilities.greet.description must be a string saying what it does (it is missing)'],
    [withCap({ entry: '../outside.ts' }), 'os0.json: capabilities.greet.entry must be a path inside the app folder, not "../outside.ts"'],
    [withCap({ entry: '/etc/passwd' }), 'os0.json: capabilities.greet.entry must be a path inside the app folder, not "/etc/passwd"'],
    [{ ...base(), capabilities: [] }, 'os0.json: "capabilities" must be an object of {NAME: {entry, description}}, not an array'],
    [{ ...base(), filters: { f: { entry: 'f.ts', description: '', types: [] } } }, 'os0.json: filters.f.types must be a non-empty array of type names (it has 0)'],
    [{ ...base(), handlers: { h: { entry: 'h.ts', description: '' } } }, 'os0.json: handlers.h.query must be an object {type?, namespace?, tags?} (it is missing)'],
    [{ ...base(), handlers: { h: { entry: 'h.ts', description: '', query: { type: 5 } } } }, /^os0\.json: handlers\.h\.query\.type must be a type name: .*, not 5$/],
    [{ ...base(), drivers: { d: { entry: 'd.ts', description: '' } } }, 'os0.json: drivers.d.types must be a non-empty array of type names (it is missing)'],
    [{ ...base(), drivers: { d: { entry: 'd.ts', description: '', types: ['thing/observed'] } } }, /^os0\.json: drivers\.d\.types\[0\] must be a type name: .*, not "thing\/observed"$/],
    [{ ...base(), update: { entry: 'u.ts' } }, 'os0.json: update.description must be a string saying what it does (it is missing)'],
    [{ ...base(), update: { entry: '../u.ts', description: '' } }, 'os0.json: update.entry must be a path inside the app folder, not "../u.ts"'],
    // permissions
    [{ ...base(), permissions: { resources: [{ types: ['Secret'], verbs: ['get'] }] } }, `os0.json: permissions.resources[0].types[0] must be a type name, '*' (every type) or '*/observed', not "Secret"`],
    [{ ...base(), permissions: { resources: [{ types: ['secret'], verbs: [] }] } }, 'os0.json: permissions.resources[0].verbs must be a non-empty array of get, list, create, update, delete (it has 0)'],
    [{ ...base(), permissions: { resources: {} } }, 'os0.json: permissions.resources must be an array of {types, verbs, namespaces?}, not an object'],
    // dependencies
    [{ ...base(), dependencies: { notes: 'soon' } }, 'os0.json: dependencies.notes must be a semver range such as "^1.0.0", not "soon"'],
    [{ ...base(), dependencies: { demo: '^1.0.0' } }, 'os0.json: dependencies.demo: an app may not depend on itself; remove it'],
    [{ ...base(), dependencies: { 'Not An App': '1' } }, /^os0\.json: "dependencies": name "Not An App" must be an app name: lowercase letters/],
    // keywords, license
    [{ ...base(), keywords: ['Fancy'] }, `os0.json: keywords[0] must be a short keyword: lowercase letters, digits and '-' (1-32), not "Fancy"`],
    [{ ...base(), keywords: Array.from({ length: 21 }, (_, i) => `k${i}`) }, 'os0.json: "keywords" must be an array of at most 20 distinct keywords (it has 21)'],
    [{ ...base(), keywords: ['a', 'a'] }, 'os0.json: "keywords" must be an array of at most 20 distinct keywords'],
    [{ ...base(), license: 3 }, 'os0.json: "license" must be a license name such as "MIT", not 3'],
    // types
    [{ ...base(), types: { Thing: {} } }, `os0.json: "types": name "Thing" must be a type name: lowercase letters, digits, '-' and '.', starting with a letter (1-63)`],
    [{ ...base(), types: { secret: {} } }, 'os0.json: types.secret: "secret" is a built-in type; an app cannot redefine it, choose another name'],
    [{ ...base(), types: { thing: { scope: 'galaxy' } } }, 'os0.json: types.thing.scope must be one of namespaced, cluster, not "galaxy"'],
    [{ ...base(), types: { thing: { schema: { type: 'nothing' } } } }, /^os0\.json: types\.thing\.schema is not a valid JSON Schema \(draft-07\): schema is invalid: data\/type must be/],
    [{ ...base(), types: { thing: { schema: { $ref: '#/nowhere' } } } }, `os0.json: types.thing.schema is not a valid JSON Schema (draft-07): can't resolve reference #/nowhere from id #`],
    [
      { ...base(), types: { thing: { schema: { $schema: 'https://json-schema.org/draft/2020-12/schema' } } } },
      'os0.json: types.thing.schema is not a valid JSON Schema (draft-07): no schema with key or ref "https://json-schema.org/draft/2020-12/schema"',
    ],
    // services
    [{ ...base(), services: { web: { command: [] } } }, 'os0.json: services.web.command must be a non-empty array of strings (argv, e.g. ["node", "server.js"]) (it has 0)'],
    [{ ...base(), services: { web: { replicas: 1 } } }, /^os0\.json: services\.web\.command must be a non-empty array of strings .* \(it is missing\)$/],
    [{ ...base(), services: { web: { command: ['x'], replicas: -1 } } }, 'os0.json: services.web.replicas must be >= 0'],
    [{ ...base(), services: { web: { command: ['x'], replicas: 1.5 } } }, 'os0.json: services.web.replicas must be an integer, not 1.5'],
    [{ ...base(), services: { web: { command: ['x'], loadBalancer: { port: 70000 } } } }, 'os0.json: services.web.loadBalancer.port must be <= 65535'],
    // not an object at all
    [[], 'os0.json: must be a JSON object, not an array'],
    [null, 'os0.json: must be a JSON object, not null'],
  ] as [unknown, string | RegExp][])('refuses in one line: %j', (m, expected) => {
    const msg = refusal(m);
    if (typeof expected === 'string') expect(msg).toBe(expected);
    else expect(msg).toMatch(expected);
  });

  it('starts every message with WHERE', () => {
    expect(refusal({ ...base(), colour: 1 }, 'package os0.json')).toMatch(/^package os0\.json: unknown field "colour"/);
  });

  it('quotes keys that are not plain names in paths', () => {
    expect(refusal({ ...base(), services: { web: { command: ['x'], env: { 'BAD-NAME': 'x' } } } })).toBe(
      'os0.json: services.web.env: name "BAD-NAME" must be an environment variable name (letters, digits, _)',
    );
    expect(refusal({ ...base(), types: { 'a.b': { pricing: { perHour: -1 } } } })).toBe('os0.json: types["a.b"].pricing.perHour must be >= 0');
  });
});

describe('loadAppFolder', () => {
  const dir = tempDir('manifest-');
  const write = (name: string, manifest: unknown, files: Record<string, string>): string => {
    const root = path.join(dir, name);
    for (const [f, text] of Object.entries({ 'os0.json': typeof manifest === 'string' ? manifest : JSON.stringify(manifest), ...files })) {
      fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
      fs.writeFileSync(path.join(root, f), text);
    }
    return root;
  };

  it('compiles drivers and the update program, named APP.NAME and APP.update', async () => {
    const root = write(
      'drv',
      {
        name: 'drv',
        version: '1.2.3',
        capabilities: {},
        drivers: { things: { entry: 'src/driver.ts', description: 'acts', types: ['thing'], timeoutMs: 3000 } },
        update: { entry: 'src/update.ts', description: 'migrates' },
      },
      {
        'src/driver.ts': 'export default async (ev: { action: string }) => ev.action;\n',
        'src/update.ts': 'export default async (input: { to: { version: string } }) => ({ to: input.to.version });\n',
      },
    );
    const app = await loadAppFolder(root);
    const d = app.drivers!.get('things')!;
    expect(d.spec).toEqual({ entry: 'src/driver.ts', description: 'acts', types: ['thing'], timeoutMs: 3000 });
    expect(d.program).toMatchObject({ name: 'drv.things', app: 'drv@1.2.3', entry: 'src/driver.ts' });
    expect(Object.isFrozen(d.program)).toBe(true);
    expect(app.update!.program).toMatchObject({ name: 'drv.update', app: 'drv@1.2.3', entry: 'src/update.ts' });
    expect(app.update!.program.code).toContain('input.to.version');

    const none = await loadAppFolder(write('plain', base(), { 'src/greet.ts': 'export default async () => 1;\n' }));
    expect(none.drivers!.size).toBe(0);
    expect(none.update).toBeUndefined();
  });

  it('says which program entry is missing', async () => {
    const root = write('nodriver', { ...base(), capabilities: {}, drivers: { d: { entry: 'src/nope.ts', description: '', types: ['thing'] } } }, {});
    await expect(loadAppFolder(root)).rejects.toThrow(/: driver "d": entry src\/nope\.ts does not exist$/);
  });

  it(`refuses an os0.json over ${MANIFEST_BYTES_MAX / 1024} KiB before parsing it`, async () => {
    // not JSON either: the size is what is refused first
    const root = write('huge', '{' + ' '.repeat(MANIFEST_BYTES_MAX), {});
    const e = await loadAppFolder(root).catch((err: Error) => err);
    expect((e as Error).message).toBe(`${path.join(root, 'os0.json')}: ${MANIFEST_BYTES_MAX + 1} bytes; a manifest is limited to 64 KiB`);
  });
});
