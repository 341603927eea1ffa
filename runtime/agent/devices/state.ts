/**
 * A device's state: one JSON file, replaced whole and atomically (write a temporary file, rename
 * it over), so an agent killed at any instant finds either the old state or the new one, never
 * half of each. `durable` adds the fsyncs that make it survive the machine's crash too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export function readJson<T>(file: string): T | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new SyntaxError(`${file} is not valid JSON; move it aside to start over`);
  }
}

export function writeJsonAtomic(file: string, value: unknown, opts: { durable?: boolean } = {}): void {
  const durable = opts.durable ?? true;
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, JSON.stringify(value));
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  if (!durable) return;
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
}
