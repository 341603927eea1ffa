import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Core, type Committed } from '../../../core/index.ts';
import { decodeRecord, DirSegments, GONE, readFromSegments } from '../../../core/log/index.ts';
import { encodeRecord, encodeSegmentHeader, segmentName } from '../../../core/wal/codec.ts';
import { tempDir } from '../../helpers/tmp.ts';

const cfg = (name: string, v: number, tags: Record<string, string> = { app: 'web' }) => ({ type: 'configuration', namespace: 'eq', name, tags, data: { v } });

describe('a log record reads the same from memory and from disk', () => {
  it('creates, updates, deletes, batches and cascades: deep-equal, with old and new', async () => {
    const dir = tempDir();
    const core = await Core.open({ dir, historyRecords: 4, segmentBytes: 4096 });
    const live: Committed[] = [];
    core.subscribe((c) => live.push(c));
    await core.submit({ op: 'create', resource: { type: 'namespace', name: 'eq' } });
    const parent = (await core.submit({ op: 'create', resource: cfg('parent', 1) })).resources[0];
    await core.submit({ op: 'update', resource: cfg('parent', 2, { app: 'web', tier: 'front' }) });
    await core.submit({
      batch: [
        { op: 'create', resource: { ...cfg('child-a', 1), owner: [parent.id] } },
        { op: 'create', resource: { ...cfg('child-b', 1), owner: [parent.id] } },
        { op: 'apply', resource: cfg('loose', 1) },
      ],
    });
    await core.submit({ batch: [{ op: 'update', resource: cfg('loose', 2) }, { op: 'delete', resource: { type: 'configuration', namespace: 'eq', name: 'loose' } }] });
    await core.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'eq', name: 'parent' } }); // cascades to both children
    for (let i = 0; i < 10; i++) await core.submit({ op: 'apply', resource: cfg(`pad${i % 3}`, i) }); // pushes the above out of memory

    const byIndex = new Map(live.map((c) => [c.index, c]));
    const cascade = [...byIndex.values()].find((c) => c.changes.length === 3 && c.changes.every((ch) => ch.action === 'delete'))!;
    expect(cascade.changes.map((ch) => ch.old!.name).sort()).toEqual(['child-a', 'child-b', 'parent']);
    // A delete carries the whole resource it removed, tags included, so a tag-filtered reader matches it.
    expect(cascade.changes.every((ch) => ch.old!.tags.app === 'web' && ch.old!.data !== undefined)).toBe(true);
    const update = [...byIndex.values()].find((c) => c.changes[0].action === 'update')!;
    expect(update.changes[0].old).toMatchObject({ name: 'parent', data: { v: 1 }, tags: { app: 'web' } });

    const same = (got: Committed[]) => {
      expect(got.map((r) => r.index)).toEqual([...byIndex.keys()]);
      for (const rec of got) {
        const want = byIndex.get(rec.index)!;
        expect(rec).toEqual(want);
        expect(JSON.stringify(rec)).toBe(JSON.stringify(want));
      }
    };
    // Through the core's window (older records come off disk) …
    const viaWindow = await core.history.read(1, 1000);
    expect(viaWindow).not.toBe(GONE);
    expect((viaWindow as Committed[]).length).toBe(core.index);
    same(viaWindow as Committed[]);
    // … straight off the segments, as another process would …
    const segs = await DirSegments.open(path.join(dir, 'wal'));
    same((await readFromSegments(segs, 1, 1000, decodeRecord)) as Committed[]);
    await core.close();
    // … and after a restart, when nothing is in memory any more.
    const again = await Core.open({ dir, historyRecords: 4, segmentBytes: 4096 });
    same((await again.history.read(1, 1000)) as Committed[]);
    await again.close();
  });

  it('records written before old was logged still read, replay and compact (their old is what they held)', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'wal'));
    const res = (rev: number, v: number) => ({ apiVersion: 'os0/v1', id: 'legacy1', namespace: 'eq', type: 'configuration', name: 'old', created: 't0', updated: 't' + rev, revision: rev, tags: {}, data: { v } });
    const key = { id: 'legacy1', namespace: 'eq', type: 'configuration', name: 'old', revision: 3 };
    const bodies = [
      { t: 't1', a: 'system', c: [{ o: 'create', r: res(1, 1) }] },
      { t: 't2', a: 'system', c: [{ o: 'update', r: res(2, 2) }] },
      { t: 't3', a: 'system', c: [{ o: 'delete', r: key }] },
    ];
    const seg = Buffer.concat([encodeSegmentHeader(1), ...bodies.map((b, i) => encodeRecord(i + 1, JSON.stringify(b)))]);
    fs.writeFileSync(path.join(dir, 'wal', segmentName(1)), seg);
    const core = await Core.open({ dir });
    expect(core.index).toBe(3);
    expect(core.get('configuration', 'old', 'eq')).toBeUndefined();
    const recs = (await core.history.read(1, 10)) as Committed[];
    expect(recs.map((r) => r.changes[0])).toEqual([
      { action: 'create', old: null, new: res(1, 1) },
      { action: 'update', old: null, new: res(2, 2) },
      { action: 'delete', old: key, new: null },
    ]);
    await core.checkpoint(); // compaction reads them too
    await core.close();
  });

  it('a cascade may make a record larger than a batch may be: it is not the submitter\'s to split', async () => {
    const core = await Core.open({ dir: tempDir() });
    const owner = (await core.submit({ op: 'create', resource: cfg('big-owner', 0) })).resources[0];
    const blob = 'x'.repeat(200 * 1024);
    for (let i = 0; i < 24; i++) await core.submit({ op: 'create', resource: { ...cfg(`big${i}`, i), owner: [owner.id], data: { blob } } });
    const del = await core.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'eq', name: 'big-owner' } });
    expect(del.resources).toHaveLength(25);
    const [rec] = (await core.history.read(del.index, 1)) as Committed[];
    expect(rec.changes).toHaveLength(25); // 24 × 200 KiB: more than a 4 MiB batch may be
    expect(core.query({ type: 'configuration' })).toEqual([]);
    await core.close();
  });
});
