/** busØ's contract against NATS JetStream: a real nats-server on 127.0.0.1, one stream prefix per case; then outages. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENTS } from '../../../core/bus/bus.ts';
import { NatsBus } from '../../../core/bus/nats/index.ts';
import { startNatsServer } from '../../../core/bus/nats/server.ts';
import { OsError } from '../../../core/errors.ts';
import { natsServer } from '../../helpers/nats.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { busCases } from './bus.case.ts';

const server = await natsServer();
let n = 0;

busCases('NATS JetStream', async () => {
  const prefix = `t${++n}`;
  return { open: (limits) => NatsBus.open({ servers: server.url, prefix, limits }) };
});

describe('busØ over NATS: outages', () => {
  it('a publish and an ack ride out a server restart, then a publish fails clearly once retrying has run out', async () => {
    const storeDir = path.join(tempDir('nats-restart-'), 'js');
    let s = await startNatsServer({ storeDir });
    const bus = await NatsBus.open({ servers: s.url, prefix: 'outage', retryMsMax: 8000 });
    try {
      await bus.publish(EVENTS, 'before', { id: 'e1' });
      const c = await bus.consumer(EVENTS, 'sensor', { ackWaitMs: 60_000 });
      const [m] = await c.fetch({ max: 1, waitMs: 2000 });
      expect(m.data).toBe('before');

      await s.stop();
      const during = bus.publish(EVENTS, 'during', { id: 'e2' });
      const ack = c.ack(m.seq);
      await new Promise((r) => setTimeout(r, 500));
      s = await startNatsServer({ storeDir, port: s.port });
      expect(await during).toMatchObject({ seq: 2, duplicate: false });
      await ack;
      expect((await c.fetch({ max: 10, waitMs: 2000 })).map((x) => [x.data, x.deliveries])).toEqual([['during', 1]]);
      expect((await c.info()).ackFloor).toBe(1);

      const quick = await NatsBus.open({ servers: s.url, prefix: 'outage', retryMsMax: 1500 });
      expect((await quick.info(EVENTS)).messages).toBe(2);
      await s.stop();
      const err = await quick.publish(EVENTS, 'lost', { id: 'e3' }).catch((e: unknown) => e);
      await quick.close();
      expect(err).toBeInstanceOf(OsError);
      expect((err as OsError).code).toBe('unavailable');
      expect((err as OsError).message).toMatch(/did not complete a publish to events within 1500 ms .*check that the nats-server cluster is up/);
    } finally {
      await bus.close();
      await s.stop();
    }
  });

  it('says clearly when no NATS server answers', async () => {
    const err = await NatsBus.open({ servers: 'nats://127.0.0.1:1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OsError);
    expect((err as OsError).message).toMatch(/cannot reach NATS at nats:\/\/127.0.0.1:1 .*check nats-server is running there with -js/);
  });
});
