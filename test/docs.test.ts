/**
 * The project documents itself inside the repository: no shipped document, and no source file
 * (its messages and comments), points to a path outside it. Shipped documents are the *.md files
 * outside test/ and node_modules; sources are the *.ts and *.js files outside them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const SKIP = new Set(['node_modules', 'test', '.git', '.test-data', '.bench-data', '.os0', 'dist', 'coverage']);
/** Files a clone does not have (they lived beside the repository while it was being written). */
const OUTSIDE = /(?:\.\.\/)+shared\b|\bCONTRACT\.md\b|\bARCHITECTURE\.md\b|\bSTYLE\.md\b/;

function walk(dir: string, out: string[] = []): string[] {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') && e.name !== '.ci') continue;
    if (SKIP.has(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

const files = walk(ROOT);
const rel = (f: string) => path.relative(ROOT, f);
const repoPaths = files.map(rel);
/** A mention like `wal/FORMAT.md` names a file of the repository if some file's path ends with it. */
const inRepo = (mention: string) => repoPaths.some((p) => p === mention || p.endsWith(`/${mention}`));

describe('docs travel with the repository', () => {
  it('has the documents the README points to', () => {
    for (const d of ['docs/architecture.md', 'docs/cli.md', 'docs/api.md', 'docs/apps.md']) expect(fs.existsSync(path.join(ROOT, d)), d).toBe(true);
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const d of ['docs/architecture.md', 'docs/cli.md', 'docs/api.md', 'docs/apps.md']) expect(readme).toContain(`](${d})`);
  });

  it('no shipped document links to a path outside the repository or to a file it does not have', () => {
    const problems: string[] = [];
    for (const f of files.filter((f) => f.endsWith('.md'))) {
      const text = fs.readFileSync(f, 'utf8');
      text.split('\n').forEach((line, i) => {
        const at = `${rel(f)}:${i + 1}`;
        if (OUTSIDE.test(line)) problems.push(`${at}: ${line.trim()}`);
        for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
          const target = m[1].split('#')[0];
          if (target === '' || /^[a-z]+:/.test(target)) continue;
          const abs = path.resolve(path.dirname(f), target);
          if (!abs.startsWith(ROOT + path.sep) || !fs.existsSync(abs)) problems.push(`${at}: link to ${m[1]}, which is not in the repository`);
        }
        for (const m of line.matchAll(/`([\w./-]+\.md)`/g)) {
          // `../wal/FORMAT.md` is relative to the document; `wal/FORMAT.md` names any file ending so.
          const named = m[1].startsWith('.') ? path.relative(ROOT, path.resolve(path.dirname(f), m[1])) : m[1];
          if (named.startsWith('..') || !inRepo(named)) problems.push(`${at}: names ${m[1]}, which is not in the repository`);
        }
      });
    }
    expect(problems).toEqual([]);
  });

  it('no source message or comment points outside the repository', () => {
    const problems: string[] = [];
    for (const f of files.filter((f) => /\.(ts|js)$/.test(f))) {
      fs.readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
        if (OUTSIDE.test(line)) problems.push(`${rel(f)}:${i + 1}: ${line.trim()}`);
        for (const m of line.matchAll(/(?<![\w.])((?:[\w-]+\/)*[\w-]+\.md)\b/g)) if (!inRepo(m[1])) problems.push(`${rel(f)}:${i + 1}: names ${m[1]}, which is not in the repository`);
      });
    }
    expect(problems).toEqual([]);
  });

  it('the checks catch what they are for', () => {
    expect(OUTSIDE.test('see ../shared/CONTRACT.md')).toBe(true);
    expect(OUTSIDE.test('see CONTRACT.md "HTTP API"')).toBe(true);
    expect(OUTSIDE.test('see docs/api.md')).toBe(false);
    expect(inRepo('wal/FORMAT.md')).toBe(true);
    expect(inRepo('nowhere/FORMAT.md')).toBe(false);
  });
});
