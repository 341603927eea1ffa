/** os0 token create / ls / revoke. */
import { Client } from '../client.ts';
import { format, print } from '../output.ts';
import type { Common } from './resources.ts';

export async function create(actor: string, opts: Common & { group?: string[]; description?: string }): Promise<void> {
  const f = format(opts.output);
  const t = await new Client(opts).json<{ id: string; actor: string; groups: string[]; token: string }>('POST', '/v1/tokens', {
    actor,
    groups: opts.group ?? [],
    description: opts.description,
  });
  if (f === 'table') {
    process.stdout.write(`${t.token}\n`);
    process.stderr.write(`token ${t.id} for ${t.actor}${t.groups.length ? ` (groups ${t.groups.join(', ')})` : ''}: shown once, keep it safe\n`);
  } else print(f, t, () => []);
}

export async function ls(opts: Common): Promise<void> {
  const f = format(opts.output);
  const list = await new Client(opts).json<{ id: string; actor: string; groups: string[]; description: string; created: string }[]>('GET', '/v1/tokens');
  print(f, list, () => [['ID', 'ACTOR', 'GROUPS', 'CREATED', 'DESCRIPTION'], ...list.map((t) => [t.id, t.actor, t.groups.join(',') || '-', t.created, t.description])]);
}

export async function revoke(id: string, opts: Common): Promise<void> {
  const f = format(opts.output);
  const res = await new Client(opts).json<{ index: number }>('DELETE', `/v1/tokens/${encodeURIComponent(id)}`);
  if (f === 'table') process.stdout.write(`token ${id} revoked\n`);
  else print(f, res, () => []);
}
