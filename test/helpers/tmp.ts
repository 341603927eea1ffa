/** Temporary data directories on the real disk (fsync must mean something), removed after the test file. */
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..', '.test-data');

// Registered when this module is imported (at collection): an afterAll registered from inside a
// beforeAll (where many tests make their directory) would never run.
const dirs = new Set<string>();
try {
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    dirs.clear();
  });
} catch {
  // Imported outside a test file (a child process's fixture): whoever made the directories removes them.
}

export function tempDir(prefix = 'os0-'): string {
  mkdirSync(ROOT, { recursive: true });
  const dir = mkdtempSync(join(ROOT, prefix));
  dirs.add(dir);
  return dir;
}

/** A small seeded PRNG (mulberry32) for reproducible random tests. */
export { prng } from '../../bench/prng.ts';
