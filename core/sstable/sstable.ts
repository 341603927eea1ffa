/**
 * Writing and reading sstables (format: FORMAT.md beside this file). Synchronous by design: the
 * writer runs in the compaction worker, the reader at start-up before anything is served.
 */
import * as fs from 'node:fs';
import { crc32c } from '../crc32c.ts';
import { OsError } from '../errors.ts';

export const SST_MAGIC = Buffer.from('OS0SST01', 'latin1');
const BLOCK_MAGIC = 0x4b4c4230;
const FOOTER_MAGIC = 0x5353304f;
const HEADER_BYTES = 16;
const BLOCK_HEADER_BYTES = 16;
const FOOTER_BYTES = 48;
export const BLOCK_TARGET_BYTES = 64 * 1024;

export type SstKind = 'base' | 'delta';

export interface Tombstone {
  $del: 1;
  id: string;
  namespace: string;
  type: string;
  name: string;
  revision: number;
}

/** A stored entry: a resource document (with at least these fields) or a tombstone. */
export type Entry = { id: string; namespace: string; type: string; name: string; revision: number; $del?: 1 };

export const entryKey = (e: { namespace: string; type: string; name: string }): string => `${e.namespace}\u0000${e.type}\u0000${e.name}`;

export class SstCorruption extends OsError {
  constructor(file: string, offset: number, reason: string) {
    super('corrupt', `sstable ${file} is corrupt at offset ${offset} (${reason}); restore the data directory from a backup`);
  }
}

const u64 = (b: Buffer, at: number, v: number): void => {
  b.writeUInt32LE(v >>> 0, at);
  b.writeUInt32LE(Math.floor(v / 0x100000000), at + 4);
};
const r64 = (b: Buffer, at: number): number => b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x100000000;

/** Streams sorted entries into a new sstable file, then fsyncs it. */
export class SstWriter {
  private readonly fd: number;
  private readonly path: string;
  private offset = HEADER_BYTES;
  private parts: string[] = [];
  private partBytes = 0;
  private firstKey: string | null = null;
  private readonly index: [string, number, number][] = [];
  private entries = 0;
  private readonly kind: SstKind;

  constructor(path: string, kind: SstKind) {
    this.path = path;
    this.kind = kind;
    this.fd = fs.openSync(path, 'w', 0o600);
    const h = Buffer.alloc(HEADER_BYTES);
    SST_MAGIC.copy(h, 0);
    h.writeUInt32LE(kind === 'base' ? 0 : 1, 8);
    fs.writeSync(this.fd, h, 0, h.length, 0);
  }

  /** Adds one entry, given as its JSON text and key; keys must come in ascending order. */
  add(key: string, json: string): void {
    if (this.firstKey === null) this.firstKey = key;
    this.parts.push(json);
    this.partBytes += json.length + 1;
    this.entries++;
    if (this.partBytes >= BLOCK_TARGET_BYTES) this.closeBlock();
  }

  private writeBlock(payloadText: string, count: number): number {
    const payload = Buffer.from(payloadText, 'utf8');
    const h = Buffer.allocUnsafe(BLOCK_HEADER_BYTES);
    h.writeUInt32LE(BLOCK_MAGIC, 0);
    h.writeUInt32LE(payload.length, 4);
    h.writeUInt32LE(count, 8);
    h.writeUInt32LE(crc32c(payload), 12);
    const at = this.offset;
    fs.writeSync(this.fd, h, 0, h.length, at);
    fs.writeSync(this.fd, payload, 0, payload.length, at + BLOCK_HEADER_BYTES);
    this.offset += BLOCK_HEADER_BYTES + payload.length;
    return at;
  }

  private closeBlock(): void {
    if (this.parts.length === 0) return;
    const at = this.writeBlock('[' + this.parts.join(',') + ']', this.parts.length);
    this.index.push([this.firstKey!, at, this.parts.length]);
    this.parts = [];
    this.partBytes = 0;
    this.firstKey = null;
  }

  /** Writes the index and footer and fsyncs; the file is complete once this returns. */
  finish(from: number, to: number): { path: string; entries: number; bytes: number } {
    this.closeBlock();
    const blocks = this.index.length;
    const indexAt = this.writeBlock(JSON.stringify(this.index), blocks);
    const f = Buffer.alloc(FOOTER_BYTES);
    u64(f, 0, from);
    u64(f, 8, to);
    u64(f, 16, this.entries);
    u64(f, 24, indexAt);
    f.writeUInt32LE(blocks, 32);
    f.writeUInt32LE(this.kind === 'base' ? 0 : 1, 36);
    f.writeUInt32LE(crc32c(f, 0, 0, 40), 40);
    f.writeUInt32LE(FOOTER_MAGIC, 44);
    fs.writeSync(this.fd, f, 0, f.length, this.offset);
    this.offset += FOOTER_BYTES;
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    return { path: this.path, entries: this.entries, bytes: this.offset };
  }

  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {}
    try {
      fs.unlinkSync(this.path);
    } catch {}
  }
}

export interface SstInfo {
  kind: SstKind;
  from: number;
  to: number;
  entries: number;
  blocks: number;
  indexOffset: number;
  bytes: number;
}

/** Reads an sstable block by block, checking every checksum. */
export class SstReader {
  readonly info: SstInfo;
  private readonly fd: number;
  private readonly name: string;

  constructor(path: string) {
    this.name = path;
    this.fd = fs.openSync(path, 'r');
    try {
      this.info = this.readFooter();
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }

  private readFooter(): SstInfo {
    const bytes = fs.fstatSync(this.fd).size;
    if (bytes < HEADER_BYTES + FOOTER_BYTES) throw new SstCorruption(this.name, 0, 'file too short');
    const h = Buffer.alloc(HEADER_BYTES);
    fs.readSync(this.fd, h, 0, HEADER_BYTES, 0);
    if (!h.subarray(0, 8).equals(SST_MAGIC)) throw new SstCorruption(this.name, 0, 'bad magic');
    const f = Buffer.alloc(FOOTER_BYTES);
    fs.readSync(this.fd, f, 0, FOOTER_BYTES, bytes - FOOTER_BYTES);
    if (f.readUInt32LE(44) !== FOOTER_MAGIC || f.readUInt32LE(40) !== crc32c(f, 0, 0, 40)) {
      throw new SstCorruption(this.name, bytes - FOOTER_BYTES, 'footer checksum mismatch');
    }
    return {
      kind: f.readUInt32LE(36) === 0 ? 'base' : 'delta',
      from: r64(f, 0),
      to: r64(f, 8),
      entries: r64(f, 16),
      indexOffset: r64(f, 24),
      blocks: f.readUInt32LE(32),
      bytes,
    };
  }

  private readBlock(at: number, scratch: { buf: Buffer }): { entries: unknown[]; next: number } {
    const h = Buffer.alloc(BLOCK_HEADER_BYTES);
    if (fs.readSync(this.fd, h, 0, BLOCK_HEADER_BYTES, at) !== BLOCK_HEADER_BYTES || h.readUInt32LE(0) !== BLOCK_MAGIC) {
      throw new SstCorruption(this.name, at, 'bad block header');
    }
    const len = h.readUInt32LE(4);
    if (at + BLOCK_HEADER_BYTES + len > this.info.bytes - FOOTER_BYTES) throw new SstCorruption(this.name, at, `block length ${len} runs past the footer`);
    if (scratch.buf.length < len) scratch.buf = Buffer.allocUnsafe(Math.max(len, scratch.buf.length * 2));
    fs.readSync(this.fd, scratch.buf, 0, len, at + BLOCK_HEADER_BYTES);
    if (crc32c(scratch.buf, 0, 0, len) !== h.readUInt32LE(12)) throw new SstCorruption(this.name, at, 'block checksum mismatch');
    let entries: unknown[];
    try {
      entries = JSON.parse(scratch.buf.toString('utf8', 0, len)) as unknown[];
    } catch {
      throw new SstCorruption(this.name, at, 'block does not parse');
    }
    if (!Array.isArray(entries) || entries.length !== h.readUInt32LE(8)) throw new SstCorruption(this.name, at, 'block entry count mismatch');
    return { entries, next: at + BLOCK_HEADER_BYTES + len };
  }

  /** Every entry, in key order, a block at a time. */
  *blocks(): Generator<Entry[]> {
    const scratch = { buf: Buffer.allocUnsafe(BLOCK_TARGET_BYTES * 2) };
    let at = HEADER_BYTES;
    let count = 0;
    for (let b = 0; b < this.info.blocks; b++) {
      const { entries, next } = this.readBlock(at, scratch);
      count += entries.length;
      at = next;
      yield entries as Entry[];
    }
    if (at !== this.info.indexOffset || count !== this.info.entries) {
      throw new SstCorruption(this.name, at, `expected ${this.info.entries} entries ending at ${this.info.indexOffset}`);
    }
    // The index block is checked too, though loading does not need it.
    const index = this.readBlock(at, scratch);
    if (index.next !== this.info.bytes - FOOTER_BYTES) throw new SstCorruption(this.name, index.next, 'index block does not end at the footer');
  }

  *entries(): Generator<Entry> {
    for (const block of this.blocks()) yield* block;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
