/**
 * kill -9 of the process holding the embedded bus (a real child process): after a restart every
 * acknowledged publish is there, every message not acked is delivered again, nothing acked is,
 * and a consumer that applies commands by id applies each exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { commandStream } from '../../../core/bus/bus.ts';
import { RemoteBus } from '../../../core/bus/embedded/remote.ts';
import { tempDir } from '../../helpers/tmp.ts';

const HOLDER = path.join(import.meta.dirname, 'fixtures', 'holder.ts');

function startHolder(dir: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', HOLDER, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const guard = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`holder did not start: ${err}`));
    }, 15_000);
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) {
        clearTimeout(guard);
        resolve({ child, url: `http://127.0.0.1:${m[1]}/v1/bus` });
      }
    });
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}: ${err}`)));
  });
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

it('redelivers every unacked message after a kill -9, loses no acknowledged publish, applies each command once', async () => {
  const dir = tempDir('bus-crash-');
  const s = commandStream('node-1');
  // The agent's side: a command's effect takes place once per id (node-commands carry ids), and
  // each effect is recorded, so a duplicated effect would show twice.
  const applied = new Set<string>();
  const effects: string[] = [];
  const apply = (id: string): boolean => {
    if (applied.has(id)) return false;
    applied.add(id);
    effects.push(id);
    return true;
  };

  let h = await startHolder(dir);
  let bus = new RemoteBus({ url: h.url, retryMsMax: 0 });
  const published = new Set<string>();
  await Promise.all(
    Array.from({ length: 120 }, async (_, i) => {
      await bus.publish(s, { op: 'process.start', i }, { id: `cmd-${i}` });
      published.add(`cmd-${i}`);
    }),
  );
  const c = await bus.consumer(s, 'agent', { ackWaitMs: 500, ackPendingMax: 1000 });
  const first = await c.fetch({ max: 100, waitMs: 2000 });
  expect(first.length).toBe(100);
  const acked = new Set<string>();
  await Promise.all(
    first.slice(0, 60).map(async (m) => {
      apply(m.id);
      await c.ack(m.seq);
      acked.add(m.id);
    }),
  );
  // Applied but the ack never sent: the crash comes between the effect and the ack.
  for (const m of first.slice(60, 80)) apply(m.id);
  // A burst of publishes in flight when the process dies: those acknowledged must survive.
  const burst = Array.from({ length: 200 }, (_, i) =>
    bus.publish(s, { op: 'process.stop', i }, { id: `burst-${i}` }).then(
      () => published.add(`burst-${i}`),
      () => {},
    ),
  );
  await new Promise((r) => setTimeout(r, 5));
  await kill9(h.child);
  await Promise.all(burst);
  await bus.close();

  h = await startHolder(dir);
  bus = new RemoteBus({ url: h.url });
  try {
    const c2 = await bus.consumer(s, 'agent', { ackWaitMs: 500, ackPendingMax: 1000 });
    const delivered = new Set<string>();
    const recognised: string[] = [];
    const expected = [...published].filter((id) => !acked.has(id)).length;
    // Until all that is owed came, then one more wait in which nothing else may come.
    for (let empty = 0, done = false; empty < 5 && !done; ) {
      const got = await c2.fetch({ max: 500, waitMs: 1000 });
      if (got.length === 0) {
        empty++;
        done = delivered.size >= expected;
      }
      for (const m of got) {
        expect(delivered.has(m.id)).toBe(false);
        delivered.add(m.id);
        if (!apply(m.id)) recognised.push(m.id);
      }
      await Promise.all(got.map((m) => c2.ack(m.seq)));
    }
    const unacked = [...published].filter((id) => !acked.has(id));
    expect([...delivered].filter((id) => acked.has(id))).toEqual([]);
    expect(unacked.filter((id) => !delivered.has(id))).toEqual([]);
    // Applied before the crash but not acked: delivered again with the same id, so not applied again.
    expect(recognised.sort()).toEqual(first.slice(60, 80).map((m) => m.id).sort());
    expect(new Set(effects).size).toBe(effects.length);
    expect([...published].filter((id) => !applied.has(id))).toEqual([]);
    expect((await c2.info()).ackPending).toBe(0);
  } finally {
    await bus.close();
    await kill9(h.child);
  }
});
