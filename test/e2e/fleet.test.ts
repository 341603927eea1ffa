/**
 * The fleet end to end, over each bus: one `os0 up` (its host agent `local`), two agents joined
 * with `os0 node join` as real child processes, node-commands published on the bus as the
 * kernel's executor would, and the OS asked about pids.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RemoteBus, NatsBus, commandStream, EVENTS, type Bus } from '../../core/bus/index.ts';
import type { NodeEvent } from '../../core/bus/messages.ts';
import { natsServer } from '../helpers/nats.ts';
import { cliFor, http, lines, spawnCli, startOs0, tempDir, until, type Os0 } from '../helpers/os0.ts';

const HEARTBEAT_MS = 300;
const pidsToKill = new Set<number>();
afterAll(() => {
  for (const pid of pidsToKill) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {}
  }
});

/** Pids of the OS's processes in process group `pgid` running exactly `argv`. */
function inGroup(pgid: number, argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
        return pgrp === pgid && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === want;
      } catch {
        return false;
      }
    })
    .map(Number);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

interface Joined {
  name: string;
  data: string;
  proc: ChildProcess;
}

async function join(s: Os0, name: string, token: string, data: string, busArgs: string[], ports: string): Promise<Joined> {
  const proc = spawnCli(['node', 'join', '--url', s.url, '--token', token, '--name', name, '--data', data, '--ports', ports, '--heartbeat-ms', String(HEARTBEAT_MS), '--cpu', '1.5', '--memory-mb', '512', '--labels', 'zone=a,disk=ssd', ...busArgs]);
  let err = '';
  proc.stderr!.on('data', (b) => (err += b));
  const out = lines(proc);
  try {
    const [line] = await out.waitFor(1, 40_000);
    expect(line).toContain('ready');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${err}`);
  }
  return { name, data, proc };
}

function killed(p: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (p.exitCode !== null || p.signalCode !== null) return r();
    p.once('exit', () => r());
    p.kill('SIGKILL');
  });
}

/** Reads `events` from its start with a fresh durable consumer until `pred` matches one. */
async function waitEvent(bus: Bus, durable: string, pred: (e: NodeEvent) => boolean, timeoutMs = 30_000): Promise<NodeEvent> {
  const c = await bus.consumer(EVENTS, durable, { start: 'first' });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const m of await c.fetch({ max: 500, waitMs: 500 })) {
      await c.ack(m.seq);
      if (pred(m.data as NodeEvent)) return m.data as NodeEvent;
    }
  }
  throw new Error('no such event within the time');
}

for (const kind of ['embedded', 'nats'] as const) {
  // Real processes on a shared machine: generous time limits (they bound a wait, they assert nothing).
  describe(`fleet over the ${kind} bus`, { timeout: 120_000 }, () => {
    let s: Os0;
    let bus: Bus;
    let busArgs: string[] = [];
    const agents: Joined[] = [];
    let consumers = 0;
    const durable = () => `test${++consumers}`;

    it('os0 up is ready with the host as a machine with observed capacity', async () => {
      if (kind === 'nats') {
        const nats = await natsServer();
        busArgs = ['--bus', nats.url];
      }
      s = await startOs0({ args: [...busArgs] });
      bus = kind === 'nats' ? await NatsBus.open({ servers: busArgs[1] }) : new RemoteBus({ url: `${s.url}/v1/bus`, token: s.token });
      const os0 = cliFor(s);
      const r = await os0(['get', 'machine', 'local', '-n', 'system', '--observed', '-o', 'json']);
      expect(r.status, r.stderr).toBe(0);
      const obs = JSON.parse(r.stdout);
      expect(obs.data.capacity.cpu).toBeGreaterThan(0);
      expect(obs.data.capacity.memoryMb).toBeGreaterThan(0);
      expect(obs.data.health).toBe('up');
    });

    it('two agents join; both machines are listed with observed capacity and a fresh heartbeat', async () => {
      const os0 = cliFor(s);
      const root = tempDir('fleet-');
      for (const [i, name] of ['n1', 'n2'].entries()) {
        const t = await os0(['node', 'token', name]);
        expect(t.status, t.stderr).toBe(0);
        agents.push(await join(s, name, t.stdout.trim(), path.join(root, name), busArgs, `${22000 + i * 100}-${22000 + i * 100 + 99}`));
      }
      const list = await os0(['get', 'machine', '-n', 'system', '-o', 'json']);
      const names = (JSON.parse(list.stdout) as { name: string; data: { cpu: number; labels: Record<string, string> } }[]).map((m) => m.name).sort();
      expect(names).toEqual(['local', 'n1', 'n2']);
      for (const name of ['n1', 'n2']) {
        const m = JSON.parse((await os0(['get', 'machine', name, '-n', 'system', '-o', 'json'])).stdout);
        expect(m.data).toMatchObject({ cpu: 1.5, memoryMb: 512, labels: { zone: 'a', disk: 'ssd' } });
        // Fresh: heartbeats keep coming, so heartbeatAt moves on.
        const first = JSON.parse((await os0(['get', 'machine', name, '-n', 'system', '--observed', '-o', 'json'])).stdout).data;
        expect(first).toMatchObject({ capacity: { cpu: 1.5, memoryMb: 512 }, health: 'up', heartbeatMs: HEARTBEAT_MS });
        await until(async () => {
          const now = JSON.parse((await os0(['get', 'machine', name, '-n', 'system', '--observed', '-o', 'json'])).stdout).data;
          return Date.parse(now.heartbeatAt) > Date.parse(first.heartbeatAt) && now.usage && now.usage.memoryMb > 0;
        }, 30_000, `a new heartbeat from ${name}`);
      }
    });

    it('a node-command on the bus starts a real process and the started event arrives', async () => {
      const cmd = { id: `c-start-${kind}`, type: 'process.start', task: 'sleeper', argv: ['sleep', '300'] };
      await bus.publish(commandStream('n1'), cmd, { id: cmd.id });
      const started = (await waitEvent(bus, durable(), (e) => e.node === 'n1' && e.commandId === cmd.id)) as NodeEvent & { pid: number; port: number };
      expect(started.type).toBe('started');
      expect(started.device).toBe('process');
      pidsToKill.add(started.pid);
      expect(alive(started.pid)).toBe(true);
      expect(started.port).toBeGreaterThanOrEqual(22000);
      expect(started.port).toBeLessThanOrEqual(22099);
      // The OS says its process group (led by the device's launcher, pid) runs `sleep 300`.
      await until(() => inGroup(started.pid, ['sleep', '300']).length === 1, 5000, 'sleep 300 in the group');
      // The same command again (a second publish, de-duplicated or not) is not a second process.
      await bus.publish(commandStream('n1'), cmd, { id: cmd.id });
      const unknown = { id: `c-bad-${kind}`, type: 'teleport.now' };
      await bus.publish(commandStream('n1'), unknown, { id: unknown.id });
      const failed = (await waitEvent(bus, durable(), (e) => e.node === 'n1' && e.commandId === unknown.id)) as NodeEvent & { error: string };
      expect(failed).toMatchObject({ type: 'failed', device: 'agent', code: 'invalid' });
      expect(failed.error).toContain('teleport');
    });

    it('an agent killed with SIGKILL and started again adopts the same pid', async () => {
      const a = agents[0];
      const started = (await waitEvent(bus, durable(), (e) => e.node === 'n1' && e.commandId === `c-start-${kind}`)) as NodeEvent & { pid: number };
      await killed(a.proc);
      expect(alive(started.pid)).toBe(true);
      const token = (await cliFor(s)(['node', 'token', 'n1'])).stdout.trim();
      const again = await join(s, 'n1', token, a.data, busArgs, '22000-22099');
      agents[0] = again;
      const adopted = (await waitEvent(bus, durable(), (e) => e.node === 'n1' && e.type === 'adopted' && (e as { task?: string }).task === 'sleeper')) as NodeEvent & { pid: number };
      expect(adopted.pid).toBe(started.pid);
      expect(alive(started.pid)).toBe(true);
      // One sleeper only, in the same group: nothing was started again.
      expect(inGroup(started.pid, ['sleep', '300'])).toHaveLength(1);
      // It stops on command, and the pid is gone.
      await bus.publish(commandStream('n1'), { id: `c-stop-${kind}`, type: 'process.stop', task: 'sleeper', graceMs: 500 }, { id: `c-stop-${kind}` });
      const stopped = await waitEvent(bus, durable(), (e) => e.node === 'n1' && e.commandId === `c-stop-${kind}`);
      expect(stopped.type).toBe('stopped');
      await until(() => !alive(started.pid), 5000, 'the sleeper to be gone');
    });

    it('an agent killed with SIGKILL is marked down after three missed heartbeats', async () => {
      const b = agents[1];
      await killed(b.proc);
      const os0 = cliFor(s);
      const obs = await until(async () => {
        const d = JSON.parse((await os0(['get', 'machine', 'n2', '-n', 'system', '--observed', '-o', 'json'])).stdout).data;
        return d.health === 'down' ? d : null;
      }, 30_000, 'n2 down');
      expect(obs.reason).toContain('3 intervals');
      // The others are still up.
      const n1 = JSON.parse((await os0(['get', 'machine', 'n1', '-n', 'system', '--observed', '-o', 'json'])).stdout).data;
      expect(n1.health).toBe('up');
    });

    if (kind === 'embedded') {
      it("a node token cannot use another node's stream nor write what is not its own", async () => {
        const os0 = cliFor(s);
        const token = (await os0(['node', 'token', 'n3'])).stdout.trim();
        const asNode = new RemoteBus({ url: `${s.url}/v1/bus`, token, retryMsMax: 200 });
        await expect(asNode.consumer(commandStream('n1'), 'steal')).rejects.toThrow(/may not consume cmd\.n1/);
        await expect(asNode.publish(commandStream('n1'), { id: 'x', type: 'process.stop', task: 'sleeper' })).rejects.toThrow(/may not publish/);
        const own = await asNode.consumer(commandStream('n3'), 'agent');
        expect(await own.fetch({ waitMs: 0 })).toEqual([]);
        await asNode.publish(EVENTS, { device: 'agent', type: 'leaving', at: Date.now(), node: 'n3' });
        await asNode.close();
        // The API: no desired state, no other machine's observed state, its own is fine.
        const cfg = await http(s, 'POST', '/v1/commands', { op: 'create', resource: { type: 'configuration', namespace: 'system', name: 'evil', data: {} } }, token);
        expect(cfg.status).toBe(403);
        expect(JSON.stringify(cfg.body)).toContain('node:n3 may write only');
        const other = await http(s, 'POST', '/v1/commands', { op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: 'n1', data: { health: 'down' } } }, token);
        expect(other.status).toBe(403);
        const mine = await http(s, 'POST', '/v1/commands', { op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: 'n3', data: { health: 'up' } } }, token);
        expect(mine.status, JSON.stringify(mine.body)).toBe(200);
        const read = await http(s, 'GET', '/v1/resources?type=configuration', undefined, token);
        expect(read.status).toBe(403);
        // A user cannot mint one, and cannot name node:* in a token.
        const minted = await http(s, 'POST', '/v1/nodes/n4/token', undefined, token);
        expect(minted.status).toBe(403);
        const user = await http(s, 'POST', '/v1/tokens', { actor: 'node:n1' });
        expect(user.status).toBe(400);
      });
    }

    it('the agents stop cleanly on SIGTERM', async () => {
      const a = agents[0];
      const exit = new Promise<number | null>((r) => a.proc.once('exit', (code) => r(code)));
      a.proc.kill('SIGTERM');
      expect(await exit).toBe(0);
      await bus.close();
    });
  });
}
