/** Encoding and decoding of WAL segments and records (format: FORMAT.md beside this file). */
import { crc32c } from '../crc32c.ts';
import { OsError } from '../errors.ts';

export const SEGMENT_MAGIC = Buffer.from('OS0WAL01', 'latin1');
export const SEGMENT_HEADER_BYTES = 16;
export const RECORD_MAGIC = 0x4c57304f;
export const RECORD_HEADER_BYTES = 24;
/** A record body larger than this is never written, so a larger length field means damage. */
export const RECORD_BODY_BYTES_MAX = 64 * 1024 * 1024;

const pad8 = (n: number): number => (n + 7) & ~7;

export function segmentName(firstIndex: number): string {
  return firstIndex.toString(16).padStart(16, '0') + '.wal';
}

export function parseSegmentName(name: string): number | null {
  const m = /^([0-9a-f]{16})\.wal$/.exec(name);
  return m ? parseInt(m[1], 16) : null;
}

export function encodeSegmentHeader(firstIndex: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32LE(firstIndex >>> 0, 8);
  b.writeUInt32LE(Math.floor(firstIndex / 0x100000000), 12);
  return b;
}

/** One record: header, the UTF-8 body written in place, zero padding. */
export function encodeRecord(index: number, body: string): Buffer {
  const len = Buffer.byteLength(body);
  const total = pad8(RECORD_HEADER_BYTES + len);
  const b = Buffer.allocUnsafe(total);
  b.writeUInt32LE(RECORD_MAGIC, 0);
  b.writeUInt32LE(len, 4);
  b.writeUInt32LE(index >>> 0, 8);
  b.writeUInt32LE(Math.floor(index / 0x100000000), 12);
  b.write(body, RECORD_HEADER_BYTES, len, 'utf8');
  b.fill(0, RECORD_HEADER_BYTES + len, total);
  const crc = crc32c(b, crc32c(b, 0, 4, 16), RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + len);
  b.writeUInt32LE(crc, 16);
  b.writeUInt32LE(0, 20);
  return b;
}

export interface DecodedRecord {
  index: number;
  body: Buffer;
}

/** Why the record at an offset is not valid, or null if it is. */
function recordProblem(buf: Buffer, at: number, expectIndex: number | null): string | null {
  if (buf.length - at < RECORD_HEADER_BYTES) return 'record header cut short';
  if (buf.readUInt32LE(at) !== RECORD_MAGIC) return 'bad record magic';
  const len = buf.readUInt32LE(at + 4);
  if (len > RECORD_BODY_BYTES_MAX) return `record length ${len} is impossible`;
  if (at + pad8(RECORD_HEADER_BYTES + len) > buf.length) return 'record body cut short';
  const crc = crc32c(buf, crc32c(buf, 0, at + 4, at + 16), at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + len);
  if (crc !== buf.readUInt32LE(at + 16)) return 'checksum mismatch';
  if (expectIndex !== null) {
    const index = buf.readUInt32LE(at + 8) + buf.readUInt32LE(at + 12) * 0x100000000;
    if (index !== expectIndex) return `index ${index} where ${expectIndex} was expected`;
  }
  return null;
}

/**
 * The records of a segment that is read while it may still be written (a reader's view, not
 * recovery's): every valid record from the start, up to the first that is not (yet) whole.
 */
export function scanSegment(buf: Buffer, expectFirstIndex: number): DecodedRecord[] {
  const records: DecodedRecord[] = [];
  if (buf.length < SEGMENT_HEADER_BYTES || !buf.subarray(0, 8).equals(SEGMENT_MAGIC)) return records;
  if (buf.readUInt32LE(8) + buf.readUInt32LE(12) * 0x100000000 !== expectFirstIndex) return records;
  let at = SEGMENT_HEADER_BYTES;
  let index = expectFirstIndex;
  while (at < buf.length && recordProblem(buf, at, index) === null) {
    const len = buf.readUInt32LE(at + 4);
    records.push({ index, body: buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + len) });
    at += pad8(RECORD_HEADER_BYTES + len);
    index++;
  }
  return records;
}

export interface DecodedSegment {
  firstIndex: number;
  records: DecodedRecord[];
  /** Bytes of valid segment (header and whole records). */
  validBytes: number;
  /** Set when a torn tail was found: where it starts and why. */
  torn: { offset: number; bytes: number; reason: string } | null;
}

export class WalCorruption extends OsError {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, reason: string) {
    super('corrupt', `WAL segment ${file} is corrupt at offset ${offset} (${reason}) and valid records follow, so it is not a torn write; restore the data directory from a backup`);
    this.file = file;
    this.offset = offset;
  }
}

/**
 * Decodes a whole segment. In the newest segment (`isLast`), a bad record with no valid record
 * after it is a torn tail; anywhere else a bad record is corruption and throws WalCorruption.
 */
export function decodeSegment(buf: Buffer, file: string, isLast: boolean, expectFirstIndex: number): DecodedSegment {
  const torn = (offset: number, reason: string): DecodedSegment => ({
    firstIndex: expectFirstIndex,
    records,
    validBytes: offset,
    torn: { offset, bytes: buf.length - offset, reason },
  });
  const records: DecodedRecord[] = [];
  if (buf.length < SEGMENT_HEADER_BYTES || !buf.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    if (isLast && buf.length < SEGMENT_HEADER_BYTES) return torn(0, 'segment header cut short');
    throw new WalCorruption(file, 0, 'bad segment header');
  }
  const first = buf.readUInt32LE(8) + buf.readUInt32LE(12) * 0x100000000;
  if (first !== expectFirstIndex) throw new WalCorruption(file, 8, `segment header says first index ${first}, name says ${expectFirstIndex}`);
  let at = SEGMENT_HEADER_BYTES;
  let index = first;
  while (at < buf.length) {
    const problem = recordProblem(buf, at, index);
    if (problem) {
      if (!isLast) throw new WalCorruption(file, at, problem);
      // A torn write leaves garbage or zeros up to the end; a valid record further on means the
      // damage is in the middle of acknowledged history.
      for (let probe = at + 8; probe + RECORD_HEADER_BYTES <= buf.length; probe += 8) {
        if (buf.readUInt32LE(probe) === RECORD_MAGIC && recordProblem(buf, probe, null) === null) {
          throw new WalCorruption(file, at, problem);
        }
      }
      return torn(at, problem);
    }
    const len = buf.readUInt32LE(at + 4);
    records.push({ index, body: buf.subarray(at + RECORD_HEADER_BYTES, at + RECORD_HEADER_BYTES + len) });
    at += pad8(RECORD_HEADER_BYTES + len);
    index++;
  }
  return { firstIndex: first, records, validBytes: at, torn: null };
}
