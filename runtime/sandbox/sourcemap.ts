/**
 * Source map v3 reading, just enough to turn `os0-program.js:LINE:COL` stack frames back into the
 * TypeScript positions they came from. `mappings` is a `;`-separated list of generated lines, each
 * a `,`-separated list of segments; a segment is 1, 4 or 5 base64 VLQ numbers, each relative to
 * the same field of the segment before it (the generated column resets on each line):
 *   [generatedColumn, sourceIndex, sourceLine, sourceColumn, nameIndex?]   all 0-based.
 * A VLQ digit carries 5 bits, low bits first, with bit 6 saying "more digits follow"; the
 * lowest bit of the decoded number is its sign.
 */
import { PROGRAM_FILENAME } from './protocol.ts';

export interface Position {
  source: string;
  line: number; // 1-based
  column: number; // 1-based
}

interface RawMap {
  version: number;
  sources: string[];
  sourceRoot?: string;
  mappings: string;
}

/** Per generated line: flat [genCol, srcIdx, srcLine, srcCol] quadruples, sorted by genCol. */
export class SourceMap {
  readonly sources: string[];
  private readonly lines: Int32Array[];

  constructor(json: string) {
    const raw = JSON.parse(json) as RawMap;
    if (raw.version !== 3 || !Array.isArray(raw.sources) || typeof raw.mappings !== 'string') {
      throw new Error('not a version 3 source map');
    }
    const root = raw.sourceRoot ? raw.sourceRoot.replace(/\/?$/, '/') : '';
    this.sources = raw.sources.map((s) => root + s);
    this.lines = decodeMappings(raw.mappings);
  }

  /** The source position of a generated 1-based line and column, or null if none maps there. */
  lookup(line: number, column: number): Position | null {
    const segs = this.lines[line - 1];
    if (!segs || segs.length === 0) return null;
    const col = column - 1;
    // The last segment starting at or before col (binary search over quadruples).
    let lo = 0;
    let hi = segs.length / 4 - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segs[mid * 4] <= col) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) found = 0; // before the first segment: the line's first mapping is the best guess
    const src = segs[found * 4 + 1];
    if (src < 0) return null;
    return { source: this.sources[src], line: segs[found * 4 + 2] + 1, column: segs[found * 4 + 3] + 1 };
  }
}

const B64 = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i;

function decodeMappings(mappings: string): Int32Array[] {
  const lines: Int32Array[] = [];
  let line: number[] = [];
  let srcIdx = 0;
  let srcLine = 0;
  let srcCol = 0;
  let genCol = 0;
  const fields: number[] = [];
  let value = 0;
  let shift = 0;
  const endSegment = (): void => {
    if (fields.length === 0) return;
    genCol += fields[0];
    if (fields.length >= 4) {
      srcIdx += fields[1];
      srcLine += fields[2];
      srcCol += fields[3];
      line.push(genCol, srcIdx, srcLine, srcCol);
    } else line.push(genCol, -1, 0, 0); // a generated column that maps to no source
    fields.length = 0;
  };
  for (let i = 0; i < mappings.length; i++) {
    const c = mappings.charCodeAt(i);
    if (c === 59 /* ; */) {
      endSegment();
      lines.push(sortedQuads(line));
      line = [];
      genCol = 0;
    } else if (c === 44 /* , */) {
      endSegment();
    } else {
      const digit = c < 128 ? B64[c] : -1;
      if (digit < 0) throw new Error(`bad character ${JSON.stringify(mappings[i])} in source map mappings`);
      value += (digit & 31) * 2 ** shift;
      if (digit & 32) {
        shift += 5;
        if (shift > 30) throw new Error('source map VLQ number too large');
      } else {
        fields.push(value % 2 === 1 ? -(value - 1) / 2 : value / 2);
        value = 0;
        shift = 0;
      }
    }
  }
  endSegment();
  lines.push(sortedQuads(line));
  return lines;
}

function sortedQuads(flat: number[]): Int32Array {
  const q = Int32Array.from(flat);
  for (let i = 4; i < q.length; i += 4) {
    if (q[i] < q[i - 4]) {
      // esbuild emits segments in order; sort defensively if a map does not.
      const quads: number[][] = [];
      for (let j = 0; j < q.length; j += 4) quads.push([q[j], q[j + 1], q[j + 2], q[j + 3]]);
      quads.sort((a, b) => a[0] - b[0]);
      return Int32Array.from(quads.flat());
    }
  }
  return q;
}

const FRAME = new RegExp(`${PROGRAM_FILENAME.replace('.', '\\.')}:(-?\\d+):(\\d+)`, 'g');
const STACK_CHARS_MAX = 16_384;

/**
 * Rewrites a stack printed inside the isolate: frames in the program become `source:line:col`,
 * frames in the sandbox's own prelude (line < 1) are dropped, anything else is kept as printed.
 * Returns the new stack and the first mapped position (where the program threw).
 */
export function mapStack(stack: string, map: SourceMap | null): { stack: string; top: Position | null } {
  let top: Position | null = null;
  const out: string[] = [];
  for (const line of stack.slice(0, STACK_CHARS_MAX).split('\n')) {
    FRAME.lastIndex = 0;
    const m = FRAME.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const genLine = Number(m[1]);
    if (genLine < 1) continue; // the sandbox's prelude, not the program
    const pos = map ? map.lookup(genLine, Number(m[2])) : null;
    if (pos) top ??= pos;
    out.push(pos ? line.replace(FRAME, `${pos.source}:${pos.line}:${pos.column}`) : line);
  }
  return { stack: out.join('\n'), top };
}
