/**
 * Writing a verified package's files to disk (PROTOCOL.md "What the client checks" 8). The package
 * reader already refused links and unsafe paths; this re-checks every path anyway, because the map
 * could come from anywhere, and never follows or overwrites what is already in the folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MAX_FILES, MAX_UNPACKED_BYTES, safePath } from '../package/tar.ts';

export interface UnpackResult {
  dir: string;
  /** The relative paths written, sorted. */
  files: string[];
  bytes: number;
}

/**
 * Writes FILES below DIR (created if missing). Everything is checked before the first byte is
 * written: safe relative paths, the reader's bounds, no existing file or link in the way. Files are
 * then created with O_EXCL ('wx'), so a link or file that appears meanwhile is neither followed nor
 * overwritten; directories are created one level at a time and each is checked to be a real
 * directory (not a symlink) before anything goes into it.
 */
export function unpack(files: Map<string, Buffer>, dir: string): UnpackResult {
  if (files.size > MAX_FILES) throw new Error(`unpack: ${files.size} files; the limit is ${MAX_FILES}`);
  const root = path.resolve(dir);
  let bytes = 0;
  const plan: { rel: string; abs: string; data: Buffer }[] = [];
  for (const [raw, data] of files) {
    const rel = safePath(raw);
    if (rel !== raw) throw new Error(`unpack: entry ${JSON.stringify(raw)} is not in normal form (expected ${JSON.stringify(rel)})`);
    const abs = path.resolve(root, rel);
    if (!abs.startsWith(root + path.sep)) throw new Error(`unpack: entry ${JSON.stringify(raw)} resolves outside ${root}`);
    if (!Buffer.isBuffer(data)) throw new Error(`unpack: entry ${JSON.stringify(raw)} has no contents`);
    bytes += data.length;
    if (bytes > MAX_UNPACKED_BYTES) throw new Error(`unpack: more than ${MAX_UNPACKED_BYTES / 1048576} MiB; the limit is ${MAX_UNPACKED_BYTES / 1048576} MiB unpacked`);
    plan.push({ rel, abs, data });
  }
  plan.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
  const names = new Set(plan.map((p) => p.rel));
  for (const { rel } of plan) {
    for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) {
      if (names.has(rel.slice(0, i))) throw new Error(`unpack: ${rel} is below the file ${rel.slice(0, i)}`);
    }
  }

  // Check what is already there: the root must be a directory (or absent); every parent that
  // exists must be a real directory; no file may exist yet.
  const rootStat = lstatOrNull(root);
  if (rootStat && !fs.statSync(root).isDirectory()) throw new Error(`unpack: ${root} exists and is not a directory`);
  for (const { rel, abs } of plan) {
    const segs = rel.split('/');
    let cur = root;
    for (let i = 0; i < segs.length - 1; i++) {
      cur = path.join(cur, segs[i]);
      const st = lstatOrNull(cur);
      if (st === null) break;
      if (st.isSymbolicLink()) throw new Error(`unpack: ${cur} is a symbolic link; refusing to write ${rel} through it`);
      if (!st.isDirectory()) throw new Error(`unpack: ${cur} exists and is not a directory; cannot write ${rel}`);
    }
    if (lstatOrNull(abs) !== null) throw new Error(`unpack: ${abs} already exists; unpack into an empty folder`);
  }

  fs.mkdirSync(root, { recursive: true });
  const made = new Set<string>();
  for (const { rel, abs, data } of plan) {
    const segs = rel.split('/');
    let cur = root;
    for (let i = 0; i < segs.length - 1; i++) {
      cur = path.join(cur, segs[i]);
      if (made.has(cur)) continue;
      try {
        fs.mkdirSync(cur, { mode: 0o755 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`unpack: cannot create ${cur} (${(e as Error).message})`);
      }
      const st = fs.lstatSync(cur);
      if (!st.isDirectory()) throw new Error(`unpack: ${cur} is not a directory (a link appeared?); stopped before writing ${rel}`);
      made.add(cur);
    }
    try {
      fs.writeFileSync(abs, data, { flag: 'wx', mode: 0o644 });
    } catch (e) {
      throw new Error(`unpack: cannot create ${abs} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); nothing is overwritten or followed`);
    }
  }
  return { dir: root, files: plan.map((p) => p.rel), bytes };
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`unpack: cannot inspect ${p} (${(e as Error).message})`);
  }
}
