/**
 * A directory of WAL segments (format: ../wal/FORMAT.md), as readers see it: which segment
 * holds an index, and the raw records of one segment. Whoever writes the directory (the core's
 * Wal, or busØ's own streams) implements SegmentSource; DirSegments lists a directory for a
 * reader that has no writer at hand (tools, tests, another process).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nodeFileIO, type FileIO } from '../fileio.ts';
import { decodeSegment, parseSegmentName, scanSegment, type DecodedRecord } from '../wal/codec.ts';

export type { DecodedRecord } from '../wal/codec.ts';

export interface SegmentSource {
  /** Paths of the segments that hold records in (from, to], oldest first. */
  segmentPaths(from: number, to: number): string[];
  /** The oldest index still on disk. */
  readonly firstIndex: number;
}

/** The first index a segment file holds, from its name; throws on a file that is not a segment. */
export function segmentFirstIndex(file: string): number {
  const first = parseSegmentName(path.basename(file));
  if (first === null) throw new Error(`not a WAL segment: ${file}`);
  return first;
}

/**
 * The valid records of a segment that may still be being written: a record not yet whole ends
 * the list rather than failing (the writer's recovery, not a reader, decides what is torn).
 */
export async function readSegment(file: string, io: FileIO = nodeFileIO): Promise<DecodedRecord[]> {
  return scanSegment(await io.readFile(file), segmentFirstIndex(file));
}

/**
 * The records of a sealed segment, synchronously (for the compaction worker): any damage throws
 * WalCorruption, since a sealed segment was whole when it was sealed.
 */
export function readSealedSegmentSync(file: string): DecodedRecord[] {
  return decodeSegment(fs.readFileSync(file), path.basename(file), false, segmentFirstIndex(file)).records;
}

/** The segments of a directory, listed once (call refresh() to see segments written since). */
export class DirSegments implements SegmentSource {
  readonly dir: string;
  private readonly io: FileIO;
  private firsts: number[] = [];
  private names: string[] = [];

  private constructor(dir: string, io: FileIO) {
    this.dir = dir;
    this.io = io;
  }

  static async open(dir: string, io: FileIO = nodeFileIO): Promise<DirSegments> {
    const d = new DirSegments(dir, io);
    await d.refresh();
    return d;
  }

  async refresh(): Promise<void> {
    const segs: { first: number; name: string }[] = [];
    for (const name of await this.io.readdir(this.dir)) {
      const first = parseSegmentName(name);
      if (first !== null) segs.push({ first, name });
    }
    segs.sort((a, b) => a.first - b.first);
    this.firsts = segs.map((s) => s.first);
    this.names = segs.map((s) => s.name);
  }

  get firstIndex(): number {
    return this.firsts.length ? this.firsts[0] : 1;
  }

  segmentPaths(from: number, to: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < this.firsts.length; i++) {
      const last = i + 1 < this.firsts.length ? this.firsts[i + 1] - 1 : Infinity;
      if (last > from && this.firsts[i] <= to) out.push(path.join(this.dir, this.names[i]));
    }
    return out;
  }
}
