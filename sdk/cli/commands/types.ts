/**
 * Type names as people type them: the full name, its plural, or a short name (`ns`, `cfg`,
 * `svc`…), resolved against the types the live server has. `os0 get type` lists them all;
 * `os0 explain TYPE` prints one type's schema.
 */
import { stringify } from 'yaml';
import type { Resource } from '../../../core/resource.ts';
import { Client, CliError } from '../client.ts';
import { format, print } from '../output.ts';
import type { Common } from './resources.ts';

/** Short names of the built-in types. An app's type may declare its own in `data.shortNames`. */
const SHORT: Record<string, string[]> = {
  namespace: ['ns'],
  configuration: ['cfg', 'config'],
  service: ['svc'],
  machine: ['mc'],
  process: ['proc', 'ps'],
  policy: ['pol'],
  invocation: ['inv'],
  'load-balancer': ['lb'],
  'dns-record': ['dns'],
  'trusted-key': ['tk'],
  'assignment-request': ['ar'],
  capability: ['cap'],
  volume: ['vol'],
};

export interface TypeInfo {
  name: string;
  plural: string;
  shortNames: string[];
  description: string;
  scope: 'namespaced' | 'cluster';
  observed: boolean;
  schema: unknown;
}

export function plural(name: string): string {
  if (/(s|x|z|ch|sh)$/.test(name)) return `${name}es`;
  if (/[^aeiou]y$/.test(name)) return `${name.slice(0, -1)}ies`;
  return `${name}s`;
}

export function typeInfo(r: Resource): TypeInfo {
  const d = (r.data ?? {}) as { description?: string; scope?: 'namespaced' | 'cluster'; observed?: boolean; schema?: unknown; shortNames?: unknown };
  const own = Array.isArray(d.shortNames) ? d.shortNames.filter((s): s is string => typeof s === 'string') : [];
  return {
    name: r.name,
    plural: plural(r.name),
    shortNames: [...(SHORT[r.name] ?? []), ...own],
    description: d.description ?? '',
    scope: d.scope ?? 'namespaced',
    observed: d.observed === true,
    schema: d.schema ?? { type: 'object' },
  };
}

export async function listTypes(client: Client): Promise<TypeInfo[]> {
  return (await client.json<Resource[]>('GET', '/v1/resources?type=type')).map(typeInfo);
}

/**
 * The type `word` names (name, plural or short name, any case); an error if none. An actor who
 * may not list types gets the built-in short names and plurals, and `known: false`.
 */
export async function resolveType(client: Client, word: string): Promise<TypeInfo & { known: boolean }> {
  const w = word.toLowerCase();
  let types: TypeInfo[];
  try {
    types = await listTypes(client);
  } catch (e) {
    if (!(e instanceof CliError) || (e.status !== 403 && e.status !== 422)) throw e;
    const builtin = Object.keys(SHORT).find((n) => n === w || plural(n) === w || SHORT[n].includes(w));
    const name = builtin ?? (w.endsWith('s') && !w.endsWith('ss') ? w.replace(/(?:es|s)$/, '') : w);
    return { name, plural: plural(name), shortNames: SHORT[name] ?? [], description: '', scope: 'namespaced', observed: false, schema: {}, known: false };
  }
  const t = types.find((t) => t.name === w) ?? types.find((t) => t.plural === w || t.shortNames.includes(w));
  if (t) return { ...t, known: true };
  const near = types.filter((t) => t.name.startsWith(w.slice(0, 3))).map((t) => t.name);
  throw new CliError(`unknown type "${word}"${near.length ? ` (did you mean ${near.join(' or ')}?)` : ''}; 'os0 get type' lists the types and their short names`, 1);
}

export function typeTable(types: TypeInfo[]): string[][] {
  return [
    ['NAME', 'SHORT NAMES', 'SCOPE', 'OBSERVED', 'DESCRIPTION'],
    ...types.map((t) => [t.name, [t.plural, ...t.shortNames].join(','), t.scope, t.observed ? 'yes' : '-', t.description]),
  ];
}

export async function explain(word: string, opts: Common): Promise<void> {
  const f = format(opts.output);
  const { known, ...t } = await resolveType(new Client(opts), word);
  if (!known) throw new CliError(`you may not read types, so there is no schema of ${t.name} to show; ask an admin for a policy granting list on type`);
  if (f !== 'table') return print(f, t, () => []);
  const out: string[] = [];
  out.push(`TYPE:        ${t.name} (${[t.plural, ...t.shortNames].join(', ')})`);
  out.push(`SCOPE:       ${t.scope === 'cluster' ? 'cluster-wide (no namespace)' : 'namespaced'}`);
  out.push(`OBSERVED:    ${t.observed ? `yes ('os0 get ${t.name} NAME --observed')` : 'no'}`);
  out.push(`DESCRIPTION: ${t.description || '-'}`);
  out.push('DATA SCHEMA (JSON Schema):');
  out.push(...stringify(t.schema).trimEnd().split('\n').map((l) => `  ${l}`));
  process.stdout.write(out.join('\n') + '\n');
}
