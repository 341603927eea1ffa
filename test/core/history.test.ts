import { describe, expect, it } from 'vitest';
import { Core } from '../../core/index.ts';
import { tempDir } from '../helpers/tmp.ts';

const cfg = (name: string, v: number) => ({ op: 'apply', resource: { type: 'configuration', namespace: 'h', name, data: { v } } });

describe('retained log window', () => {
  it('serves recent records from memory and older ones from the WAL kept on disk, across restarts', async () => {
    const dir = tempDir();
    const opts = { dir, segmentBytes: 2048, historyRecords: 5 };
    let core = await Core.open(opts);
    for (let i = 1; i <= 60; i++) await core.submit(cfg(`r${i % 7}`, i));
    await core.submit({ op: 'delete', resource: { type: 'configuration', namespace: 'h', name: 'r0' } });
    await core.checkpoint();
    const check = async (c: Core) => {
      const all = await c.history.read(1, 1000);
      expect(all).not.toBe('gone');
      const recs = all as Exclude<typeof all, 'gone'>;
      expect(recs.map((r) => r.index)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
      expect(recs[0].changes[0]).toMatchObject({ action: 'create', new: { name: 'r1', data: { v: 1 } } });
      expect(recs[7].changes[0]).toMatchObject({ action: 'update', new: { name: 'r1', data: { v: 8 } } });
      expect(recs[60].changes[0]).toMatchObject({ action: 'delete', new: null, old: { name: 'r0' } });
      expect(await c.history.read(30, 3)).toHaveLength(3);
      expect(await c.history.read(62, 10)).toEqual([]);
    };
    await check(core);
    await core.close();
    core = await Core.open(opts);
    await check(core);
    await core.close();
  });

  it('answers "gone" below the window once the WAL behind it is dropped', async () => {
    const dir = tempDir();
    const core = await Core.open({ dir, segmentBytes: 1024, historyRecords: 5, retainRecords: 10 });
    for (let i = 1; i <= 80; i++) await core.submit(cfg(`r${i}`, i));
    await core.checkpoint();
    expect(await core.history.read(1, 10)).toBe('gone');
    expect(core.history.firstIndex).toBeGreaterThan(1);
    expect(core.history.firstIndex).toBeLessThanOrEqual(70);
    const tail = await core.history.read(71, 100);
    expect(tail).not.toBe('gone');
    expect((tail as unknown[]).length).toBe(10);
    await core.close();
  });

  it('bounds the changes it holds in memory, not only the records', async () => {
    const core = await Core.open({ dir: tempDir(), historyRecords: 100 });
    for (let b = 0; b < 5; b++) await core.submit({ batch: Array.from({ length: 400 }, (_, i) => cfg(`b${b}-${i}`, i)) });
    // 100 records × 10 = 1000 changes at most in memory: the 5 batches hold 2000.
    expect((core.history as unknown as { weight: number }).weight).toBeLessThanOrEqual(1000);
    expect(await core.history.read(1, 10)).not.toBe('gone'); // older ones come from disk
    await core.close();
  });
});
