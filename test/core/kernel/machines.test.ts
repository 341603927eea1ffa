/**
 * The machines zero-proc on a real core and a real embedded bus: events in, `machine` and
 * `machine/observed` out; down after three missed heartbeats (by the check's clock).
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EmbeddedBus, EVENTS } from '../../../core/bus/index.ts';
import { Machines } from '../../../core/kernel/machines.ts';
import { System } from '../../../core/system.ts';
import { tempDir } from '../../helpers/tmp.ts';

const until = async <T>(fn: () => T | undefined | null | false, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('machines zero-proc', async () => {
  const dir = tempDir('machines-');
  const sys = await System.open({ dir: path.join(dir, 'core') });
  const bus = await EmbeddedBus.open({ dir: path.join(dir, 'bus') });
  // The timer stays out of the way (an hour); the test calls check() with its own clock.
  const m = new Machines({ core: sys.core, bus, checkMs: 3600_000 });
  await m.start();
  afterAll(async () => {
    await m.stop();
    await bus.close();
    await sys.close();
  });
  const obs = (n: string) => sys.core.get('machine/observed', n, 'system')?.data as Record<string, any> | undefined;

  it('registered creates the machine with capacity, ports and labels, and its observed state', async () => {
    const at = Date.now();
    await bus.publish(EVENTS, { node: 'm1', device: 'agent', type: 'registered', at, capacity: { cpu: 4, memoryMb: 8192 }, ports: [20000, 20099], labels: { zone: 'a' }, heartbeatMs: 1000, hostname: 'h' });
    const o = await until(() => obs('m1'));
    expect(o).toMatchObject({ capacity: { cpu: 4, memoryMb: 8192 }, health: 'up', heartbeatMs: 1000, heartbeatAt: new Date(at).toISOString() });
    const machine = sys.core.get('machine', 'm1', 'system')!;
    expect(machine.data).toEqual({ cpu: 4, memoryMb: 8192, ports: [20000, 20099], labels: { zone: 'a' } });
    const log = await sys.core.history.read(machine.revision, 1);
    expect(log !== 'gone' && log[0].actor).toBe('system');
  });

  it('a heartbeat updates usage and heartbeatAt; an older one (a redelivery) changes nothing', async () => {
    const at = Date.now() + 1;
    await bus.publish(EVENTS, { node: 'm1', device: 'agent', type: 'heartbeat', at, capacity: { cpu: 4, memoryMb: 8192 }, usage: { cpu: 0.5, memoryMb: 100, processes: 2 }, heartbeatMs: 1000 });
    await until(() => obs('m1')?.usage?.processes === 2);
    await bus.publish(EVENTS, { node: 'm1', device: 'agent', type: 'heartbeat', at: at - 50, capacity: { cpu: 4, memoryMb: 8192 }, usage: { cpu: 9, memoryMb: 9, processes: 9 }, heartbeatMs: 1000 });
    await bus.publish(EVENTS, { node: 'm2', device: 'agent', type: 'registered', at, capacity: { cpu: 1, memoryMb: 1 }, ports: [1, 2], labels: {}, heartbeatMs: 1000, hostname: 'h' });
    await until(() => obs('m2'));
    expect(obs('m1')!.usage).toEqual({ cpu: 0.5, memoryMb: 100, processes: 2 });
  });

  it('three missed intervals mark a machine down; the next heartbeat brings it up', async () => {
    await m.check(Date.now() + 1000);
    expect(obs('m1')!.health).toBe('up');
    await m.check(Date.now() + 3500);
    expect(obs('m1')).toMatchObject({ health: 'down' });
    expect(obs('m1')!.reason).toContain('3 intervals of 1000 ms');
    await bus.publish(EVENTS, { node: 'm1', device: 'agent', type: 'heartbeat', at: Date.now(), capacity: { cpu: 4, memoryMb: 8192 }, usage: { cpu: 0, memoryMb: 1, processes: 0 }, heartbeatMs: 1000 });
    await until(() => obs('m1')?.health === 'up');
  });

  it('ignores events that are not an agent\'s, or malformed ones', async () => {
    const before = sys.core.index;
    const h0 = m.handled;
    await bus.publish(EVENTS, { node: 'm9', device: 'process', type: 'started', at: 1, task: 't', pid: 1, port: 1, already: false });
    await bus.publish(EVENTS, { node: 'Bad Name', device: 'agent', type: 'registered', at: 1, capacity: { cpu: 1, memoryMb: 1 } });
    await bus.publish(EVENTS, { node: 'm9', device: 'agent', type: 'registered', at: 1, capacity: { cpu: -1, memoryMb: 1 } });
    await bus.publish(EVENTS, 'junk');
    await until(() => m.handled >= h0 + 4);
    expect(sys.core.get('machine', 'm9', 'system')).toBeUndefined();
    expect(sys.core.index).toBe(before);
  });
});
