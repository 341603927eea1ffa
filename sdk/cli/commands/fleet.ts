/** os0 describe / cordon / uncordon / drain, and the columns `os0 get` shows for the fleet's types. */
import type { Resource } from '../../../core/resource.ts';
import { Client, CliError, type ClientOptions } from '../client.ts';
import { age, format, print, renderTable } from '../output.ts';

export interface Common extends ClientOptions {
  output?: string;
  namespace?: string;
}

const MACHINES_NAMESPACE = 'system';

const qs = (o: Record<string, string | number | undefined | boolean>): string => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== false && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};
const d = (r: Resource | null | undefined): Record<string, unknown> => (r?.data && typeof r.data === 'object' ? (r.data as Record<string, unknown>) : {});
const s = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));

/** Columns for `os0 get process|task|assignment|service` (null for other types). */
export function fleetTable(type: string, list: Resource[], observed: (r: Resource) => Resource | undefined = () => undefined): string[][] | null {
  const ns = (r: Resource) => r.namespace;
  switch (type) {
    case 'process':
      return [['NAMESPACE', 'NAME', 'STATE', 'MACHINE', 'PID', 'PORT', 'RESTARTS', 'EXIT', 'STARTED'], ...list.map((r) => {
        const x = d(r);
        return [ns(r), r.name, s(x.state), s(x.machine), s(x.pid), s(x.port), s(x.restarts), x.signal ? String(x.signal) : s(x.exitCode), x.startedAt ? age(String(x.startedAt)) : '-'];
      })];
    case 'assignment':
      return [['NAMESPACE', 'NAME', 'STATE', 'MACHINE', 'GEN', 'REASON'], ...list.map((r) => {
        const x = d(r);
        return [ns(r), r.name, s(x.state), s(x.machine), s(x.generation), s(x.reason)];
      })];
    case 'task':
      return [['NAMESPACE', 'NAME', 'SERVICE', 'SLOT', 'STATE', 'MACHINE', 'RESTARTS', 'AGE'], ...list.map((r) => {
        const x = d(r);
        const o = d(observed(r));
        return [ns(r), r.name, s(x.service), s(x.slot), s(o.state ?? 'pending'), s(o.machine), s(o.restarts), age(r.created)];
      })];
    default:
      return null;
  }
}

async function getOne(client: Client, type: string, name: string, namespace: string | undefined, observed = false): Promise<Resource | null> {
  try {
    return await client.json<Resource>('GET', `/v1/resources${qs({ type, name, namespace, observed })}`);
  } catch (e) {
    if (/does not exist|not found/i.test((e as Error).message)) return null;
    throw e;
  }
}

interface LogRec {
  index: number;
  time: string;
  actor: string;
  changes: { action: string; type: string; namespace: string; name: string }[];
}

/** `os0 describe TYPE NAME [-n NS]`: desired, observed, recent changes, and why a task is pending. */
export async function describe(type: string, name: string, opts: Common): Promise<void> {
  const f = format(opts.output);
  const client = new Client(opts);
  const ns = opts.namespace ?? (type === 'machine' ? MACHINES_NAMESPACE : undefined);
  const desired = await getOne(client, type, name, ns);
  if (!desired) throw new CliError(`${type} ${ns ? ns + '/' : ''}${name} does not exist; 'os0 get ${type}${ns ? ' -n ' + ns : ''}' lists them`);
  const observed = await getOne(client, type, name, desired.namespace, true).catch(() => null);
  const related: Resource[] = [];
  const why: string[] = [];
  if (type === 'service') {
    const tasks = await client.json<Resource[]>('GET', `/v1/resources${qs({ type: 'task', namespace: desired.namespace, tags: `service=${name}` })}`);
    for (const t of tasks.filter((t) => t.namespace === desired.namespace)) related.push(t);
    const as = await client.json<Resource[]>('GET', `/v1/resources${qs({ type: 'assignment', namespace: desired.namespace, tags: `service=${name}` })}`);
    for (const a of as) if (d(a).state === 'pending' || d(a).reason) why.push(`task ${a.name}: ${d(a).reason}`);
  }
  if (type === 'task' || type === 'assignment-request' || type === 'process') {
    const a = await getOne(client, 'assignment', name, desired.namespace);
    if (a && (d(a).state === 'pending' || d(a).reason)) why.push(String(d(a).reason));
  }
  if (type === 'machine') {
    const as = await client.json<Resource[]>('GET', `/v1/resources${qs({ type: 'assignment' })}`);
    for (const a of as) if ((d(a).from === name || d(a).machine === name) && d(a).reason) why.push(`${a.namespace}/${a.name}: ${d(a).reason}`);
  }
  // Recent changes to it (and, for a service, to its tasks) from the log.
  const since = Math.max(0, desired.revision - 2000);
  let recs: LogRec[] = [];
  try {
    recs = await client.json<LogRec[]>('GET', `/v1/log${qs({ since, limit: 10000 })}`);
  } catch {
    recs = [];
  }
  const mine = (c: LogRec['changes'][0]) =>
    c.namespace === desired.namespace && (c.name === name || (type === 'service' && c.name.startsWith(name + '-'))) && (c.type === type || c.type.startsWith(type + '/') || (type === 'service' && /^(task|assignment|process)/.test(c.type)));
  const changes: { index: number; time: string; actor: string; action: string; what: string }[] = [];
  for (const r of recs) for (const c of r.changes) if (mine(c)) changes.push({ index: r.index, time: r.time, actor: r.actor, action: c.action, what: `${c.type} ${c.name}` });
  const recent = changes.slice(-20);
  const out = { desired, observed, pending: why, tasks: related.map((t) => t.name), changes: recent };
  if (f !== 'table') return print(f, out, () => []);
  const lines: string[] = [];
  lines.push(`${type} ${desired.namespace ? desired.namespace + '/' : ''}${name}  (revision ${desired.revision}, created ${age(desired.created)} ago)`);
  lines.push('Desired:');
  for (const l of JSON.stringify(desired.data, null, 2).split('\n')) lines.push('  ' + l);
  lines.push('Observed:');
  if (observed) for (const l of JSON.stringify(observed.data, null, 2).split('\n')) lines.push('  ' + l);
  else lines.push('  (none yet)');
  if (related.length) lines.push(`Tasks: ${related.map((t) => t.name).join(', ')}`);
  if (why.length) {
    lines.push(type === 'machine' ? 'Drain blocked:' : 'Pending:');
    for (const w of why) lines.push('  ' + w);
  }
  lines.push('Recent changes:');
  if (recent.length === 0) lines.push('  (none in the retained log)');
  for (const c of recent) lines.push(`  ${String(c.index).padStart(8)}  ${c.time}  ${c.actor.padEnd(16)} ${c.action.padEnd(7)} ${c.what}`);
  process.stdout.write(lines.join('\n') + '\n');
}

async function setMachine(client: Client, name: string, change: (data: Record<string, unknown>) => Record<string, unknown>): Promise<Resource> {
  const m = await getOne(client, 'machine', name, MACHINES_NAMESPACE);
  if (!m) throw new CliError(`machine ${name} does not exist; 'os0 get machine -n ${MACHINES_NAMESPACE}' lists them`);
  const res = await client.json<{ resources: Resource[] }>('POST', '/v1/commands', {
    op: 'update',
    expect: m.revision,
    resource: { type: 'machine', namespace: m.namespace, name, tags: m.tags, owner: m.owner, data: change({ ...d(m) }) },
  });
  return res.resources[0];
}

/** `os0 cordon MACHINE`: nothing new is placed on it; what runs there stays. */
export async function cordon(name: string, opts: Common): Promise<void> {
  const client = new Client(opts);
  await setMachine(client, name, (x) => ({ ...x, cordoned: true }));
  process.stdout.write(`machine ${name} cordoned: nothing new is placed on it\n`);
}

export async function uncordon(name: string, opts: Common): Promise<void> {
  const client = new Client(opts);
  await setMachine(client, name, (x) => {
    delete x.cordoned;
    delete x.drain;
    return x;
  });
  process.stdout.write(`machine ${name} uncordoned\n`);
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const toMs = (v: string): number => {
  const m = DURATION.exec(v);
  if (!m) throw new CliError(`"${v}" is not a duration: use e.g. 90s, 5m or 1h`, 2);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
};

/**
 * `os0 drain MACHINE [--deadline 5m] [--parallelism 1] [--no-wait]`: cordons it and moves its tasks
 * elsewhere, `parallelism` at a time; after the deadline, all that are left move (or go pending).
 * Waits until nothing is assigned to it, printing why while a move is blocked.
 */
export async function drain(name: string, opts: Common & { deadline?: string; parallelism?: string; wait?: boolean }): Promise<void> {
  const client = new Client(opts);
  const deadlineMs = toMs(opts.deadline ?? '5m');
  const parallelism = Number(opts.parallelism ?? 1);
  if (!Number.isInteger(parallelism) || parallelism < 1 || parallelism > 1000) throw new CliError('--parallelism must be an integer from 1 to 1000', 2);
  const deadline = new Date(Date.now() + deadlineMs).toISOString();
  await setMachine(client, name, (x) => ({ ...x, cordoned: true, drain: { deadline, parallelism } }));
  process.stdout.write(`machine ${name} draining (deadline ${deadline}, ${parallelism} at a time)\n`);
  if (opts.wait === false) return;
  let lastBlocked = '';
  const end = Date.now() + deadlineMs + 60_000;
  while (Date.now() < end) {
    const as = await client.json<Resource[]>('GET', `/v1/resources${qs({ type: 'assignment' })}`);
    const here = as.filter((a) => d(a).machine === name && d(a).state === 'placed');
    if (here.length === 0) {
      process.stdout.write(`machine ${name} drained\n`);
      return;
    }
    const blocked = here.map((a) => d(a).reason).filter(Boolean).join('; ');
    if (blocked && blocked !== lastBlocked) process.stdout.write(`${here.length} left; blocked: ${blocked}\n`);
    lastBlocked = blocked;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new CliError(`machine ${name} still has tasks a minute past its deadline; 'os0 describe machine ${name}' says why`);
}

export { renderTable };
