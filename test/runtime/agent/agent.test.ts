/**
 * The Agent in this process, on a real embedded bus, with real processes: registration,
 * idempotent commands on redelivery, outcomes before acks, a clean stop that leaves processes
 * for the next agent.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandStream, EmbeddedBus, EVENTS } from '../../../core/bus/index.ts';
import type { NodeEvent } from '../../../core/bus/messages.ts';
import { Agent, checkAgentOptions } from '../../../runtime/agent/agent.ts';
import { tempDir } from '../../helpers/tmp.ts';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('Agent', async () => {
  const dir = tempDir('agent-');
  const bus = await EmbeddedBus.open({ dir: path.join(dir, 'bus') });
  const events = await bus.consumer(EVENTS, 'test', { start: 'first' });
  const seen: NodeEvent[] = [];
  const next = async (pred: (e: NodeEvent) => boolean): Promise<NodeEvent> => {
    const end = Date.now() + 20_000;
    for (;;) {
      const hit = seen.find(pred);
      if (hit) return hit;
      if (Date.now() > end) throw new Error(`no such event; seen: ${JSON.stringify(seen.map((e) => [e.type, e.commandId]))}`);
      for (const m of await events.fetch({ max: 100, waitMs: 200 })) {
        seen.push(m.data as NodeEvent);
        await events.ack(m.seq);
      }
    }
  };
  const opts = { name: 'a1', dataDir: path.join(dir, 'a1'), bus, ports: [23000, 23099] as [number, number], heartbeatMs: 200, dnsPort: null, capacity: { cpu: 2 } };
  let agent = new Agent(opts);
  const pids: number[] = [];
  afterAll(async () => {
    await agent.stop(1000);
    for (const p of pids) {
      try {
        process.kill(-p, 'SIGKILL');
      } catch {}
    }
    await bus.close();
  });

  it('refuses bad options with a line naming the flag', () => {
    expect(checkAgentOptions({ name: 'Big Name' })).toContain('--name');
    expect(checkAgentOptions({ name: 'ok', ports: [3000, 2000] })).toContain('--ports');
    expect(checkAgentOptions({ name: 'ok', capacity: { cpu: 0 } })).toContain('--cpu');
    expect(checkAgentOptions({ name: 'ok', labels: { 'bad key': 'v' } })).toContain('--labels');
  });

  it('registers with its capacity (given cpu, detected memory) and heartbeats with usage', async () => {
    await agent.start();
    const reg = (await next((e) => e.type === 'registered')) as NodeEvent & { capacity: { cpu: number; memoryMb: number }; ports: number[] };
    expect(reg).toMatchObject({ node: 'a1', device: 'agent', capacity: { cpu: 2 }, ports: [23000, 23099], heartbeatMs: 200 });
    expect(reg.capacity.memoryMb).toBeGreaterThan(0);
    const hb = (await next((e) => e.type === 'heartbeat')) as NodeEvent & { usage: { processes: number } };
    expect(hb.usage.processes).toBe(0);
  });

  it('a command delivered twice (two bus ids) runs once; both deliveries get the same outcome; all acked', async () => {
    const cmd = { id: 'start-1', type: 'process.start', task: 'sl', argv: ['sleep', '300'] };
    await bus.publish(commandStream('a1'), cmd, { id: 'm-1' });
    await bus.publish(commandStream('a1'), cmd, { id: 'm-2' });
    const first = (await next((e) => e.commandId === 'start-1' && e.type === 'started')) as NodeEvent & { pid: number };
    pids.push(first.pid);
    const c = await bus.consumer(commandStream('a1'), 'agent');
    const end = Date.now() + 10_000;
    while ((await c.info()).ackFloor < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect((await c.info()).ackFloor).toBe(2);
    expect(agent.snapshot().process).toMatchObject({ processes: [{ task: 'sl', pid: first.pid }] });
    // The outcome's publish is de-duplicated by its id: the events stream holds it once.
    for (const m of await events.fetch({ max: 1000, waitMs: 300 })) {
      seen.push(m.data as NodeEvent);
      await events.ack(m.seq);
    }
    expect(seen.filter((e) => e.commandId === 'start-1')).toHaveLength(1);
  });

  it('an unknown device and a message that is no command get a failed outcome from the agent', async () => {
    await bus.publish(commandStream('a1'), { id: 'x-1', type: 'gpu.burn' });
    const f = await next((e) => e.commandId === 'x-1');
    expect(f).toMatchObject({ type: 'failed', device: 'agent', code: 'invalid' });
    const { seq } = await bus.publish(commandStream('a1'), 42);
    expect(await next((e) => e.commandId === `bus-${seq}`)).toMatchObject({ type: 'failed', code: 'invalid' });
    // The dns device is off here: its commands are refused, not lost.
    await bus.publish(commandStream('a1'), { id: 'd-1', type: 'dns.set', record: { id: 'r', name: 'x.os0.', type: 'A', value: '127.0.0.1' } });
    expect(await next((e) => e.commandId === 'd-1')).toMatchObject({ type: 'failed', device: 'agent' });
  });

  it('stops cleanly (leaving), its process runs on, and the next agent adopts it', async () => {
    const pid = pids[0];
    await agent.stop();
    await next((e) => e.type === 'leaving');
    expect(alive(pid)).toBe(true);
    agent = new Agent(opts);
    await agent.start();
    const adopted = (await next((e) => e.type === 'adopted')) as NodeEvent & { pid: number };
    expect(adopted.pid).toBe(pid);
    await bus.publish(commandStream('a1'), { id: 'stop-1', type: 'process.stop', task: 'sl', graceMs: 200 });
    expect(await next((e) => e.commandId === 'stop-1')).toMatchObject({ type: 'stopped', pid });
    expect(alive(pid)).toBe(false);
  });
});
