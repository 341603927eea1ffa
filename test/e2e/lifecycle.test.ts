/**
 * Starting and stopping `os0 up` as real processes, checked with the OS (/proc):
 *  - SIGTERM or SIGKILL to the process that started it — bin.js re-executing itself on the pinned
 *    runtime, or `npx os0 up` (npm → sh → os0) — leaves no os0 and no sandbox process behind;
 *  - an `os0 up` that cannot start (its port is taken) leaves no data directory it created, and
 *    an existing one as it was.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, cleanEnv, cli, freePort, NODE, ROOT, tempDir, until } from '../helpers/os0.ts';

/** A node other than the pinned major (the machine's own), to make bin.js re-execute itself. */
const OTHER_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
  if (!fs.existsSync(p)) return false;
  const v = spawnSync(p, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
  return v !== '' && v.split('.')[0] !== '22';
});
const NPX = ['/usr/bin/npx', '/usr/local/bin/npx'].find((p) => fs.existsSync(p));

interface Proc {
  pid: number;
  ppid: number;
  state: string;
  cmd: string;
}

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ');
      out.push({ pid: Number(d), ppid: Number(f[1]), state: f[0], cmd });
    } catch {} // it exited while we looked
  }
  return out;
}

/** Every process below `pid`, now. */
function descendants(pid: number): Proc[] {
  const all = procs();
  const out: Proc[] = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const c of all) if (c.ppid === p) (out.push(c), todo.push(c.pid));
  }
  return out;
}

/** Whether a process still runs (a zombie has exited: only its entry waits to be reaped). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !['Z', 'X'].includes(stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3));
  } catch {
    return false;
  }
}

/** Processes anywhere on the machine that mention this data directory (os0 up's own command line). */
const mentioning = (dir: string): Proc[] => procs().filter((p) => p.cmd.includes(dir) && p.state !== 'Z');

const started: ChildProcess[] = [];
afterAll(() => {
  for (const c of started) if (c.pid && running(c.pid)) c.kill('SIGKILL');
  // Whatever a failed test left: kill what still runs on the directories of this file.
  for (const p of procs()) if (p.cmd.includes(path.join(ROOT, '.test-data', 'life-')) && p.state !== 'Z') process.kill(p.pid, 'SIGKILL');
});

interface Launched {
  child: ChildProcess;
  dir: string;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Runs `cmd args` (which starts os0 up on DIR) in its own process group, as a shell job would, until ready. */
async function launch(cmd: string, args: (dir: string, port: number) => string[], dir = path.join(tempDir('life-'), 'data')): Promise<Launched> {
  const port = await freePort();
  const child = spawn(cmd, args(dir, port), { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  started.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  await until(() => out.includes('ready') || child.exitCode !== null, 60_000, `os0 up to be ready (stderr: ${err})`);
  expect(out).toMatch(/osØ (registry )?ready at/);
  return { child, dir, out: () => out, err: () => err, exited };
}

/** Sends `signal` to the launcher and checks that it, os0 up and its sandbox processes all end. */
async function killAndCheck(l: Launched, signal: NodeJS.Signals): Promise<void> {
  const tree = descendants(l.child.pid!);
  const os0 = tree.filter((p) => p.cmd.includes('bin.js') || p.cmd.includes('/.bin/os0'));
  const sandboxes = tree.filter((p) => p.cmd.includes('sandbox/worker.ts'));
  expect(os0.length).toBeGreaterThan(0);
  expect(sandboxes.length).toBeGreaterThan(0);
  l.child.kill(signal);
  await l.exited;
  await until(() => tree.every((p) => !running(p.pid)), 20_000, `every process below the launcher to end: ${tree.filter((p) => running(p.pid)).map((p) => `${p.pid} ${p.cmd}`).join('; ')}`);
  expect(mentioning(l.dir)).toEqual([]);
  // It stopped cleanly: the lock is released (a process killed outright would leave it).
  expect(fs.existsSync(path.join(l.dir, 'LOCK'))).toBe(false);
}

describe.skipIf(!OTHER_NODE)(`bin.js re-executing itself (started by ${OTHER_NODE ?? 'a node other than 22'})`, () => {
  it('SIGTERM to the wrapper: it forwards it, os0 up stops cleanly and exits 0, no process is left', async () => {
    const l = await launch(OTHER_NODE!, (dir, port) => [BIN, 'up', '--data', dir, '--port', String(port)]);
    await killAndCheck(l, 'SIGTERM');
    expect(await l.exited).toEqual({ code: 0, signal: null });
    expect(l.err()).toContain('os0: SIGTERM: stopping');
  });

  it('SIGKILL to the wrapper: os0 up notices at once (its lifeline closes) and stops; no process is left', async () => {
    const l = await launch(OTHER_NODE!, (dir, port) => [BIN, 'up', '--data', dir, '--port', String(port)]);
    await killAndCheck(l, 'SIGKILL');
    await until(() => l.err().includes('stopping'), 5000, 'the stopping line');
    expect(l.err()).toContain('os0: the os0 wrapper that started it exited: stopping');
  });
});

describe.skipIf(!OTHER_NODE)('os0 registry serve, through the wrapper', () => {
  it('SIGKILL to the wrapper: the registry stops too', async () => {
    const l = await launch(OTHER_NODE!, (dir, port) => [BIN, 'registry', 'serve', '--data', dir, '--port', String(port)]);
    const tree = descendants(l.child.pid!);
    expect(tree.length).toBe(1);
    l.child.kill('SIGKILL');
    await until(() => !running(tree[0].pid), 20_000, 'the registry to stop');
    expect(mentioning(l.dir)).toEqual([]);
  });
});

describe.skipIf(!NPX)('npx os0 up (npm exec → sh -c → os0)', () => {
  it('SIGTERM to npx: os0 up and its sandbox processes stop; nothing is left', async () => {
    const l = await launch(NPX!, (dir, port) => ['--no', '--', 'os0', 'up', '--data', dir, '--port', String(port)]);
    await killAndCheck(l, 'SIGTERM');
  });

  it('SIGKILL to npx: the sh between them lives on, but os0 up sees its starter gone and stops; nothing is left', async () => {
    const l = await launch(NPX!, (dir, port) => ['--no', '--', 'os0', 'up', '--data', dir, '--port', String(port)]);
    await killAndCheck(l, 'SIGKILL');
    await until(() => l.err().includes('stopping'), 5000, 'the stopping line');
    expect(l.err()).toMatch(/os0: process \d+, which started it \(through \d+\), exited: stopping/);
  });
});

describe('os0 up that cannot start', () => {
  /** Holds a port on 127.0.0.1 for the test. */
  async function taken(): Promise<{ port: number; close: () => Promise<void> }> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { port: (s.address() as net.AddressInfo).port, close: () => new Promise((r) => s.close(() => r())) };
  }

  it('port in use: exit 1 naming the port, and the data directory it would have created is not there', async () => {
    const { port, close } = await taken();
    try {
      const parent = tempDir('life-');
      const dir = path.join(parent, 'new', 'data');
      const r = await cli(['up', '--data', dir, '--port', String(port)]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`os0: port ${port} is in use; pass --port with a free one\n`);
      expect(fs.readdirSync(parent)).toEqual([]);
      expect(mentioning(dir)).toEqual([]);
    } finally {
      await close();
    }
  });

  it('SIGTERM while it is still starting: it rolls the start back, and the data directory it was creating goes', async () => {
    const parent = tempDir('life-');
    const dir = path.join(parent, 'data');
    const child = spawn(NODE, [BIN, 'up', '--data', dir, '--port', String(await freePort())], { cwd: parent, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    started.push(child);
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (x: string) => (out += x));
    child.stderr!.setEncoding('utf8').on('data', (x: string) => (err += x));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    // The directory appears once the start has begun (the signal handlers are in place by then).
    await until(() => fs.existsSync(dir), 60_000, 'the data directory to appear');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(err).toContain('os0: SIGTERM: stopping');
    if (out.includes('ready')) {
      // The start won the race: a normal stop, which keeps the data.
      expect(fs.existsSync(path.join(dir, 'admin.token'))).toBe(true);
    } else {
      expect(fs.readdirSync(parent)).toEqual([]);
    }
    expect(mentioning(dir)).toEqual([]);
  });

  it('port in use on a data directory with data: it is left exactly as it was', async () => {
    const dir = path.join(tempDir('life-'), 'data');
    const first = await launch(NODE, (d, port) => [BIN, 'up', '--data', d, '--port', String(port)], dir);
    first.child.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const snapshot = (): Record<string, string> => {
      const out: Record<string, string> = {};
      for (const f of fs.readdirSync(dir, { recursive: true }).map(String).sort()) {
        const p = path.join(dir, f);
        out[f] = fs.statSync(p).isFile() ? fs.readFileSync(p).toString('base64') : 'dir';
      }
      return out;
    };
    const before = snapshot();
    const { port, close } = await taken();
    try {
      const r = await cli(['up', '--data', dir, '--port', String(port)]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`port ${port} is in use`);
    } finally {
      await close();
    }
    expect(snapshot()).toEqual(before);
  });
});
