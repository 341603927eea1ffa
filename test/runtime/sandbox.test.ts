import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox, SandboxError, type Program } from '../../runtime/sandbox/index.ts';
import { RecordingHost, program, rejection } from './helpers.ts';

let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = new Sandbox({ processes: 2 });
  await sandbox.ready();
});
afterAll(() => sandbox.close());

describe('sandbox: normal programs', () => {
  it('runs a program with its input; ctx calls reach the host in order, as copies, and answer back', async () => {
    const host = new RecordingHost((method, args) => {
      if (method === 'resources.query') return [{ type: 'dns-record', name: 'a' }, { type: 'dns-record', name: 'b' }];
      if (method === 'resources.get') return null;
      if (method === 'commands.apply') return { ...(args[0] as object), revision: 7 };
      return { deleted: true };
    });
    const r = await sandbox.run(await program('greet'), { name: 'world' }, host);
    expect(r.output).toEqual({
      greeting: 'hello world',
      record: null,
      count: 2,
      applied: { type: 'note', namespace: 'zone', name: 'world', data: { text: 'WORLD!' }, revision: 7 },
    });
    expect(r.logs).toEqual(['greeting world {"at":"start"}']);
    expect(host.calls).toEqual([
      ['resources.get', ['dns-record', 'world', 'zone']],
      ['resources.query', [{ type: 'dns-record', namespace: 'zone', tags: { env: 'prod' } }]],
      ['commands.apply', [{ type: 'note', namespace: 'zone', name: 'world', data: { text: 'WORLD!' } }]],
      ['commands.delete', ['note', 'old', 'zone']],
    ]);
    expect(r.cpuMs).toBeGreaterThan(0);
    expect(r.wallMs).toBeGreaterThanOrEqual(r.cpuMs * 0.5);
  });

  it("passes a host's refusal into the program as a rejected promise with the host's message", async () => {
    const host = new RecordingHost((method) => {
      if (method === 'resources.get') throw new Error('forbidden: hello may not get dns-record');
      return null;
    });
    const e = await rejection(sandbox.run(await program('greet'), { name: 'x' }, host));
    expect(e.code).toBe('threw');
    expect(e.message).toMatch(/^Error: forbidden: hello may not get dns-record/);
  });

  it("maps a thrown Error's stack to the TypeScript source", async () => {
    const e = await rejection(sandbox.run(await program('throws'), { n: 3 }, new RecordingHost()));
    expect(e).toBeInstanceOf(SandboxError);
    expect(e.code).toBe('threw');
    expect(e.message).toBe('RangeError: n is 3; at most 2 (at throws.ts:4:11)');
    const frames = e.programStack!.split('\n');
    expect(frames[0]).toBe('RangeError: n is 3; at most 2');
    expect(frames[1]).toMatch(/at check \(throws\.ts:4:11\)/);
    expect(frames[2]).toMatch(/throws\.ts:9:/);
    expect(e.programStack).not.toMatch(/os0-program\.js:-|<isolated-vm/);
  });

  it('gives every invocation a fresh context: a global set in one is not seen by the next', async () => {
    const p = await program('globals');
    const host = new RecordingHost();
    for (const mark of ['a', 'b', 'c', 'd']) {
      const r = await sandbox.run(p, { mark }, host);
      expect(r.output).toEqual({ before: null, counter: 1 });
    }
  });

  it("uses its own copies of the built-ins: a program that replaces them only fools itself", async () => {
    const r = await sandbox.run(await program('tamper-then-return'), null, new RecordingHost());
    expect(r.output).toEqual({ real: true });
  });

  it('an unhandled rejection ends an invocation that has not returned, like Node; not one that has', async () => {
    const p = await program('floating-rejection');
    expect((await sandbox.run(p, { wait: false }, new RecordingHost())).output).toBe('returned');
    const e = await rejection(sandbox.run(p, { wait: true }, new RecordingHost(() => new Promise(() => {}))));
    expect(e.code).toBe('threw');
    expect(e.message).toBe('unhandled promise rejection: TypeError: nobody handles this (at floating-rejection.ts:5:23)');
  });

  it('drops __proto__ keys from what comes out, so a caller that merges the output is safe', async () => {
    const p = await program('echo');
    const r = await sandbox.run(p, JSON.parse('{"a":1,"__proto__":{"admin":true}}'), new RecordingHost());
    expect(Object.keys(r.output as object)).toEqual(['a']);
    expect(Object.getPrototypeOf(r.output)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });

  it('runs many invocations at once; waiting ones queue, host calls have bounded concurrency', async () => {
    const small = new Sandbox({ processes: 1, concurrency: 2, queueMax: 100 });
    try {
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const host = new RecordingHost(async () => {
        await gate;
        return { ok: true };
      });
      const p = await program('waits');
      const runs = Array.from({ length: 12 }, () => small.run(p, null, host));
      await new Promise((r) => setTimeout(r, 100));
      expect(small.stats()).toMatchObject({ running: 2, queued: 10 });
      open();
      expect((await Promise.all(runs)).map((r) => r.output)).toEqual(Array(12).fill('opened'));
      expect(host.calls).toHaveLength(12);
    } finally {
      await small.close();
    }
  });

  it("bounds one invocation's outstanding host calls", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const host = new RecordingHost(async () => {
      await gate;
      return null;
    });
    const p = await program('hostile/hostcall-flood.ts');
    const failed = rejection(sandbox.run(p, null, host, { hostCalls: 200, wallMs: 5000 }));
    for (let waited = 0; host.maxActive < 16 && waited < 3000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 100));
    expect(host.maxActive).toBe(16);
    release();
    expect((await failed).code).toBe('calls');
  });

  it('refuses bad arguments to run() with code invalid', async () => {
    const p = await program('echo');
    const host = new RecordingHost();
    expect((await rejection(sandbox.run(p, null, host, { cpuMs: -1 }))).message).toMatch(/cpuMs must be a positive number/);
    expect((await rejection(sandbox.run(p, null, host, { memoryMb: 4 }))).message).toMatch(/least allowed is 8/);
    expect((await rejection(sandbox.run(p, null, host, { wallMs: 1e9 }))).message).toMatch(/most allowed/);
    expect((await rejection(sandbox.run(p, null, host, { nonsense: 1 } as never))).message).toMatch(/unknown limit/);
    expect((await rejection(sandbox.run(p, { n: 1n }, host))).code).toBe('invalid');
    const forged: Program = { ...p, code: p.code.replace('input', 'input ') };
    const e = await rejection(sandbox.run(forged, null, host));
    expect(e.code).toBe('invalid');
    expect(e.message).toMatch(/hashes to/);
    expect(() => new Sandbox({ processes: 0 })).toThrow(/positive integer/);
  });

  it('refuses a "program" that is not a script on its own (it could escape its wrapper)', async () => {
    const code = '}); globalThis.x = 1; (function () {';
    const { sha256 } = await import('../../runtime/sandbox/compile.ts');
    const e = await rejection(sandbox.run({ id: sha256(code), code, map: null, entry: 'evil.js' }, null, new RecordingHost()));
    expect(e.code).toBe('invalid');
    expect(e.message).toMatch(/^the program is not a valid script: /);
  });

  it('recycles isolates after recycleAfter invocations and keeps working', async () => {
    const s = new Sandbox({ processes: 1, recycleAfter: 3 });
    try {
      const p = await program('globals');
      for (let i = 0; i < 10; i++) expect((await s.run(p, { mark: String(i) }, new RecordingHost())).output).toEqual({ before: null, counter: 1 });
    } finally {
      await s.close();
    }
  });

  it('fails queued and running invocations with code closed on close(), and refuses new ones', async () => {
    const s = new Sandbox({ processes: 1, concurrency: 1 });
    const p = await program('waits');
    const host = new RecordingHost(() => new Promise(() => {}));
    const running = rejection(s.run(p, null, host));
    const queued = rejection(s.run(p, null, host));
    await new Promise((r) => setTimeout(r, 100));
    await s.close();
    expect((await running).code).toBe('closed');
    expect((await queued).code).toBe('closed');
    expect((await rejection(s.run(p, null, host))).code).toBe('closed');
  });

  it("says 'busy' when the queue is full", async () => {
    const s = new Sandbox({ processes: 1, concurrency: 1, queueMax: 1 });
    try {
      const p = await program('waits');
      const host = new RecordingHost(() => new Promise(() => {}));
      const runs = [rejection(s.run(p, null, host, { wallMs: 300 })), rejection(s.run(p, null, host, { wallMs: 300 }))];
      const e = await rejection(s.run(p, null, host));
      expect(e.code).toBe('busy');
      expect(e.message).toBe('the sandbox has 1 invocations waiting; retry later');
      expect((await runs[0]).code).toBe('timeout');
      expect((await runs[1]).code).toBe('timeout');
    } finally {
      await s.close();
    }
  });
});
