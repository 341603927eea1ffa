/**
 * The embedded bus served over HTTP (routes.ts) and used through the remote client: the contract
 * suite unchanged, and the token check (a node reads only its own command stream).
 */
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { commandStream, EVENTS, type Bus, type BusLimits } from '../../../core/bus/bus.ts';
import { EmbeddedBus } from '../../../core/bus/embedded/index.ts';
import { RemoteBus } from '../../../core/bus/embedded/remote.ts';
import { busRoutes, type BusAuthorize } from '../../../core/bus/embedded/routes.ts';
import { OsError } from '../../../core/errors.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { busCases } from './bus.case.ts';

const root = tempDir('bus-remote-');
let n = 0;

/** node:NAME may consume cmd.NAME and publish events; admin may do anything. */
const authorize: BusAuthorize = (token, stream, op) => {
  if (token === 'admin') return true;
  const node = token?.startsWith('node-token-') ? token.slice('node-token-'.length) : null;
  if (!node) return false;
  return (op === 'consume' && stream === commandStream(node)) || (op === 'publish' && stream === EVENTS);
};

async function served(dir: string, limits?: Partial<BusLimits>): Promise<{ url: string; bus: EmbeddedBus; close(): Promise<void> }> {
  const bus = await EmbeddedBus.open({ dir, limits });
  const app = new Hono();
  app.route('/v1/bus', busRoutes(bus, authorize));
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/bus`;
  return {
    url,
    bus,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await bus.close();
    },
  };
}

busCases('embedded over HTTP (remote client)', async () => {
  const dir = path.join(root, String(++n));
  return {
    async open(limits): Promise<Bus> {
      const s = await served(dir, limits);
      const remote = new RemoteBus({ url: s.url, token: 'admin' });
      return {
        publish: (...a) => remote.publish(...a),
        consumer: (...a) => remote.consumer(...a),
        info: (...a) => remote.info(...a),
        async close() {
          await remote.close();
          await s.close();
        },
      };
    },
  };
});

describe('busØ over HTTP: tokens', () => {
  it('lets a node consume only its own command stream and publish only events', async () => {
    const s = await served(path.join(root, 'auth'));
    const admin = new RemoteBus({ url: s.url, token: 'admin' });
    const a = new RemoteBus({ url: s.url, token: 'node-token-a' });
    const nobody = new RemoteBus({ url: s.url, retryMsMax: 0 });
    const code = async (p: Promise<unknown>): Promise<string> => {
      try {
        await p;
        return 'ok';
      } catch (e) {
        expect(e).toBeInstanceOf(OsError);
        return (e as OsError).code;
      }
    };
    try {
      await admin.publish(commandStream('a'), { op: 'process.start' }, { id: 'c1' });
      await admin.publish(commandStream('b'), { op: 'process.start' }, { id: 'c2' });
      const mine = await a.consumer(commandStream('a'), 'agent');
      const [m] = await mine.fetch({ max: 10, waitMs: 1000 });
      expect(m.data).toEqual({ op: 'process.start' });
      await mine.ack(m.seq);
      expect(await code(a.publish(EVENTS, { started: 'c1' }))).toBe('ok');
      expect(await code(a.consumer(commandStream('b'), 'agent'))).toBe('forbidden');
      expect(await code(a.publish(commandStream('b'), { op: 'evil' }))).toBe('forbidden');
      expect(await code(a.consumer(EVENTS, 'sensor'))).toBe('forbidden');
      expect(await code(a.info(commandStream('a')))).toBe('forbidden');
      expect(await code(nobody.publish(EVENTS, 1))).toBe('unauthorized');
      expect((await s.bus.info(commandStream('b'))).messages).toBe(1);
      expect((await s.bus.info(EVENTS)).messages).toBe(1);
    } finally {
      await Promise.all([admin.close(), a.close(), nobody.close()]);
      await s.close();
    }
  });

  it('stops a long-poll whose client went away, so what is published next goes to the next fetch', async () => {
    const s = await served(path.join(root, 'gone'));
    const admin = new RemoteBus({ url: s.url, token: 'admin' });
    const leaving = new RemoteBus({ url: s.url, token: 'node-token-a' });
    try {
      const c = await leaving.consumer(commandStream('a'), 'agent');
      const poll = c.fetch({ max: 10, waitMs: 20_000 }).catch((e: OsError) => e.code);
      await new Promise((r) => setTimeout(r, 200));
      await leaving.close();
      expect(await poll).toBe('closed');
      await new Promise((r) => setTimeout(r, 200));
      await admin.publish(commandStream('a'), { op: 'x' });
      const again = await admin.consumer(commandStream('a'), 'agent');
      const got = await again.fetch({ max: 10, waitMs: 2000 });
      expect(got.map((m) => [m.data, m.deliveries])).toEqual([[{ op: 'x' }, 1]]);
    } finally {
      await admin.close();
      await s.close();
    }
  });
});
