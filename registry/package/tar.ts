/**
 * A small ustar writer (deterministic: fixed mtime, modes, owners) and a bounded, in-memory
 * reader that refuses anything but plain files and directories. See FORMAT.md.
 */
import * as zlib from 'node:zlib';

export const MAX_FILES = 1000;
export const MAX_UNPACKED_BYTES = 32 * 1024 * 1024;
/** A gzip stream may hold headers and padding besides file contents: room for them, no more. */
const MAX_TAR_BYTES = MAX_UNPACKED_BYTES + (MAX_FILES + 2) * 2048;
export const MAX_PACKED_BYTES = 32 * 1024 * 1024;
export const FIXED_MTIME = 0;

const BLOCK = 512;

export interface TarEntry {
  path: string;
  data?: Buffer;
  /** '0' file (default), '1' hard link, '2' symlink, '3'/'4' devices, '5' directory, '6' fifo. */
  type?: string;
  linkpath?: string;
  mode?: number;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(e: TarEntry, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let name = e.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`tar: path too long: ${e.path}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(FIXED_MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(e.type ?? '0', 156, 'ascii');
  if (e.linkpath) h.write(e.linkpath, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** Entries in the order given (callers sort), then the two zero blocks. */
export function writeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    parts.push(header(e, data.length), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

export function gzip(tar: Buffer): Buffer {
  return zlib.gzipSync(tar, { level: 9 });
}

function str(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('utf8', off, end === -1 || end > off + len ? off + len : end);
}

function num(h: Buffer, off: number, len: number, what: string): number {
  if (h[off] & 0x80) throw new Error(`package: a tar ${what} field uses base-256; packages never need it`);
  const s = str(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new Error(`package: a tar header has a malformed ${what} field`);
  return parseInt(s, 8);
}

/** Refuses absolute paths, `..`, backslashes, control characters; strips a leading `./`. */
export function safePath(raw: string): string {
  let p = raw;
  while (p.startsWith('./')) p = p.slice(2);
  if (p.endsWith('/')) p = p.slice(0, -1);
  if (p === '' || p === '.') throw new Error(`package: an entry has an empty path`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(p)) throw new Error(`package: entry ${JSON.stringify(raw)} has control characters or backslashes in its path`);
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) throw new Error(`package: entry ${JSON.stringify(raw)} has an absolute path`);
  const segs = p.split('/');
  if (segs.includes('..')) throw new Error(`package: entry ${JSON.stringify(raw)} has '..' in its path`);
  if (segs.some((s) => s === '' || s === '.')) throw new Error(`package: entry ${JSON.stringify(raw)} has an empty or '.' path segment`);
  return p;
}

const TYPE_NAMES: Record<string, string> = { '1': 'a hard link', '2': 'a symbolic link', '3': 'a character device', '4': 'a block device', '6': 'a FIFO' };

function paxPath(data: Buffer): string | undefined {
  let found: string | undefined;
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp === -1) break;
    const len = parseInt(data.toString('ascii', i, sp), 10);
    if (!(len > 0) || i + len > data.length) throw new Error('package: a malformed pax header');
    const rec = data.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    const k = rec.slice(0, eq);
    if (k === 'path') found = rec.slice(eq + 1);
    if (k === 'linkpath' || k === 'size') throw new Error(`package: pax header field "${k}" is not accepted in packages`);
    i += len;
  }
  return found;
}

/**
 * Gunzips (never more than the bound allows: zlib stops as soon as the output passes it) and
 * reads a tar into memory. Only regular files are returned; directories are checked and skipped.
 */
export function readPackage(tgz: Buffer): Map<string, Buffer> {
  if (tgz.length > MAX_PACKED_BYTES) throw new Error(`package: ${tgz.length} bytes compressed; the limit is ${MAX_PACKED_BYTES / 1048576} MiB`);
  if (tgz.length < 2 || tgz[0] !== 0x1f || tgz[1] !== 0x8b) throw new Error('package: not a gzip file (expected a .tgz)');
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(tgz, { maxOutputLength: MAX_TAR_BYTES });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new Error(`package: unpacks to more than ${MAX_UNPACKED_BYTES / 1048576} MiB; the limit is ${MAX_UNPACKED_BYTES / 1048576} MiB unpacked`);
    }
    throw new Error(`package: not a valid gzip file (${(e as Error).message})`);
  }
  const files = new Map<string, Buffer>();
  const dirs = new Set<string>();
  let entries = 0;
  let total = 0;
  let off = 0;
  let nextPath: string | undefined;
  while (off + BLOCK <= tar.length) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const stored = num(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
    if (sum !== stored) throw new Error(`package: a tar header at byte ${off} has a bad checksum (damaged or not a tar)`);
    const size = num(h, 124, 12, 'size');
    const type = String.fromCharCode(h[156] || 0x30);
    const dataStart = off + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw new Error('package: the tar ends in the middle of an entry (truncated)');
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    const data = tar.subarray(dataStart, dataEnd);
    if (type === 'x') {
      nextPath = paxPath(data);
      continue;
    }
    if (type === 'g') continue;
    if (type === 'L') {
      nextPath = str(data, 0, data.length);
      continue;
    }
    const magic = h.toString('ascii', 257, 262);
    const prefix = magic === 'ustar' ? str(h, 345, 155) : '';
    const raw = nextPath ?? (prefix ? `${prefix}/${str(h, 0, 100)}` : str(h, 0, 100));
    nextPath = undefined;
    if (++entries > MAX_FILES) throw new Error(`package: more than ${MAX_FILES} entries; the limit is ${MAX_FILES}`);
    if (type === '5' && /^(\.\/?)*$/.test(raw)) continue; // the archive's root: './'
    const p = safePath(raw);
    if (TYPE_NAMES[type]) throw new Error(`package: entry ${JSON.stringify(raw)} is ${TYPE_NAMES[type]}; packages hold only regular files`);
    if (type === '5') {
      if (files.has(p)) throw new Error(`package: ${p} is both a file and a directory`);
      dirs.add(p);
      continue;
    }
    if (type !== '0' && type !== '7') throw new Error(`package: entry ${JSON.stringify(raw)} has tar type '${type}'; packages hold only regular files`);
    if (files.has(p) || dirs.has(p)) throw new Error(`package: ${p} appears twice`);
    total += size;
    if (total > MAX_UNPACKED_BYTES) throw new Error(`package: unpacks to more than ${MAX_UNPACKED_BYTES / 1048576} MiB; the limit is ${MAX_UNPACKED_BYTES / 1048576} MiB unpacked`);
    files.set(p, Buffer.from(data));
  }
  for (const p of files.keys()) {
    // a file may not sit below another file (a/b and a/b/c)
    for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) {
      if (files.has(p.slice(0, i))) throw new Error(`package: ${p} is below the file ${p.slice(0, i)}`);
    }
  }
  return files;
}
