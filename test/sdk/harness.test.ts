/**
 * os0/sdk/testing: a driver and capabilities run against a real in-process core and a
 * recording node; a driver's runs are counted; invocation records are kept by a retention.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { harness, type Harness } from '../../sdk/testing.ts';

const APP = path.join(import.meta.dirname, 'apps', 'records');

describe('the harness', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness({ app: APP, machines: ['m1', 'm2'], retention: { count: 3 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('runs a driver on each change: it sends to the node and records observed state and cost; deleting undoes it', async () => {
    await h.apply({ type: 'namespace', name: 'demo' });
    await h.apply({ type: 'record', namespace: 'demo', name: 'www', data: { address: '10.0.0.1' } });
    expect(h.sent).toEqual([
      { machine: 'm1', command: { type: 'dns.set', name: 'www', address: '10.0.0.1' } },
      { machine: 'm2', command: { type: 'dns.set', name: 'www', address: '10.0.0.1' } },
    ]);
    expect(h.observed('record', 'www', 'demo')).toEqual({ address: '10.0.0.1', machines: ['m1', 'm2'], cost: { perHour: 0.01 } });
    // Unchanged: nothing sent again.
    await h.apply({ type: 'record', namespace: 'demo', name: 'www', data: { address: '10.0.0.1' }, tags: { x: 'y' } });
    expect(h.sent).toHaveLength(2);
    await h.delete('record', 'www', 'demo');
    expect(h.sent.slice(2).map((s) => s.command.type)).toEqual(['dns.remove', 'dns.remove']);
    expect(h.get('record/observed', 'www', 'demo')).toBeNull();
    const runs = h.runs()['records.records.record'];
    expect(runs.runs).toBeGreaterThanOrEqual(3);
    expect(runs.failures).toBe(0);
  });

  it('a capability sends only for the devices its manifest names, and lists the machines', async () => {
    // 'dns' only: a capability sending to another device is refused by the manifest.
    await expect(h.invoke('send', { machine: 'm1', command: { type: 'proxy.route' } })).rejects.toThrow(/may not send a "proxy.route" command: its os0.json permissions.nodes.devices names only dns/);
    expect(await h.invoke('send', { machine: 'm2', command: { type: 'dns.flush' } })).toEqual({ stream: 'cmd.m2', seq: h.sent.length });
    expect(await h.invoke('machines')).toEqual(['m1', 'm2']);
  });

  it('keeps only the retained invocation records (count 3), both resources of each', async () => {
    const names: string[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await h.invokeResult('machines');
      expect(r.status).toBe('succeeded');
      names.push(r.name);
    }
    const left = h.sys.core.query({ type: 'invocation', namespace: 'system' }).map((r) => r.name).sort();
    expect(left).toEqual(names.slice(-3).sort());
    const observed = h.sys.core.query({ type: 'invocation/observed', namespace: 'system' }).map((r) => r.name).sort();
    expect(observed).toEqual(names.slice(-3).sort());
  });
});

describe('a driver resyncs', () => {
  it('reconciles every resource of its types again periodically: a removed observed state comes back', async () => {
    const h = await harness({ app: APP, machines: ['m1'], resyncMs: 100 });
    try {
      await h.apply({ type: 'namespace', name: 'demo' });
      await h.apply({ type: 'record', namespace: 'demo', name: 'api', data: { address: '10.0.0.9' } });
      expect(h.sent).toHaveLength(1);
      // Drift: the observed state goes away behind the driver's back.
      await h.sys.submit({ op: 'delete', resource: { type: 'record/observed', namespace: 'demo', name: 'api' } }, { name: 'system', groups: [] });
      expect(h.observed('record', 'api', 'demo')).toBeNull();
      const deadline = Date.now() + 10_000;
      while (h.observed('record', 'api', 'demo') === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(h.observed('record', 'api', 'demo')).toEqual({ address: '10.0.0.9', machines: ['m1'], cost: { perHour: 0.01 } });
      expect(h.sent.length).toBeGreaterThanOrEqual(2); // it acted again: it saw no observed state
    } finally {
      await h.close();
    }
  });
});
