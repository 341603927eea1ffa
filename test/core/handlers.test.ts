import { describe, expect, it } from 'vitest';
import { Core } from '../../core/index.ts';
import { Handlers, type HandlerEvent } from '../../core/handlers.ts';
import { tempDir } from '../helpers/tmp.ts';

const put = (core: Core, ns: string, name: string, v = 0) => core.submit({ op: 'apply', resource: { type: 'configuration', namespace: ns, name, data: { v } } });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('in-process handlers', () => {
  it('get matching changes in log order, and resume from their durable cursor after a restart', async () => {
    const dir = tempDir();
    let core = await Core.open({ dir });
    let handlers = await Handlers.open(core, dir);
    const seen: HandlerEvent[] = [];
    handlers.register({ name: 'watcher', query: { type: 'configuration', namespace: 'a' }, handle: (e) => void seen.push(e) });
    await put(core, 'a', 'x', 1);
    await put(core, 'b', 'other');
    await put(core, 'a/deep', 'y');
    await put(core, 'a', 'x', 2);
    await until(() => seen.length === 3);
    expect(seen.map((e) => [e.action, e.new?.name, e.index])).toEqual([
      ['create', 'x', 1],
      ['create', 'y', 3],
      ['update', 'x', 4],
    ]);
    expect(seen[2].old?.data).toEqual({ v: 1 });
    await handlers.close();
    await put(core, 'a', 'while-down');
    await core.close();

    core = await Core.open({ dir });
    handlers = await Handlers.open(core, dir);
    const after: HandlerEvent[] = [];
    handlers.register({ name: 'watcher', query: { type: 'configuration', namespace: 'a' }, handle: (e) => void after.push(e) });
    await put(core, 'a', 'after-restart');
    await until(() => after.length === 2);
    expect(after.map((e) => e.new?.name)).toEqual(['while-down', 'after-restart']);
    await handlers.close();
    await core.close();
  });

  it('retry a failing event with backoff, record the error, and never hold up the others', async () => {
    const dir = tempDir();
    const core = await Core.open({ dir });
    const handlers = await Handlers.open(core, dir);
    let attempts = 0;
    handlers.register({
      name: 'flaky',
      query: { type: 'configuration' },
      attempts: 3,
      handle: (e) => {
        if (e.new?.name === 'poison') {
          attempts++;
          throw new Error('cannot digest poison');
        }
      },
    });
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    handlers.register({ name: 'slow', query: { type: 'configuration' }, handle: () => blocked });
    const fast: string[] = [];
    handlers.register({ name: 'fast', query: { type: 'configuration' }, handle: (e) => void fast.push(e.new!.name) });
    await put(core, 'n', 'poison');
    for (let i = 0; i < 20; i++) await put(core, 'n', `ok${i}`);
    await until(() => fast.length === 21);
    await until(() => handlers.status().find((h) => h.name === 'flaky')!.cursor === core.index);
    const flaky = handlers.status().find((h) => h.name === 'flaky')!;
    expect(attempts).toBe(3);
    expect(flaky.failures).toBe(1);
    expect(flaky.lastError).toBe('index 1: cannot digest poison');
    expect(flaky.delivered).toBe(20);
    const slow = handlers.status().find((h) => h.name === 'slow')!;
    expect(slow.cursor).toBe(0);
    expect(slow.lag).toBe(21);
    release();
    await until(() => handlers.status().find((h) => h.name === 'slow')!.cursor === 21);
    await handlers.close();
    await core.close();
  });
});
