/**
 * Remote handlers end to end: a client registers (POST /v1/handlers), polls events
 * (GET /v1/handlers/:name/events) and acknowledges them (POST /v1/handlers/:name/ack). A client
 * that crashes and comes back under the same name resumes after its last acknowledged index:
 * nothing acknowledged is repeated, nothing is missed, also across a kill -9 of the server.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { client, http, startOs0, type Os0 } from '../helpers/os0.ts';

let s: Os0;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  s = await startOs0();
  api = client(s);
  for (const name of ['hq', 'hq/sub', 'other']) await api.submit({ op: 'create', resource: { type: 'namespace', name } });
});

interface Ev {
  action: string;
  index: number;
  old: { name: string } | null;
  new: { name: string } | null;
}
interface Poll {
  cursor: number;
  events: Ev[];
  last: number;
}

/** A remote handler client, as a program would write one. */
class HandlerClient {
  readonly name: string;
  readonly query: Record<string, unknown>;
  readonly token: string | undefined;
  constructor(name: string, query: Record<string, unknown>, token?: string) {
    this.name = name;
    this.query = query;
    this.token = token;
  }
  private c() {
    return client(s, this.token);
  }
  async register(from?: number): Promise<number> {
    const r = await this.c().post('/v1/handlers', { name: this.name, query: this.query, ...(from !== undefined ? { from } : {}) });
    expect(r.status, r.text).toBe(200);
    expect(r.body.name).toBe(this.name);
    return r.body.cursor;
  }
  async poll(max = 100, wait = 0): Promise<Poll> {
    const r = await this.c().get(`/v1/handlers/${this.name}/events?max=${max}&wait=${wait}`);
    expect(r.status, r.text).toBe(200);
    return r.body;
  }
  async ack(index: number): Promise<number> {
    const r = await this.c().post(`/v1/handlers/${this.name}/ack`, { index });
    expect(r.status, r.text).toBe(200);
    return r.body.cursor;
  }
  /** Polls and acknowledges until nothing is left; returns what it handled. */
  async drain(): Promise<Ev[]> {
    const out: Ev[] = [];
    for (;;) {
      const p = await this.poll(4);
      out.push(...p.events);
      if (p.events.length === 0) {
        if (p.last > p.cursor) await this.ack(p.last);
        return out;
      }
      await this.ack(p.events[p.events.length - 1].index);
    }
  }
}

const key = (e: Ev) => `${e.index} ${e.action} ${(e.new ?? e.old)!.name}`;
const conf = (namespace: string, name: string) => ({ op: 'create', resource: { type: 'configuration', namespace, name, data: {} } });

/** Writes `n` matching configurations in hq (and noise that does not match); returns the matching events' keys. */
async function produce(prefix: string, n: number): Promise<string[]> {
  const want: string[] = [];
  for (let i = 0; i < n; i++) {
    const ns = i % 3 === 2 ? 'hq/sub' : 'hq';
    const r = await api.submit(conf(ns, `${prefix}-${i}`));
    want.push(`${r.index} create ${prefix}-${i}`);
    if (i % 2 === 0) await api.submit(conf('other', `${prefix}-noise-${i}`));
    if (i % 4 === 1) await api.submit({ op: 'create', resource: { type: 'secret', namespace: 'hq', name: `${prefix}-noise-${i}`, data: {} } });
  }
  return want;
}

describe('remote handlers', () => {
  it('a crashed client resumes after its last ack: no acknowledged event repeated, none missed', async () => {
    const a = new HandlerClient('crashy', { type: 'configuration', namespace: 'hq' });
    const at = (await http(s, 'GET', '/healthz')).body.index;
    expect(await a.register()).toBe(at); // new handlers start now
    const want = await produce('c', 12);

    // Client A takes 5, finishes only 3 and acknowledges them.
    const first = await a.poll(5);
    expect(first.cursor).toBe(at);
    expect(first.events.map(key)).toEqual(want.slice(0, 5));
    for (const e of first.events) expect(e.old).toBeNull();
    expect(await a.ack(first.events[2].index)).toBe(first.events[2].index);
    // Unacknowledged events come again (at least once)...
    const second = await a.poll(5);
    expect(second.cursor).toBe(first.events[2].index);
    expect(second.events.map(key)).toEqual(want.slice(3, 8));
    // ...it acknowledges up to the 6th and then crashes while handling the 7th and 8th.
    await a.ack(second.events[2].index);
    const acked = want.slice(0, 6);

    // Client B, same name, after the crash: registering again keeps the cursor.
    const b = new HandlerClient('crashy', { type: 'configuration', namespace: 'hq' });
    expect(await b.register()).toBe(second.events[2].index);
    const rest = (await b.drain()).map(key);
    expect(rest[0]).toBe(want[6]);
    expect(rest).toEqual(want.slice(6));
    expect([...acked, ...rest]).toEqual(want);
    expect(new Set([...acked, ...rest]).size).toBe(want.length);

    const st = (await api.get('/v1/handlers')).body.find((h: { name: string }) => h.name === 'crashy');
    expect(st).toMatchObject({ name: 'crashy', remote: true, cursor: (await http(s, 'GET', '/healthz')).body.index, lag: 0 });
  });

  it('acknowledgements survive kill -9 of the server (and SIGTERM)', async () => {
    const h = new HandlerClient('durable', { type: 'configuration', namespace: 'hq' });
    await h.register();
    const want = await produce('d', 8);
    const p = await h.poll(3);
    expect(p.events.map(key)).toEqual(want.slice(0, 3));
    const ackAt = p.events[2].index;
    await h.ack(ackAt);

    expect((await s.kill9()).signal).toBe('SIGKILL');
    await s.restart();

    // The cursor is there without registering again.
    const status = (await api.get('/v1/handlers')).body.find((x: { name: string }) => x.name === 'durable');
    expect(status).toMatchObject({ remote: true, cursor: ackAt, query: { type: 'configuration', namespace: 'hq' } });
    const after = await h.poll(100);
    expect(after.cursor).toBe(ackAt);
    expect(after.events.map(key)).toEqual(want.slice(3));
    // Ack part, then a clean stop and a restart.
    await h.ack(after.events[1].index);
    expect(await s.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    await s.restart();
    const more = await produce('d2', 3);
    const client2 = new HandlerClient('durable', { type: 'configuration', namespace: 'hq' });
    expect(await client2.register()).toBe(after.events[1].index);
    expect((await client2.drain()).map(key)).toEqual([...want.slice(5), ...more]);
  });

  it('from= starts a new handler at an earlier index; `last` lets a client skip records that do not match', async () => {
    const at = (await http(s, 'GET', '/healthz')).body.index;
    const want = await produce('f', 3);
    const h = new HandlerClient('replayer', { type: 'configuration', namespace: 'hq/sub' });
    expect(await h.register(at)).toBe(at);
    const p = await h.poll(100);
    expect(p.events.map(key)).toEqual([want[2]]); // only f-2 is in hq/sub
    expect(p.last).toBeGreaterThanOrEqual(p.events[0].index);
    await h.ack(p.last);
    // Noise only: the poll comes back empty, and acknowledging `last` moves past it.
    await api.submit(conf('other', 'f-noise-late'));
    const q = await h.poll(100);
    expect(q.events).toEqual([]);
    expect(q.last).toBe((await http(s, 'GET', '/healthz')).body.index);
    await h.ack(q.last);
    expect((await h.poll(100)).cursor).toBe(q.last);
  });

  it('a long poll waits for the next matching event, or answers empty after `wait`', async () => {
    const h = new HandlerClient('waiter', { type: 'configuration', namespace: 'hq' });
    await h.register();
    let t0 = Date.now();
    const empty = await h.poll(10, 400);
    expect(empty.events).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);

    t0 = Date.now();
    const pending = h.poll(10, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    await api.submit(conf('other', 'w-noise')); // does not match: keeps waiting
    const r = await api.submit(conf('hq', 'w-1'));
    const got = await pending;
    expect(got.events.map(key)).toEqual([`${r.index} create w-1`]);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('delivers updates and deletes with old and new', async () => {
    const h = new HandlerClient('changes', { type: 'configuration', namespace: 'hq' });
    await h.register();
    await api.submit(conf('hq', 'x'));
    await api.submit({ op: 'update', resource: { type: 'configuration', namespace: 'hq', name: 'x', data: { v: 2 } } });
    await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'hq', name: 'x' } });
    const evs = await h.drain();
    expect(evs.map((e) => e.action)).toEqual(['create', 'update', 'delete']);
    expect(evs[1].new).toMatchObject({ data: { v: 2 } });
    expect(evs[2].new).toBeNull();
    expect(evs[2].old).toMatchObject({ name: 'x' });
  });

  // BUG (core/api/routes/handlers.ts, routes GET /v1/handlers/:name/events, POST /v1/handlers/:name/ack,
  // DELETE /v1/handlers/:name): only authentication is checked, so any token, even one with no
  // policy at all, can move another handler's cursor (its owner then silently misses events) or
  // remove it. Remove `.fails` once fixed.
  it("a user without watch rights cannot ack or remove someone else's handler", async () => {
    const h = new HandlerClient('guarded', { type: 'configuration', namespace: 'hq' });
    await h.register();
    await api.submit(conf('hq', 'guarded-1'));
    const t = await api.post('/v1/tokens', { actor: 'intruder' });
    const end = (await http(s, 'GET', '/healthz')).body.index;
    const ack = await http(s, 'POST', '/v1/handlers/guarded/ack', { index: end }, t.body.token);
    const del = await http(s, 'DELETE', '/v1/handlers/guarded', undefined, t.body.token);
    expect((await h.poll(10)).events.map((e) => (e.new ?? e.old)!.name)).toEqual(['guarded-1']);
    expect(ack.status).toBe(403);
    expect(del.status).toBe(403);
  });

  it('refuses bad names, unknown handlers, acks past the log and users without watch rights', async () => {
    const bad = await api.post('/v1/handlers', { name: 'Bad Name', query: {} });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('invalid');
    const unknownEvents = await api.get('/v1/handlers/ghost/events');
    expect(unknownEvents.status).toBe(404);
    expect(unknownEvents.body).toEqual({ error: { code: 'not_found', message: 'no remote handler ghost; register it first' } });
    expect((await api.post('/v1/handlers/ghost/ack', { index: 1 })).status).toBe(404);

    const h = new HandlerClient('acker', { type: 'configuration' });
    await h.register();
    const end = (await http(s, 'GET', '/healthz')).body.index;
    const past = await api.post('/v1/handlers/acker/ack', { index: end + 100 });
    expect(past.status).toBe(400);
    expect(past.body).toEqual({ error: { code: 'invalid', message: `cannot acknowledge ${end + 100}: the log ends at ${end}` } });
    const notNum = await api.post('/v1/handlers/acker/ack', { index: 'x' });
    expect(notNum.status).toBe(400);
    // An older ack does not move the cursor back.
    expect(await h.ack(1)).toBe(end);

    const t = await api.post('/v1/tokens', { actor: 'peeker' });
    const denied = await http(s, 'POST', '/v1/handlers', { name: 'peek', query: { type: 'configuration', namespace: 'hq' } }, t.body.token);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ filter: 'permission', message: /peeker may not watch configuration in hq/ });
  });
});
