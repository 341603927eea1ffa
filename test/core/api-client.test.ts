/**
 * The typed API client (core/api/client/) against a real instance over HTTP on 127.0.0.1: its
 * typed methods, its errors, its event-stream reader, and a watch that resumes after the server
 * restarts, from the last index it saw, with nothing missed and nothing twice.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient, ApiError, readSse, type WatchEvent, type WatchStream } from '../../core/api/client/index.ts';
import { Instance } from '../../sdk/cli/instance.ts';
import { openInstance, type TestInstance } from '../helpers/instance.ts';
import { tempDir } from '../helpers/tmp.ts';

const HELLO = path.resolve(import.meta.dirname, '../../samples/hello');

/** Rejects with the ApiError a call throws. */
async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ApiError);
  expect((e as Error).message).not.toContain('\n');
  return e as ApiError;
}

/** The next event of a watch that is not a bookmark (10 s at most). */
async function nextChange(it: AsyncIterator<WatchEvent>, skip: WatchEvent['type'][] = ['bookmark']): Promise<WatchEvent> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('no event within 10 s');
    let t: NodeJS.Timeout;
    const r = await Promise.race([it.next(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error('no event within 10 s')), left)))]).finally(() => clearTimeout(t));
    if (r.done) throw new Error('the watch ended');
    if (!skip.includes(r.value.type)) return r.value;
  }
}

function stream(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

describe('readSse', () => {
  it('reads events split anywhere, with CRLF, comments, repeated data lines and ids', async () => {
    const text = ': a comment\r\nevent: change\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: plain\n\nevent: empty\n\n';
    const chunks = text.match(/.{1,5}/gs)!;
    const got = [];
    for await (const ev of readSse(stream(chunks))) got.push(ev);
    expect(got).toEqual([
      { event: 'change', id: '7', data: '{"a":\n1}' },
      { event: 'message', id: undefined, data: 'plain' },
    ]);
  });

  it('ends with an error on an event over the limit, instead of growing without bound', async () => {
    const big = `data: ${'x'.repeat(2000)}\n\n`;
    const read = async () => {
      for await (const _ of readSse(stream([big]), { maxEventBytes: 1000 })) void _;
    };
    await expect(read()).rejects.toThrow('an event of the stream is over 1000 bytes');
  });
});

describe('ApiClient', () => {
  let inst: TestInstance;
  let api: ApiClient;

  beforeAll(async () => {
    inst = await openInstance({ apps: [HELLO] });
    api = inst.client();
  });

  it('healthz, submit (one and a batch), get, getById, list with its index, log', async () => {
    const h = await api.healthz();
    expect(h.ok).toBe(true);
    const one = await api.submit({ op: 'create', resource: { type: 'namespace', name: 'acme' } });
    expect(one.resources[0]).toMatchObject({ type: 'namespace', name: 'acme', revision: one.index });
    const batch = await api.submit({
      batch: [
        { op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'a', tags: { tier: 'web' }, data: { v: 1 } } },
        { op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'b', data: { v: 2 } } },
      ],
    });
    expect(batch.resources.map((r) => r.name)).toEqual(['a', 'b']);
    expect(batch.index).toBe(one.index + 1);
    const a = await api.get('configuration', 'a', 'acme');
    expect(a.data).toEqual({ v: 1 });
    expect((await api.getById(a.id)).name).toBe('a');
    const listed = await api.list({ type: 'configuration', namespace: 'acme', tags: { tier: 'web' } });
    expect(listed.items.map((r) => r.name)).toEqual(['a']);
    expect(listed.index).toBe(batch.index);
    const applied = await api.apply({ type: 'configuration', namespace: 'acme', name: 'a', data: { v: 3 } }, a.revision);
    expect(applied.resources[0].revision).toBe(applied.index);
    const log = await api.log({ since: one.index - 1 });
    expect(log.map((r) => r.index)).toEqual([one.index, batch.index, applied.index]);
    expect(log[1].changes.map((c) => `${c.action} ${c.name}`)).toEqual(['create a', 'create b']);
  });

  it("errors carry the server's code and one-line message; a refusal names its filter", async () => {
    const missing = await apiError(api.get('configuration', 'nope', 'acme'));
    expect(missing.status).toBe(404);
    expect(missing.code).toBe('not_found');
    const stale = await apiError(api.apply({ type: 'configuration', namespace: 'acme', name: 'b', data: {} }, 1));
    expect(stale.status).toBe(409);
    expect(stale.code).toBe('conflict');
    const nobody = await apiError(api.as('not-a-token').list());
    expect(nobody.status).toBe(401);
    const bob = await api.createToken('bob', [], 'no rights at all');
    const refused = await apiError(api.as(bob.token).submit({ op: 'create', resource: { type: 'namespace', name: 'bobs' } }));
    expect(refused.status).toBe(403);
    expect(refused.filter).toBe('permission');
    const route = await apiError(api.request('GET', '/v1/no-such-route'));
    expect(route.code).toBe('not_found');
  });

  it('says when nothing answers at the URL (unreachable, with the system error)', async () => {
    // A port that was free a moment ago: nothing listens there.
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    const dead = new ApiClient({ url: `http://127.0.0.1:${port}/`, token: 'x' });
    const e = await apiError(dead.healthz());
    expect(e.status).toBe(0);
    expect(e.code).toBe('unreachable');
    expect(e.errno).toBe('ECONNREFUSED');
    expect(e.message).toBe(`cannot reach osØ at http://127.0.0.1:${port} (ECONNREFUSED)`);
  });

  it('tokens: create, list, revoke; a revoked token is refused', async () => {
    const t = await api.createToken('carol', ['ops'], 'for a test');
    expect((await api.listTokens()).find((x) => x.id === t.id)).toMatchObject({ actor: 'carol', groups: ['ops'], description: 'for a test' });
    expect((await api.as(t.token).healthz()).ok).toBe(true);
    await api.revokeToken(t.id);
    expect((await apiError(api.as(t.token).list({ type: 'namespace' }))).status).toBe(401);
  });

  it('handlers: register, poll with a wait, ack, list, remove', async () => {
    const reg = await api.registerHandler('cfg-watcher', { type: 'configuration', namespace: 'acme' });
    const polled = api.pollHandler('cfg-watcher', { max: 10, waitMs: 5000 });
    const made = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'c', data: {} } });
    const got = await polled;
    expect(got.events.map((e) => [e.action, e.new?.name, e.index])).toEqual([['create', 'c', made.index]]);
    expect((await api.ackHandler('cfg-watcher', made.index)).cursor).toBe(made.index);
    expect((await api.listHandlers()).find((h) => h.name === 'cfg-watcher')).toMatchObject({ cursor: made.index, remote: true });
    expect(reg.cursor).toBeLessThan(made.index);
    await api.removeHandler('cfg-watcher');
    expect((await api.listHandlers()).map((h) => h.name)).not.toContain('cfg-watcher');
  });

  it('invocations: invoke waits for the result; startInvocation answers at once', async () => {
    const r = await api.invoke('hello', 'greet', { name: 'client' });
    expect(r.status).toBe('succeeded');
    expect(r.output).toEqual({ greeting: 'hello, client' });
    const started = await api.startInvocation('hello', 'greet', { name: 'later' });
    expect(started.name).toBeTruthy();
    const unknown = await apiError(api.invoke('nope', 'greet', {}));
    expect(unknown.status).toBe(404);
  });

  it('watch: a bookmark first, then the changes after `since`, in order; close() ends it', async () => {
    const listed = await api.list({ type: 'configuration', namespace: 'acme' });
    const w = api.watch({ type: 'configuration', namespace: 'acme', since: listed.index });
    await w.open();
    const it = w[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value).toEqual({ type: 'bookmark', index: listed.index });
    const x = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'x', data: {} } });
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'elsewhere' } });
    const del = await api.delete('configuration', 'x', 'acme');
    expect(await nextChange(it)).toMatchObject({ type: 'change', action: 'create', index: x.index, resource: { name: 'x' } });
    expect(await nextChange(it)).toMatchObject({ type: 'change', action: 'delete', index: del.index, resource: { name: 'x' } });
    expect(w.index).toBe(del.index);
    w.close();
    expect((await it.next()).done).toBe(true);
  });

  it('watch refuses at once what the server refuses: an unknown type, an index beyond the log', async () => {
    expect((await apiError(api.watch({ type: 'no-such-type' }).open())).code).toBe('not_found');
    const beyond = await apiError(api.watch({ since: 10_000_000 }, { reconnect: true }).open());
    expect(beyond.status).toBe(400);
    expect(beyond.message).toMatch(/beyond the end of the log/);
  });
});

describe('a watch across a restart of the server', () => {
  const dir = path.join(tempDir('client-restart-'), 'data');
  let server: Instance | null = null;
  let w: WatchStream | null = null;
  afterAll(async () => {
    w?.close();
    await server?.stop();
  });

  it('resumes from the last index it saw: the change made while it was away comes once, then the rest', async () => {
    server = new Instance({ data: dir, port: 0, registry: false, sandbox: { processes: 1 } });
    await server.start();
    const port = server.port;
    const api = new ApiClient({ url: server.url, token: server.adminToken });
    await api.submit({ op: 'create', resource: { type: 'namespace', name: 'acme' } });
    w = api.watch({ type: 'configuration' }, { reconnect: { attempts: 50, delayMs: 50, delayMsMax: 200 } });
    const it = w[Symbol.asyncIterator]();
    expect((await it.next()).value?.type).toBe('bookmark');
    const before = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'before', data: {} } });
    expect(await nextChange(it)).toMatchObject({ type: 'change', index: before.index, resource: { name: 'before' } });

    await server.stop();
    // While the server is down the stream fails over and over (a bounded number of tries).
    server = new Instance({ data: dir, port, registry: false, sandbox: { processes: 1 } });
    await server.start();
    const during = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'during', data: {} } });

    const back = await nextChange(it);
    expect(back).toMatchObject({ type: 'reconnected', index: before.index });
    expect((back as { reason: string }).reason).not.toBe('');
    expect(await nextChange(it)).toMatchObject({ type: 'change', index: during.index, resource: { name: 'during' } });
    const after = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'acme', name: 'after', data: {} } });
    expect(await nextChange(it)).toMatchObject({ type: 'change', index: after.index, resource: { name: 'after' } });
    expect(w.connections).toBe(2);
  });

  it('gives up after its tries when the server stays away, with an error that says so', async () => {
    const api = new ApiClient({ url: server!.url, token: server!.adminToken });
    const ws = api.watch({}, { reconnect: { attempts: 3, delayMs: 20, delayMsMax: 20 } });
    const it = ws[Symbol.asyncIterator]();
    expect((await it.next()).value?.type).toBe('bookmark');
    await server!.stop();
    server = null;
    const e = await apiError(nextChange(it));
    expect(e.code).toBe('unreachable');
  });
});
