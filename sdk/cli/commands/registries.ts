/**
 * The registries an instance installs from, as apt sources or helm repos: `os0 registry add NAME
 * URL` pins the registry's metadata key (its fingerprint shown to confirm, or given with --key),
 * `os0 registry ls` and `os0 registry rm NAME`. They are `registry` resources of the instance, so
 * its store checks every package against that registry's pinned key, as it does for the embedded
 * one. `os0 search` searches the embedded registry and every added one.
 */
import * as readline from 'node:readline/promises';
import type { Resource } from '../../../core/resource.ts';
import { keyIdOf } from '../../../registry/package/keys.ts';
import { RegistryClient } from '../../../registry/client/index.ts';
import type { SearchResult } from '../../../registry/client/types.ts';
import { url as checkUrl } from '../args.ts';
import { Client, CliError, type ClientOptions } from '../client.ts';
import { format, print } from '../output.ts';
import { registryToken, registryUrl, type RegistryOpts } from './publish.ts';

interface Common extends ClientOptions {
  output?: string;
}

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Registries searched at most by one `os0 search`. */
const SEARCHED_MAX = 32;
/** Reading a registry's keys and searching it download no package: no publisher key is needed. */
const NO_TRUST = { publisherKeys: [], rootKeys: [] };

export async function add(name: string, url: string, o: Common & { key?: string; yes?: boolean; description?: string }): Promise<void> {
  const f = format(o.output);
  if (!NAME.test(name)) throw new CliError(`"${name}" is not a registry name (lowercase letters, digits and dashes)`, 2);
  checkUrl(url, 'URL');
  let served: string;
  try {
    served = (await new RegistryClient({ url, trust: NO_TRUST }).info()).keys.metadata.publicKey;
  } catch (e) {
    throw new CliError(`cannot read the registry at ${url}: ${(e as Error).message}`);
  }
  const fingerprint = keyIdOf(Buffer.from(served, 'base64'));
  if (o.key !== undefined) {
    const given = o.key.trim();
    if (given !== fingerprint && given !== served) throw new CliError(`the registry at ${url} signs with key ${fingerprint}, not ${given}: not adding it (check the URL, or ask its operator for the right key)`);
  } else if (!o.yes) {
    if (!process.stdin.isTTY || !process.stderr.isTTY) throw new CliError(`the registry at ${url} signs its metadata with key ${fingerprint}; check that with its operator, then pass --key ${fingerprint} to pin it`, 2);
    const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
    try {
      const a = (await rl.question(`The registry at ${url} signs with key ${fingerprint}. Pin it as "${name}"? [y/N] `)).trim().toLowerCase();
      if (a !== 'y' && a !== 'yes') throw new CliError('cancelled; no registry was added');
    } finally {
      rl.close();
    }
  }
  const data: Record<string, unknown> = { url: url.replace(/\/+$/, ''), metadataKey: served };
  if (o.description) data.description = o.description;
  const res = await new Client(o).json<{ resources: Resource[]; unchanged?: Resource[] }>('POST', '/v1/commands', { op: 'apply', resource: { type: 'registry', name, data } });
  if (f === 'table') process.stdout.write(`registry ${name} ${res.unchanged?.length ? 'unchanged' : 'added'}: ${data.url} (metadata key ${fingerprint})\n`);
  else print(f, (res.resources[0] ?? res.unchanged?.[0]), () => []);
}

export async function ls(o: Common): Promise<void> {
  const f = format(o.output);
  const list = await new Client(o).json<Resource[]>('GET', '/v1/resources?type=registry');
  print(f, list, () => [['NAME', 'URL', 'KEY'], ...list.map((r) => { const d = r.data as { url: string; metadataKey: string }; return [r.name, d.url, keyIdOf(Buffer.from(d.metadataKey, 'base64'))]; })]);
}

export async function rm(name: string, o: Common): Promise<void> {
  const f = format(o.output);
  const res = await new Client(o).json<{ index: number }>('POST', '/v1/commands', { op: 'delete', resource: { type: 'registry', name } });
  if (f === 'table') process.stdout.write(`registry ${name} removed\n`);
  else print(f, { name, index: res.index }, () => []);
}

/** Every registry to search: the one named by --registry, else the embedded one and every added one. */
export async function searchAll(term: string, o: RegistryOpts & { limit?: number }): Promise<(SearchResult & { registry: string })[]> {
  // Only the registry the flags name gets a token (registryToken says which); added ones none.
  const targets: { name: string; url: string; token?: string }[] = [];
  if (o.registry ?? process.env.OS0_REGISTRY_URL) targets.push({ name: registryUrl(o), url: registryUrl(o), token: registryToken(o) });
  else {
    targets.push({ name: 'embedded', url: registryUrl(o), token: registryToken(o) });
    try {
      const added = await new Client(o).json<Resource[]>('GET', '/v1/resources?type=registry');
      for (const r of added.slice(0, SEARCHED_MAX)) targets.push({ name: r.name, url: (r.data as { url: string }).url });
    } catch {
      // No instance to ask (a registry on its own, or no token): the embedded registry alone.
    }
  }
  const out: (SearchResult & { registry: string })[] = [];
  const failures: string[] = [];
  await Promise.all(
    targets.map(async (t) => {
      try {
        for (const r of await new RegistryClient({ url: t.url, token: t.token, trust: NO_TRUST }).search(term, o.limit)) out.push({ ...r, registry: t.name });
      } catch (e) {
        failures.push(targets.length === 1 ? (e as Error).message : `${t.name} (${t.url}): ${(e as Error).message}`);
      }
    }),
  );
  if (failures.length === targets.length) throw new CliError(failures.length === 1 ? failures[0] : `no registry answered: ${failures.join('; ')}`);
  for (const m of failures) process.stderr.write(`os0: search skipped ${m}\n`);
  const order = new Map(targets.map((t, i) => [t.name, i]));
  return out.sort((a, b) => order.get(a.registry)! - order.get(b.registry)! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export async function search(term: string, o: RegistryOpts & { limit?: string }): Promise<void> {
  const f = format(o.output);
  const limit = o.limit === undefined ? undefined : Number(o.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 100)) throw new CliError(`--limit must be an integer from 1 to 100 (got ${o.limit})`, 2);
  const results = await searchAll(term, { ...o, limit });
  const many = new Set(results.map((r) => r.registry)).size > 1;
  print(f, results, () => [
    [...(many ? ['REGISTRY'] : []), 'NAME', 'VERSION', 'DESCRIPTION'],
    ...results.map((r) => [...(many ? [r.registry] : []), r.name, r.version ?? '-', r.description ?? '']),
  ]);
}
