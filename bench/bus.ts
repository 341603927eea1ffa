/**
 * busØ: `npm run bench -- bus`.
 *
 *   1. embedded bus (fsync'd files under .bench-data/bus): node-commands/s at 1, 16 and 256 in
 *      flight, published durably (the publish resolves after the fdatasync that covers it);
 *   2. the same pipeline end to end at 256 in flight: publish → delivered to the node's durable
 *      consumer → acked durably; in process, and with the agent over the core's HTTP port;
 *   3. NATS JetStream (one nats-server started here on 127.0.0.1, R1): busØ publishes/s and the
 *      same end to end, and raw JetStream publishes/s with the same client in the same run;
 *   4. targets: embedded ≥ 20,000 commands/s at 256 in flight; busØ over JetStream ≥ 50% of raw.
 *
 * nats-server 2.9 acknowledges a publish before it fsyncs (its file store syncs every 2 minutes
 * by default), the embedded bus only after: the two figures do not buy the same durability.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { commandStream, type Bus } from '../core/bus/bus.ts';
import { EmbeddedBus } from '../core/bus/embedded/index.ts';
import { RemoteBus } from '../core/bus/embedded/remote.ts';
import { busRoutes } from '../core/bus/embedded/routes.ts';
import { NatsBus } from '../core/bus/nats/index.ts';
import { startNatsServer } from '../core/bus/nats/server.ts';
import type { SuiteOptions } from './run.ts';

const dataDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '.bench-data', 'bus');
const SECONDS = 3;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** A node-command as the executor sends it (about 200 bytes of JSON). */
const command = (i: number) => ({
  op: 'process.start',
  task: `acme/prod/web/task-${i}`,
  argv: ['/usr/bin/node', 'server.js'],
  env: { PORT: '0', NODE_ENV: 'production' },
  limits: { memoryMb: 256, cpu: 0.5 },
});

/** `inFlight` publishers for `seconds`: commands acknowledged per second. */
async function publishRate(publish: (i: number) => Promise<unknown>, inFlight: number, seconds = SECONDS): Promise<number> {
  let next = 0;
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await publish(next++);
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

/** Publish → fetch → ack, with `inFlight` commands between publish and ack: completed per second. */
async function endToEnd(bus: Bus, stream: string, inFlight: number, seconds = SECONDS, agent: Bus = bus): Promise<number> {
  const c = await agent.consumer(stream, 'bench-agent', { start: 'new', ackPendingMax: inFlight * 4 });
  const waiting = new Map<string, () => void>();
  let stop = false;
  const consumer = (async () => {
    while (!stop || waiting.size > 0) {
      const got = await c.fetch({ max: Math.min(inFlight, 1000), waitMs: 200 });
      await Promise.all(got.map((m) => c.ack(m.seq)));
      for (const m of got) {
        waiting.get(m.id)?.();
        waiting.delete(m.id);
      }
    }
  })();
  let next = 0;
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        const id = `e2e-${next++}`;
        const delivered = new Promise<void>((r) => waiting.set(id, r));
        await bus.publish(stream, command(next), { id });
        await delivered;
        done++;
      }
    }),
  );
  const rate = done / ((performance.now() - t0) / 1000);
  stop = true;
  await consumer;
  return rate;
}

export async function run({ report }: SuiteOptions): Promise<void> {
  const target = (name: string, ok: boolean, note: string): void => report(`target: ${name}`, ok ? 1 : 0, 'pass', note);
  report('host: load average (1 min) at start', os.loadavg()[0], 'load', `(${os.availableParallelism()} CPUs)`);
  fs.rmSync(dataDir, { recursive: true, force: true });

  const embedded = await EmbeddedBus.open({ dir: path.join(dataDir, 'embedded') });
  let embedded256 = 0;
  try {
    for (const n of [1, 16, 256]) {
      const s = commandStream(`node-${n}`);
      const rate = await publishRate((i) => embedded.publish(s, command(i), { id: `c-${n}-${i}` }), n);
      if (n === 256) embedded256 = rate;
      report(`embedded: commands published durably/s, ${n} in flight`, rate, 'cmd/s', '(fdatasync before the ack)');
    }
    const e2e = await endToEnd(embedded, commandStream('e2e'), 256);
    report('embedded: commands through (publish, fetch, ack)/s, 256', e2e, 'cmd/s', '(publish, delivery count and ack each durable)');
    // The agent on the other side of the core's HTTP port, as `os0 node join` will be.
    const app = new Hono();
    app.route('/v1/bus', busRoutes(embedded, () => true));
    const server: ServerType = await new Promise((resolve) => {
      const srv = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(srv));
    });
    const remote = new RemoteBus({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/bus` });
    try {
      const http = await endToEnd(embedded, commandStream('http'), 256, SECONDS, remote);
      report('embedded, agent over HTTP: commands through/s, 256', http, 'cmd/s', '(long-poll fetch, acks of a turn in one request)');
    } finally {
      await remote.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  } finally {
    await embedded.close();
  }

  const server = await startNatsServer({ storeDir: path.join(dataDir, 'nats') });
  let bus256 = 0;
  let raw256 = 0;
  try {
    const nats = await NatsBus.open({ servers: server.url, prefix: 'bench' });
    try {
      const s = commandStream('node-nats');
      await nats.ensureStream(s);
      const payload = Buffer.from(JSON.stringify(command(0)));
      // Raw first and busØ after, then raw again: the mean of the two raw runs is the baseline.
      const raw1 = await publishRate((i) => nats.rawPublish(s, payload, `raw1-${i}`), 256);
      for (const n of [1, 16, 256]) {
        const rate = await publishRate((i) => nats.publish(s, command(i), { id: `c-${n}-${i}` }), n);
        if (n === 256) bus256 = rate;
        report(`JetStream: busØ commands published/s, ${n} in flight`, rate, 'cmd/s', '(nats-server 2.9 acks before fsync)');
      }
      const raw2 = await publishRate((i) => nats.rawPublish(s, payload, `raw2-${i}`), 256);
      raw256 = (raw1 + raw2) / 2;
      report('JetStream: raw js.publish/s, same client, 256 in flight', raw256, 'msg/s', `(runs: ${fmt(raw1)} and ${fmt(raw2)}; acked before fsync)`);
      const e2e = await endToEnd(nats, commandStream('nats-e2e'), 256);
      report('JetStream: commands through (publish, fetch, ack)/s, 256', e2e, 'cmd/s', '(acks confirmed by the server)');
    } finally {
      await nats.close();
    }
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  target('embedded bus >= 20,000 durable commands/s at 256 in flight', embedded256 >= 20_000, `(measured ${fmt(embedded256)})`);
  target('busØ over JetStream >= 50% of raw JetStream publishes', bus256 >= raw256 * 0.5, `(${fmt(bus256)} vs ${fmt(raw256)}: ${Math.round((bus256 / raw256) * 100)}%)`);
}
