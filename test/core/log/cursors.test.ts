import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeFileIO, type FileIO } from '../../../core/fileio.ts';
import { Cursors } from '../../../core/log/cursors.ts';
import { tempDir } from '../../helpers/tmp.ts';

const WRITER = path.join(import.meta.dirname, 'fixtures', 'cursor-writer.ts');

/** The real file layer, counting fdatasyncs. */
function counting(): { io: FileIO; syncs: () => number } {
  let n = 0;
  const io: FileIO = {
    ...nodeFileIO,
    async openWritable(p, o) {
      const f = await nodeFileIO.openWritable(p, o);
      return { ...f, write: (b, at) => f.write(b, at), truncate: (l) => f.truncate(l), close: () => f.close(), datasync: () => (n++, f.datasync()) };
    },
  };
  return { io, syncs: () => n };
}

/** Runs the writer until it has printed `lines` acknowledgements, then SIGKILLs it; returns what it printed. */
function killAfter(file: string, lines: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', WRITER, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      out += c;
      if (out.split('\n').length > lines) child.kill('SIGKILL');
    });
    child.stderr.on('data', (c: string) => (err += c));
    child.on('exit', (_code, signal) => {
      clearTimeout(guard);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited on its own: ${err}`));
      else resolve(out);
    });
  });
}

describe('consumer cursors', () => {
  it('concurrent commits share writes, and reopen to what was committed', async () => {
    const file = path.join(tempDir(), 'cursors.json');
    const { io, syncs } = counting();
    const c = await Cursors.open<{ cursor: number; note?: string }>({ file, io });
    for (let i = 0; i < 100; i++) c.set(`r${i}`, { cursor: i, note: 'x' });
    await Promise.all(Array.from({ length: 100 }, () => c.commit()));
    // 100 commits at once: one write of the file (one fdatasync), maybe a second for late-comers.
    expect(syncs()).toBeLessThanOrEqual(2);
    c.set('r5', { cursor: 500 });
    c.delete('r6');
    await c.close();
    const again = await Cursors.open<{ cursor: number }>({ file });
    expect(again.size).toBe(99);
    expect(again.get('r5')).toEqual({ cursor: 500 });
    expect(again.get('r7')).toEqual({ cursor: 7, note: 'x' });
    expect(fs.existsSync(file + '.tmp')).toBe(false); // renamed into place
  });

  it('refuses a damaged file with a one-line message saying what to do', async () => {
    const file = path.join(tempDir(), 'cursors.json');
    fs.writeFileSync(file, '{"r1":{"cursor":');
    await expect(Cursors.open({ file })).rejects.toThrow(/is not valid JSON .*restore it from a backup, or delete it/);
  });

  it('every committed cursor survives kill -9 of the process moving it, over and over', async () => {
    const file = path.join(tempDir(), 'cursors.json');
    for (let round = 0; round < 3; round++) {
      const out = await killAfter(file, 200);
      const acked = new Map<string, number>();
      for (const line of out.split('\n')) {
        const m = /^(r\d) (\d+)$/.exec(line);
        if (m) acked.set(m[1], Math.max(acked.get(m[1]) ?? 0, Number(m[2])));
      }
      expect(acked.size).toBe(8);
      const c = await Cursors.open<{ cursor: number }>({ file });
      // Never behind an acknowledgement; at most the one commit in flight ahead of it.
      for (const [name, i] of acked) expect(c.get(name)!.cursor - i).toBeGreaterThanOrEqual(0);
      for (const [name, i] of acked) expect(c.get(name)!.cursor - i).toBeLessThanOrEqual(1);
    }
  });
});
