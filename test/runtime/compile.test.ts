import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile, SandboxError } from '../../runtime/sandbox/index.ts';
import { forgetCompiled, sha256 } from '../../runtime/sandbox/compile.ts';
import { tempDir } from '../helpers/tmp.ts';

function app(files: Record<string, string>): string {
  const dir = tempDir('sandbox-compile-');
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

async function compileError(entry: string, opts?: Parameters<typeof compile>[1]): Promise<SandboxError> {
  try {
    await compile(entry, opts);
  } catch (e) {
    return e as SandboxError;
  }
  throw new Error('compiled');
}

describe('compile', () => {
  it('bundles an entry and its imports into one script; os0/sdk and type-only imports work', async () => {
    const dir = app({
      'src/greet.ts': [
        "import { defineCapability, type Ctx } from 'os0/sdk';",
        "import type { Shape } from './types.ts';",
        "import { twice } from './lib/twice';",
        'export default defineCapability(async (input: Shape, ctx: Ctx) => twice(input.n));',
      ].join('\n'),
      'src/types.ts': 'export interface Shape { n: number }',
      'src/lib/twice.ts': 'export const twice = (n: number): number => n * 2;',
    });
    const p = await compile(path.join(dir, 'src/greet.ts'), { rootDir: dir });
    expect(p.id).toBe(sha256(p.code));
    expect(p.entry).toBe('src/greet.ts');
    expect(p.code).toContain('__os0_program');
    expect(p.code).toContain('n * 2');
    expect(p.code).not.toMatch(/\bimport\b|\brequire\(/);
    const map = JSON.parse(p.map!) as { sources: string[] };
    expect(map.sources).toEqual(expect.arrayContaining(['src/greet.ts', 'src/lib/twice.ts']));
    expect(map.sources.some((s) => s.endsWith('sdk/index.ts'))).toBe(true);
  });

  it('reports a syntax error as file:line:col message, on one line', async () => {
    const dir = app({ 'bad.ts': 'export default async () => {\n  const x = ;\n};\n' });
    const e = await compileError(path.join(dir, 'bad.ts'));
    expect(e).toBeInstanceOf(SandboxError);
    expect(e.code).toBe('compile');
    expect(e.message).toMatch(/^bad\.ts:2:13: Unexpected ";"$/);
  });

  it('reports an unresolvable import with its location and counts the rest', async () => {
    const dir = app({ 'a.ts': "import { x } from './missing.ts';\nimport { y } from './gone.ts';\nexport default async () => x + y;\n" });
    const e = await compileError(path.join(dir, 'a.ts'));
    expect(e.message).toMatch(/^a\.ts:1:19: Could not resolve "\.\/missing\.ts" \(and 1 more error\)$/);
  });

  it('refuses Node built-in modules at compile time, with the reason', async () => {
    const dir = app({ 'a.ts': "import * as fs from 'node:fs';\nexport default async () => fs.readdirSync('/');\n", 'b.ts': "import cp from 'child_process';\nexport default async () => cp;\n" });
    expect((await compileError(path.join(dir, 'a.ts'))).message).toMatch(/^a\.ts:1:21: cannot import "node:fs": programs run in the osØ sandbox/);
    expect((await compileError(path.join(dir, 'b.ts'))).message).toMatch(/^b\.ts:1:16: cannot import "child_process"/);
  });

  it('caches by content: the same program until an input file changes', async () => {
    const dir = app({ 'main.ts': "import { v } from './v.ts';\nexport default async () => v;\n", 'v.ts': 'export const v = 1;\n' });
    const entry = path.join(dir, 'main.ts');
    const a = await compile(entry);
    const t0 = performance.now();
    const b = await compile(entry);
    expect(performance.now() - t0).toBeLessThan(20);
    expect(b).toBe(a);
    fs.writeFileSync(path.join(dir, 'v.ts'), 'export const v = 2;\n');
    const c = await compile(entry);
    expect(c.id).not.toBe(a.id);
    expect(c.code).toContain('v = 2');
  });

  it('keeps compiled programs in cacheDir, trusts them only while inputs match, ignores damaged entries', async () => {
    const dir = app({ 'main.ts': 'export default async () => 41 + 1;\n' });
    const entry = path.join(dir, 'main.ts');
    const cacheDir = path.join(dir, '.cache');
    const first = await compile(entry, { cacheDir });
    const files = fs.readdirSync(cacheDir);
    expect(files).toHaveLength(1);
    const file = path.join(cacheDir, files[0]);
    const stored = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(stored.program.id).toBe(first.id);

    // A well-formed entry whose inputs still hash the same is used as is: proof the disk is read.
    const code = 'var __os0_program = { default: async () => "from disk" };';
    fs.writeFileSync(file, JSON.stringify({ ...stored, program: { ...stored.program, id: sha256(code), code, map: null } }));
    forgetCompiled();
    expect((await compile(entry, { cacheDir })).code).toBe(code);

    // Damaged: a code that does not hash to its id, then plain garbage. Both are rebuilt.
    fs.writeFileSync(file, JSON.stringify({ ...stored, program: { ...stored.program, code: 'evil()' } }));
    forgetCompiled();
    expect((await compile(entry, { cacheDir })).code).toBe(first.code);
    fs.writeFileSync(file, '{"rev":1,"inp');
    forgetCompiled();
    expect((await compile(entry, { cacheDir })).code).toBe(first.code);

    // An input that changed makes the entry stale.
    fs.writeFileSync(file, JSON.stringify({ ...stored, program: { ...stored.program, id: sha256(code), code, map: null } }));
    fs.writeFileSync(entry, 'export default async () => 43;\n');
    forgetCompiled();
    expect((await compile(entry, { cacheDir })).code).toContain('43');
  });

  it('runs concurrent compiles of one entry as one build', async () => {
    const dir = app({ 'main.ts': 'export default async () => "once";\n' });
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => compile(path.join(dir, 'main.ts'))));
    expect(b).toBe(a);
    expect(c).toBe(a);
  });
});
