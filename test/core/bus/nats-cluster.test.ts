/**
 * busØ on a 3-node JetStream cluster on 127.0.0.1: the contract suite unchanged on replicated
 * streams, and a server killed mid-stream (the stream's leader) loses nothing acknowledged.
 */
import { describe, expect, it } from 'vitest';
import { commandStream } from '../../../core/bus/bus.ts';
import { NatsBus } from '../../../core/bus/nats/index.ts';
import { natsCluster } from '../../helpers/nats.ts';
import { busCases } from './bus.case.ts';

const servers = await natsCluster(3);
const urls = servers.map((s) => s.url);
let n = 0;

busCases('NATS JetStream, 3-node cluster', async () => {
  const prefix = `c${++n}`;
  return { open: (limits) => NatsBus.open({ servers: urls, prefix, limits }) };
});

describe('busØ on a 3-node NATS cluster', () => {
  it('creates replicated streams and loses nothing acknowledged when the stream leader is killed mid-stream', async () => {
    const bus = await NatsBus.open({ servers: urls, prefix: 'kill', retryMsMax: 30_000 });
    try {
      expect(bus.replicas).toBe(3);
      const s = commandStream('node-1');
      await bus.publish(s, { warmup: true }, { id: 'warmup' });
      const si = await bus.jsm.streams.info(bus.streamName(s));
      expect(si.config.num_replicas).toBe(3);
      const leader = servers.find((x) => `os0-${servers.indexOf(x) + 1}` === si.cluster?.leader)!;
      expect(leader).toBeDefined();

      const c = await bus.consumer(s, 'agent', { ackWaitMs: 2000 });
      const TOTAL = 300;
      const published = new Set<string>(['warmup']);
      const consumed = new Set<string>();
      let killed = false;
      const producer = (async () => {
        // Eight publishers at once, each retrying through the election on its own.
        let next = 0;
        await Promise.all(
          Array.from({ length: 8 }, async () => {
            while (next < TOTAL) {
              const i = next++;
              const ack = await bus.publish(s, { i }, { id: `cmd-${i}` });
              expect(ack.seq).toBeGreaterThan(0);
              published.add(`cmd-${i}`);
              if (published.size === 100 && !killed) {
                killed = true;
                await leader.kill();
              }
            }
          }),
        );
      })();
      const consumer = (async () => {
        const until = Date.now() + 60_000;
        while (consumed.size < TOTAL + 1 && Date.now() < until) {
          for (const m of await c.fetch({ max: 50, waitMs: 1000 })) {
            consumed.add(m.id);
            await c.ack(m.seq);
          }
        }
      })();
      await producer;
      await consumer;
      expect(killed).toBe(true);
      expect(published.size).toBe(TOTAL + 1);
      const lost = [...published].filter((id) => !consumed.has(id));
      expect(lost).toEqual([]);
      const after = await bus.jsm.streams.info(bus.streamName(s));
      expect(after.cluster?.leader).not.toBe(si.cluster?.leader);
      expect(after.state.messages).toBe(TOTAL + 1);
    } finally {
      await bus.close();
    }
  });
});
