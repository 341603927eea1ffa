/**
 * busØ's contract: the cases every Bus implementation passes, unchanged (Hono's common.case.test
 * habit). An implementation's test file calls `busCases(name, maker)`.
 */
import { describe, expect, it } from 'vitest';
import { OsError } from '../../../core/errors.ts';
import { commandStream, EVENTS, type Bus, type BusLimits, type Consumer, type Message } from '../../../core/bus/bus.ts';

/** One backing store (a data directory, a NATS prefix); `open` may be called again after a close. */
export interface BusHarness {
  open(limits?: Partial<BusLimits>): Promise<Bus>;
}

export type BusMaker = () => Promise<BusHarness>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fetches until `n` messages came or `tries` long-polls returned nothing. */
async function take(c: Consumer, n: number, waitMs = 2000, tries = 3): Promise<Message[]> {
  const out: Message[] = [];
  let empty = 0;
  while (out.length < n && empty < tries) {
    const got = await c.fetch({ max: n - out.length, waitMs });
    if (got.length === 0) empty++;
    out.push(...got);
  }
  return out;
}

async function refusal(p: Promise<unknown>): Promise<OsError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(OsError);
    return e as OsError;
  }
  throw new Error('expected a refusal');
}

export function busCases(name: string, make: BusMaker): void {
  describe(`busØ contract: ${name}`, () => {
    it('numbers each stream on its own, from 1, and says what it holds', async () => {
      const bus = await (await make()).open();
      try {
        const a = commandStream('node-a');
        const b = commandStream('node-b');
        expect((await bus.publish(a, { op: 'x', n: 1 })).seq).toBe(1);
        expect((await bus.publish(a, { op: 'x', n: 2 })).seq).toBe(2);
        expect(await bus.publish(b, 'hello')).toEqual({ stream: b, seq: 1, duplicate: false });
        expect((await bus.publish(EVENTS, { started: 1 })).seq).toBe(1);
        const info = await bus.info(a);
        expect(info).toMatchObject({ stream: a, first: 1, last: 2, messages: 2 });
        expect(info.bytes).toBeGreaterThan(0);
        expect(await bus.info(commandStream('never-used'))).toMatchObject({ messages: 0, last: 0, first: 1 });
      } finally {
        await bus.close();
      }
    });

    it('delivers a stream in order, with its data, id and delivery count', async () => {
      const bus = await (await make()).open();
      try {
        const s = commandStream('n1');
        const acks = await Promise.all(Array.from({ length: 50 }, (_, i) => bus.publish(s, { i }, { id: `c-${i}` })));
        expect(acks.map((a) => a.seq).sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        const c = await bus.consumer(s, 'agent');
        const got = await take(c, 50);
        expect(got.map((m) => m.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
        const bySeq = new Map(acks.map((a, i) => [a.seq, i]));
        for (const m of got) {
          expect(m.data).toEqual({ i: bySeq.get(m.seq) });
          expect(m.id).toBe(`c-${bySeq.get(m.seq)}`);
          expect(m.deliveries).toBe(1);
          expect(m.stream).toBe(s);
          expect(m.time).toBeGreaterThan(Date.now() - 60_000);
        }
        for (const m of got) await c.ack(m.seq);
        expect(await c.fetch({ max: 10, waitMs: 200 })).toEqual([]);
        expect(await c.info()).toMatchObject({ ackFloor: 50, ackPending: 0, waiting: 0, parked: 0 });
      } finally {
        await bus.close();
      }
    });

    it('a waiting fetch returns the message published while it waits', async () => {
      const bus = await (await make()).open();
      try {
        const c = await bus.consumer(EVENTS, 'sensor');
        const pending = c.fetch({ max: 10, waitMs: 5000 });
        await sleep(100);
        await bus.publish(EVENTS, { exited: 0 });
        const got = await pending;
        expect(got.map((m) => m.data)).toEqual([{ exited: 0 }]);
      } finally {
        await bus.close();
      }
    });

    it('delivers again what is not acked within the ack wait, and what is nak\'d', async () => {
      const bus = await (await make()).open();
      try {
        const s = commandStream('n2');
        await bus.publish(s, 'one');
        await bus.publish(s, 'two');
        const c = await bus.consumer(s, 'agent', { ackWaitMs: 300, deliveriesMax: 10 });
        const first = await take(c, 2);
        expect(first.map((m) => m.data)).toEqual(['one', 'two']);
        await c.ack(first[1].seq);
        await c.nak(first[0].seq);
        const again = await take(c, 1);
        expect(again.map((m) => [m.seq, m.deliveries])).toEqual([[1, 2]]);
        // Not acked: delivered a third time once the ack wait has passed.
        const third = await take(c, 1);
        expect(third.map((m) => [m.seq, m.data, m.deliveries])).toEqual([[1, 'one', 3]]);
        await c.ack(1);
        expect(await c.fetch({ max: 10, waitMs: 700 })).toEqual([]);
      } finally {
        await bus.close();
      }
    });

    it('parks a message after its deliveries, lists and counts it, and goes on', async () => {
      const bus = await (await make()).open();
      try {
        const s = commandStream('n3');
        await bus.publish(s, { poison: true }, { id: 'poison' });
        const c = await bus.consumer(s, 'agent', { ackWaitMs: 200, deliveriesMax: 3 });
        for (let d = 1; d <= 3; d++) {
          const got = await take(c, 1);
          expect(got.map((m) => [m.seq, m.deliveries])).toEqual([[1, d]]);
          if (d < 3) await c.nak(1);
        }
        // The third delivery's ack wait passes: parked, never delivered again.
        await bus.publish(s, { fine: true });
        const next = await take(c, 1);
        expect(next.map((m) => [m.seq, m.data])).toEqual([[2, { fine: true }]]);
        await c.ack(2);
        expect(await c.fetch({ max: 10, waitMs: 600 })).toEqual([]);
        const parked = await c.parked();
        expect(parked.map((m) => [m.seq, m.id, m.data, m.deliveries])).toEqual([[1, 'poison', { poison: true }, 3]]);
        expect(await c.info()).toMatchObject({ parked: 1, ackPending: 0, ackFloor: 2 });
      } finally {
        await bus.close();
      }
    });

    it('a nak on the last delivery parks at once', async () => {
      const bus = await (await make()).open();
      try {
        await bus.publish(EVENTS, 'bad');
        const c = await bus.consumer(EVENTS, 'sensor', { deliveriesMax: 1 });
        const [m] = await take(c, 1);
        await c.nak(m.seq);
        expect(await c.fetch({ max: 10, waitMs: 300 })).toEqual([]);
        expect((await c.parked()).map((p) => p.data)).toEqual(['bad']);
        expect((await c.info()).parked).toBe(1);
      } finally {
        await bus.close();
      }
    });

    it('a durable consumer resumes after the bus is closed and opened again; consumers are independent', async () => {
      const h = await make();
      const s = commandStream('n4');
      let bus = await h.open();
      try {
        for (let i = 1; i <= 5; i++) await bus.publish(s, i, { id: `m${i}` });
        const c = await bus.consumer(s, 'agent', { ackWaitMs: 300 });
        const got = await take(c, 3);
        await c.ack(got[0].seq);
        await c.ack(got[2].seq);
        await bus.close();
        bus = await h.open();
        const c2 = await bus.consumer(s, 'agent', { ackWaitMs: 300 });
        const rest = await take(c2, 3);
        expect(rest.map((m) => m.data).sort()).toEqual([2, 4, 5]);
        expect(rest.find((m) => m.data === 2)!.deliveries).toBe(2);
        const other = await bus.consumer(s, 'audit');
        expect((await take(other, 5)).map((m) => m.data)).toEqual([1, 2, 3, 4, 5]);
      } finally {
        await bus.close();
      }
    });

    it('starts a new consumer at new messages only, or replays from a sequence', async () => {
      const bus = await (await make()).open();
      try {
        for (let i = 1; i <= 6; i++) await bus.publish(EVENTS, i);
        const fresh = await bus.consumer(EVENTS, 'fresh', { start: 'new' });
        expect(await fresh.fetch({ max: 10, waitMs: 200 })).toEqual([]);
        await bus.publish(EVENTS, 7);
        expect((await take(fresh, 1)).map((m) => m.data)).toEqual([7]);
        const replay = await bus.consumer(EVENTS, 'replay', { start: 4 });
        expect((await take(replay, 4)).map((m) => m.seq)).toEqual([4, 5, 6, 7]);
        const all = await bus.consumer(EVENTS, 'all');
        expect((await all.info()).waiting).toBe(7);
      } finally {
        await bus.close();
      }
    });

    it('stores a message id once within the duplicate window', async () => {
      const bus = await (await make()).open();
      try {
        const s = commandStream('n5');
        const a = await bus.publish(s, { v: 1 }, { id: 'cmd-1' });
        await bus.publish(s, { v: 2 }, { id: 'cmd-2' });
        const again = await bus.publish(s, { v: 'retry' }, { id: 'cmd-1' });
        expect(again).toEqual({ stream: s, seq: a.seq, duplicate: true });
        expect((await bus.info(s)).messages).toBe(2);
        const c = await bus.consumer(s, 'agent');
        expect((await take(c, 3, 300, 1)).map((m) => m.data)).toEqual([{ v: 1 }, { v: 2 }]);
      } finally {
        await bus.close();
      }
    });

    it('refuses a message over the size limit and stores nothing', async () => {
      const bus = await (await make()).open({ messageBytesMax: 1000 });
      try {
        const e = await refusal(bus.publish(EVENTS, { blob: 'x'.repeat(2000) }));
        expect(e.code).toBe('too_large');
        expect((await bus.info(EVENTS)).messages).toBe(0);
        expect((await bus.publish(EVENTS, { blob: 'x'.repeat(500) })).seq).toBe(1);
      } finally {
        await bus.close();
      }
    });

    it('refuses bad names with a clear error', async () => {
      const bus = await (await make()).open();
      try {
        expect((await refusal(bus.publish('cmd.a b', 1))).code).toBe('invalid');
        expect((await refusal(bus.publish('other', 1))).code).toBe('invalid');
        expect((await refusal(bus.consumer(EVENTS, 'a.b'))).code).toBe('invalid');
        expect((await refusal(bus.publish(EVENTS, 1, { id: 'has space' }))).code).toBe('invalid');
      } finally {
        await bus.close();
      }
    });

    it('keeps at most the newest streamMessagesMax messages; a consumer from the first starts at the oldest kept', async () => {
      const bus = await (await make()).open({ streamMessagesMax: 5 });
      try {
        const s = commandStream('n6');
        for (let i = 1; i <= 8; i++) await bus.publish(s, i);
        expect(await bus.info(s)).toMatchObject({ first: 4, last: 8, messages: 5 });
        const c = await bus.consumer(s, 'agent');
        expect((await take(c, 5)).map((m) => m.seq)).toEqual([4, 5, 6, 7, 8]);
      } finally {
        await bus.close();
      }
    });

    it('keeps at most streamBytesMax bytes, dropping the oldest', async () => {
      const bus = await (await make()).open({ streamBytesMax: 2000 });
      try {
        for (let i = 1; i <= 40; i++) await bus.publish(EVENTS, { i, pad: 'p'.repeat(100) });
        const info = await bus.info(EVENTS);
        expect(info.last).toBe(40);
        expect(info.bytes).toBeLessThanOrEqual(2000);
        expect(info.messages).toBeGreaterThan(0);
        expect(info.messages).toBeLessThan(40);
        expect(info.first).toBe(41 - info.messages);
      } finally {
        await bus.close();
      }
    });

    it('drops messages older than streamAgeMsMax', async () => {
      const bus = await (await make()).open({ streamAgeMsMax: 1000, duplicateWindowMs: 500 });
      try {
        await bus.publish(EVENTS, 'old');
        let info = await bus.info(EVENTS);
        expect(info.messages).toBe(1);
        for (let i = 0; i < 50 && info.messages > 0; i++) {
          await sleep(100);
          info = await bus.info(EVENTS);
        }
        expect(info).toMatchObject({ messages: 0, last: 1, first: 2 });
        await bus.publish(EVENTS, 'new');
        const c = await bus.consumer(EVENTS, 'sensor');
        expect((await take(c, 1)).map((m) => m.data)).toEqual(['new']);
      } finally {
        await bus.close();
      }
    });

    it('delivers no more than ackPendingMax unacked at once', async () => {
      const bus = await (await make()).open();
      try {
        const s = commandStream('n7');
        for (let i = 1; i <= 5; i++) await bus.publish(s, i);
        const c = await bus.consumer(s, 'agent', { ackPendingMax: 2 });
        const got = await c.fetch({ max: 5, waitMs: 1000 });
        expect(got.map((m) => m.seq)).toEqual([1, 2]);
        expect(await c.fetch({ max: 5, waitMs: 200 })).toEqual([]);
        await c.ack(1);
        expect((await take(c, 1)).map((m) => m.seq)).toEqual([3]);
      } finally {
        await bus.close();
      }
    });
  });
}
