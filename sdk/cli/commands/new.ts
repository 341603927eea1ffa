/**
 * `os0 new app NAME` and `os0 new driver NAME`: a folder that type-checks (`npm run typecheck`),
 * tests with os0/sdk/testing (`npm test`), packs (`os0 pack`) and publishes as it stands. Its
 * package.json depends on this os0 by a `file:` path computed now, so it works outside this
 * repository too (its README says so).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CliError } from '../client.ts';

const OS0_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const NAME_RE = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export interface NewOptions {
  /** The folder to create (default ./NAME). */
  dir?: string;
}

/** Writes the scaffold; returns the folder. */
export function scaffold(kind: string, name: string, opts: NewOptions = {}): string {
  if (kind !== 'app' && kind !== 'driver') throw new CliError(`os0 new takes "app" or "driver" (got "${kind}"): os0 new app NAME, os0 new driver NAME`, 2);
  if (!NAME_RE.test(name)) throw new CliError(`"${name}" cannot name an app: use lowercase letters, digits and '-' (1-63), starting with a letter`, 2);
  const dir = path.resolve(opts.dir ?? name);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new CliError(`${dir} exists and is not empty: pick another NAME or --dir`);
  const pkg = JSON.parse(fs.readFileSync(path.join(OS0_ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const files = kind === 'app' ? appFiles(name) : driverFiles(name);
  const common: Record<string, string> = {
    'package.json': json({
      name,
      version: '0.1.0',
      private: true,
      type: 'module',
      description: kind === 'app' ? `${name}: an osØ app` : `${name}: an osØ driver`,
      scripts: { test: 'vitest run', typecheck: 'tsc -p tsconfig.json', pack: 'os0 pack .' },
      devDependencies: {
        os0: `file:${OS0_ROOT}`,
        '@types/node': pkg.devDependencies['@types/node'],
        typescript: pkg.devDependencies.typescript,
        vitest: pkg.devDependencies.vitest,
      },
    }),
    'tsconfig.json': json({
      compilerOptions: {
        target: 'ES2023',
        lib: ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        strict: true,
        noEmit: true,
        allowImportingTsExtensions: true,
        erasableSyntaxOnly: true,
        verbatimModuleSyntax: true,
        skipLibCheck: true,
        resolveJsonModule: true,
      },
      include: ['src', 'test'],
    }),
    '.gitignore': 'node_modules/\n*.tgz\n',
  };
  fs.mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries({ ...common, ...files })) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

const json = (o: unknown): string => JSON.stringify(o, null, 2) + '\n';

const readmeTail = (name: string): string => `
## Work on it

    npm install          # links os0 from ${OS0_ROOT} (a file: dependency)
    npm run typecheck
    npm test             # runs it against a real in-process osØ core (os0/sdk/testing)
    npx os0 pack . --key ~/.os0/publisher.key    # ${name}-0.1.0.tgz, signed
    npx os0 publish ${name}-0.1.0.tgz

\`package.json\` depends on os0 by a \`file:\` path to the os0 folder this was scaffolded from
(${OS0_ROOT}); if you move that folder, change the path there. Programs import only
\`os0/sdk\` (types and identity helpers: nothing of it runs in the sandbox but what you write).
`;

function appFiles(name: string): Record<string, string> {
  return {
    'os0.json': json({
      name,
      version: '0.1.0',
      description: `${name}: notes kept as configuration resources`,
      capabilities: {
        note: { entry: 'src/note.ts', description: 'Keeps a note {namespace, name, text}' },
        notes: { entry: 'src/notes.ts', description: 'The notes of a namespace {namespace}' },
      },
      permissions: { resources: [{ types: ['configuration'], verbs: ['get', 'list', 'create', 'update'] }] },
    }),
    'src/note.ts': `import { defineCapability } from 'os0/sdk';

export interface Note {
  namespace: string;
  name: string;
  text: string;
}

export default defineCapability(async (input: Note, ctx) => {
  const res = await ctx.commands.apply({ type: 'configuration', namespace: input.namespace, name: input.name, tags: { app: '${name}' }, data: { text: input.text } });
  ctx.log('kept', input.name);
  return { name: res.name, revision: res.revision };
});
`,
    'src/notes.ts': `import { defineCapability } from 'os0/sdk';

export default defineCapability(async (input: { namespace: string }, ctx) => {
  const found = await ctx.resources.query({ type: 'configuration', namespace: input.namespace, tags: { app: '${name}' } });
  return found.map((r) => ({ name: r.name, text: (r.data as { text: string }).text }));
});
`,
    'test/app.test.ts': `import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { harness, type Harness } from 'os0/sdk/testing';

let h: Harness;
beforeAll(async () => {
  h = await harness({ app: path.join(import.meta.dirname, '..') });
  await h.apply({ type: 'namespace', name: 'demo' });
});
afterAll(async () => {
  await h?.close();
});

it('keeps notes and lists them', async () => {
  await h.invoke('note', { namespace: 'demo', name: 'first', text: 'hello' });
  expect(await h.invoke('notes', { namespace: 'demo' })).toEqual([{ name: 'first', text: 'hello' }]);
  expect(h.get('configuration', 'first', 'demo')?.data).toEqual({ text: 'hello' });
});
`,
    'README.md': `# ${name}

An osØ app: \`note\` keeps a note as a \`configuration\` resource, \`notes\` lists them.
Its manifest is \`os0.json\`; its programs are in \`src/\`; \`test/\` runs them with the harness.
${readmeTail(name)}`,
  };
}

function driverFiles(name: string): Record<string, string> {
  return {
    'os0.json': json({
      name,
      version: '0.1.0',
      description: `${name}: a driver for ${name} resources`,
      types: {
        [name]: {
          description: `A name the machines' DNS device answers with an address`,
          observed: true,
          schema: { type: 'object', properties: { address: { type: 'string' } }, required: ['address'], additionalProperties: false },
          pricing: { perHour: 0.001 },
        },
      },
      drivers: { [name]: { entry: 'src/driver.ts', description: `Keeps every machine's DNS device in step with the ${name} resources`, types: [name] } },
      capabilities: { machines: { entry: 'src/machines.ts', description: 'The machines the driver sends to' } },
      permissions: { resources: [{ types: [name], verbs: ['get', 'list'] }], nodes: { devices: ['dns'] } },
    }),
    'src/driver.ts': `import { defineDriver } from 'os0/sdk';

export interface Desired {
  address: string;
}
export interface Observed {
  address: string;
  machines: string[];
}

// Called with the desired resource and what it observed last, on every change and at each resync.
export default defineDriver<Desired, Observed>({
  types: ['${name}'],
  async reconcile({ ref, desired, observed }, ctx) {
    if (desired === null) {
      // Deleted: undo what was done.
      for (const m of observed?.machines ?? []) await ctx.nodes.send(m, { type: 'dns.remove', name: ref.name });
      return null;
    }
    const machines = await ctx.nodes.list();
    const address = desired.data!.address;
    if (observed && observed.address === address && machines.every((m) => observed.machines.includes(m))) return { observed };
    for (const m of machines) await ctx.nodes.send(m, { type: 'dns.set', name: desired.name, address });
    return { observed: { address, machines }, cost: { perHour: 0.001 * machines.length } };
  },
});
`,
    'src/machines.ts': `import { defineCapability } from 'os0/sdk';

export default defineCapability(async (_input: unknown, ctx) => ctx.nodes.list());
`,
    'test/driver.test.ts': `import * as path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { harness, type Harness } from 'os0/sdk/testing';

let h: Harness;
beforeAll(async () => {
  h = await harness({ app: path.join(import.meta.dirname, '..'), machines: ['m1', 'm2'] });
  await h.apply({ type: 'namespace', name: 'demo' });
});
afterAll(async () => {
  await h?.close();
});

it('sends the record to every machine, records what it did, and undoes it on delete', async () => {
  await h.apply({ type: '${name}', namespace: 'demo', name: 'www', data: { address: '10.0.0.7' } });
  expect(h.sent.map((s) => [s.machine, s.command.type])).toEqual([['m1', 'dns.set'], ['m2', 'dns.set']]);
  expect(h.observed('${name}', 'www', 'demo')).toMatchObject({ address: '10.0.0.7', machines: ['m1', 'm2'] });
  await h.delete('${name}', 'www', 'demo');
  expect(h.sent.slice(2).map((s) => s.command.type)).toEqual(['dns.remove', 'dns.remove']);
  expect(await h.invoke('machines')).toEqual(['m1', 'm2']);
});
`,
    'README.md': `# ${name}

An osØ driver: \`${name}\` resources are names the machines' DNS device answers. Its reconcile
(\`src/driver.ts\`) gets each resource and what it observed last, on every change and at each
resync, sends \`dns.*\` commands to the machines (os0.json grants the \`dns\` device only) and
returns the observed state and its cost. \`test/\` runs it with the harness and a recording node.
${readmeTail(name)}`,
  };
}

export async function newCommand(kind: string, name: string, opts: NewOptions): Promise<void> {
  const dir = scaffold(kind, name, opts);
  process.stdout.write(`${dir}\n`);
  process.stderr.write(`created ${kind} ${name}: cd ${path.relative(process.cwd(), dir) || '.'} && npm install && npm test\n`);
}
