import { describe, expect, it } from 'vitest';
import { Core, OsError, Rejection, type Committed, type Filter } from '../../core/index.ts';
import { nodeFileIO, type FileIO } from '../../core/fileio.ts';
import { tempDir } from '../helpers/tmp.ts';

const cfg = (name: string, data: unknown = {}, extra: Record<string, unknown> = {}) => ({ type: 'configuration', namespace: 'acme/prod', name, data, ...extra });

async function error(p: Promise<unknown>): Promise<OsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OsError);
    expect((e as OsError).message).not.toContain('\n');
    return e as OsError;
  }
  throw new Error('expected a rejection');
}

describe('core commands', () => {
  it('creates, updates, applies and deletes, with revisions from the log', async () => {
    const core = await Core.open({ dir: tempDir() });
    const a = await core.submit({ op: 'create', resource: cfg('a', { v: 1 }, { tags: { role: 'web' } }) });
    expect(a.index).toBe(1);
    const r1 = a.resources[0];
    expect(r1).toMatchObject({ apiVersion: 'os0/v1', namespace: 'acme/prod', type: 'configuration', name: 'a', revision: 1, tags: { role: 'web' }, data: { v: 1 } });
    expect(r1.id).toMatch(/^[0-9a-z]{20}$/);
    expect(core.get('configuration', 'a', 'acme/prod')).toEqual(r1);

    const u = await core.submit({ op: 'update', resource: cfg('a', { v: 2 }) });
    expect(u.resources[0]).toMatchObject({ id: r1.id, created: r1.created, revision: 2, data: { v: 2 }, tags: {} });
    const ap = await core.submit({ op: 'apply', resource: cfg('b') });
    expect(ap.resources[0].revision).toBe(3);
    await core.submit({ op: 'apply', resource: cfg('b', { x: 1 }) });
    expect(core.get('configuration', 'b', 'acme/prod')?.data).toEqual({ x: 1 });

    const d = await core.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'acme/prod', name: 'a' } });
    expect(d.resources[0].id).toBe(r1.id);
    expect(core.get('configuration', 'a', 'acme/prod')).toBeUndefined();
    expect(core.getById(r1.id)).toBeUndefined();
    const b = core.get('configuration', 'b', 'acme/prod')!;
    await core.submit({ op: 'delete', resource: { type: 'configuration', id: b.id } });
    expect(core.query({ namespace: 'acme' })).toEqual([]);
    expect(core.index).toBe(6);
    await core.close();
  });

  it('an apply that matches what is stored writes nothing and tells no subscriber', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir });
    const heard: Committed[] = [];
    core.subscribe((c) => heard.push(c));
    const first = await core.submit({ op: 'apply', resource: cfg('same', { b: [1, { c: 2 }], a: 1 }, { tags: { role: 'web' } }) });
    // The same content, keys in another order: unchanged, at the index it was last written.
    const again = await core.submit({ op: 'apply', resource: cfg('same', { a: 1, b: [1, { c: 2 }] }, { tags: { role: 'web' } }) });
    expect(again).toEqual({ index: first.index, resources: [], unchanged: [first.resources[0]] });
    expect(core.index).toBe(first.index);
    expect(heard.map((c) => c.index)).toEqual([first.index]);
    // A different tag or a different array order is a change.
    const tagged = await core.submit({ op: 'apply', resource: cfg('same', { a: 1, b: [1, { c: 2 }] }, { tags: { role: 'db' } }) });
    expect(tagged.resources[0].revision).toBe(first.index + 1);
    await core.submit({ op: 'apply', resource: cfg('same', { a: 1, b: [{ c: 2 }, 1] }, { tags: { role: 'db' } }) });
    expect(core.index).toBe(first.index + 2);
    // In a batch, only what changes is written; the rest is reported unchanged.
    const batch = await core.submit({ batch: [{ op: 'apply', resource: cfg('same', { a: 1, b: [{ c: 2 }, 1] }, { tags: { role: 'db' } }) }, { op: 'apply', resource: cfg('other') }] });
    expect(batch.resources.map((r) => r.name)).toEqual(['other']);
    expect(batch.unchanged?.map((r) => r.name)).toEqual(['same']);
    expect(heard.at(-1)!.changes.map((c) => c.new?.name)).toEqual(['other']);
    // Concurrent with the write it matches: answered once that write is durable, never before.
    const [w, u] = await Promise.all([
      core.submit({ op: 'apply', resource: cfg('racing', { n: 1 }) }),
      core.submit({ op: 'apply', resource: cfg('racing', { n: 1 }) }),
    ]);
    expect(u).toEqual({ index: w.index, resources: [], unchanged: [w.resources[0]] });
    const last = core.index;
    await core.close();
    core = await Core.open({ dir });
    expect(core.index).toBe(last);
    await core.close();
  });

  it('refuses what the state forbids, with a clear reason, writing nothing', async () => {
    const core = await Core.open({ dir: tempDir() });
    await core.submit({ op: 'create', resource: cfg('a') });
    expect((await error(core.submit({ op: 'create', resource: cfg('a') }))).message).toMatch(/configuration acme\/prod\/a already exists \(revision 1\); use apply or update/);
    expect((await error(core.submit({ op: 'update', resource: cfg('nope') }))).code).toBe('not_found');
    expect((await error(core.submit({ op: 'delete', resource: cfg('nope') }))).message).toMatch(/does not exist/);
    const stale = await error(core.submit({ op: 'update', resource: cfg('a'), expect: 7 }));
    expect(stale.code).toBe('conflict');
    expect(stale.message).toMatch(/is at revision 1, not 7 as expected; read it again and retry/);
    expect((await error(core.submit({ op: 'apply', resource: cfg('fresh'), expect: 3 }))).code).toBe('conflict');
    expect((await error(core.submit({ op: 'create', resource: cfg('big', { blob: 'x'.repeat(300_000) }) }))).code).toBe('too_large');
    expect((await error(core.submit({ op: 'create', resource: { type: 'configuration', name: 'BAD' } }))).code).toBe('invalid');
    expect(core.index).toBe(1);
    // expect as compare-and-set: 0 means "must not exist yet"
    await core.submit({ op: 'apply', resource: cfg('cas'), expect: 0 });
    await core.submit({ op: 'update', resource: cfg('cas', { n: 1 }), expect: 2 });
    expect(core.get('configuration', 'cas', 'acme/prod')?.revision).toBe(3);
    await core.close();
  });

  it('applies a batch atomically at one index, or not at all', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir });
    const ok = await core.submit({ batch: [{ op: 'create', resource: cfg('x') }, { op: 'update', resource: cfg('x', { step: 2 }) }, { op: 'create', resource: cfg('y') }] });
    expect(ok.index).toBe(1);
    expect(ok.resources.map((r) => r.revision)).toEqual([1, 1, 1]);
    expect(core.get('configuration', 'x', 'acme/prod')?.data).toEqual({ step: 2 });
    const bad = await error(core.submit({ batch: [{ op: 'create', resource: cfg('z') }, { op: 'create', resource: cfg('x') }] }));
    expect(bad.message).toMatch(/already exists/);
    expect(core.get('configuration', 'z', 'acme/prod')).toBeUndefined();
    expect(core.index).toBe(1);
    await core.close();
    core = await Core.open({ dir });
    expect(core.index).toBe(1);
    expect(core.get('configuration', 'z', 'acme/prod')).toBeUndefined();
    await core.close();
  });

  it('lets exactly one of many concurrent creates of one name win', async () => {
    const core = await Core.open({ dir: tempDir() });
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => core.submit({ op: 'create', resource: cfg('race', { i }) })));
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(1);
    expect(results.filter((r) => r.status === 'rejected' && (r.reason as OsError).code === 'conflict').length).toBe(49);
    await core.close();
  });

  it('runs filters that reject, fill in defaults, and admit against pending writes', async () => {
    const seen: string[] = [];
    const noSecrets: Filter = {
      name: 'policy',
      check(commands, ctx) {
        seen.push(ctx.actor);
        if (commands.some((c) => c.resource.name.startsWith('secret'))) throw new Rejection('policy', 'names starting with secret are not allowed');
      },
    };
    const defaults: Filter = {
      name: 'defaults',
      async check(commands) {
        await new Promise((r) => setTimeout(r, 1));
        return commands.map((c) => ({ ...c, resource: { ...c.resource, tags: { owner: 'team', ...c.resource.tags } } }));
      },
    };
    // A quota of 3 configurations, checked at sequencing against writes not yet durable.
    const quota: Filter = {
      name: 'quota',
      admit(change, ctx) {
        if (change.old || !change.next) return;
        let n = 0;
        for (let i = 0; i < 100; i++) if (ctx.view.get('acme/prod', 'configuration', `q${i}`)) n++;
        if (n >= 3) throw new Rejection('quota', 'namespace acme/prod allows 3 configurations');
        change.next.cost = 0.5;
      },
    };
    const core = await Core.open({ dir: tempDir(), filters: [noSecrets, defaults, quota] });
    const r = await core.submit({ op: 'create', resource: cfg('q0') }, { actor: 'alice' });
    expect(r.resources[0].tags).toEqual({ owner: 'team' });
    expect(r.resources[0].cost).toBe(0.5);
    expect(seen).toEqual(['alice']);
    const rej = await error(core.submit({ op: 'create', resource: cfg('secret-1') }));
    expect(rej.message).toBe('rejected by policy: names starting with secret are not allowed');
    expect(rej.filter).toBe('policy');
    const many = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => core.submit({ op: 'create', resource: cfg(`q${i + 1}`) })));
    expect(many.filter((m) => m.status === 'fulfilled').length).toBe(2);
    expect(core.query({ type: 'configuration' }).length).toBe(3);
    expect(core.counters.rejected.get('quota')).toBe(8);
    await core.close();
  });

  it('hands subscribers every change after apply, in log order', async () => {
    const core = await Core.open({ dir: tempDir() });
    const got: Committed[] = [];
    const off = core.subscribe((c) => {
      // Applied before subscribers hear of it.
      for (const ch of c.changes) expect(core.get('configuration', (ch.new ?? ch.old)!.name, 'acme/prod')).toEqual(ch.new ?? undefined);
      got.push(c);
    });
    await Promise.all(Array.from({ length: 20 }, (_, i) => core.submit({ op: 'create', resource: cfg(`s${i}`) }, { actor: 'bob' })));
    await core.submit({ op: 'update', resource: cfg('s1', { v: 1 }) });
    await core.submit({ op: 'delete', resource: cfg('s1') });
    off();
    await core.submit({ op: 'delete', resource: cfg('s2') });
    expect(got.map((c) => c.index)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1));
    expect(got[0].actor).toBe('bob');
    expect(got[20].changes[0]).toMatchObject({ action: 'update', old: { data: {} }, new: { data: { v: 1 } } });
    expect(got[21].changes[0]).toMatchObject({ action: 'delete', new: null, old: { name: 's1' } });
    await core.close();
  });

  it('shows nothing to readers until it is durable', async () => {
    let release!: () => void;
    let gate: Promise<void> | null = null;
    const io: FileIO = {
      ...nodeFileIO,
      async openWritable(p) {
        const f = await nodeFileIO.openWritable(p);
        return { ...f, write: f.write.bind(f), truncate: f.truncate.bind(f), close: f.close.bind(f), datasync: async () => { await gate; await f.datasync(); } };
      },
    };
    const core = await Core.open({ dir: tempDir(), io });
    gate = new Promise((r) => (release = r));
    let acked = false;
    const p = core.submit({ op: 'create', resource: cfg('slow') }).then(() => (acked = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(acked).toBe(false);
    expect(core.get('configuration', 'slow', 'acme/prod')).toBeUndefined();
    // ... but a second create of the same name already sees it as taken.
    expect((await error(core.submit({ op: 'create', resource: cfg('slow') }))).code).toBe('conflict');
    release();
    await p;
    expect(core.get('configuration', 'slow', 'acme/prod')?.revision).toBe(1);
    await core.close();
  });

  it('keeps everything across close and reopen, through checkpoints', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir, segmentBytes: 8 * 1024 });
    for (let i = 0; i < 200; i++) await core.submit({ op: 'create', resource: cfg(`k${i}`, { i }, { tags: { mod: String(i % 7) } }) });
    await core.checkpoint();
    for (let i = 0; i < 50; i++) await core.submit({ op: 'delete', resource: cfg(`k${i}`) });
    const before = core.query({}).sort((a, b) => a.id.localeCompare(b.id));
    await core.close();
    core = await Core.open({ dir, segmentBytes: 8 * 1024 });
    expect(core.query({}).sort((a, b) => a.id.localeCompare(b.id))).toEqual(before);
    expect(core.query({ tags: { mod: '3' } }).length).toBe(before.filter((r) => r.tags.mod === '3').length);
    expect(core.stats().sstables[0]).toMatch(/^base-/);
    await core.submit({ op: 'create', resource: cfg('after') });
    expect(core.index).toBe(251);
    await core.close();
  });
});

describe('ownership', () => {
  it('deletes what an owner owns, transitively, in the same record', async () => {
    const core = await Core.open({ dir: tempDir() });
    const svc = (await core.submit({ op: 'create', resource: cfg('svc') })).resources[0];
    const tg = (await core.submit({ op: 'create', resource: cfg('svc-group', {}, { owner: [svc.id] }) })).resources[0];
    await core.submit({ batch: [1, 2, 3].map((i) => ({ op: 'create', resource: cfg(`svc-task-${i}`, {}, { owner: [tg.id] }) })) });
    await core.submit({ op: 'create', resource: cfg('unrelated') });
    const seen: Committed[] = [];
    core.subscribe((c) => seen.push(c));
    const del = await core.submit({ op: 'delete', resource: cfg('svc') });
    expect(del.resources.map((r) => r.name).sort()).toEqual(['svc', 'svc-group', 'svc-task-1', 'svc-task-2', 'svc-task-3']);
    expect(seen.length).toBe(1);
    expect(core.query({ type: 'configuration' }).map((r) => r.name)).toEqual(['unrelated']);
    expect((await error(core.submit({ op: 'create', resource: cfg('orphan', {}, { owner: [svc.id] }) }))).message).toMatch(/names owner .* which does not exist/);
    await core.close();
  });

  it('deletes a resource reached twice (shared or cyclic owners) once', async () => {
    const core = await Core.open({ dir: tempDir() });
    const a = (await core.submit({ op: 'create', resource: cfg('a') })).resources[0];
    const b = (await core.submit({ op: 'create', resource: cfg('b', {}, { owner: [a.id] }) })).resources[0];
    const c = (await core.submit({ op: 'create', resource: cfg('c', {}, { owner: [a.id, b.id] }) })).resources[0];
    await core.submit({ op: 'update', resource: cfg('a', {}, { owner: [c.id] }) }); // a cycle: a → c → a
    const del = await core.submit({ op: 'delete', resource: cfg('a') });
    expect(del.resources.map((r) => r.name).sort()).toEqual(['a', 'b', 'c']);
    expect(core.query({ type: 'configuration' })).toEqual([]);
    await core.close();
  });

  it('says which owned resource blocks a delete, and deletes nothing', async () => {
    const guard: Filter = {
      name: 'permission',
      admit(change) {
        if (!change.next && change.old?.name === 'locked') throw new Rejection('permission', 'bob may not delete configuration acme/prod/locked');
      },
    };
    const core = await Core.open({ dir: tempDir(), filters: [guard] });
    const owner = (await core.submit({ op: 'create', resource: cfg('owner') })).resources[0];
    await core.submit({ op: 'create', resource: cfg('free', {}, { owner: [owner.id] }) });
    await core.submit({ op: 'create', resource: cfg('locked', {}, { owner: [owner.id] }) });
    const e = await error(core.submit({ op: 'delete', resource: cfg('owner') }));
    expect(e.message).toBe('cannot delete configuration acme/prod/owner: configuration acme/prod/locked, which it owns, blocks it: rejected by permission: bob may not delete configuration acme/prod/locked');
    expect(e.filter).toBe('permission');
    expect(core.query({ type: 'configuration' }).length).toBe(3);
    await core.close();
  });
});
