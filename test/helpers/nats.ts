/** nats-server for tests: started on 127.0.0.1 ports it chooses, with a temp store, stopped after the file. */
import * as path from 'node:path';
import { afterAll } from 'vitest';
import { startNatsCluster, startNatsServer, type NatsServer } from '../../core/bus/nats/server.ts';
import { tempDir } from './tmp.ts';

export type { NatsServer };

export async function natsServer(): Promise<NatsServer> {
  const s = await startNatsServer({ storeDir: path.join(tempDir('nats-'), 'js') });
  afterAll(() => s.stop());
  return s;
}

/** A JetStream cluster of `n` servers (3 by default). */
export async function natsCluster(n = 3): Promise<NatsServer[]> {
  const dir = tempDir('nats-cluster-');
  const servers = await startNatsCluster(n, (i) => path.join(dir, `s${i + 1}`));
  afterAll(() => Promise.all(servers.map((s) => s.stop())));
  return servers;
}
