/**
 * `npm run bench -- sdk`: a driver's reconcile latency through the sandbox (from submitting a
 * change to its observed state being recorded), and a capability's invocation time while the
 * retention collects old records, both through os0/sdk/testing's in-process core.
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteOptions } from './run.ts';
import { harness } from '../sdk/testing.ts';
import { ADMIN_GROUP } from '../core/auth/permission.ts';

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'sdk', 'apps', 'records');
const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

export async function run({ report }: SuiteOptions): Promise<void> {
  const h = await harness({ app: APP, machines: ['m1'], retention: { count: 100 } });
  try {
    await h.apply({ type: 'namespace', name: 'bench' });
    const admin = { name: 'admin', groups: [ADMIN_GROUP] };
    const lat: number[] = [];
    for (let i = 0; i < 200; i++) {
      const address = `10.0.${i >> 8}.${i & 255}`;
      const t0 = performance.now();
      await h.sys.submit({ op: 'apply', resource: { type: 'record', namespace: 'bench', name: 'www', data: { address } } }, admin);
      while ((h.observed('record', 'www', 'bench') as { address?: string } | null)?.address !== address) {
        if (performance.now() - t0 > 10_000) throw new Error(`the driver did not record the change within 10 s: ${JSON.stringify(h.runs())}`);
        await new Promise((r) => setTimeout(r, 1));
      }
      lat.push(performance.now() - t0);
    }
    report('driver reconcile, change to observed, p50', pct(lat, 50), 'ms', '200 changes, 1 machine');
    report('driver reconcile, change to observed, p99', pct(lat, 99), 'ms');
    const inv: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t0 = performance.now();
      await h.invokeResult('machines');
      inv.push(performance.now() - t0);
    }
    report('invocation with retention 100 collecting, p50', pct(inv, 50), 'ms', '300 invocations');
    report('invocation with retention 100 collecting, p99', pct(inv, 99), 'ms');
    report('invocation records left', h.sys.core.query({ type: 'invocation', namespace: 'system' }).length, 'records', 'retention count 100');
  } finally {
    await h.close();
  }
}
