/**
 * Handlers as reconcilers: a tag-filtered handler sees deletes read back from disk, failing
 * events are parked where a person sees them, a handler behind the retained log re-lists, and
 * resyncMs hands it the whole state periodically. Real Core, real files.
 */
import { describe, expect, it } from 'vitest';
import { Core } from '../../../core/index.ts';
import { Handlers, PARKED_MAX, type HandlerEvent, type HandlerSnapshot } from '../../../core/handlers.ts';
import { tempDir } from '../../helpers/tmp.ts';

const conf = (name: string, tags: Record<string, string> = {}, v = 0) => ({ op: 'apply', resource: { type: 'configuration', namespace: 'r', name, tags, data: { v } } });
const del = (name: string) => ({ op: 'delete', resource: { type: 'configuration', namespace: 'r', name } });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};
const ev = (e: HandlerEvent) => `${e.action} ${(e.new ?? e.old)!.name}`;
/** A core whose memory window is tiny and whose WAL is dropped soon after it reaches an sstable. */
const small = (dir: string) => Core.open({ dir, historyRecords: 4, segmentBytes: 1024, retainRecords: 5 });

describe('handlers as reconcilers', () => {
  it('a tag-filtered handler gets deletes (and updates leaving its tags) read back from disk after a restart', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir, historyRecords: 4 });
    let handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    const stop = handlers.register({ name: 'web', query: { tags: { app: 'web' } }, handle: () => {} });
    stop();
    await handlers.close();
    await core.submit(conf('a', { app: 'web' }));
    await core.submit(conf('b', { app: 'web' }));
    await core.submit(conf('b', { app: 'db' })); // leaves the selector
    await core.submit(del('a'));
    for (let i = 0; i < 10; i++) await core.submit(conf(`noise${i % 2}`, { app: 'db' }, i));
    await core.close();

    core = await Core.open({ dir, historyRecords: 4 });
    handlers = await Handlers.open(core, dir);
    const seen: HandlerEvent[] = [];
    handlers.register({ name: 'web', query: { tags: { app: 'web' } }, handle: (e) => void seen.push(e) });
    await until(() => handlers.status()[0].cursor === core.index);
    expect(seen.map(ev)).toEqual(['create a', 'create b', 'update b', 'delete a']);
    expect(seen[2].old!.tags).toEqual({ app: 'web' });
    expect(seen[3].old).toMatchObject({ name: 'a', tags: { app: 'web' }, data: { v: 0 } });
    await handlers.close();
    await core.close();
  });

  it('parks an event that keeps failing, keeps it across a restart, and delivers it again on retry', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir });
    let handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    let healthy = false;
    const got: string[] = [];
    const spec = {
      name: 'picky',
      query: { type: 'configuration' },
      attempts: 2,
      handle: (e: HandlerEvent) => {
        if (e.new?.name === 'poison' && !healthy) throw new Error('cannot digest poison');
        got.push(ev(e));
      },
    };
    let stop = handlers.register(spec);
    const poison = await core.submit(conf('poison'));
    await core.submit(conf('fine'));
    await until(() => handlers.status()[0].cursor === core.index);
    let st = handlers.status()[0];
    expect(got).toEqual(['create fine']);
    expect(st.parked).toHaveLength(1);
    expect(st.parked[0]).toMatchObject({ index: poison.index, change: 0, action: 'create', type: 'configuration', namespace: 'r', name: 'poison', attempts: 2, error: 'cannot digest poison' });
    expect(st.failures).toBe(1);
    stop();
    await handlers.close();
    await core.close();

    core = await Core.open({ dir });
    handlers = await Handlers.open(core, dir);
    expect(handlers.status()[0].parked.map((p) => p.name)).toEqual(['poison']);
    stop = handlers.register(spec);
    handlers.retryParked('picky'); // still failing: stays parked, one more attempt counted
    await until(() => handlers.status()[0].parked[0]?.attempts === 3);
    healthy = true;
    handlers.retryParked('picky');
    await until(() => handlers.status()[0].parked.length === 0);
    expect(got).toEqual(['create fine', 'create poison']);
    stop();
    await handlers.close();
    await core.close();
  });

  it(`stops at ${PARKED_MAX} parked events until someone drops them, then goes on`, async () => {
    const dir = tempDir();
    const core = await Core.open({ dir });
    const handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    const ok: string[] = [];
    handlers.register({
      name: 'grumpy',
      query: { type: 'configuration' },
      attempts: 1,
      handle: (e) => {
        if (e.new!.name.startsWith('bad')) throw new Error('no');
        ok.push(e.new!.name);
      },
    });
    await core.submit({ batch: Array.from({ length: PARKED_MAX + 5 }, (_, i) => conf(`bad${i}`)) });
    await core.submit(conf('good'));
    await until(() => handlers.status()[0].parked.length >= PARKED_MAX);
    await new Promise((r) => setTimeout(r, 50));
    // All of the batch's changes are tried (a record is never half done), but nothing after it.
    expect(handlers.status()[0].parked).toHaveLength(PARKED_MAX + 5);
    expect(ok).toEqual([]);
    expect(handlers.status()[0].lastError).toMatch(/events are parked: retry or drop them/);
    expect(handlers.dropParked('grumpy')).toBe(PARKED_MAX + 5);
    await until(() => ok.length === 1);
    expect(ok).toEqual(['good']);
    await handlers.close();
    await core.close();
  });

  it('a handler behind the retained log re-lists: its resync gets the current state, and it goes on from there', async () => {
    const dir = tempDir();
    const core = await small(dir);
    const handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    const snaps: HandlerSnapshot[] = [];
    const events: string[] = [];
    const spec = { name: 'rec', query: { type: 'configuration', namespace: 'r' }, handle: (e: HandlerEvent) => void events.push(ev(e)), resync: (s: HandlerSnapshot) => void snaps.push(s) };
    handlers.register(spec)();
    for (let i = 0; i < 60; i++) await core.submit(conf(`c${i % 10}`, {}, i));
    await core.submit(del('c3'));
    await core.checkpoint();
    await until(() => core.history.firstIndex > 2);
    handlers.register(spec);
    await until(() => snaps.length === 1);
    expect(snaps[0].reason).toBe('relist');
    expect(snaps[0].index).toBe(core.index);
    expect(snaps[0].resources.map((r) => r.name).sort()).toEqual(['c0', 'c1', 'c2', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9']);
    expect(events).toEqual([]); // nothing silently skipped, nothing replayed from a hole
    const st = handlers.status()[0];
    expect(st.relists).toBe(1);
    expect(st.cursor).toBe(core.index);
    expect(st.lastError).toMatch(/fell behind the retained log at 1 .*re-listed/);
    await core.submit(conf('after'));
    await until(() => events.length === 1);
    expect(events).toEqual(['create after']);
    await handlers.close();
    await core.close();
  });

  it('a remote handler behind the retained log is told to re-list, and goes on after acknowledging the list index', async () => {
    const dir = tempDir();
    const core = await small(dir);
    const handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    await handlers.registerRemote('far', { type: 'configuration' });
    for (let i = 0; i < 60; i++) await core.submit(conf(`c${i % 10}`, {}, i));
    await core.checkpoint();
    await until(() => core.history.firstIndex > 2);
    const res = await handlers.poll('far', 10, 0);
    expect(res.relist).toEqual({ index: core.index });
    expect(res.events).toEqual([]);
    await handlers.ack('far', res.relist!.index);
    await core.submit(conf('hidden'));
    await core.submit(conf('next'));
    const after = await handlers.poll('far', 10, 0, (r) => r.name !== 'hidden'); // a per-event visibility check
    expect(after.relist).toBeUndefined();
    expect(after.events.map(ev)).toEqual(['create next']);
    expect(handlers.status()[0].relists).toBe(1);
    await handlers.close();
    await core.close();
  });

  it('resyncMs hands a caught-up handler the whole state again and again; a failing resync is retried next period', async () => {
    const dir = tempDir();
    const core = await Core.open({ dir });
    const handlers = await Handlers.open(core, dir);
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'r' } });
    await core.submit(conf('x', { app: 'web' }));
    await core.submit(conf('y', { app: 'db' }));
    await core.submit(conf('hidden', { app: 'web' })); // matches, but the handler may not see it
    const snaps: HandlerSnapshot[] = [];
    let fail = true;
    handlers.register({
      name: 'level',
      query: { tags: { app: 'web' } },
      visible: (r) => r.name !== 'hidden',
      resyncMs: 20,
      handle: () => {},
      resync: (s) => {
        if (fail) {
          fail = false;
          throw new Error('not yet');
        }
        snaps.push(s);
      },
    });
    await until(() => snaps.length >= 2);
    expect(snaps.every((s) => s.reason === 'resync' && s.resources.map((r) => r.name).join() === 'x')).toBe(true);
    const st = handlers.status()[0];
    expect(st.failures).toBe(1);
    expect(st.resyncs).toBeGreaterThanOrEqual(2);
    expect(st.relists).toBe(0);
    await handlers.close();
    await core.close();
  });
});
