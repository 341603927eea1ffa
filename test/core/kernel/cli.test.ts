/** os0 describe / get / cordon / drain against a whole instance (its kernel running), machines written by hand: no processes. */
import { describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../../../core/auth/permission.ts';
import { openInstance } from '../../helpers/instance.ts';
import { cli } from '../../helpers/os0.ts';

async function until<T>(what: string, f: () => T | undefined | null | false, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('os0 describe, get, cordon, drain', () => {
  it('shows why a task is pending, per constraint, and the effect of cordon and drain', async () => {
    const inst = await openInstance();
    const sys = inst.sys;
    const env = { OS0_URL: inst.url, OS0_TOKEN: inst.adminToken! };
    const os0 = (args: string[]) => cli(args, { env });
    const submit = (cmd: unknown) => sys.core.submit(cmd, { actor: SYSTEM_ACTOR });
    for (const [name, cpu] of [['m1', 2], ['m2', 4]] as const) {
      await submit({ op: 'apply', resource: { type: 'machine', namespace: 'system', name, data: { ports: [24000, 24009], labels: {} } } });
      await submit({ op: 'apply', resource: { type: 'machine/observed', namespace: 'system', name, data: { capacity: { cpu, memoryMb: 1024 }, health: 'up' } } });
    }
    await submit({ op: 'create', resource: { type: 'namespace', name: 'demo', data: {} } });
    await submit({ op: 'apply', resource: { type: 'service', namespace: 'demo', name: 'big', data: { command: ['/bin/true'], replicas: 1, resources: { cpu: 8, memoryMb: 64 } } } });
    await until('pending', () => sys.core.query({ type: 'assignment', namespace: 'demo' }).some((a) => (a.data as { state: string }).state === 'pending'));

    const d = await os0(['describe', 'service', 'big', '-n', 'demo']);
    expect(d.status, d.stderr).toBe(0);
    expect(d.stdout).toContain('Desired:');
    expect(d.stdout).toMatch(/Pending:\n {2}task big-0-[0-9a-f]{8}: 0 of 2 machines fit: cpu exhausted on 2 \(m\d \(\d free\), m\d \(\d free\); 8 wanted\)/);
    expect(d.stdout).toMatch(/Recent changes:\n.*system .*create +service big/);

    const g = await os0(['get', 'assignment', '-n', 'demo']);
    expect(g.status, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/^NAMESPACE +NAME +STATE +MACHINE +GEN +REASON/);
    expect(g.stdout).toMatch(/demo +big-0-\S+ +pending +- +0 +0 of 2 machines fit/);
    const t = await os0(['get', 'task', '-n', 'demo']);
    expect(t.stdout).toMatch(/demo +big-0-\S+ +big +0 +pending/);

    // A small service lands on a machine; cordoning both leaves the next request pending with "2 cordoned".
    expect((await os0(['cordon', 'm1'])).status).toBe(0);
    expect((await os0(['cordon', 'm2'])).status).toBe(0);
    await submit({ op: 'apply', resource: { type: 'service', namespace: 'demo', name: 'small', data: { command: ['/bin/true'], replicas: 1, resources: { cpu: 0.5, memoryMb: 64 } } } });
    const a = await until('small pending', () => sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'small' } })[0]);
    expect((a.data as { reason: string }).reason).toBe('0 of 2 machines fit: 2 cordoned');
    expect((await os0(['uncordon', 'm1'])).status).toBe(0);
    await until('small placed on m1', () => (sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'small' } })[0]?.data as { machine: string }).machine === 'm1');

    // Draining m1 with m2 cordoned: blocked, and says why; uncordoning m2 lets it move.
    const dr = await os0(['drain', 'm1', '--no-wait', '--deadline', '10m']);
    expect(dr.status, dr.stderr).toBe(0);
    await until('drain blocked', () => /^drain of m1 blocked: 0 of 2 machines fit: 2 cordoned$/.test((sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'small' } })[0]?.data as { reason?: string }).reason ?? ''));
    const dm = await os0(['describe', 'machine', 'm1']);
    expect(dm.stdout).toMatch(/Drain blocked:\n {2}demo\/small-0-\S+: drain of m1 blocked/);
    expect((await os0(['uncordon', 'm2'])).status).toBe(0);
    await until('moved to m2', () => (sys.core.query({ type: 'assignment', namespace: 'demo', tags: { service: 'small' } })[0]?.data as { machine: string }).machine === 'm2');
    const bad = await os0(['drain', 'nope', '--no-wait']);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe("os0: machine nope does not exist; 'os0 get machine -n system' lists them");
  }, 60_000);
});
