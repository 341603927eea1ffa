/**
 * os0 secret set / rotate-key / key: secrets are sealed by the server before anything is
 * written; this command only gathers the values (never printing them) and sends them.
 */
import { readFileSync } from 'node:fs';
import { Client, CliError } from '../client.ts';
import { format, print } from '../output.ts';
import type { Common } from './resources.ts';

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function splitPair(arg: string, what: string): [string, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new CliError(`${what} "${arg.slice(0, 40)}" must be KEY=${what === '--from-file' ? 'FILE' : 'VALUE'}`, 2);
  const key = arg.slice(0, eq);
  if (!KEY.test(key)) throw new CliError(`key "${key.slice(0, 40)}" must be letters, digits, '_', '.', '-', starting with a letter or '_'`, 2);
  return [key, arg.slice(eq + 1)];
}

export async function set(name: string, pairs: string[], opts: Common & { namespace?: string; fromFile?: string[] }): Promise<void> {
  if (!opts.namespace) throw new CliError('a secret lives in a namespace: pass -n NAMESPACE', 2);
  const data: Record<string, string> = {};
  for (const p of pairs) {
    const [k, v] = splitPair(p, 'value');
    data[k] = v;
  }
  for (const p of opts.fromFile ?? []) {
    const [k, file] = splitPair(p, '--from-file');
    try {
      data[k] = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CliError(`cannot read ${file} for ${k}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 2);
    }
  }
  if (Object.keys(data).length === 0) throw new CliError('give at least one KEY=VALUE or --from-file KEY=FILE', 2);
  const f = format(opts.output);
  const res = await new Client(opts).json<{ index: number; resources: { name: string; namespace: string; data: Record<string, string> }[] }>('POST', '/v1/commands', {
    op: 'apply',
    resource: { type: 'secret', namespace: opts.namespace, name, data },
  });
  const r = res.resources[0];
  if (f === 'table') process.stdout.write(`secret ${r.namespace}/${r.name} sealed (keys ${Object.keys(r.data).join(', ')}) at index ${res.index}\n`);
  else print(f, res, () => []);
}

export async function rotateKey(opts: Common): Promise<void> {
  const f = format(opts.output);
  const res = await new Client(opts).json<{ key: string; resealing: number }>('POST', '/v1/secrets/rotate-key', {});
  if (f === 'table') process.stdout.write(`new key ${res.key}; re-sealing ${res.resealing} secret(s) in the background (os0 secret key shows progress)\n`);
  else print(f, res, () => []);
}

export async function key(opts: Common): Promise<void> {
  const f = format(opts.output);
  const res = await new Client(opts).json<{ current: string; keys: string[]; resealing: number }>('GET', '/v1/secrets/key');
  print(f, res, () => [
    ['CURRENT', 'KEYS', 'RESEALING'],
    [res.current, res.keys.join(','), String(res.resealing)],
  ]);
}
