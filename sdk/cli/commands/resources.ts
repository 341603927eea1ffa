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

const describe = (r: { type?: unknown; namespace?: unknown; name?: unknown }): string =>
  `${String(r.type)} ${typeof r.namespace === 'string' && r.namespace ? r.namespace + '/' : ''}${String(r.name)}`;

/** The server's message about `subject`, naming it once and without the API's field paths: `subject: reason`. */
export function about(subject: string, message: string): string {
  const inner = message.replace(/^(?:command|batch\[\d+\])\.resource: /, '').replace(`${subject}: `, '');
  return inner.includes(subject) ? inner : `${subject}: ${inner}`;
}

type Applied = { index: number; resources: Resource[]; unchanged?: Resource[] };

export async function apply(opts: Common & { file?: string; atomic?: boolean; namespace?: string }): Promise<void> {
  if (!opts.file) throw new CliError('apply needs -f FILE (or -f - for standard input)', 2);
  const f = format(opts.output);
  const docs = readDocs(opts.file);
  docs.forEach((d, i) => {
    const which = docs.length > 1 ? `document ${i + 1} of ${opts.file}` : `the document in ${opts.file}`;
    if (typeof d.type !== 'string' || d.type === '') throw new CliError(`${which} has no type (e.g. type: configuration); nothing was applied`);
    if ((typeof d.name !== 'string' || d.name === '') && d.id === undefined) throw new CliError(`${which} (a ${d.type}) has no name; nothing was applied`);
  });
  const client = new Client(opts);
  if (opts.namespace !== undefined) {
    // -n fills in the namespace of namespaced documents that name none (never overrides one).
    const { listTypes } = await import('./types.ts');
    const cluster = new Set((await listTypes(client)).filter((t) => t.scope === 'cluster').map((t) => t.name));
    for (const d of docs) if ((d.namespace === undefined || d.namespace === '') && !cluster.has(d.type as string)) d.namespace = opts.namespace;
  }
  const results: { action: string; resource: Resource }[] = [];
  const record = (res: Applied): void => {
    for (const r of res.resources) results.push({ action: r.created === r.updated ? 'created' : 'configured', resource: r });
    for (const r of res.unchanged ?? []) results.push({ action: 'unchanged', resource: r });
  };
  const show = (from: number): void => {
    if (f === 'table') for (const r of results.slice(from)) process.stdout.write(`${describe(r.resource)} ${r.action}\n`);
  };
  if (opts.atomic) {
    try {
      record(await client.json<Applied>('POST', '/v1/commands', { batch: docs.map((d) => ({ op: 'apply', resource: d })) }));
    } catch (e) {
      if (!(e instanceof CliError) || e.status === undefined) throw e;
      const at = /^batch\[(\d+)\]\.resource: /.exec(e.message);
      const msg = at ? about(describe(docs[Number(at[1])]), e.message) : e.message;
      throw new CliError(`${msg}; nothing was applied (--atomic)`);
    }
    show(0);
  } else {
    for (let i = 0; i < docs.length; i++) {
      try {
        record(await client.json<Applied>('POST', '/v1/commands', { op: 'apply', resource: docs[i] }));
        show(results.length - 1);
      } catch (e) {
        if (!(e instanceof CliError) || e.status === undefined) throw e;
        const rest = docs.slice(i + 1).map(describe);
        const applied = i === 0 ? 'none applied' : `${i} applied (above)`;
        const notTried = rest.length === 0 ? '' : `; not tried: ${rest.length > 5 ? `${rest.slice(0, 5).join(', ')} and ${rest.length - 5} more` : rest.join(', ')}`;
        const msg = about(describe(docs[i]), e.message);
        throw new CliError(docs.length === 1 ? msg : `${msg} (document ${i + 1} of ${docs.length}: ${applied}${notTried})`);
      }
    }
  }
  if (f !== 'table') print(f, results.map((r) => ({ action: r.action, resource: r.resource })), () => []);
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

export async function get(word: string, name: string | undefined, opts: Common & { namespace?: string; selector?: string; observed?: boolean; reveal?: boolean }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const { resolveType, typeInfo, typeTable } = await import('./types.ts');
  const t = await resolveType(client, word);
  if (opts.observed && t.known && !t.observed) throw new CliError(`${t.name} has no observed state; only its desired state is kept (os0 get ${t.name}${name ? ` ${name}` : ''})`);
  const q = { type: t.name, namespace: opts.namespace, tags: opts.selector, observed: opts.observed };
  if (opts.reveal && !name) throw new CliError('--reveal shows one secret: name it', 2);
  if (name) {
    let r: Res;
    try {
      r = await client.json<Res>('GET', `/v1/resources${qs({ ...q, name, reveal: opts.reveal })}`);
    } catch (e) {
      if (!(e instanceof CliError) || e.status !== 404 || opts.namespace !== undefined || t.scope === 'cluster') throw e;
      // Not at the top level: say where a resource of that name is.
      const where = (await client.json<Res[]>('GET', `/v1/resources${qs({ type: t.name, observed: opts.observed })}`)).filter((x) => x.name === name).map((x) => x.namespace);
      if (where.length === 0) throw new CliError(`no ${t.name} named ${name} in any namespace you may see`);
      throw new CliError(`${t.name} ${name} is not at the top level: it is in namespace${where.length > 1 ? 's' : ''} ${where.slice(0, 10).join(', ')}${where.length > 10 ? ` and ${where.length - 10} more` : ''}; pass -n ${where[0]}`);
    }
    print(f, r, () => (t.name === 'type' ? typeTable([typeInfo(r)]) : tableOf([r])));
  } else {
    // Page by page (500 at a time), every page as of the first one's log index.
    const list: Res[] = [];
    await client.call(async (api) => {
      for await (const p of api.listPages({ type: q.type, namespace: q.namespace, tags: q.tags, observed: q.observed, limit: PAGE })) list.push(...(p.items as Res[]));
    });
    // The fleet's types show their state (and a task its observed state) in the table.
    let fleet: string[][] | null = null;
    if (f === 'table' && !opts.observed && ['process', 'task', 'assignment'].includes(t.name)) {
      const obs = t.name === 'task' ? await client.json<Res[]>('GET', `/v1/resources${qs({ ...q, observed: true })}`) : [];
      const byKey = new Map(obs.map((o) => [`${o.namespace}/${o.name}`, o]));
      fleet = fleetTable(t.name, list, (r) => byKey.get(`${r.namespace}/${r.name}`));
    }
    print(f, list, () => fleet ?? (t.name === 'type' ? typeTable(list.map(typeInfo)) : tableOf(list)));
  }
}

/** Resources per page when `get` lists. */
const PAGE = 500;

export async function del(word: string, name: string, opts: Common & { namespace?: string }): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const { resolveType } = await import('./types.ts');
  const t = await resolveType(client, word);
  const res = await client.json<{ index: number; resources: Resource[] }>('POST', '/v1/commands', { op: 'delete', resource: { type: t.name, namespace: opts.namespace, name } });
  if (f === 'table') for (const r of res.resources) process.stdout.write(`${r.type} ${fullName(r)} deleted\n`);
  else print(f, res, () => []);
}

/** A log record's changes in one short line: listed when few, counted by action and type when many. */
export function summarise(changes: { action: string; type: string; namespace: string; name: string }[], width = 80): string {
  const listed = changes.map((c) => `${c.action} ${c.type} ${fullName(c)}`).join(', ');
  if (changes.length <= 3 && listed.length <= width) return listed;
  const groups = new Map<string, number>();
  for (const c of changes) groups.set(`${c.action} ${c.type}`, (groups.get(`${c.action} ${c.type}`) ?? 0) + 1);
  const parts = [...groups].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k));
  let line = `${changes.length} changes: ${parts.join(', ')}`;
  if (line.length > width) line = `${line.slice(0, width - 1)}…`;
  return line;
}

export async function log(opts: Common & { since?: string; limit?: string }): Promise<void> {
  const f = format(opts.output);
  const { index, count } = await import('../args.ts');
  const since = index(opts.since, '--since');
  const limit = count(opts.limit, '--limit');
  const client = new Client(opts);
  type Rec = { index: number; time: string; actor: string; changes: { action: string; type: string; namespace: string; name: string }[] };
  let recs = await client.json<Rec[]>('GET', `/v1/log${qs({ since: since === undefined ? undefined : String(since), limit: limit === undefined ? undefined : String(limit) })}`);
  if (limit !== undefined && since === undefined) recs = recs.slice(-limit);
  const width = Math.max(40, (process.stdout.columns || 120) - 60);
  print(f, recs, () => [['INDEX', 'TIME', 'ACTOR', 'CHANGES'], ...recs.map((r) => [String(r.index), r.time, r.actor, summarise(r.changes, width)])]);
}

export { renderTable };
