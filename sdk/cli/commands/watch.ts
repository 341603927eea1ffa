/**
 * os0 watch: like `kubectl get -w`, first what exists (at the list's index), then every change
 * after it; with --since, only the changes after that index. When the server goes away it
 * reconnects and resumes after the last index it saw (changes or bookmarks), saying so on
 * stderr; when it cannot resume (the log moved past that index, or the server stays away), it
 * says why in one line and exits 1.
 */
import { stringify } from 'yaml';
import type { Resource } from '../../../core/resource.ts';
import { index as parseIndex } from '../args.ts';
import { Client, CliError } from '../client.ts';
import { format, type Format } from '../output.ts';
import type { Common } from './resources.ts';
import { readSse } from '../../../core/api/client/sse.ts';

/** Reconnect attempts after the server went away, one every RETRY_MS (about a minute in all). */
const RETRIES_MAX = 60;
const RETRY_MS = 1000;

const fullName = (r: { namespace: string; name: string }): string => (r.namespace ? `${r.namespace}/${r.name}` : r.name);

function emit(f: Format, c: { action: string; index: number; resource: Resource }): void {
  if (f === 'json') process.stdout.write(JSON.stringify(c) + '\n');
  else if (f === 'yaml') process.stdout.write('---\n' + stringify(c));
  else process.stdout.write(`${String(c.index).padStart(8)}  ${c.action.padEnd(7)}  ${c.resource.type} ${fullName(c.resource)}\n`);
}

const qs = (o: Record<string, string | undefined>): string => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== '') p.set(k, v);
  return p.size ? `?${p}` : '';
};

export async function watch(word: string, opts: Common & { namespace?: string; selector?: string; since?: string; observed?: boolean }): Promise<void> {
  const f = format(opts.output);
  let cursor = parseIndex(opts.since, '--since');
  const client = new Client(opts);
  const { resolveType } = await import('./types.ts');
  const t = await resolveType(client, word);
  if (opts.observed && t.known && !t.observed) throw new CliError(`${t.name} has no observed state to watch; watch its desired state without --observed`);
  const q = { type: t.name, namespace: opts.namespace, tags: opts.selector, observed: opts.observed ? 'true' : undefined };
  if (cursor === undefined) {
    const res = await client.fetch('GET', `/v1/resources${qs(q)}`);
    cursor = Number(res.headers.get('x-os0-index') ?? 0);
    for (const r of (await res.json()) as Resource[]) emit(f, { action: 'exists', index: cursor, resource: r });
  }
  let lost: string | null = null;
  for (let attempt = 0; ; ) {
    let res: Response;
    try {
      res = await client.fetch('GET', `/v1/watch${qs({ ...q, since: String(cursor) })}`);
    } catch (e) {
      if (e instanceof CliError && e.status !== undefined) {
        if (lost === null) throw e;
        throw new CliError(`cannot resume the watch after index ${cursor}: ${e.message}`);
      }
      if (lost === null) throw e;
      if (++attempt >= RETRIES_MAX) throw new CliError(`gave up: ${client.url} did not come back within ${(RETRIES_MAX * RETRY_MS) / 1000} s to resume the watch after index ${cursor}; run it again with --since ${cursor}`);
      await new Promise((r) => setTimeout(r, RETRY_MS));
      continue;
    }
    if (lost !== null) process.stderr.write(`os0: reconnected to ${client.url}; resuming after index ${cursor}\n`);
    lost = null;
    attempt = 0;
    try {
      for await (const ev of readSse(res.body!)) {
        if (ev.event === 'gone') throw new CliError(`cannot resume the watch: ${(JSON.parse(ev.data) as { error: { message: string } }).error.message}`);
        if (ev.event === 'bookmark') {
          cursor = Math.max(cursor, (JSON.parse(ev.data) as { index: number }).index);
          continue;
        }
        if (ev.event !== 'change') continue;
        const c = JSON.parse(ev.data) as { action: string; index: number; resource: Resource };
        emit(f, c);
        cursor = c.index;
      }
      lost = 'the server closed the watch';
    } catch (e) {
      if (e instanceof CliError) throw e;
      lost = `the connection broke (${(e as Error).message})`;
    }
    process.stderr.write(`os0: ${lost} at index ${cursor}; reconnecting…\n`);
  }
}
