/**
 * The process device's cases, run against each way of holding limits (process.test.ts calls
 * `processCases` once per limiter this host has). Real processes, checked against /proc.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import type { FailedEvent } from '../../../../runtime/agent/devices/device.ts';
import { LocalProcesses, type LimiterKind, type LocalProcessOptions, type ProcessEvent } from '../../../../runtime/agent/devices/process/index.ts';
import { tempDir } from '../../../helpers/tmp.ts';
import { alive, collect, descendants, NODE, until, type Collected } from './helpers.ts';

type Ev = ProcessEvent | FailedEvent;

let seq = 0;

/** The first line of a task's log that says how its forks went. */
async function forkReport(dev: LocalProcesses, task: string): Promise<{ text: string }> {
  let found: { text: string } | undefined;
  await until(() => (found = dev.logs(task).tail(100).find((l) => l.text.startsWith('spawned '))) !== undefined, 15_000, `${task} to report`);
  return found as { text: string };
}

export function processCases(kind: LimiterKind, portBase: number): void {
  const root = tempDir(`proc-${kind}-`);
  const opened: LocalProcesses[] = [];
  const stray: number[] = [];

  afterEach(async () => {
    for (const d of opened.splice(0)) {
      for (const p of d.snapshot().processes) await d.handle({ id: `cleanup-${p.task}-${seq++}`, type: 'process.stop', task: p.task, graceMs: 0 });
      await d.close();
    }
    for (const p of stray.splice(0)) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
  });

  function setup(extra: Partial<LocalProcessOptions> = {}): { opts: LocalProcessOptions; c: Collected<Ev> } {
    const n = seq++;
    const c = collect<Ev>();
    const opts: LocalProcessOptions = {
      dataDir: path.join(root, `d${n}`),
      name: `t${process.pid}-${kind}-${n}`,
      limiter: kind,
      ports: [portBase + (n % 20) * 20, portBase + (n % 20) * 20 + 19],
      emit: c.emit,
      ...extra,
    };
    return { opts, c };
  }

  async function open(extra: Partial<LocalProcessOptions> = {}): Promise<{ dev: LocalProcesses; c: Collected<Ev>; opts: LocalProcessOptions }> {
    const { opts, c } = setup(extra);
    const dev = await LocalProcesses.open(opts);
    opened.push(dev);
    return { dev, c, opts };
  }

  it('starts a program with PORT, OS0_TASK, env and cwd; its output lands in the task log', async () => {
    const { dev, c, opts } = await open();
    const cwd = tempDir('cwd-');
    const out = await dev.handle({
      id: 'c1',
      type: 'process.start',
      task: 'web-1',
      argv: ['sh', '-c', 'echo "port=$PORT task=$OS0_TASK greet=$GREET dir=$(pwd)"; echo oops >&2; exec sleep 300'],
      env: { GREET: 'hello' },
      cwd,
    });
    expect(out).toMatchObject({ type: 'started', task: 'web-1', already: false, commandId: 'c1', device: 'process' });
    const started = out as Extract<Ev, { type: 'started' }>;
    expect(started.port).toBeGreaterThanOrEqual(opts.ports[0]);
    expect(started.port).toBeLessThanOrEqual(opts.ports[1]);
    expect(alive(started.pid)).toBe(true);
    // Its own session and process group: the launcher leads both.
    const stat = fs.readFileSync(`/proc/${started.pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(f[2])).toBe(started.pid); // pgrp
    expect(Number(f[3])).toBe(started.pid); // session
    await c.waitFor((e) => e.type === 'log' && e.stream === 'err', 5000, 'stderr line');
    const lines = dev.logs('web-1').tail(10);
    expect(lines.map((l) => `${l.stream} ${l.text}`)).toEqual([`out port=${started.port} task=web-1 greet=hello dir=${cwd}`, 'err oops']);
    expect(dev.snapshot().processes).toMatchObject([{ task: 'web-1', pid: started.pid, state: 'running', adopted: false }]);
  });

  it('is idempotent: a repeated id gets the same outcome, a second start of a running task changes nothing', async () => {
    const { dev, c } = await open();
    const cmd = { id: 'same', type: 'process.start', task: 'one', argv: ['sleep', '300'] } as const;
    const a = (await dev.handle(cmd)) as Extract<Ev, { type: 'started' }>;
    const b = await dev.handle(cmd);
    expect(b).toEqual(a);
    const d = await dev.handle({ ...cmd, id: 'other' });
    expect(d).toMatchObject({ type: 'started', pid: a.pid, port: a.port, already: true });
    await until(() => descendants(a.pid).length === 2, 5000, 'the launcher and its program');
    expect(descendants(a.pid).filter((p) => p !== a.pid)).toHaveLength(1); // one sleep, not two
    expect(c.events.filter((e) => e.type === 'started')).toHaveLength(3); // each answer emitted
    const s1 = await dev.handle({ id: 's1', type: 'process.stop', task: 'one', graceMs: 1000 });
    expect(s1).toMatchObject({ type: 'stopped', pid: a.pid, already: false });
    const s2 = await dev.handle({ id: 's2', type: 'process.stop', task: 'one' });
    expect(s2).toMatchObject({ type: 'stopped', pid: null, already: true });
  });

  it('kills a process tree whole on stop, including a child that left the group', async () => {
    const { dev, c } = await open();
    const out = (await dev.handle({
      id: 'c1',
      type: 'process.start',
      task: 'tree',
      argv: ['sh', '-c', 'sleep 300 & sleep 300 & setsid sleep 300 & sh -c "sleep 300 & wait" & wait'],
    })) as Extract<Ev, { type: 'started' }>;
    await until(() => descendants(out.pid).length >= 7, 5000, 'the whole tree to start');
    const tree = descendants(out.pid);
    const stopped = await dev.handle({ id: 'c2', type: 'process.stop', task: 'tree', graceMs: 2000 });
    expect(stopped).toMatchObject({ type: 'stopped', pid: out.pid, signal: 'SIGTERM', exitCode: null });
    expect(tree.filter(alive)).toEqual([]);
    expect(c.events.find((e) => e.type === 'exited')).toMatchObject({ task: 'tree', requested: true });
    expect(dev.snapshot().processes).toEqual([]);
  });

  it('sends SIGKILL when SIGTERM is ignored past the grace period', async () => {
    const { dev } = await open();
    const out = (await dev.handle({ id: 'c1', type: 'process.start', task: 'stubborn', argv: ['sh', '-c', 'trap "" TERM; sleep 300; sleep 300'] })) as Extract<Ev, { type: 'started' }>;
    await until(() => descendants(out.pid).length >= 3, 5000, 'the program to start');
    const tree = descendants(out.pid);
    const stopped = await dev.handle({ id: 'c2', type: 'process.stop', task: 'stubborn', graceMs: 300 });
    expect(stopped).toMatchObject({ type: 'stopped', signal: 'SIGKILL' });
    expect(tree.filter(alive)).toEqual([]);
  });

  it('carries on a stop the last agent began, keeping what was left of its grace', async () => {
    const { dev, c, opts } = await open();
    const out = (await dev.handle({ id: 'c1', type: 'process.start', task: 'slow', argv: ['sh', '-c', 'trap "" TERM; sleep 300'] })) as Extract<Ev, { type: 'started' }>;
    await until(() => descendants(out.pid).length >= 3, 5000, 'the program to start');
    const tree = descendants(out.pid);
    void dev.handle({ id: 'c2', type: 'process.stop', task: 'slow', graceMs: 1500 });
    await until(() => dev.snapshot().processes[0]?.state === 'stopping', 5000, 'the stop to begin');
    await dev.close(); // the agent goes away mid-grace; the process ignores SIGTERM
    opened.splice(opened.indexOf(dev), 1);
    expect(tree.every(alive)).toBe(true);
    expect(c.events.some((e) => e.type === 'exited')).toBe(false);
    const c2 = collect<Ev>();
    const again = await LocalProcesses.open({ ...opts, emit: c2.emit });
    opened.push(again);
    const exited = await c2.waitFor((e) => e.type === 'exited', 10_000, 'exited');
    expect(exited).toMatchObject({ task: 'slow', pid: out.pid, requested: true, signal: 'SIGKILL' });
    expect(tree.filter(alive)).toEqual([]);
  });

  it('reports exit codes and signals of programs that end by themselves', async () => {
    const { dev, c } = await open();
    await dev.handle({ id: 'c1', type: 'process.start', task: 'code', argv: ['sh', '-c', 'exit 3'] });
    await dev.handle({ id: 'c2', type: 'process.start', task: 'sig', argv: ['sh', '-c', 'kill -USR1 $$'] });
    const code = await c.waitFor((e) => e.type === 'exited' && e.task === 'code', 5000);
    const sig = await c.waitFor((e) => e.type === 'exited' && e.task === 'sig', 5000);
    expect(code).toMatchObject({ exitCode: 3, signal: null, requested: false, oomKilled: false });
    expect(sig).toMatchObject({ exitCode: null, signal: 'SIGUSR1', requested: false });
    // `started` always comes before `exited`.
    const order = c.events.filter((e) => 'task' in e && e.task === 'code').map((e) => e.type);
    expect(order[0]).toBe('started');
    expect(order.at(-1)).toBe('exited');
  });

  it('holds a memory hog to its limit: it dies before it has allocated what it wanted', async () => {
    const { dev, c } = await open();
    // Asks for 512 MiB in 8 MiB steps, touching every page, then exits 0: only a limit stops it.
    const hog = 'const a=[];for(let i=0;i<64;i++){a.push(Buffer.alloc(8<<20,1));}console.log("survived");';
    await dev.handle({ id: 'c1', type: 'process.start', task: 'hog', argv: [NODE, '-e', hog], limits: { memoryBytes: 96 << 20 } });
    const exited = (await c.waitFor((e) => e.type === 'exited' && e.task === 'hog', 20_000)) as Extract<Ev, { type: 'exited' }>;
    expect(exited.exitCode === 0).toBe(false);
    expect(dev.logs('hog').tail(50).some((l) => l.text === 'survived')).toBe(false);
    if (kind !== 'rlimit') expect(exited).toMatchObject({ signal: 'SIGKILL', oomKilled: true });
  });

  it('holds a program that forks too much to its pids limit, where the host enforces one', async () => {
    const { dev } = await open();
    if (dev.snapshot().enforced.pids.startsWith('none')) return; // rlimits do not hold root; the snapshot says so
    // Asks for 60 children and counts the ones the kernel refuses; stays up to be counted.
    const forker = `const { spawn } = require('node:child_process'); let ok = 0, failed = 0;
      for (let i = 0; i < 60; i++) { try { const c = spawn('sleep', ['300'], { stdio: 'ignore' }); c.on('error', () => failed++); c.on('spawn', () => ok++); } catch { failed++; } }
      setTimeout(() => console.log('spawned ' + ok + ' refused ' + failed), 1000); setInterval(() => {}, 1000);`;
    const out = (await dev.handle({ id: 'c1', type: 'process.start', task: 'forky', argv: [NODE, '-e', forker], limits: { pids: 40 } })) as Extract<Ev, { type: 'started' }>;
    const line = (await forkReport(dev, 'forky')).text;
    const [, ok, refused] = /spawned (\d+) refused (\d+)/.exec(line) ?? [];
    expect(Number(refused)).toBeGreaterThan(0);
    expect(Number(ok) + Number(refused)).toBe(60);
    expect(descendants(out.pid).length).toBeLessThanOrEqual(40);
  });

  it('emits ready once the program listens on its PORT', async () => {
    const { dev, c } = await open();
    const server = 'require("node:net").createServer(()=>{}).listen(Number(process.env.PORT), "127.0.0.1")';
    const out = (await dev.handle({ id: 'c1', type: 'process.start', task: 'srv', argv: [NODE, '-e', server], ready: { port: true } })) as Extract<Ev, { type: 'started' }>;
    const ready = await c.waitFor((e) => e.type === 'ready', 10_000, 'ready');
    expect(ready).toMatchObject({ task: 'srv', pid: out.pid, port: out.port });
  });

  it('bounds processes per machine, and refuses bad input with one line, starting nothing', async () => {
    const { dev, opts } = await open({ processesMax: 2 });
    for (const t of ['a', 'b']) expect(await dev.handle({ id: t, type: 'process.start', task: t, argv: ['sleep', '300'] })).toMatchObject({ type: 'started' });
    expect(await dev.handle({ id: 'c', type: 'process.start', task: 'c', argv: ['sleep', '300'] })).toMatchObject({ type: 'failed', code: 'limit' });
    await dev.handle({ id: 'sa', type: 'process.stop', task: 'a', graceMs: 0 });
    const bad: Array<[unknown, string]> = [
      [{ id: 'b1', type: 'process.start', task: '../etc', argv: ['sleep', '1'] }, 'task must be'],
      [{ id: 'b2', type: 'process.start', task: 'x', argv: [] }, 'argv must be'],
      [{ id: 'b3', type: 'process.start', task: 'x', argv: ['no-such-program-here'] }, 'no program'],
      [{ id: 'b4', type: 'process.start', task: 'x', argv: ['sleep', '1'], cwd: 'relative' }, 'cwd'],
      [{ id: 'b5', type: 'process.start', task: 'x', argv: ['sleep', '1'], limits: { memoryBytes: -1 } }, 'memoryBytes'],
      [{ id: 'b6', type: 'process.start', task: 'x', argv: ['sleep', '1'], port: 1 }, 'outside'],
      [{ id: 'b7', type: 'process.start', task: 'x', argv: ['sleep', '1'], env: { 'A=B': 'c' } }, 'env'],
      [{ id: 'b8', type: 'process.nope', task: 'x' }, 'unknown command type'],
      [{ id: '', type: 'process.start', task: 'x', argv: ['sleep', '1'] }, 'command id'],
    ];
    for (const [cmd, words] of bad) {
      const r = (await dev.handle(cmd as never)) as FailedEvent;
      expect(r.type).toBe('failed');
      expect(r.error).toContain(words);
      expect(r.error).not.toContain('\n');
    }
    expect(dev.snapshot().processes.map((p) => p.task)).toEqual(['b']);
    expect(fs.existsSync(path.join(opts.dataDir, 'logs', 'x'))).toBe(false);
  });

  it('keeps a bounded amount of output in rotated files, with tail and follow', async () => {
    const { dev } = await open({ log: { fileBytesMax: 4096, filesKept: 2 } });
    const writer = 'let i=0;const t=setInterval(()=>{for(let k=0;k<20;k++)console.log("line "+(i++));if(i>=2000)clearInterval(t)},1)';
    await dev.handle({ id: 'c1', type: 'process.start', task: 'chatty', argv: [NODE, '-e', writer] });
    const reader = dev.logs('chatty');
    const abort = new AbortController();
    const followed: string[] = [];
    const following = (async () => {
      for await (const l of reader.follow({ signal: abort.signal, pollMs: 20 })) followed.push(l.text);
    })();
    await until(() => followed.at(-1) === 'line 1999', 15_000, 'the last line, followed');
    abort.abort();
    await following;
    const dir = path.join(root, fs.readdirSync(root).find((d) => fs.existsSync(path.join(root, d, 'logs', 'chatty'))) as string, 'logs', 'chatty');
    const files = fs.readdirSync(dir);
    expect(files.sort()).toEqual(['output.log', 'output.log.1', 'output.log.2']);
    const bytes = files.reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(3 * 4096);
    const tail = reader.tail(5).map((l) => l.text);
    expect(tail).toEqual(['line 1995', 'line 1996', 'line 1997', 'line 1998', 'line 1999']);
    // follow saw lines in order, across rotations, ending with the last.
    expect(followed.at(-1)).toBe('line 1999');
    const nums = followed.map((t) => Number(t.slice(5)));
    expect(nums.every((n, i) => i === 0 || n > nums[i - 1])).toBe(true);
  });

  /** cgroup v1: whether the task's memory cgroup is still there (always false for other limiters). */
  function cgroupLeft(name: string, task: string): boolean {
    if (kind !== 'cgroup-v1') return false;
    const self = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.split(':')[1] === 'memory')?.split(':')[2] ?? '/';
    return fs.existsSync(path.join('/sys/fs/cgroup/memory', self, 'os0', name, task));
  }

  async function killedAgent(): Promise<{ opts: LocalProcessOptions; pids: Record<string, number> }> {
    const { opts } = setup();
    const tasks = [
      { id: 'k1', task: 'keep-a', argv: ['sh', '-c', 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.05; done'] },
      { id: 'k2', task: 'keep-b', argv: ['sh', '-c', 'sleep 300 & wait'], limits: { memoryBytes: 64 << 20, pids: 16 } },
    ];
    const child = spawn(NODE, [path.join(import.meta.dirname, 'fixtures', 'process-agent.ts'), opts.dataDir, opts.name as string, kind, String(opts.ports[0]), String(opts.ports[1]), JSON.stringify(tasks)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    stray.push(child.pid as number);
    const pids: Record<string, number> = {};
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        for (const line of buf.split('\n').slice(0, -1)) {
          const e = JSON.parse(line);
          if (e.type === 'started') pids[e.task] = e.pid;
          if (e.type === 'all-started') resolve();
        }
        buf = buf.slice(buf.lastIndexOf('\n') + 1);
      });
      child.once('exit', () => reject(new Error('the agent exited before starting its tasks')));
    });
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    for (const p of Object.values(pids)) stray.push(...descendants(p));
    return { opts, pids };
  }

  it('an agent killed with SIGKILL: the next one adopts the same pids, and reads the output written meanwhile', async () => {
    const { opts, pids } = await killedAgent();
    expect(Object.values(pids).every(alive)).toBe(true);
    const logFile = path.join(opts.dataDir, 'logs', 'keep-a', 'output.log');
    const linesAtKill = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').filter(Boolean).length : 0;
    await new Promise((r) => setTimeout(r, 300)); // ~6 ticks written while no agent runs
    const c = collect<Ev>();
    const dev = await LocalProcesses.open({ ...opts, emit: c.emit });
    opened.push(dev);
    const adopted = c.events.filter((e) => e.type === 'adopted') as Array<Extract<Ev, { type: 'adopted' }>>;
    expect(Object.fromEntries(adopted.map((e) => [e.task, e.pid]))).toEqual(pids);
    expect(dev.snapshot().processes.map((p) => [p.task, p.pid, p.adopted])).toEqual(
      expect.arrayContaining([
        ['keep-a', pids['keep-a'], true],
        ['keep-b', pids['keep-b'], true],
      ]),
    );
    // The ticks go on, in order. Output waits in the pipe while no agent runs; the only loss
    // allowed is the one chunk the killed agent had read and not yet written.
    await until(() => dev.logs('keep-a').tail(100_000).length > linesAtKill + 8, 5000, 'ticks after adoption');
    const ticks = dev.logs('keep-a').tail(100_000).map((l) => Number(l.text.slice(5)));
    expect(ticks.slice(0, linesAtKill)).toEqual(ticks.slice(0, linesAtKill).map((_, i) => i));
    const after = ticks.slice(linesAtKill);
    expect(after.every((t, i) => i === 0 || t === after[i - 1] + 1)).toBe(true);
    expect(after[0] - linesAtKill).toBeLessThanOrEqual(4);
    // Stopping an adopted process ends its whole tree, and its exit is reported.
    const treeB = descendants(pids['keep-b']);
    expect(await dev.handle({ id: 'x', type: 'process.stop', task: 'keep-b', graceMs: 1000 })).toMatchObject({ type: 'stopped', pid: pids['keep-b'], already: false });
    expect(treeB.filter(alive)).toEqual([]);
  });

  it("an agent killed with SIGKILL: the next one, told to clean up, ends every process and leaves no group behind", async () => {
    const { opts, pids } = await killedAgent();
    const trees = Object.values(pids).flatMap(descendants);
    expect(trees.length).toBeGreaterThanOrEqual(4);
    const c = collect<Ev>();
    const dev = await LocalProcesses.open({ ...opts, emit: c.emit, recover: 'clean', graceMs: 500 });
    opened.push(dev);
    expect(trees.filter(alive)).toEqual([]);
    const exited = c.events.filter((e) => e.type === 'exited') as Array<Extract<Ev, { type: 'exited' }>>;
    expect(exited.map((e) => [e.task, e.pid, e.requested]).sort()).toEqual([
      ['keep-a', pids['keep-a'], true],
      ['keep-b', pids['keep-b'], true],
    ]);
    expect(dev.snapshot().processes).toEqual([]);
    const state = JSON.parse(fs.readFileSync(path.join(opts.dataDir, 'processes.json'), 'utf8'));
    expect(state.entries).toEqual([]);
    expect(cgroupLeft(opts.name as string, 'keep-b')).toBe(false);
  });

  it('an agent killed with SIGKILL and its state file lost: the next one finds its processes by their environment and ends them', async () => {
    const { opts, pids } = await killedAgent();
    const trees = Object.values(pids).flatMap(descendants);
    expect(trees.length).toBeGreaterThanOrEqual(4);
    const stateFile = path.join(opts.dataDir, 'processes.json');
    fs.writeFileSync(stateFile, '{"version":1,"entr'); // torn
    expect(cgroupLeft(opts.name as string, 'keep-b')).toBe(kind === 'cgroup-v1');
    const c = collect<Ev>();
    const dev = await LocalProcesses.open({ ...opts, emit: c.emit });
    opened.push(dev);
    expect(trees.filter(alive)).toEqual([]);
    expect(dev.snapshot().processes).toEqual([]);
    expect(fs.readdirSync(opts.dataDir).some((f) => f.startsWith('processes.json.unreadable-'))).toBe(true);
    expect(JSON.parse(fs.readFileSync(stateFile, 'utf8')).entries).toEqual([]);
    expect(cgroupLeft(opts.name as string, 'keep-b')).toBe(false);
  });
}
