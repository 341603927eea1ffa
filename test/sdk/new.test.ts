/**
 * `os0 new app|driver NAME` end to end, outside the repository: the CLI scaffolds into a temp
 * folder; node_modules is linked as `npm install` would (os0 by its file: path, the tools from
 * this repo's node_modules, which the scaffold pins to the same versions); then the scaffold's
 * own type-check and tests run there, and `os0 pack` packs it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');
const BIN = path.join(ROOT, 'sdk', 'cli', 'bin.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'os0-new-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PATH: `${path.join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}` } });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

/** What `npm install` makes of the scaffold's package.json, without the network. */
function link(dir: string): void {
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  expect(pkg.devDependencies.os0).toBe(`file:${ROOT}`);
  fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules', 'os0'));
  for (const dep of ['typescript', 'vitest', '@types/node']) fs.symlinkSync(path.join(ROOT, 'node_modules', dep), path.join(dir, 'node_modules', dep));
}

describe('os0 new', () => {
  for (const kind of ['app', 'driver'] as const) {
    it(`scaffolds a${kind === 'app' ? 'n' : ''} ${kind} outside the repo that type-checks, tests and packs`, () => {
      const name = `my-${kind}`;
      const dir = path.join(tmp, name);
      const made = run(NODE, [BIN, 'new', kind, name], tmp);
      expect(made.code, made.out).toBe(0);
      expect(fs.readdirSync(dir).sort()).toEqual(['.gitignore', 'README.md', 'os0.json', 'package.json', 'src', 'test', 'tsconfig.json']);
      link(dir);
      const tsc = run(NODE, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], dir);
      expect(tsc.code, tsc.out).toBe(0);
      const test = run(NODE, [path.join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run'], dir);
      expect(test.code, test.out).toBe(0);
      expect(test.out).toMatch(/1 passed/);
      const pack = run(NODE, [BIN, 'pack', '.'], dir);
      expect(pack.code, pack.out).toBe(0);
      expect(fs.existsSync(path.join(dir, `${name}-0.1.0.tgz`))).toBe(true);
      const listed = execFileSync('tar', ['tzf', path.join(dir, `${name}-0.1.0.tgz`)], { encoding: 'utf8' });
      expect(listed).toMatch(/os0\.json/);
    }, 180_000);
  }

  it('refuses a bad name, an unknown kind and a non-empty folder, writing nothing', () => {
    const bad = run(NODE, [BIN, 'new', 'app', 'Bad_Name'], tmp);
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/cannot name an app: use lowercase letters/);
    expect(fs.existsSync(path.join(tmp, 'Bad_Name'))).toBe(false);
    const kind = run(NODE, [BIN, 'new', 'widget', 'x'], tmp);
    expect(kind.code).toBe(2);
    expect(kind.out).toMatch(/os0 new takes "app" or "driver"/);
    const again = run(NODE, [BIN, 'new', 'app', 'my-app'], tmp);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/exists and is not empty/);
  });
});
