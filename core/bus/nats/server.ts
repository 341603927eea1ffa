/**
 * Starts and stops a nats-server with JetStream on 127.0.0.1 (Debian's `nats-server` package):
 * one server, or a member of a cluster. Used by the tests, the benches and, later, by
 * `os0 fleet up` for a local fleet.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as net from 'node:net';
import { OsError } from '../../errors.ts';

export interface NatsServerOptions {
  /** JetStream's store directory. */
  storeDir: string;
  /** Client port (a free one when absent). */
  port?: number;
  host?: string;
  serverName?: string;
  /** Joins a cluster: this server's route port and every member's route port. */
  cluster?: { name: string; port: number; routes: number[] };
  bin?: string;
  /** How long to wait for the server to say it is ready (10 s). */
  readyMsMax?: number;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly opts: NatsServerOptions;
  /** SIGTERM and wait for the exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit: a crash. */
  kill(): Promise<void>;
}

/** The nats-server binary: NATS_SERVER, PATH, or Debian's /usr/sbin/nats-server. */
export function natsServerBin(): string {
  if (process.env.NATS_SERVER) return process.env.NATS_SERVER;
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin'])) {
    if (dir && existsSync(`${dir}/nats-server`)) return `${dir}/nats-server`;
  }
  throw new OsError('not_found', 'nats-server is not installed: `apt-get install nats-server` (or set NATS_SERVER to its path)');
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startNatsServer(opts: NatsServerOptions): Promise<NatsServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  mkdirSync(opts.storeDir, { recursive: true });
  const args = ['-js', '-a', host, '-p', String(port), '-sd', opts.storeDir];
  if (opts.serverName) args.push('--server_name', opts.serverName);
  if (opts.cluster) {
    const c = opts.cluster;
    args.push('--cluster_name', c.name, '--cluster', `nats://${host}:${c.port}`);
    args.push('--routes', c.routes.filter((p) => p !== c.port).map((p) => `nats://${host}:${p}`).join(','));
  }
  const child = spawn(opts.bin ?? natsServerBin(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(`did not say it was ready within ${opts.readyMsMax ?? 10_000} ms`), opts.readyMsMax ?? 10_000);
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new OsError('unavailable', `nats-server on ${host}:${port} ${why}: ${log.trim().split('\n').slice(-3).join(' | ')}`));
    };
    child.once('error', (e) => fail(`could not start (${e.message})`));
    const onExit = (code: number | null): void => fail(`exited with code ${code}`);
    child.once('exit', onExit);
    child.stderr!.on('data', (d: Buffer) => {
      if (log.length < 64 * 1024) log += d.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        resolve();
      }
    });
  });
  // Keep draining stderr so the server never blocks on a full pipe.
  child.stderr!.removeAllListeners('data');
  child.stderr!.resume();
  const stopWith = async (sig: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(sig);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  };
  return {
    url: `nats://${host}:${port}`,
    port,
    pid: child.pid!,
    opts: { ...opts, port },
    stop: () => stopWith('SIGTERM'),
    kill: () => stopWith('SIGKILL'),
  };
}

/** `n` servers on 127.0.0.1 routed to one another as one JetStream cluster. */
export async function startNatsCluster(n: number, storeDir: (i: number) => string, name = 'os0'): Promise<NatsServer[]> {
  const routes: number[] = [];
  for (let i = 0; i < n; i++) routes.push(await freePort());
  return Promise.all(
    routes.map((p, i) => startNatsServer({ storeDir: storeDir(i), serverName: `${name}-${i + 1}`, cluster: { name, port: p, routes } })),
  );
}
