/** os0 up: osØ on this machine, with embedded defaults (the instance of ../instance.ts). */
import * as path from 'node:path';
import { CliError } from '../client.ts';

export interface UpOptions {
  data: string;
  port: string;
  bus?: string;
  dnsPort?: string;
  heartbeatMs?: string;
  retainRecords?: string;
  historyRecords?: string;
  segmentBytes?: string;
  bookmarkSeconds?: string;
  /** App folders to load and make invocable (until the app store installs them). */
  app?: string[];
}

/** A stop that takes longer than this ends the process anyway (its sandbox processes go with it). */
const STOP_DEADLINE_MS = 10_000;

function positive(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`${flag} must be a positive number (got ${v})`, 2);
  return n;
}

export async function up(opts: UpOptions): Promise<void> {
  const port = Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`--port must be a port number (got ${opts.port})`, 2);
  const retainRecords = positive(opts.retainRecords, '--retain-records');
  const historyRecords = positive(opts.historyRecords, '--history-records');
  const segmentBytes = positive(opts.segmentBytes, '--segment-bytes');
  const bookmarkSeconds = positive(opts.bookmarkSeconds, '--bookmark-seconds');
  if (opts.bus && opts.bus !== 'embedded' && !opts.bus.startsWith('nats://')) throw new CliError(`--bus must be embedded or nats://HOST:PORT[,HOST:PORT...] (got ${opts.bus})`, 2);
  const dnsPort = Number(opts.dnsPort ?? 7053);
  if (!Number.isInteger(dnsPort) || dnsPort < 0 || dnsPort > 65535) throw new CliError(`--dns-port must be a port number (got ${opts.dnsPort})`, 2);
  const heartbeatMs = positive(opts.heartbeatMs, '--heartbeat-ms');
  const { buildInstance } = await import('../instance.ts');
  const { watchParent } = await import('../lifeline.ts');
  const report = (m: string): void => void process.stderr.write(`os0: ${m}\n`);
  const inst = buildInstance({ data: opts.data, port, bus: opts.bus, retainRecords, historyRecords, segmentBytes, bookmarkSeconds, apps: opts.app, agent: { dnsPort, heartbeatMs } });

  // Stopping is wired before starting: a signal (or the parent's death) during the start rolls
  // it back, and a data directory this start created is removed again.
  let stopping = false;
  const stop = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    report(`${why}: stopping`);
    setTimeout(() => {
      report(`did not stop within ${STOP_DEADLINE_MS / 1000} s; exiting anyway`);
      process.exit(1);
    }, STOP_DEADLINE_MS);
    let code = 0;
    try {
      await inst.stop();
    } catch (e) {
      report((e as Error).message);
      code = 1;
    }
    process.exit(code);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop(sig));
  // The reader of our output may be gone with the process that started us (a closed terminal, a
  // dead pipe): a failed write must not cut the clean stop short.
  for (const out of [process.stdout, process.stderr]) out.on('error', () => {});
  watchParent((why) => void stop(`${why}`));

  try {
    await inst.start({ report });
  } catch (e) {
    if (stopping) return new Promise(() => {}); // stop() exits
    throw new CliError((e as Error).message);
  }
  const dir = path.resolve(opts.data);
  process.stdout.write(`osØ ready at ${inst.url} (registry at ${inst.registryUrl}, data ${dir}, admin token in ${path.join(dir, 'admin.token')})\n`);
  await new Promise(() => {});
}
