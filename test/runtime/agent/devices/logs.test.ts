/** The process device's log files on their own: rotation bounds, tail, and a follower that lags behind. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { LogReader } from '../../../../runtime/agent/devices/process/index.ts';
import { LogWriter } from '../../../../runtime/agent/devices/process/logs.ts';
import { tempDir } from '../../../helpers/tmp.ts';

it('keeps at most filesKept + 1 files, cuts long lines, and tails across files in order', () => {
  const dir = path.join(tempDir('logs-'), 't');
  const w = new LogWriter(dir, { fileBytesMax: 1000, filesKept: 2, lineBytesMax: 64 });
  for (let i = 0; i < 500; i++) w.write(i % 2 ? 'err' : 'out', Buffer.from(`line ${i}\n`));
  w.write('out', Buffer.from('x'.repeat(150) + '\n'));
  w.write('out', Buffer.from('no newline yet'));
  w.close();
  expect(fs.readdirSync(dir).sort()).toEqual(['output.log', 'output.log.1', 'output.log.2']);
  for (const f of fs.readdirSync(dir)) expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(1000);
  const tail = new LogReader(dir).tail(6);
  expect(tail.map((l) => `${l.stream} ${l.text}`)).toEqual(['out line 498', 'err line 499', 'out ' + 'x'.repeat(64), 'out ' + 'x'.repeat(64), 'out ' + 'x'.repeat(22), 'out no newline yet']);
});

it('a follower that polls far less often than files rotate still reaches the last line, in order', async () => {
  const dir = path.join(tempDir('logs-'), 't');
  const w = new LogWriter(dir, { fileBytesMax: 512, filesKept: 1 });
  w.write('out', Buffer.from('before\n'));
  const abort = new AbortController();
  const seen: number[] = [];
  const following = (async () => {
    for await (const l of new LogReader(dir).follow({ signal: abort.signal, pollMs: 50 })) seen.push(Number(l.text.slice(5)));
  })();
  // Bursts of many rotations between two polls: rotated files are deleted (and their inode
  // numbers may be reused) before the follower looks again.
  for (let burst = 0; burst < 20; burst++) {
    for (let i = 0; i < 50; i++) w.write('out', Buffer.from(`line ${burst * 50 + i}\n`));
    await new Promise((r) => setTimeout(r, 60));
  }
  const end = Date.now() + 10_000;
  while (seen.at(-1) !== 999 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  abort.abort();
  await following;
  w.close();
  expect(seen.at(-1)).toBe(999);
  expect(seen.every((n, i) => i === 0 || n > seen[i - 1])).toBe(true);
});
