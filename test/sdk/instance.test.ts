/**
 * The composition root: services start in order and stop in reverse, a failed start rolls back
 * what started, and an instance that cannot come up (its port is taken) leaves no data directory
 * it created, and an existing one as it was. Real files, real sockets, real sandbox processes.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDir } from '../../sdk/cli/datadir.ts';
import { Instance } from '../../sdk/cli/instance.ts';
import { Services, StartError, service, type StopReason } from '../../sdk/cli/services.ts';
import { refused } from '../helpers/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('instance-');

/** Services that write what happens to them into `log`; `fail` names one whose start throws. */
function recording(names: string[], log: string[], fail?: string): Services {
  const s = new Services();
  for (const name of names) {
    s.add(
      service(
        name,
        async () => {
          await new Promise((r) => setTimeout(r, 1));
          if (name === fail) throw new Error(`${name} cannot start: no reason at all`);
          log.push(`start ${name}`);
        },
        (reason: StopReason) => void log.push(`${reason} ${name}`),
      ),
    );
  }
  return s;
}

/** Listens on some free port on 127.0.0.1 and returns it (and the server, to close). */
async function occupy(): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, server };
}

const listing = (dir: string): string[] => fs.readdirSync(dir, { recursive: true }).map(String).sort();

/** The pids of this process's children (sandbox processes among them), from /proc. */
function children(): number[] {
  const out: number[] = [];
  for (const task of fs.readdirSync(`/proc/${process.pid}/task`)) {
    const text = fs.readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim();
    if (text) out.push(...text.split(' ').map(Number));
  }
  return out;
}

const alive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
};

describe('Services', () => {
  it('start in order and stop in reverse, each once', async () => {
    const log: string[] = [];
    const s = recording(['a', 'b', 'c'], log);
    await s.start();
    expect(s.state).toBe('running');
    await s.stop();
    await s.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'shutdown c', 'shutdown b', 'shutdown a']);
    expect(s.state).toBe('stopped');
  });

  it('roll back what started when one fails, and say which one failed and why', async () => {
    const log: string[] = [];
    const s = recording(['a', 'b', 'c', 'd'], log, 'c');
    const e = await s.start().then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StartError);
    expect((e as StartError).service).toBe('c');
    expect((e as StartError).message).toBe('c cannot start: no reason at all');
    expect(log).toEqual(['start a', 'start b', 'rollback b', 'rollback a']);
    expect(s.state).toBe('failed');
    await s.stop(); // nothing left to stop
    expect(log.length).toBe(4);
  });

  it('a stop during the start rolls it back after the service that is starting', async () => {
    const log: string[] = [];
    const s = recording(['a', 'b', 'c'], log);
    const started = s.start().catch((e: unknown) => e);
    const stopped = s.stop();
    await stopped;
    expect(((await started) as Error).message).toBe('stopped while starting');
    expect(log).toEqual(['start a', 'rollback a']);
  });

  it('a stop that fails does not keep the others from stopping; the first failure is thrown', async () => {
    const log: string[] = [];
    const s = new Services()
      .add(service('a', () => {}, () => void log.push('stop a')))
      .add(service('b', () => {}, () => {
        throw new Error('b would not stop');
      }))
      .add(service('c', () => {}, () => void log.push('stop c')));
    await s.start();
    expect(await refused(s.stop())).toBe('stopping b: b would not stop');
    expect(log).toEqual(['stop c', 'stop a']);
  });

  it('refuse two services of one name, and additions after the start', async () => {
    const s = new Services().add(service('a', () => {}));
    expect(() => s.add(service('a', () => {}))).toThrow('two services named a');
    await s.start();
    expect(() => s.add(service('b', () => {}))).toThrow(/already started/);
    await s.stop();
  });
});

describe('DataDir', () => {
  it('a rollback removes a directory it created, with the parents it created', async () => {
    const top = path.join(root, 'dd-new');
    const d = new DataDir(path.join(top, 'deeper', 'data'));
    await d.start();
    expect(fs.existsSync(path.join(d.dir, 'LOCK'))).toBe(true);
    fs.writeFileSync(path.join(d.dir, 'half-written'), 'x');
    await d.stop('rollback');
    expect(fs.existsSync(top)).toBe(false);
  });

  it('a rollback empties a directory that was empty, and leaves one with data as it was', async () => {
    const empty = path.join(root, 'dd-empty');
    fs.mkdirSync(empty);
    const d1 = new DataDir(empty);
    await d1.start();
    fs.mkdirSync(path.join(empty, 'wal'));
    await d1.stop('rollback');
    expect(fs.readdirSync(empty)).toEqual([]);

    const full = path.join(root, 'dd-full');
    fs.mkdirSync(full);
    fs.writeFileSync(path.join(full, 'precious'), 'keep me');
    const d2 = new DataDir(full);
    await d2.start();
    await d2.stop('rollback');
    expect(fs.readdirSync(full)).toEqual(['precious']);
  });

  it('a shutdown keeps the data, and a second lock is refused while the first holder lives', async () => {
    const dir = path.join(root, 'dd-kept');
    const d = new DataDir(dir);
    await d.start();
    // Another process's pid in LOCK: this process's parent is alive.
    fs.writeFileSync(path.join(dir, 'LOCK'), String(process.ppid));
    const other = new DataDir(dir);
    expect(await refused(other.start())).toBe(`${dir} is in use by osØ process ${process.ppid}; stop it first or pass another --data`);
    fs.writeFileSync(path.join(dir, 'LOCK'), String(process.pid));
    await d.stop('shutdown');
    expect(fs.existsSync(dir)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'LOCK'))).toBe(false);
  });

  it('refuses a data path that is a file, writing nothing', async () => {
    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, 'x');
    expect(await refused(new DataDir(file).start())).toBe(`${file} is not a directory; pass another --data`);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
  });
});

describe('Instance', () => {
  const open: Instance[] = [];
  afterAll(async () => {
    for (const i of open) await i.stop();
  });

  it('starts core, bus, machines, sandbox, registry, store and HTTP in that order; stops them and their sandbox processes', async () => {
    const before = new Set(children());
    const inst = new Instance({ data: path.join(root, 'whole'), port: 0, sandbox: { processes: 2 } });
    open.push(inst);
    expect(inst.names).toEqual(['data', 'core', 'bus', 'machines', 'kernel', 'sandbox', 'registry', 'store', 'http']);
    await inst.start();
    const health = (await (await fetch(`${inst.url}/healthz`)).json()) as { ok: boolean };
    expect(health.ok).toBe(true);
    const registry = (await (await fetch(`${inst.registryUrl}/v1/registry`)).json()) as { keys: { metadata: { publicKey: string } } };
    expect(registry.keys.metadata.publicKey).toBe(inst.registry.info().keys.metadata.publicKey);
    const url = inst.url;
    const sandboxes = children().filter((p) => !before.has(p));
    expect(sandboxes.length).toBe(2);
    expect(fs.readFileSync(path.join(inst.dir, 'admin.token'), 'utf8').trim()).toBe(inst.adminToken);
    await inst.stop();
    expect(inst.state).toBe('stopped');
    expect(() => inst.sys).toThrow('the core is not running (start the instance first)');
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    for (const pid of sandboxes) expect(alive(pid)).toBe(false);
    expect(fs.existsSync(path.join(inst.dir, 'LOCK'))).toBe(false);
  });

  it('a port in use: the start fails naming the port, and a data directory it created is removed', async () => {
    const { port, server } = await occupy();
    try {
      const before = new Set(children());
      const dir = path.join(root, 'never', 'data');
      const inst = new Instance({ data: dir, port });
      const e = await inst.start().then(
        () => null,
        (x: unknown) => x as StartError,
      );
      expect(e?.service).toBe('ports'); // found before anything writes to the data directory
      expect(e?.message).toBe(`port ${port} is in use; pass --port with a free one`);
      expect(fs.existsSync(path.join(root, 'never'))).toBe(false);
      for (const pid of children().filter((p) => !before.has(p))) expect(alive(pid)).toBe(false);
    } finally {
      server.close();
    }
  });

  it('a port in use on an existing data directory leaves its data as it was', async () => {
    const dir = path.join(root, 'existing');
    const first = new Instance({ data: dir, port: 0, registry: false });
    await first.start();
    const admin = first.sys.authenticate(first.adminToken);
    await first.sys.submit({ op: 'create', resource: { type: 'namespace', name: 'kept' } }, admin);
    await first.stop();
    const files = listing(dir);
    const { port, server } = await occupy();
    try {
      const again = new Instance({ data: dir, port, registry: false });
      expect(await refused(again.start())).toBe(`port ${port} is in use; pass --port with a free one`);
    } finally {
      server.close();
    }
    expect(listing(dir)).toEqual(files);
    const third = new Instance({ data: dir, port: 0, registry: false });
    open.push(third);
    await third.start();
    expect(third.sys.core.get('namespace', 'kept')).toBeDefined();
  });

  it('refuses a bus it does not have, before anything starts', () => {
    expect(() => new Instance({ data: path.join(root, 'nobus'), bus: 'mqtt://127.0.0.1:1883' })).toThrow('--bus mqtt://127.0.0.1:1883: use embedded or nats://HOST:PORT[,HOST:PORT...]');
    expect(fs.existsSync(path.join(root, 'nobus'))).toBe(false);
  });
});
