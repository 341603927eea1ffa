/**
 * The kernel end to end with real agents and real processes: `os0 up` (its host agent cordoned
 * away) and two agents joined with `os0 node join`; services applied with the CLI; the OS asked
 * about pids. A 3-replica service spread over both agents, a killed replica replaced, scaling, a
 * request larger than any machine pending with its reason then placed when a bigger machine
 * joins, and a delete that leaves no process behind.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cliFor, lines, spawnCli, startOs0, tempDir, until, type Os0 } from '../helpers/os0.ts';

const SERVER = "require('net').createServer(s=>{s.on('error',()=>{});s.end('hi')}).listen(+process.env.PORT,'127.0.0.1')";
const agents: ChildProcess[] = [];
const groups = new Set<number>();
afterAll(async () => {
  for (const a of agents) if (a.exitCode === null) a.kill('SIGKILL');
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {}
  }
});

const alive = (pid: number): boolean => {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};
/** Live processes in process group `pgid` (the device's launcher leads one per task). */
const group = (pgid: number): number[] =>
  fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(Number).filter((p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid && alive(p);
    } catch {
      return false;
    }
  });

async function join(s: Os0, name: string, data: string, ports: string, cpu: string): Promise<ChildProcess> {
  const os0 = cliFor(s);
  const t = await os0(['node', 'token', name]);
  expect(t.status, t.stderr).toBe(0);
  const proc = spawnCli(['node', 'join', '--url', s.url, '--token', t.stdout.trim(), '--name', name, '--data', data, '--ports', ports, '--heartbeat-ms', '1000', '--cpu', cpu, '--memory-mb', '2048']);
  agents.push(proc);
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  try {
    const [line] = await lines(proc).waitFor(1, 15_000);
    expect(line).toContain('ready');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${err}`);
  }
  return proc;
}

interface Proc {
  name: string;
  data: { state: string; pid: number; port: number; machine: string; restarts: number; ready: boolean };
}

describe('kernel end to end', () => {
  let s: Os0;
  let os0: ReturnType<typeof cliFor>;
  const root = tempDir('kernel-e2e-');
  const apply = async (name: string, data: Record<string, unknown>) => {
    const doc = JSON.stringify({ apiVersion: 'os0/v1', type: 'service', namespace: 'demo', name, data: { command: [process.execPath, '-e', SERVER], resources: { cpu: 0.25, memoryMb: 64 }, ...data } });
    const r = await os0(['apply', '-f', '-'], { input: doc });
    expect(r.status, r.stderr).toBe(0);
  };
  const procs = async (svc: string): Promise<Proc[]> => {
    const r = await os0(['get', 'process', '-n', 'demo', '-l', `service=${svc}`, '-o', 'json']);
    expect(r.status, r.stderr).toBe(0);
    const list = JSON.parse(r.stdout) as Proc[];
    for (const p of list) if (p.data.pid) groups.add(p.data.pid);
    return list;
  };
  const running = async (svc: string) => (await procs(svc)).filter((p) => p.data.state === 'running' && alive(p.data.pid));

  it('runs 3 replicas spread over two agents, replaces a killed one, scales, and leaves nothing after delete', async () => {
    s = await startOs0({});
    os0 = cliFor(s);
    await join(s, 'n1', path.join(root, 'n1'), '25000-25049', '1.5');
    await join(s, 'n2', path.join(root, 'n2'), '25050-25099', '1.5');
    expect((await os0(['cordon', 'local'])).status).toBe(0);
    const ns = await os0(['apply', '-f', '-'], { input: JSON.stringify({ type: 'namespace', name: 'demo', data: {} }) });
    expect(ns.status, ns.stderr).toBe(0);
    await apply('web', { replicas: 3, health: { tcp: true }, restart: { backoffMs: 200 } });
    const three = (await until(async () => {
      const r = await running('web');
      return r.length === 3 && r.every((p) => p.data.ready) && r;
    }, 30_000, '3 healthy replicas')) as Proc[];
    expect(new Set(three.map((p) => p.data.machine))).toEqual(new Set(['n1', 'n2']));

    // kill -9 a replica's whole process group: it is started again.
    const victim = three[0];
    process.kill(-victim.data.pid, 'SIGKILL');
    await until(async () => {
      const p = (await procs('web')).find((x) => x.name === victim.name);
      return p && p.data.state === 'running' && p.data.pid !== victim.data.pid && p.data.restarts === 1 && alive(p.data.pid);
    }, 30_000, 'the killed replica replaced');

    // Scale down to 1: two process groups end (the OS agrees); up to 2 again.
    await apply('web', { replicas: 1, health: { tcp: true }, restart: { backoffMs: 200 } });
    const before = (await running('web')).map((p) => p.data.pid);
    await until(async () => (await procs('web')).length === 1 && before.filter((pid) => group(pid).length > 0).length === 1, 30_000, 'scaled to 1');
    await apply('web', { replicas: 2, health: { tcp: true }, restart: { backoffMs: 200 } });
    await until(async () => (await running('web')).length === 2, 30_000, 'scaled to 2');

    // Too big for any machine: one pending assignment, with its reason; placed once n3 (16 cpu) joins.
    await apply('big', { replicas: 1, resources: { cpu: 8, memoryMb: 64 } });
    const reason = await until(async () => {
      const d = await os0(['describe', 'service', 'big', '-n', 'demo']);
      return /Pending:\n {2}task big-0-\S+: 0 of 3 machines fit: 1 cordoned; cpu exhausted on 2 /.test(d.stdout) && d.stdout;
    }, 20_000, 'big pending with its reason');
    expect(reason).toContain('8 wanted');
    const as = JSON.parse((await os0(['get', 'assignment', '-n', 'demo', '-l', 'service=big', '-o', 'json'])).stdout) as unknown[];
    expect(as).toHaveLength(1);
    await join(s, 'n3', path.join(root, 'n3'), '25100-25149', '16');
    const big = (await until(async () => (await running('big'))[0], 30_000, 'big running')) as Proc;
    expect(big.data.machine).toBe('n3');

    // Delete: no process of either service is left (the OS is asked), nor any resource.
    const pids = [...(await running('web')), ...(await running('big'))].map((p) => p.data.pid);
    for (const svc of ['web', 'big']) expect((await os0(['delete', 'service', svc, '-n', 'demo'])).status).toBe(0);
    await until(async () => pids.every((pid) => group(pid).length === 0), 30_000, 'every process group gone');
    await until(async () => (await procs('web')).length === 0 && (await procs('big')).length === 0, 30_000, 'process resources gone');
    const tasks = JSON.parse((await os0(['get', 'task', '-n', 'demo', '-o', 'json'])).stdout) as unknown[];
    expect(tasks).toEqual([]);
  }, 180_000);
});
