/** os0 apply / get / delete / watch / log. */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Resource } from '../../../core/resource.ts';
import { Client, CliError, type ClientOptions } from '../client.ts';
import { age, format, print, renderTable } from '../output.ts';
import { fleetTable } from './fleet.ts';

export interface Common extends ClientOptions {
  output?: string;
}

type Res = Resource & { status?: { costPerHour: number; budgetPerHour: number | null } };

const qs = (o: Record<string, string | undefined | boolean>): string => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== false && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};

const fullName = (r: { namespace: string; name: string }): string => (r.namespace ? `${r.namespace}/${r.name}` : r.name);

function readDocs(file: string): Record<string, unknown>[] {
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const docs: Record<string, unknown>[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      const e = doc.errors[0];
      const line = e.linePos?.[0]?.line;
      throw new CliError(`${file}${line ? `:${line}` : ''}: not valid YAML or JSON: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}; nothing was applied`);
    }
    const v = doc.toJS() as unknown;
    if (v === null || v === undefined) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw new CliError(`${file}: each document must be a resource (a mapping with type, name, data); nothing was applied`);
    docs.push(v as Record<string, unknown>);
  }
  if (docs.length === 0) throw new CliError(`${file} holds no resources`);
  return docs;
}

export async function apply(opts: Common & { file?: string; atomic?: boolean }): Promise<void> {
  if (!opts.file) throw new CliError('apply needs -f FILE (or -f - for standard input)', 2);
  const f = format(opts.output);
  const docs = readDocs(opts.file);
  const client = new Client(opts);
  const results: { action: string; resource: Resource }[] = [];
  const describe = (r: { type: string; namespace?: string; name: string }) => `${r.type} ${r.namespace ? r.namespace + '/' : ''}${r.name}`;
  if (opts.atomic) {
    const res = await client.json<{ index: number; resources: Resource[] }>('POST', '/v1/commands', { batch: docs.map((d) => ({ op: 'apply', resource: d })) });
    for (const r of res.resources) results.push({ action: r.created === r.updated && r.revision === res.index ? 'created' : 'configured', resource: r });
  } else {
    for (const d of docs) {
      try {
        const res = await client.json<{ index: number; resources: Resource[] }>('POST', '/v1/commands', { op: 'apply', resource: d });
        const r = res.resources[0];
        results.push({ action: r.created === r.updated ? 'created' : 'configured', resource: r });
      } catch (e) {
        for (const done of results) if (f === 'table') process.stdout.write(`${describe(done.resource)} ${done.action}\n`);
        throw new CliError(`${describe(d as { type: string; name: string })}: ${(e as Error).message}`);
      }
    }
  }
  if (f === 'table') for (const r of results) process.stdout.write(`${describe(r.resource)} ${r.action}\n`);
  else print(f, results.map((r) => ({ action: r.action, resource: r.resource })), () => []);
}

function tableOf(list: Res[]): string[][] {
  const types = new Set(list.map((r) => r.type));
  const nsCol = list.some((r) => r.namespace);
  const isNs = types.size === 1 && types.has('namespace');
  const head = [...(nsCol ? ['NAMESPACE'] : []), ...(types.size > 1 ? ['TYPE'] : []), 'NAME', 'REVISION', ...(isNs ? ['COST/H', 'BUDGET/H'] : ['COST/H']), 'AGE'];
  const rows = list.map((r) => [
    ...(nsCol ? [r.namespace] : []),
    ...(types.size > 1 ? [r.type] : []),
    r.name,
    String(r.revision),
    ...(isNs
      ? [String(r.status?.costPerHour ?? 0), r.status?.budgetPerHour === null || r.status?.budgetPerHour === undefined ? '-' : String(r.status.budgetPerHour)]
      : [r.cost === undefined ? '-' : String(r.cost)]),
    age(r.created),
  ]);
  return [head, ...rows];
}

export async function get(type: string, name: string | undefined, opts: Common & { namespace?: string; selector?: string; observed?: boolean }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const q = { type, namespace: opts.namespace, tags: opts.selector, observed: opts.observed };
  if (name) {
    const r = await client.json<Res>('GET', `/v1/resources${qs({ ...q, name })}`);
    print(f, r, () => tableOf([r]));
  } else {
    const list = await client.json<Res[]>('GET', `/v1/resources${qs(q)}`);
    // The fleet's types show their state (and a task its observed state) in the table.
    let fleet: string[][] | null = null;
    if (f === 'table' && !opts.observed && ['process', 'task', 'assignment'].includes(type)) {
      const obs = type === 'task' ? await client.json<Res[]>('GET', `/v1/resources${qs({ ...q, observed: true })}`) : [];
      const byKey = new Map(obs.map((o) => [`${o.namespace}/${o.name}`, o]));
      fleet = fleetTable(type, list, (r) => byKey.get(`${r.namespace}/${r.name}`));
    }
    print(f, list, () => fleet ?? tableOf(list));
  }
}

export async function del(type: string, name: string, opts: Common & { namespace?: string }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const res = await client.json<{ index: number; resources: Resource[] }>('POST', '/v1/commands', { op: 'delete', resource: { type, namespace: opts.namespace, name } });
  if (f === 'table') for (const r of res.resources) process.stdout.write(`${r.type} ${fullName(r)} deleted\n`);
  else print(f, res, () => []);
}

/** Reads server-sent events: yields {event, data} until the stream ends. */
export async function* sse(res: Response): AsyncGenerator<{ event: string; data: string }> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let event = 'message';
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length) yield { event, data: data.join('\n') };
        event = 'message';
        data = [];
      } else if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
  }
}

export async function watch(type: string, opts: Common & { namespace?: string; selector?: string; since?: string; observed?: boolean }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const res = await client.fetch('GET', `/v1/watch${qs({ type, namespace: opts.namespace, tags: opts.selector, since: opts.since, observed: opts.observed })}`);
  for await (const ev of sse(res)) {
    if (ev.event === 'gone') throw new CliError((JSON.parse(ev.data) as { error: { message: string } }).error.message);
    if (ev.event !== 'change') continue;
    const c = JSON.parse(ev.data) as { action: string; index: number; resource: Resource };
    if (f === 'json') process.stdout.write(JSON.stringify(c) + '\n');
    else if (f === 'yaml') process.stdout.write('---\n' + (await import('yaml')).stringify(c));
    else process.stdout.write(`${String(c.index).padStart(8)}  ${c.action.padEnd(6)}  ${c.resource.type} ${fullName(c.resource)}\n`);
  }
  throw new CliError('the server closed the watch; run it again with --since LAST_INDEX to resume');
}

export async function log(opts: Common & { since?: string; limit?: string }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  type Rec = { index: number; time: string; actor: string; changes: { action: string; type: string; namespace: string; name: string }[] };
  const recs = await client.json<Rec[]>('GET', `/v1/log${qs({ since: opts.since, limit: opts.limit })}`);
  print(f, recs, () => [
    ['INDEX', 'TIME', 'ACTOR', 'CHANGES'],
    ...recs.map((r) => [String(r.index), r.time, r.actor, r.changes.map((c) => `${c.action} ${c.type} ${fullName(c)}`).join(', ')]),
  ]);
}

export { renderTable };
