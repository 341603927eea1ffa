/** os0 registry serve: a package registry on its own (registry/server, PROTOCOL.md). */
import * as path from 'node:path';
import { CliError } from '../client.ts';

export interface ServeOptions {
  data: string;
  port: string;
}

export async function serve(o: ServeOptions): Promise<void> {
  if (!/^\d+$/.test(o.port) || Number(o.port) > 65535) throw new CliError(`--port must be a port number from 0 to 65535 (got ${o.port})`, 2);
  if (!o.data || o.data.trim() === '') throw new CliError('--data must name a folder', 2);
  const port = Number(o.port);
  const dir = path.resolve(o.data);
  const { Registry, ADMIN_TOKEN_FILE } = await import('../../../registry/server/index.ts');
  let registry;
  try {
    registry = await Registry.open({ dir });
  } catch (e) {
    throw new CliError(`cannot open the registry in ${dir}: ${(e as Error).message}`);
  }
  let bound: number;
  try {
    bound = await registry.listen(port);
  } catch (e) {
    await registry.close();
    throw new CliError((e as Error).message);
  }
  const done = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      registry.close().then(resolve, (e: unknown) => {
        process.stderr.write(`os0: closing the registry: ${(e as Error).message}\n`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    // Like os0 up, it never outlives the process that started it (../lifeline.ts).
    void import('../lifeline.ts').then(({ watchParent }) => watchParent(stop));
  });
  process.stdout.write(`osØ registry ready at http://127.0.0.1:${bound} (data ${dir}, admin token in ${path.join(dir, ADMIN_TOKEN_FILE)})\n`);
  await done;
}
