/**
 * Watches over server-sent events end to end (GET /v1/watch?type=&namespace=&since=): order,
 * filtering, the initial bookmark, and resuming with `since` after the server restarts (SIGTERM
 * and kill -9) on the same data directory.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { client, http, sse, startOs0, type Os0, type SseEvent } from '../helpers/os0.ts';

let s: Os0;
let api: ReturnType<typeof client>;

beforeAll(async () => {
  s = await startOs0();
  api = client(s);
  await api.submit({ op: 'create', resource: { type: 'namespace', name: 'w' } });
  await api.submit({ op: 'create', resource: { type: 'namespace', name: 'w/sub' } });
  await api.submit({ op: 'create', resource: { type: 'namespace', name: 'wx' } });
});

const conf = (namespace: string, name: string, data: Record<string, unknown> = {}, op = 'create') => ({
  op,
  resource: { type: 'configuration', namespace, name, data },
});
const index = async (): Promise<number> => (await http(s, 'GET', '/healthz')).body.index;
const summary = (e: SseEvent) => `${e.json.index} ${e.json.action} ${e.json.resource.namespace}/${e.json.resource.name}`;

describe('watch', () => {
  it('starts with a bookmark at the current index, then streams changes in order', async () => {
    const at = await index();
    const w = await sse(s, '/v1/watch?type=configuration&namespace=w');
    try {
      expect(w.status).toBe(200);
      const first = await w.next();
      expect(first.event).toBe('bookmark');
      expect(first.json).toEqual({ index: at });

      const a = await api.submit(conf('w', 'a', { v: 1 }));
      const b = await api.submit(conf('w/sub', 'b'));
      await api.submit(conf('wx', 'not-me')); // a sibling namespace sharing the prefix: not matched
      await api.submit({ op: 'create', resource: { type: 'secret', namespace: 'w', name: 'not-me', data: {} } }); // another type
      const u = await api.submit(conf('w', 'a', { v: 2 }, 'update'));
      const d = await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'w/sub', name: 'b' } });
      const batch = await api.submit({ batch: [conf('w', 'c1'), conf('w', 'c2')] });

      const evs = await w.take(6, 'change');
      expect(evs.map(summary)).toEqual([
        `${a.index} create w/a`,
        `${b.index} create w/sub/b`,
        `${u.index} update w/a`,
        `${d.index} delete w/sub/b`,
        `${batch.index} create w/c1`,
        `${batch.index} create w/c2`,
      ]);
      for (const e of evs) {
        expect(Object.keys(e.json).sort()).toEqual(['action', 'index', 'resource']);
        expect(e.id).toBe(String(e.json.index));
      }
      expect(evs[0].json.resource).toEqual(a.resources[0]);
      expect(evs[2].json.resource).toMatchObject({ data: { v: 2 }, revision: u.index });
      expect(evs[3].json.resource).toMatchObject({ name: 'b', id: b.resources[0].id });
    } finally {
      w.close();
    }
  });

  it('filters by tags, and since= replays exactly the events after that index', async () => {
    const at = await index();
    const tagged = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'w', name: 't1', tags: { role: 'web' }, data: {} } });
    await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'w', name: 't2', tags: { role: 'db' }, data: {} } });
    const w = await sse(s, `/v1/watch?type=configuration&namespace=w&tags=role=web&since=${at}`);
    try {
      expect((await w.next()).json).toEqual({ index: at });
      const [e] = await w.take(1, 'change');
      expect(summary(e)).toBe(`${tagged.index} create w/t1`);
      const t3 = await api.submit({ op: 'create', resource: { type: 'configuration', namespace: 'w', name: 't3', tags: { role: 'web' }, data: {} } });
      const [e3] = await w.take(1, 'change');
      expect(summary(e3)).toBe(`${t3.index} create w/t3`);
    } finally {
      w.close();
    }
  });

  it('a tag-filtered watch sees the update that takes a resource out of its selector, and nothing of it after', async () => {
    const at = await index();
    const tag = (role: string, op = 'apply') => ({ op, resource: { type: 'configuration', namespace: 'w', name: 'mover', tags: { role }, data: {} } });
    const w = await sse(s, `/v1/watch?type=configuration&namespace=w&tags=role=cache&since=${at}`);
    try {
      const c = await api.submit(tag('cache'));
      const u = await api.submit(tag('db'));
      await api.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'w', name: 'mover' } }); // was role=db: not this watch's
      const marker = await api.submit(tag('cache'));
      const got = await w.take(3, 'change');
      expect(got.map(summary)).toEqual([`${c.index} create w/mover`, `${u.index} update w/mover`, `${marker.index} create w/mover`]);
      expect(got[1].json.resource.tags).toEqual({ role: 'db' });
    } finally {
      w.close();
    }
  });

  it('refuses a bad since and a watch the actor may not do', async () => {
    const bad = await http(s, 'GET', '/v1/watch?type=configuration&since=abc');
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ error: { code: 'invalid', message: 'since must be a log index (a non-negative integer)' } });
    const t = await api.post('/v1/tokens', { actor: 'nobody' });
    const denied = await http(s, 'GET', '/v1/watch?type=configuration&namespace=w', undefined, t.body.token);
    expect(denied.status).toBe(403);
    expect(denied.body.error).toMatchObject({ code: 'rejected', filter: 'permission', message: /nobody may not watch configuration in w/ });
  });

  // BUG (core/api/routes/watch.ts, Watches.watch(): no check that the type exists, unlike System.list): a watch
  // of an unknown type is accepted (200) and streams nothing forever; GET /v1/resources?type=bogus
  // answers 404 `unknown type "bogus"`. Remove `.fails` once fixed.
  it('a watch of an unknown type is refused like a list of it (404)', async () => {
    const w = await sse(s, '/v1/watch?type=bogus');
    w.close();
    expect(w.status).toBe(404);
    expect(w.errorBody.error.message).toMatch(/unknown type "bogus"/);
  });

  it('since=0 replays the whole log for the query', async () => {
    const w = await sse(s, '/v1/watch?type=namespace&since=0');
    try {
      expect((await w.next()).json).toEqual({ index: 0 });
      const evs = await w.take(4, 'change');
      expect(evs.map((e) => e.json.resource.name)).toEqual(['system', 'w', 'w/sub', 'wx']);
      const idx = evs.map((e) => e.json.index);
      expect([...idx].sort((x, y) => x - y)).toEqual(idx);
    } finally {
      w.close();
    }
  });

  it('since older than the retained window answers 409 telling the client to re-list; idle watches get bookmarks', async () => {
    const small = await startOs0({ args: ['--retain-records', '20', '--history-records', '8', '--segment-bytes', '2048', '--bookmark-seconds', '0.3'] });
    try {
      const sapi = client(small);
      await sapi.submit({ op: 'create', resource: { type: 'namespace', name: 'tiny' } });
      for (let i = 0; i < 120; i++) await sapi.submit(conf('tiny', `c${i}`));
      // Sealed segments are flushed and dropped in the background: wait until index 1 is gone.
      let res = await http(small, 'GET', '/v1/watch?type=configuration&since=1');
      for (let i = 0; i < 100 && res.status !== 409; i++) {
        await new Promise((r) => setTimeout(r, 50));
        res = await http(small, 'GET', '/v1/watch?type=configuration&since=1');
      }
      expect(res.status).toBe(409);
      expect(res.body.error.message).toMatch(/older than the retained log .*re-list/);
      const far = await http(small, 'GET', '/v1/watch?type=configuration&since=99999');
      expect(far.status).toBe(400);
      expect(far.body.error.message).toMatch(/beyond the end of the log/);
      const w = await sse(small, '/v1/watch?type=configuration&namespace=tiny');
      try {
        const first = await w.next();
        const second = await w.next();
        expect([first.event, second.event]).toEqual(['bookmark', 'bookmark']);
        expect(second.json.index).toBe(first.json.index);
      } finally {
        w.close();
      }
    } finally {
      await small.stop('SIGTERM');
    }
  });
});

describe('resuming a watch across restarts', () => {
  async function resumeAcross(kill: (s: Os0) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>, expectExit: (e: { code: number | null; signal: NodeJS.Signals | null }) => void) {
    // A client watches, reads some events and remembers the last index it saw.
    const w = await sse(s, '/v1/watch?type=configuration&namespace=w');
    const start = (await w.next()).json.index as number;
    const seen = await Promise.all([1, 2].map((i) => api.submit(conf('w', `r${start}-${i}`))));
    const got = await w.take(2, 'change');
    expect(got.map((e) => e.json.index), JSON.stringify(got.map((e) => e.json))).toEqual(seen.map((r) => r.index));
    const last = got[1].json.index as number;
    // More changes the client does not see (it went away), all acknowledged.
    w.close();
    const missed: { index: number; name: string; action: string }[] = [];
    for (let i = 3; i <= 6; i++) {
      const r = await api.submit(conf('w', `r${start}-${i}`));
      missed.push({ index: r.index, name: `r${start}-${i}`, action: 'create' });
    }
    const upd = await api.submit(conf('w', `r${start}-1`, { v: 'x' }, 'update'));
    missed.push({ index: upd.index, name: `r${start}-1`, action: 'update' });
    await api.submit({ op: 'create', resource: { type: 'secret', namespace: 'w', name: `s${start}`, data: {} } }); // filtered out

    expectExit(await kill(s));
    await s.restart();

    const again = await sse(s, `/v1/watch?type=configuration&namespace=w&since=${last}`);
    try {
      expect(again.status).toBe(200);
      const bm = await again.next();
      expect(bm.event).toBe('bookmark');
      expect(bm.json).toEqual({ index: last });
      const replay = await again.take(missed.length, 'change');
      expect(replay.map((e) => ({ index: e.json.index, name: e.json.resource.name, action: e.json.action }))).toEqual(missed);
      // Then live changes, and nothing in between.
      const live = await api.submit(conf('w', `r${start}-live`));
      const next = await again.next();
      expect(next.event).toBe('change');
      expect(next.json.index).toBe(live.index);
      expect(next.json.resource.name).toBe(`r${start}-live`);
    } finally {
      again.close();
    }
  }

  it('after SIGTERM (exit 0) and a restart on the same data dir', async () => {
    // An open watch must not keep the server from stopping.
    const open = await sse(s, '/v1/watch?type=configuration');
    await open.next();
    await resumeAcross(
      (x) => x.stop('SIGTERM'),
      (e) => expect(e).toEqual({ code: 0, signal: null }),
    );
    // The old watch was ended by the server.
    await expect(open.take(100, 'change', 2000)).rejects.toThrow(/ended/);
    open.close();
  });

  it('after kill -9 and a restart on the same data dir', async () => {
    await resumeAcross(
      (x) => x.kill9(),
      (e) => expect(e.signal).toBe('SIGKILL'),
    );
  });
});
