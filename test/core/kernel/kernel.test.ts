/**
 * The kernel's zero-procs in process, with the real embedded bus, a real core and real processes:
 * each "machine" is the real process device (runtime/agent/devices/process) behind a small loop
 * that reads its command stream and publishes its events, standing in for the node agent.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../../../core/auth/permission.ts';
import { commandStream, EVENTS, type Bus } from '../../../core/bus/bus.ts';
import { EmbeddedBus } from '../../../core/bus/embedded/index.ts';
import { Kernel } from '../../../core/kernel/index.ts';
import type { ProcessData, TaskObserved } from '../../../core/kernel/shapes.ts';
import type { Resource } from '../../../core/resource.ts';
import { System } from '../../../core/system.ts';
import { LocalProcesses } from '../../../runtime/agent/devices/process/index.ts';
import { removeDir, scratchDir } from '../helpers.ts';

const SECRET = 'pa55-w0rd-' + Math.random().toString(36).slice(2);
const SERVER = "require('net').createServer(s=>{s.on('error',()=>{});s.end('hi')}).listen(+process.env.PORT,'127.0.0.1')";

interface FakeNode {
  name: string;
  dev: LocalProcesses;
  stop: () => Promise<void>;
}

async function node(bus: Bus, dir: string, name: string, ports: [number, number]): Promise<FakeNode> {
  const dev = await LocalProcesses.open({ dataDir: path.join(dir, name), ports, name: `kt-${name}-${process.pid}`, graceMs: 2000, emit: (e) => void bus.publish(EVENTS, { ...e, machine: name }).catch(() => {}) });
  const consumer = await bus.consumer(commandStream(name), `agent-${name}`);
  const abort = new AbortController();
  let running = true;
  const loop = (async () => {
    while (running) {
      const msgs = await consumer.fetch({ max: 50, waitMs: 200, signal: abort.signal }).catch(() => []);
      for (const m of msgs) {
        await dev.handle(m.data as never);
        await consumer.ack(m.seq);
      }
    }
  })();
  return {
    name,
    dev,
    stop: async () => {
      running = false;
      abort.abort();
      await loop;
      for (const p of dev.snapshot().processes) await dev.handle({ id: `cleanup-${p.task}`, type: 'process.stop', task: p.task, graceMs: 500 });
      await dev.close();
    },
  };
}

const alive = (pid: number): boolean => fs.existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));

async function until<T>(what: string, f: () => T | undefined | null | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('kernel zero-procs, in process', () => {
  let dir: string;
  let sys: System;
  let bus: Bus;
  let kernel: Kernel;
  const nodes: FakeNode[] = [];
  const submit = (cmd: unknown) => sys.core.submit(cmd, { actor: SYSTEM_ACTOR });
  const machine = async (name: string, cpu: number) => {
    await submit({ op: 'apply', resource: { type: 'machine', namespace: 'system', name, data: {} } });
    await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name, data: { capacity: { cpu, memoryMb: 4096 }, ports: [0, 0], health: 'up' } } });
  };
  const procs = (svc: string): ProcessData[] => sys.core.query({ type: 'process', namespace: 'demo', tags: { service: svc } }).map((r) => r.data as ProcessData);
  const running = (svc: string) => procs(svc).filter((p) => p.state === 'running' && p.pid !== null && alive(p.pid));
  const svcObs = (name: string) => sys.core.get('service/observed', name, 'demo')?.data as { ready: number; state: string; reason?: string } | undefined;
  const service = (name: string, data: Record<string, unknown>) => submit({ op: 'apply', resource: { type: 'service', namespace: 'demo', name, data: { command: [process.execPath, '-e', SERVER], ...data } } });

  beforeAll(async () => {
    dir = scratchDir('kernel');
    sys = await System.open({ dir: path.join(dir, 'core'), worker: false });
    bus = await EmbeddedBus.open({ dir: path.join(dir, 'bus') });
    await submit({ op: 'create', resource: { type: 'namespace', name: 'demo', data: {} } });
    nodes.push(await node(bus, dir, 'n1', [23100, 23149]), await node(bus, dir, 'n2', [23150, 23199]), await node(bus, dir, 'n3', [23200, 23249]));
    // The port range the scheduler counts comes from machine/observed: give each its device's range.
    await machine('n1', 2);
    await machine('n2', 2);
    for (const [n, r] of [['n1', [23100, 23149]], ['n2', [23150, 23199]]] as const) {
      await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: n, data: { capacity: { cpu: 2, memoryMb: 4096 }, ports: r, health: 'up' } } });
    }
    kernel = new Kernel(sys, bus, {
      resolveSecret: async (ns, name, key) => {
        if (ns === 'demo' && name === 'db' && key === 'password') return SECRET;
        throw new Error(`no secret ${ns}/${name} key ${key}`);
      },
    });
    await kernel.start();
  }, 30_000);

  afterAll(async () => {
    await kernel?.stop();
    for (const n of nodes) await n.stop().catch(() => {});
    await bus?.close();
    await sys?.close();
    removeDir(dir);
  }, 30_000);

  it('runs 3 healthy replicas spread over two machines, replaces a killed one, scales, and deletes leaving no process', async () => {
    await service('web', { replicas: 3, resources: { cpu: 0.1, memoryMb: 64 }, health: { tcp: true }, loadBalancer: { port: 18080 }, restart: { backoffMs: 100 } });
    await until('3 ready replicas', () => svcObs('web')?.ready === 3);
    const live = running('web');
    expect(live).toHaveLength(3);
    expect(new Set(live.map((p) => p.machine))).toEqual(new Set(['n1', 'n2']));
    // The load balancer's backends are the healthy replicas; the DNS record names the service.
    const lb = await until('3 backends', () => {
      const r = sys.core.get('load-balancer', 'web', 'demo');
      return (r?.data as { backends: string[] } | undefined)?.backends.length === 3 && r;
    });
    expect((lb.data as { port: number; backends: string[] }).backends.sort()).toEqual(live.map((p) => `127.0.0.1:${p.port}`).sort());
    expect((sys.core.get('dns-record', 'web', 'demo')?.data as { name: string }).name).toBe('web.demo.os0.');

    // kill -9 one replica: it is started again, and counted as a restart.
    const victim = live[0];
    process.kill(victim.pid!, 'SIGKILL');
    const back = await until('the killed replica replaced', () => procs('web').find((p) => p.task === victim.task && p.state === 'running' && p.pid !== victim.pid && alive(p.pid!)));
    expect(back.restarts).toBe(1);
    await until('3 ready again', () => svcObs('web')?.ready === 3);

    // Scale up, then down.
    await service('web', { replicas: 5, resources: { cpu: 0.1, memoryMb: 64 }, health: { tcp: true }, loadBalancer: { port: 18080 }, restart: { backoffMs: 100 } });
    await until('5 ready', () => svcObs('web')?.ready === 5 && running('web').length === 5);
    const before = running('web').map((p) => p.pid!);
    await service('web', { replicas: 1, resources: { cpu: 0.1, memoryMb: 64 }, health: { tcp: true }, loadBalancer: { port: 18080 }, restart: { backoffMs: 100 } });
    await until('1 left', () => running('web').length === 1 && before.filter(alive).length === 1);
    await until('stopped processes forgotten', () => procs('web').length === 1);

    // Delete: every process ends (checked in /proc), and everything the service owned is gone.
    const last = running('web').map((p) => p.pid!);
    await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: 'web' } });
    await until('no process left', () => last.every((pid) => !alive(pid)) && procs('web').length === 0);
    for (const t of ['task', 'assignment-request', 'assignment', 'load-balancer', 'dns-record']) expect(sys.core.query({ type: t, namespace: 'demo', tags: { service: 'web' } })).toEqual([]);
    await until('sent-records forgotten', () => sys.core.query({ type: 'assignment/observed', namespace: 'demo' }).length === 0);
  }, 60_000);

  it('rolls a changed command one replica at a time, never below the ready count', async () => {
    const spec = (greeting: string) => ({ replicas: 2, env: { GREETING: greeting }, resources: { cpu: 0.1, memoryMb: 64 }, health: { tcp: true } });
    await service('roll', spec('a'));
    await until('2 ready', () => svcObs('roll')?.ready === 2);
    const old = running('roll').map((p) => p.pid!);
    let minReady = Infinity;
    await service('roll', spec('b'));
    await until('rolled over', () => {
      const ready = sys.core.query({ type: 'task/observed', namespace: 'demo' }).filter((r) => r.tags.service === 'roll' && (r.data as TaskObserved).state === 'healthy').length;
      minReady = Math.min(minReady, ready);
      return old.every((p) => !alive(p)) && running('roll').length === 2 && svcObs('roll')?.ready === 2 && svcObs('roll')?.state === 'running';
    });
    expect(minReady).toBeGreaterThanOrEqual(2);
    await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: 'roll' } });
    await until('roll gone', () => procs('roll').length === 0);
  }, 60_000);

  it('holds a service until the one it depends on is healthy', async () => {
    const slow = `setTimeout(()=>{${SERVER}},1500)`;
    await submit({ op: 'apply', resource: { type: 'service', namespace: 'demo', name: 'db', data: { command: [process.execPath, '-e', slow], replicas: 1, resources: { cpu: 0.1, memoryMb: 64 }, health: { tcp: true } } } });
    await service('api', { replicas: 1, resources: { cpu: 0.1, memoryMb: 64 }, dependsOn: [{ service: 'db', state: 'healthy' }] });
    await until('db running, not healthy', () => running('db').length === 1);
    expect(sys.core.query({ type: 'task', namespace: 'demo', tags: { service: 'api' } })).toEqual([]);
    expect(svcObs('api')?.reason).toMatch(/waiting for service db to be healthy/);
    await until('api running after db is healthy', () => running('api').length === 1);
    const dbObs = sys.core.query({ type: 'task/observed', namespace: 'demo' }).find((r) => r.tags.service === 'db');
    expect((dbObs?.data as TaskObserved).state).toBe('healthy');
    for (const s of ['api', 'db']) await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: s } });
    await until('gone', () => procs('api').length === 0 && procs('db').length === 0);
  }, 60_000);

  it('keeps a request too big for any machine pending with its reason, then places it when a big machine joins', async () => {
    await service('big', { replicas: 1, resources: { cpu: 8, memoryMb: 64 } });
    const a = await until('pending assignment', () => {
      const r = sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'big' } })[0] as Resource | undefined;
      return (r?.data as { state: string } | undefined)?.state === 'pending' && r;
    });
    expect((a.data as { reason: string }).reason).toMatch(/^0 of 2 machines fit: cpu exhausted on 2 \(.*; 8 wanted\)$/);
    expect(sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'big' } })).toHaveLength(1);
    await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: 'n3', data: { capacity: { cpu: 16, memoryMb: 8192 }, ports: [23200, 23249], health: 'up' } } });
    const p = await until('big running on n3', () => running('big')[0]);
    expect(p.machine).toBe('n3');
    await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: 'big' } });
    await until('big gone', () => procs('big').length === 0);
  }, 60_000);

  it("moves a down machine's replicas elsewhere", async () => {
    await service('mover', { replicas: 2, resources: { cpu: 0.1, memoryMb: 64 } });
    const two = await until('2 running', () => running('mover').length === 2 && running('mover'));
    const onN2 = two.filter((p) => p.machine === 'n2').map((p) => p.task);
    expect(onN2.length).toBeGreaterThan(0);
    // n2 stops heartbeating: machines.ts marks it down.
    const obs = sys.core.get('machine/observed', 'n2', 'system')!;
    await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: 'n2', data: { ...(obs.data as object), health: 'down' } } });
    await until('moved off n2', () => {
      const r = running('mover');
      return r.length === 2 && r.every((p) => p.machine !== 'n2') && r;
    });
    for (const t of onN2) expect((sys.core.get('assignment', t, 'demo')?.data as { from?: string; generation: number }).from).toBe('n2');
    await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name: 'n2', data: { ...(obs.data as object), health: 'up' } } });
    await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: 'mover' } });
    await until('mover gone', () => procs('mover').length === 0);
  }, 60_000);

  it('hands a secret to a process as env, and no file of the core holds its value', async () => {
    const out = path.join(dir, 'secret.out');
    const prog = `require('fs').writeFileSync(${JSON.stringify(out)}, process.env.DB_PASSWORD);${SERVER}`;
    await submit({ op: 'apply', resource: { type: 'service', namespace: 'demo', name: 'sec', data: { command: [process.execPath, '-e', prog], env: { DB_PASSWORD: { secret: 'db', key: 'password' } }, resources: { cpu: 0.1, memoryMb: 64 } } } });
    await until('the program wrote it', () => fs.existsSync(out) && fs.readFileSync(out, 'utf8') === SECRET);
    const hits: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const f = path.join(d, e.name);
        if (e.isDirectory()) walk(f);
        else if (fs.readFileSync(f).includes(SECRET)) hits.push(f);
      }
    };
    walk(path.join(dir, 'core'));
    expect(hits).toEqual([]);
    await submit({ op: 'delete', resource: { type: 'service', namespace: 'demo', name: 'sec' } });
    await until('sec gone', () => procs('sec').length === 0);
  }, 60_000);
});
