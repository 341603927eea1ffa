/** os0 up: osØ on this machine, with embedded defaults. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Api } from '../../../core/api/server.ts';
import { System } from '../../../core/system.ts';
import { ADMIN_GROUP } from '../../../core/auth/permission.ts';
import { CliError } from '../client.ts';

export interface UpOptions {
  data: string;
  port: string;
  bus?: string;
  retainRecords?: string;
  historyRecords?: string;
  segmentBytes?: string;
  bookmarkSeconds?: string;
  /** App folders to load and make invocable (until the app store installs them). */
  app?: string[];
}

function positive(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number (got ${v})`, 2);
  return n;
}

/** One osØ per data directory: a second `up` on the same one is refused while the first lives. */
function lock(dir: string): () => void {
  const file = path.join(dir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(file, 'utf8'));
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = pid !== process.pid;
      } catch {}
      if (alive) throw new CliError(`${dir} is in use by osØ process ${pid}; stop it first or pass another --data`);
      fs.rmSync(file, { force: true }); // left by a process that died
    }
  }
  throw new CliError(`cannot lock ${dir}`);
}

export async function up(opts: UpOptions): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port must be a port number (got ${opts.port})`, 2);
  const retainRecords = positive(opts.retainRecords, '--retain-records');
  const historyRecords = positive(opts.historyRecords, '--history-records');
  const segmentBytes = positive(opts.segmentBytes, '--segment-bytes');
  const bookmarkSeconds = positive(opts.bookmarkSeconds, '--bookmark-seconds');
  if (opts.bus && opts.bus !== 'embedded') throw new CliError(`--bus ${opts.bus}: only the embedded bus is available in this version`, 2);
  const dir = path.resolve(opts.data);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lock(dir);
  const { Sandbox } = await import('../../../runtime/sandbox/index.ts');
  const { Invoker, AppFilters, loadAppFolder } = await import('../../../runtime/invoke/index.ts');
  const appFilters = new AppFilters();
  let sys: System;
  try {
    sys = await System.open({ dir, retainRecords, historyRecords, segmentBytes, filters: [appFilters], report: (m) => process.stderr.write(`os0: ${m}\n`) });
  } catch (e) {
    unlock();
    throw new CliError(`cannot open ${dir}: ${(e as Error).message}`);
  }
  sys.writeAdminToken(dir);
  const api = new Api(sys, { bookmarkSeconds });
  const sandbox = new Sandbox();
  appFilters.attach(sandbox);
  const invoker = new Invoker(sys, sandbox);
  invoker.mount(api);
  // The embedded registry (port + 1) takes this instance's tokens as its own; admins are its admins.
  const { Registry } = await import('../../../registry/server/index.ts');
  let registry: InstanceType<typeof Registry> | null = null;
  const release = async (): Promise<void> => {
    await api.close();
    await registry?.close();
    await sandbox.close();
    await sys.close();
    unlock();
  };
  try {
    registry = await Registry.open({
      dir: path.join(dir, 'registry'),
      authenticate: (token) => {
        const actor = sys.permissions.authenticate(token);
        return actor ? { actor: actor.name, admin: actor.groups.includes(ADMIN_GROUP), parent: actor.tokenId } : null;
      },
      parentAlive: (id) => sys.permissions.tokenAlive(id),
    });
  } catch (e) {
    await release();
    throw new CliError(`the embedded registry in ${path.join(dir, 'registry')}: ${(e as Error).message}`);
  }
  // The API's port is taken first, so that "port in use" names the port the user asked for;
  // with --port 0 the registry takes any port first, and the store is told which.
  const listenRegistry = async (p: number): Promise<number> => {
    try {
      return await registry!.listen(p);
    } catch (e) {
      await release();
      throw new CliError(`the embedded registry cannot use port ${p}: ${(e as Error).message.replace(/;.*$/, '')}; pass --port P with P and P+1 free`);
    }
  };
  const registryPort = port === 0 ? await listenRegistry(0) : port + 1;
  const registryUrl = `http://127.0.0.1:${registryPort}`;
  const { Store, mountStore } = await import('../../../store/index.ts');
  const store = await Store.open({
    sys,
    invoker,
    appFilters,
    dir: path.join(dir, 'packages'),
    registryUrl,
    registryKey: registry.info().keys.metadata.publicKey,
    report: (m) => process.stderr.write(`os0: ${m}\n`),
  });
  mountStore(api, store);
  for (const appDir of opts.app ?? []) {
    try {
      // Compiled programs are cached in the data directory, not in the app's folder.
      const app = await loadAppFolder(path.resolve(appDir), { cacheDir: path.join(dir, 'cache') });
      invoker.add(app, appFilters);
      process.stderr.write(`os0: loaded app ${app.manifest.name}@${app.manifest.version} from ${appDir}\n`);
    } catch (e) {
      await release();
      throw new CliError(`--app ${appDir}: ${(e as Error).message}`);
    }
  }
  let bound: number;
  try {
    bound = await api.listen(port);
  } catch (e) {
    await release();
    throw new CliError((e as Error).message);
  }
  if (port !== 0) await listenRegistry(registryPort);
  const url = `http://127.0.0.1:${bound}`;
  if (sys.core.torn) process.stderr.write(`os0: repaired a torn WAL tail in ${sys.core.torn.file}\n`);
  process.stdout.write(`osØ ready at ${url} (registry at ${registryUrl}, data ${dir}, admin token in ${path.join(dir, 'admin.token')})\n`);
  let stopping = false;
  const stop = async (sig: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`os0: ${sig}: stopping\n`);
    await release();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  await new Promise(() => {});
}
