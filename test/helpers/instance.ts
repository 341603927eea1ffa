/**
 * An osØ instance in the test's own process, built by the composition root (sdk/cli/instance.ts)
 * exactly as `os0 up` builds it, on a fresh temporary data directory; stopped after the file's tests (or by its own stop()).
 */
import * as path from 'node:path';
import { afterAll } from 'vitest';
import type { Actor } from '../../core/auth/permission.ts';
import { ApiClient } from '../../core/api/client/index.ts';
import { Instance, type InstanceOptions } from '../../sdk/cli/instance.ts';
import { tempDir } from './tmp.ts';

// Registered when this module is imported (at collection): an afterAll registered from inside a
// beforeAll would never run.
const open = new Set<Instance>();
afterAll(async () => {
  for (const inst of [...open].reverse()) await inst.stop();
  open.clear();
});

export interface TestInstance extends Instance {
  /** The admin actor (from the admin token written on the first start). */
  admin: Actor;
  /** The typed client as the admin (needs the HTTP service: port other than null). */
  client(token?: string): ApiClient;
}

/**
 * Builds and starts an instance. Defaults for tests: a fresh data directory, any free port, no
 * registry or store, one sandbox process.
 */
export async function openInstance(opts: Partial<InstanceOptions> = {}): Promise<TestInstance> {
  const inst = new Instance({ data: opts.data ?? path.join(tempDir('inst-'), 'data'), port: 0, registry: false, sandbox: { processes: 1 }, ...opts }) as TestInstance;
  open.add(inst);
  await inst.start();
  inst.admin = inst.sys.authenticate(inst.adminToken);
  inst.client = (token) => new ApiClient({ url: inst.url, token: token ?? inst.adminToken, timeoutMs: 20_000 });
  return inst;
}
