/** The composition root wires ctx.nodes to its busØ: a capability's command lands on cmd.MACHINE; invocation retention comes from the options. */
import * as path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ADMIN_GROUP } from '../../core/auth/permission.ts';
import { Instance } from '../../sdk/cli/instance.ts';
import { tempDir } from '../helpers/tmp.ts';

const root = tempDir('inst-nodes-');
let inst: Instance | undefined;
afterAll(async () => {
  await inst?.stop();
});

it('an instance sends an app\'s node-commands on its bus, and keeps invocations by its retention', async () => {
  inst = new Instance({ data: path.join(root, 'd'), port: null, registry: false, sandbox: { processes: 1 }, apps: [path.join(import.meta.dirname, 'apps', 'records')], invocations: { count: 2 } });
  await inst.start();
  const admin = { name: 'admin', groups: [ADMIN_GROUP] };
  for (const name of ['a', 'b', 'c']) {
    const r = await inst.invoker.invoke(admin, 'records', 'send', { machine: 'm7', command: { type: 'dns.set', name } });
    expect(r.status, JSON.stringify(r.error)).toBe('succeeded');
  }
  const msgs = await (await inst.bus.consumer('cmd.m7', 't')).fetch({ max: 10 });
  expect(msgs.map((m) => (m.data as { name: string }).name)).toEqual(['a', 'b', 'c']);
  expect(inst.sys.core.query({ type: 'invocation', namespace: 'system' })).toHaveLength(2);
  // No machine resources yet (the node agent defines them): the list is empty, not an error.
  expect((await inst.invoker.invoke(admin, 'records', 'machines', null)).output).toEqual([]);
});
