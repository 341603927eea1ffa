import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Real child processes, fsync and sockets: forks isolate native addons and signals best.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
