import * as esbuild from 'esbuild';
import { describe, expect, it } from 'vitest';
import { SourceMap, mapStack } from '../../runtime/sandbox/sourcemap.ts';

/** Encodes one VLQ number the way the spec does, to build maps by hand. */
function vlq(n: number): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  let v = n < 0 ? (-n << 1) | 1 : n << 1;
  let out = '';
  do {
    let digit = v & 31;
    v >>>= 5;
    if (v > 0) digit |= 32;
    out += chars[digit];
  } while (v > 0);
  return out;
}

describe('source maps', () => {
  it('decodes VLQ segments, relative fields and negative deltas', () => {
    expect(vlq(0)).toBe('A');
    expect(vlq(-1)).toBe('D');
    expect(vlq(16)).toBe('gB');
    // line 1: col 0 → a.ts 1:1; col 10 → b.ts 5:3.  line 2: (empty).  line 3: col 4 → a.ts 3:1 (a negative source index delta)
    const mappings = ['AAAA', [10, 1, 4, 2].map(vlq).join('')].join(',') + ';;' + [4, -1, -2, -2].map(vlq).join('');
    const map = new SourceMap(JSON.stringify({ version: 3, sources: ['a.ts', 'b.ts'], mappings }));
    expect(map.lookup(1, 1)).toEqual({ source: 'a.ts', line: 1, column: 1 });
    expect(map.lookup(1, 10)).toEqual({ source: 'a.ts', line: 1, column: 1 });
    expect(map.lookup(1, 11)).toEqual({ source: 'b.ts', line: 5, column: 3 });
    expect(map.lookup(1, 500)).toEqual({ source: 'b.ts', line: 5, column: 3 });
    expect(map.lookup(2, 1)).toBeNull();
    expect(map.lookup(3, 5)).toEqual({ source: 'a.ts', line: 3, column: 1 });
    expect(map.lookup(99, 1)).toBeNull();
  });

  it('decodes multi-digit numbers up to 30 bits and rejects junk', () => {
    const big = 123_456_789;
    const map = new SourceMap(JSON.stringify({ version: 3, sources: ['x.ts'], mappings: [0, 0, big, 7].map(vlq).join('') }));
    expect(map.lookup(1, 1)).toEqual({ source: 'x.ts', line: big + 1, column: 8 });
    expect(() => new SourceMap(JSON.stringify({ version: 3, sources: [], mappings: 'A!A' }))).toThrow(/bad character/);
    expect(() => new SourceMap(JSON.stringify({ version: 2, sources: [], mappings: '' }))).toThrow(/version 3/);
  });

  it('agrees with esbuild on where every identifier came from', async () => {
    const source = ['interface T { a: number }', 'const first: T = { a: 1 };', '', 'function second(x: number): number {', '  return x * alpha;', '}', 'const alpha = 2;', 'export const result = second(first.a) + alpha;'].join('\n');
    const out = await esbuild.transform(source, { loader: 'ts', format: 'iife', sourcemap: 'external', sourcefile: 'prog.ts' });
    const map = new SourceMap(out.map);
    const genLines = out.code.split('\n');
    for (const name of ['first', 'second', 'alpha', 'result']) {
      const srcLine = source.split('\n').findIndex((l) => new RegExp(`\\b${name}\\b`).test(l));
      const genLine = genLines.findIndex((l) => new RegExp(`\\b${name}\\b`).test(l));
      const pos = map.lookup(genLine + 1, genLines[genLine].search(new RegExp(`\\b${name}\\b`)) + 1);
      expect(pos?.source).toBe('prog.ts');
      expect(pos?.line, name).toBe(srcLine + 1);
    }
  });

  it('rewrites program frames in a stack, drops the prelude, keeps the rest', () => {
    const map = new SourceMap(JSON.stringify({ version: 3, sources: ['src/greet.ts'], mappings: ';' + [2, 0, 6, 4].map(vlq).join('') }));
    const stack = ['Error: boom', '    at greet (os0-program.js:2:5)', '    at start (os0-program.js:-40:12)', '    at os0-program.js:9:1', '    at <anonymous>'].join('\n');
    const { stack: mapped, top } = mapStack(stack, map);
    expect(top).toEqual({ source: 'src/greet.ts', line: 7, column: 5 });
    expect(mapped.split('\n')).toEqual(['Error: boom', '    at greet (src/greet.ts:7:5)', '    at os0-program.js:9:1', '    at <anonymous>']);
    expect(mapStack(stack, null).top).toBeNull();
  });
});
