/**
 * ctx.nodes on the real embedded busØ and a real sandbox: a command for a device the manifest
 * names lands on stream cmd.MACHINE; any other device, a bad machine name, or no bus at all is a
 * one-line error and nothing is published. And the host-call table is what the sandbox's ctx has.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_GROUP, type Actor } from '../../core/auth/permission.ts';
import { EmbeddedBus } from '../../core/bus/index.ts';
import { System } from '../../core/system.ts';
import { busNodes, Invoker, loadAppFolder, type LoadedApp } from '../../runtime/invoke/index.ts';
import { HOST_CALLS, HOST_METHODS, checkHostCall, type HostMethod } from '../../runtime/sandbox/host-calls.ts';
import { Sandbox, compile } from '../../runtime/sandbox/index.ts';
import type { Ctx } from '../../sdk/index.ts';
import { tempDir } from '../helpers/tmp.ts';
import * as fs from 'node:fs';

const root = tempDir('sdk-nodes-');
const admin: Actor = { name: 'admin', groups: [ADMIN_GROUP] };

// At type level: Ctx has exactly one method per table entry (and log).
type Methods<C> = { [G in keyof C & string]: C[G] extends (...a: never[]) => unknown ? never : `${G}.${keyof C[G] & string}` }[keyof C & string];
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const ctxMatchesTable: Same<Methods<Ctx>, HostMethod> = true;

describe('ctx.nodes on busØ', () => {
  let sys: System;
  let sandbox: Sandbox;
  let bus: EmbeddedBus;
  let invoker: Invoker;
  let app: LoadedApp;

  beforeAll(async () => {
    sys = await System.open({ dir: path.join(root, 'core') });
    sandbox = new Sandbox({ processes: 1 });
    bus = await EmbeddedBus.open({ dir: path.join(root, 'bus') });
    invoker = new Invoker(sys, sandbox, { nodes: busNodes(bus, () => ['m1']) });
    app = await loadAppFolder(path.join(import.meta.dirname, 'apps', 'records'), { cacheDir: path.join(root, 'cache') });
    await sys.submit({ op: 'apply', resource: { type: 'type', name: 'record', data: { observed: true } } }, admin);
    invoker.add(app);
  });
  afterAll(async () => {
    invoker?.remove('records');
    await sandbox?.close();
    await bus?.close();
    await sys?.close();
  });

  it('publishes a command for a named device to cmd.MACHINE, durably', async () => {
    const r = await invoker.invoke(admin, 'records', 'send', { machine: 'm1', command: { type: 'dns.set', name: 'a', address: '10.1.1.1' } });
    expect(r.status).toBe('succeeded');
    expect(r.output).toEqual({ stream: 'cmd.m1', seq: 1 });
    const c = await bus.consumer('cmd.m1', 'test');
    const msgs = await c.fetch({ max: 10 });
    expect(msgs.map((m) => m.data)).toEqual([{ type: 'dns.set', name: 'a', address: '10.1.1.1' }]);
    expect((await invoker.invoke(admin, 'records', 'machines', null)).output).toEqual(['m1']);
  });

  it('refuses another device, a device name used as a prefix only, and a machine name that cannot name a stream; publishes nothing', async () => {
    for (const [command, why] of [
      [{ type: 'proxy.route' }, /may not send a "proxy.route" command: its os0.json permissions.nodes.devices names only dns/],
      [{ type: 'dnsx.set' }, /may not send a "dnsx.set" command/],
      [{ name: 'no type' }, /needs a command \{type: "DEVICE.ACTION"/],
    ] as const) {
      const r = await invoker.invoke(admin, 'records', 'send', { machine: 'm1', command });
      expect(r.status).toBe('failed');
      expect(r.error!.message).toMatch(why);
    }
    const r = await invoker.invoke(admin, 'records', 'send', { machine: 'bad/name', command: { type: 'dns.set' } });
    expect(r.error!.message).toMatch(/cannot name a bus stream/);
    expect((await bus.info('cmd.m1')).last).toBe(1);
  });

  it('without a bus: a one-line error that says what to do', async () => {
    const bare = new Invoker(sys, sandbox);
    const host = bare.host(app, { name: 'app:records', groups: [] });
    await expect(host.call('nodes.send', ['m1', { type: 'dns.set' }])).rejects.toThrow(/^ctx.nodes.send: this instance has no bus to send node-commands on; start it with a bus \(os0 up\)$/);
    await expect(host.call('nodes.list', [])).rejects.toThrow(/no bus/);
  });

  it('an app whose manifest names no device may not use ctx.nodes', async () => {
    const other = { ...app, manifest: { ...app.manifest, name: 'plain', permissions: { resources: [] } } } as LoadedApp;
    const host = invoker.host(other, { name: 'app:plain', groups: [] });
    await expect(host.call('nodes.send', ['m1', { type: 'dns.set' }])).rejects.toThrow(/names no device/);
    await expect(host.call('nodes.list', [])).rejects.toThrow(/names no device/);
  });
});

describe('the host-call table', () => {
  it('is what ctx has inside the sandbox, and what both sides check', async () => {
    expect(ctxMatchesTable).toBe(true);
    const dir = path.join(root, 'shape');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'shape.ts'),
      `export default async (_: unknown, ctx: any) => {
        const out: string[] = [];
        for (const g of Object.keys(ctx)) if (typeof ctx[g] === 'object') for (const m of Object.keys(ctx[g])) out.push(g + '.' + m);
        const errors: string[] = [];
        for (const f of [() => ctx.nodes.send('m1'), () => ctx.nodes.send('', {type: 'x'}), () => ctx.nodes.list(1), () => ctx.resources.query({bogus: 1})]) {
          try { await f(); errors.push('no error'); } catch (e) { errors.push((e as Error).message); }
        }
        return { out, errors };
      };`,
    );
    const program = await compile(path.join(dir, 'shape.ts'), { rootDir: dir });
    const sandbox = new Sandbox({ processes: 1 });
    const calls: string[] = [];
    try {
      const r = await sandbox.run(program, null, { call: async (m) => void calls.push(m) });
      const { out, errors } = r.output as { out: string[]; errors: string[] };
      expect(out.sort()).toEqual([...HOST_METHODS].sort());
      expect(errors).toEqual([
        'ctx.nodes.send(machine, command) takes a machine name and a command object {type, ...}',
        'ctx.nodes.send(machine, command) takes a machine name and a command object {type, ...}',
        'ctx.nodes.list() takes no arguments',
        'ctx.resources.query: unknown field "bogus"',
      ]);
      expect(calls).toEqual([]); // refused inside the isolate: nothing reached the host
    } finally {
      await sandbox.close();
    }
    // The host checks the same kinds.
    expect(checkHostCall('nodes.send', ['m1'])).toBe('nodes.send(machine, command) takes a machine name and a command object {type, ...}');
    expect(checkHostCall('nodes.list', [])).toBeNull();
    expect(checkHostCall('nodes.reboot', [])).toBe('no host call "nodes.reboot"');
    expect(Object.keys(HOST_CALLS)).toEqual(HOST_METHODS);
  });
});
