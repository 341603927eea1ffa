/**
 * Shared helpers for the core durability tests: a seeded PRNG, scratch directories on the real
 * disk, and small independent parsers of the WAL and sstable formats (written from FORMAT.md, not
 * from the core's code, so a test can check that its damage landed where it meant it to).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';
import { OsError } from '../../core/index.ts';

/** mulberry32: the suite's seeded PRNG. */
export { prng as mulberry32 } from '../helpers/tmp.ts';

/** An integer in [lo, hi] from a PRNG. */
export const between = (rnd: () => number, lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));

/** A fresh directory on the real disk (never tmpfs: fsync must mean something). */
export function scratchDir(prefix: string): string {
  const base = isTmpfs(os.tmpdir()) ? path.resolve(import.meta.dirname, '../../.test-data') : os.tmpdir();
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, `os0-${prefix}-`));
}

function isTmpfs(dir: string): boolean {
  // The longest mount point that is a prefix of dir decides.
  let best = '';
  let type = '';
  const real = fs.realpathSync(dir);
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, mnt, fstype] = line.split(' ');
    if (!mnt) continue;
    if ((real === mnt || real.startsWith(mnt.endsWith('/') ? mnt : mnt + '/')) && mnt.length >= best.length) {
      best = mnt;
      type = fstype;
    }
  }
  return type === 'tmpfs' || type === 'ramfs';
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

// ---- WAL (core/wal/FORMAT.md) -------------------------------------------------------------

export interface WalRecordInfo {
  offset: number;
  /** Body length. */
  len: number;
  /** Whole record, padding included. */
  size: number;
  index: number;
  body: string;
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** Parses an undamaged segment file: its first index and every record's position. */
export function parseWal(file: string): { first: number; records: WalRecordInfo[]; size: number } {
  const b = fs.readFileSync(file);
  if (b.subarray(0, 8).toString('latin1') !== 'OS0WAL01') throw new Error(`${file}: not a WAL segment`);
  const first = b.readUInt32LE(8) + b.readUInt32LE(12) * 2 ** 32;
  const records: WalRecordInfo[] = [];
  let at = 16;
  while (at < b.length) {
    if (b.readUInt32LE(at) !== 0x4c57304f) throw new Error(`${file}: no record magic at ${at}`);
    const len = b.readUInt32LE(at + 4);
    const index = b.readUInt32LE(at + 8) + b.readUInt32LE(at + 12) * 2 ** 32;
    const size = pad8(24 + len);
    records.push({ offset: at, len, size, index, body: b.toString('utf8', at + 24, at + 24 + len) });
    at += size;
  }
  if (at !== b.length) throw new Error(`${file}: ends mid-record`);
  return { first, records, size: b.length };
}

/** The WAL segment files of a data directory, oldest first (full paths). */
export function walSegments(dataDir: string): string[] {
  const dir = path.join(dataDir, 'wal');
  return fs
    .readdirSync(dir)
    .filter((f) => /^[0-9a-f]{16}\.wal$/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

// ---- sstables (core/sstable/FORMAT.md) -----------------------------------------------------

export interface SstBlockInfo {
  offset: number;
  /** Payload length. */
  len: number;
  entries: number;
}

/** Parses an undamaged sstable: its data blocks, index block and footer position. */
export function parseSst(file: string): { blocks: SstBlockInfo[]; index: SstBlockInfo; footerOffset: number; size: number; entries: number } {
  const b = fs.readFileSync(file);
  if (b.subarray(0, 8).toString('latin1') !== 'OS0SST01') throw new Error(`${file}: not an sstable`);
  const footerOffset = b.length - 48;
  if (b.readUInt32LE(footerOffset + 44) !== 0x5353304f) throw new Error(`${file}: no footer magic`);
  const entries = b.readUInt32LE(footerOffset + 16);
  const indexOffset = b.readUInt32LE(footerOffset + 24);
  const nBlocks = b.readUInt32LE(footerOffset + 32);
  const block = (at: number): SstBlockInfo => {
    if (b.readUInt32LE(at) !== 0x4b4c4230) throw new Error(`${file}: no block magic at ${at}`);
    return { offset: at, len: b.readUInt32LE(at + 4), entries: b.readUInt32LE(at + 8) };
  };
  const blocks: SstBlockInfo[] = [];
  let at = 16;
  for (let i = 0; i < nBlocks; i++) {
    const blk = block(at);
    blocks.push(blk);
    at += 16 + blk.len;
  }
  if (at !== indexOffset) throw new Error(`${file}: blocks end at ${at}, index at ${indexOffset}`);
  const index = block(indexOffset);
  if (indexOffset + 16 + index.len !== footerOffset) throw new Error(`${file}: index block does not end at the footer`);
  return { blocks, index, footerOffset, size: b.length, entries };
}

/** The MANIFEST's content (after its checksum line). */
export function readManifest(dataDir: string): { base: string | null; deltas: string[]; covered: number } {
  const text = fs.readFileSync(path.join(dataDir, 'sst', 'MANIFEST'), 'utf8');
  return JSON.parse(text.slice(text.indexOf('\n') + 1));
}

// ---- damage ------------------------------------------------------------------------------

/** XORs one byte of a file with 0xff; returns the old value. */
export function flipByte(file: string, offset: number): number {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    if (fs.readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${file} has no byte at ${offset}`);
    const old = b[0];
    b[0] = old ^ 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
    fs.fsyncSync(fd);
    return old;
  } finally {
    fs.closeSync(fd);
  }
}

export function appendBytes(file: string, bytes: Buffer): void {
  fs.appendFileSync(file, bytes);
}

// ---- errors ------------------------------------------------------------------------------

/**
 * Awaits a promise that must reject with an OsError of this code and a one-line message. If it
 * resolves to something closable instead (a Core that opened after all), that is closed first.
 */
export async function expectOsError(p: Promise<unknown>, code: string): Promise<OsError> {
  let err: unknown;
  let value: unknown;
  try {
    value = await p;
  } catch (e) {
    err = e;
  }
  if (err === undefined && typeof (value as { close?: unknown })?.close === 'function') await (value as { close(): Promise<void> }).close();
  expect(err, `expected a rejection with code ${code}, but it succeeded`).toBeDefined();
  expect(err, `expected an OsError, got ${String(err)}`).toBeInstanceOf(OsError);
  const e = err as OsError;
  expect(e.code, e.message).toBe(code);
  expect(e.message.length).toBeGreaterThan(0);
  expect(e.message, 'the message must be one line').not.toMatch(/[\r\n]/);
  return e;
}
