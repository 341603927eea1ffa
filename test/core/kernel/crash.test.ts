/**
 * kill -9 of the process running the kernel in the middle of a rolling update: a new one on the
 * same data directory converges to the new version, with exactly one process per replica (the
 * OS is asked: every process carrying the machines' OS0_AGENT in its environment) and none left
 * once the service is deleted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDir, scratchDir } from '../helpers.ts';

const NODE = path.resolve(import.meta.dirname, '../../../node_modules/.bin/node');
const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'kernel-proc.ts');
const dir = scratchDir('kernel-crash');
const kids: ChildProcess[] = [];

interface Status {
  service: { state: string; ready: number } | null;
  tasks: { name: string; observed: { state: string } | null }[];
  processes: { task: string; pid: number; state: string }[];
}
const status = (): Status | null => {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8')) as Status;
  } catch {
    return null;
  }
};

/** Live processes whose environment names one of the fixture's machines (OS0_AGENT=kc-…). */
function osProcesses(): { pid: number; task: string }[] {
  const out: { pid: number; task: string }[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (/^State:\s+Z/m.test(fs.readFileSync(`/proc/${p}/status`, 'utf8'))) continue;
      const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      if (!env.some((e) => e === 'OS0_AGENT=kc-n1' || e === 'OS0_AGENT=kc-n2')) continue;
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.includes('createServer') || cmd.split('\0')[0] === '/bin/sh') continue; // the program itself, not its launcher shell
      out.push({ pid: Number(p), task: env.filter((e) => e.startsWith('OS0_TASK=')).map((e) => e.slice(9)).join(','), cmd: cmd.split('\0')[0] } as { pid: number; task: string });
    } catch {}
  }
  return out;
}

function start(): ChildProcess {
  const c = spawn(NODE, [FIXTURE, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
  kids.push(c);
  return c;
}

async function until<T>(what: string, f: () => T | undefined | null | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(osProcesses())} ${JSON.stringify(status())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

afterAll(() => {
  for (const k of kids) if (k.exitCode === null) k.kill('SIGKILL');
  for (const p of osProcesses()) process.kill(p.pid, 'SIGKILL');
  if (!process.env.KEEP) removeDir(dir);
});

describe('kernel killed mid-rollout', () => {
  it('converges after a restart with no duplicate or orphaned process', async () => {
    let k = start();
    await until('v1 running', () => status()?.service?.ready === 3 && status()?.service?.state === 'running');
    const v1 = status()!.tasks.map((t) => t.name);
    k.kill('SIGUSR1');
    // Mid-rollout: a new-version task exists next to all the old ones.
    await until('rollout under way', () => {
      const s = status();
      return s && s.tasks.length > 3 && v1.every((n) => s.tasks.some((t) => t.name === n)) && s.tasks.some((t) => !v1.includes(t.name) && (t.observed?.state === 'running' || t.observed?.state === 'healthy'));
    });
    k.kill('SIGKILL');
    await new Promise((r) => k.once('exit', r));
    fs.rmSync(path.join(dir, 'status.json'), { force: true });
    k = start();
    const s = await until('v2 running everywhere', () => {
      const s = status();
      return s && s.service?.state === 'running' && s.service.ready === 3 && s.tasks.length === 3 && s.tasks.every((t) => !v1.includes(t.name)) && s;
    });
    // The OS agrees: one program per task, each the one the tree names.
    const os = await until('the OS shows exactly the three', () => {
      const o = osProcesses();
      return o.length === 3 && o;
    });
    expect(new Set(os.map((p) => p.task.replace(/^demo_/, '')))).toEqual(new Set(s.tasks.map((t) => t.name)));
    k.kill('SIGUSR2');
    const code = await new Promise((r) => k.once('exit', r));
    expect(code).toBe(0);
    expect(osProcesses()).toEqual([]);
  }, 90_000);
});
