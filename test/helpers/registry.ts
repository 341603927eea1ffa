/**
 * Registry tests' helpers: real registries on 127.0.0.1 (closed after the file's tests), and
 * small signed packages built in memory (no programs, so no compiler run).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll } from 'vitest';
import type { KeyPair } from '../../registry/package/keys.ts';
import { digestOf, encodePackage, signDigest, SIGNATURE_FILE } from '../../registry/package/pack.ts';
import { Registry, type RegistryOptions } from '../../registry/server/index.ts';

export interface Running {
  reg: Registry;
  url: string;
  admin: string;
  dir: string;
}

const running: Registry[] = [];
afterAll(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

/** Opens (or reopens) the registry in DIR and listens on a free port. */
export async function startRegistry(dir: string, opts: Omit<RegistryOptions, 'dir'> = {}): Promise<Running> {
  const reg = await Registry.open({ dir, ...opts });
  running.push(reg);
  const port = await reg.listen(0);
  return { reg, url: `http://127.0.0.1:${port}`, admin: reg.adminToken ?? fs.readFileSync(path.join(dir, 'admin.token'), 'utf8').trim(), dir };
}

/**
 * A package signed by KEY: os0.json (defaults, then `fields`), with `readme` a README. Signed
 * without checking the manifest, so that tests can hand a registry what a packer would refuse.
 */
export function makePackage(name: string, version: string, key: KeyPair, fields: Record<string, unknown> = {}, opts: { readme?: boolean } = {}): Buffer {
  const manifest = { name, version, description: `${name} for tests`, keywords: [], capabilities: {}, permissions: { resources: [] }, dependencies: {}, ...fields };
  const files = new Map([['os0.json', Buffer.from(JSON.stringify(manifest, null, 2))]]);
  if (opts.readme) files.set('README.md', Buffer.from(`# ${name} ${version}\n`));
  files.set(SIGNATURE_FILE, Buffer.from(JSON.stringify(signDigest(digestOf(files), key.secretKey))));
  return encodePackage(files);
}
