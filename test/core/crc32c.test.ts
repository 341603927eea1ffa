import { describe, expect, it } from 'vitest';
import { crc32c } from '../../core/crc32c.ts';

describe('crc32c', () => {
  it('matches the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
  });

  it('can be computed in pieces', () => {
    const b = Buffer.from('the quick brown fox jumps over the lazy dog, again and again');
    for (const cut of [0, 1, 7, 8, 9, 30, b.length]) {
      expect(crc32c(b, crc32c(b, 0, 0, cut), cut, b.length)).toBe(crc32c(b));
    }
  });

  it('detects every single-bit flip in a record', () => {
    const b = Buffer.from(JSON.stringify({ type: 'configuration', name: 'x', data: { a: 1 } }));
    const good = crc32c(b);
    for (let i = 0; i < b.length * 8; i++) {
      b[i >> 3] ^= 1 << (i & 7);
      expect(crc32c(b)).not.toBe(good);
      b[i >> 3] ^= 1 << (i & 7);
    }
  });
});
