/** busØ's contract against the embedded bus, on real files with fsync; then what only the embedded bus has: its files. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandStream, EVENTS, type Message } from '../../../core/bus/bus.ts';
import { EmbeddedBus } from '../../../core/bus/embedded/index.ts';
import { openBus } from '../../../core/bus/index.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { busCases } from './bus.case.ts';

const root = tempDir('bus-');
let n = 0;

busCases('embedded', async () => {
  const dir = path.join(root, String(++n));
  return { open: (limits) => EmbeddedBus.open({ dir, limits }) };
});

describe('embedded bus on disk', () => {
  const small = { windowMessages: 4, windowBytes: 4096, streamSegmentBytes: 4096, consumerSegmentBytes: 4096 };
  const segments = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.wal'));

  it('reads messages older than the memory window off the segments, equal to what was published', async () => {
    const dir = path.join(root, 'window');
    let bus = await EmbeddedBus.open({ dir, tuning: small });
    const s = commandStream('w');
    const sent = Array.from({ length: 60 }, (_, i) => ({ i, text: `command ${i}`, nested: { list: [i, i * 2] } }));
    for (const d of sent) await bus.publish(s, d, { id: `w-${d.i}` });
    expect(segments(path.join(dir, 'streams', s)).length).toBeGreaterThan(1);
    const read = async (b: EmbeddedBus, durable: string) => {
      const c = await b.consumer(s, durable);
      const out: Message[] = [];
      for (let got = await c.fetch({ max: 7 }); got.length; got = await c.fetch({ max: 7 })) {
        out.push(...got);
        for (const m of got) await c.ack(m.seq);
      }
      return out;
    };
    const first = await read(bus, 'a');
    expect(first.map((m) => m.data)).toEqual(sent);
    expect(first.map((m) => m.id)).toEqual(sent.map((d) => `w-${d.i}`));
    await bus.close();
    bus = await EmbeddedBus.open({ dir, tuning: small });
    try {
      const again = await read(bus, 'b');
      expect(again.map(({ deliveries, ...m }) => m)).toEqual(first.map(({ deliveries, ...m }) => m));
    } finally {
      await bus.close();
    }
  });

  it('snapshots a consumer when its log fills, deletes what the snapshot covers, and resumes from it', async () => {
    const dir = path.join(root, 'snapshot');
    let bus = await EmbeddedBus.open({ dir, tuning: small });
    const s = commandStream('snap');
    for (let i = 0; i < 300; i++) await bus.publish(s, i);
    let c = await bus.consumer(s, 'agent', { ackWaitMs: 60_000 });
    for (let n = 0; n < 290; ) {
      const got = await c.fetch({ max: 290 - n });
      await Promise.all(got.map((m) => c.ack(m.seq)));
      n += got.length;
    }
    const cdir = path.join(dir, 'consumers', s, 'agent');
    // Hundreds of records in 4 KiB segments, but the older ones are gone behind snapshots.
    expect(segments(cdir).length).toBeLessThanOrEqual(3);
    await bus.close();
    bus = await EmbeddedBus.open({ dir, tuning: small });
    try {
      c = await bus.consumer(s, 'agent', { ackWaitMs: 60_000 });
      expect(await c.info()).toMatchObject({ ackFloor: 290, ackPending: 0, waiting: 10 });
      expect((await c.fetch({ max: 100 })).map((m) => m.data)).toEqual([290, 291, 292, 293, 294, 295, 296, 297, 298, 299]);
    } finally {
      await bus.close();
    }
  });

  it('deletes stream segments behind retention and keeps the same first sequence after a restart', async () => {
    const dir = path.join(root, 'retention');
    let bus = await EmbeddedBus.open({ dir, tuning: small, limits: { streamMessagesMax: 10 } });
    for (let i = 1; i <= 200; i++) await bus.publish(EVENTS, { i, pad: 'x'.repeat(50) });
    await new Promise((r) => setTimeout(r, 50));
    const sdir = path.join(dir, 'streams', EVENTS);
    expect(segments(sdir).length).toBeLessThanOrEqual(3);
    expect(await bus.info(EVENTS)).toMatchObject({ first: 191, last: 200, messages: 10 });
    await bus.close();
    bus = await EmbeddedBus.open({ dir, tuning: small, limits: { streamMessagesMax: 10 } });
    try {
      expect(await bus.info(EVENTS)).toMatchObject({ first: 191, last: 200, messages: 10 });
      expect((await bus.publish(EVENTS, 'next')).seq).toBe(201);
    } finally {
      await bus.close();
    }
  });

  it('cuts a torn tail of a stream on open and goes on', async () => {
    const dir = path.join(root, 'torn');
    let bus = await EmbeddedBus.open({ dir });
    for (let i = 1; i <= 5; i++) await bus.publish(EVENTS, i);
    await bus.close();
    const sdir = path.join(dir, 'streams', EVENTS);
    fs.appendFileSync(path.join(sdir, segments(sdir)[0]), Buffer.from([0x4f, 0x30, 0x57, 0x4c, 0xff, 0xff, 0, 0, 1, 2, 3]));
    bus = await EmbeddedBus.open({ dir });
    try {
      expect(await bus.info(EVENTS)).toMatchObject({ first: 1, last: 5, messages: 5 });
      expect((await bus.publish(EVENTS, 6)).seq).toBe(6);
      const c = await bus.consumer(EVENTS, 'sensor');
      expect((await c.fetch({ max: 10 })).map((m) => m.data)).toEqual([1, 2, 3, 4, 5, 6]);
    } finally {
      await bus.close();
    }
  });

  it('openBus picks the implementation from the flag and refuses anything else clearly', async () => {
    const bus = await openBus('embedded', { dir: path.join(root, 'open') });
    expect(bus).toBeInstanceOf(EmbeddedBus);
    await bus.close();
    await expect(openBus('kafka://x')).rejects.toThrow(/is not a bus: use "embedded", nats:\/\//);
    await expect(openBus('embedded')).rejects.toThrow(/needs a directory/);
  });
});
