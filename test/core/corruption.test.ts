/**
 * Damaged data directories: write real data through the core, close it, damage the files on disk
 * in a precise spot (checked with an independent parser of the formats), and reopen.
 *
 * - A torn tail (the newest WAL segment ends in a partial, damaged or padded record) is cut,
 *   reported in `core.torn`, and the core goes on: everything before the cut survives.
 * - Anything else (damage with valid records after it, damage in a sealed segment, in an sstable or
 *   in the MANIFEST) refuses to open with an OsError 'corrupt' that names the file and the offset,
 *   and leaves the files as they were, so they can be inspected or restored.
 * - Left-overs of a crash during flush or compaction are deleted on open and the data is intact.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Core, type CoreOptions } from '../../core/index.ts';
import { crc32c } from '../../core/crc32c.ts';
import { runJob } from '../../core/sstable/jobs.ts';
import {
  appendBytes,
  expectOsError,
  flipByte,
  mulberry32,
  parseSst,
  parseWal,
  readManifest,
  removeDir,
  scratchDir,
  walSegments,
  type WalRecordInfo,
} from './helpers.ts';

const root = scratchDir('corruption');
afterAll(() => removeDir(root));

let seq = 0;
/** A fresh copy of a template data directory. */
function copyOf(template: string): string {
  const dir = path.join(root, `case-${++seq}`);
  fs.cpSync(template, dir, { recursive: true });
  return dir;
}

/** Writes `count` resources r-<from>..., 8 submitters at a time; returns name → revision. */
async function populate(core: Core, from: number, count: number, padBytes: number): Promise<Map<string, number>> {
  const written = new Map<string, number>();
  for (let i = from; i < from + count; i += 8) {
    const chunk = [];
    for (let j = i; j < Math.min(i + 8, from + count); j++) {
      chunk.push(core.submit({ op: 'create', resource: { type: 'item', namespace: 'ns', name: `r-${j}`, tags: { n: String(j % 7) }, data: { j, pad: 'y'.repeat(padBytes) } } }));
    }
    for (const res of await Promise.all(chunk)) written.set(res.resources[0].name, res.index);
  }
  return written;
}

/** Every file under the data directory and a hash of its bytes: to show a failed open changed nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const sub of ['wal', 'sst']) {
    const d = path.join(dir, sub);
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d)) out[`${sub}/${f}`] = createHash('sha256').update(fs.readFileSync(path.join(d, f))).digest('hex');
  }
  return out;
}

/** Names of the resources a WAL record put. */
const namesIn = (rec: WalRecordInfo): string[] => (JSON.parse(rec.body.split('\n')[0]) as { c: { r: { name: string } }[] }).c.map((c) => c.r.name);

function expectPresent(core: Core, written: Map<string, number>, where: string): void {
  const missing: string[] = [];
  for (const [name, rev] of written) {
    const r = core.get('item', name, 'ns');
    if (!r || r.revision !== rev) missing.push(`${name}@${rev} (found ${r ? r.revision : 'nothing'})`);
  }
  expect(missing, `${where}: acknowledged resources missing or changed`).toEqual([]);
}

/** Opens a data directory that must be refused as corrupt, and checks the files were left alone. */
async function expectCorrupt(dir: string, opts: Partial<CoreOptions>, ...mentions: string[]): Promise<string> {
  const before = snapshot(dir);
  const e = await expectOsError(Core.open({ dir, ...opts }), 'corrupt');
  for (const m of mentions) expect(e.message).toContain(m);
  expect(snapshot(dir), 'a refused open must not repair, cut or delete anything').toEqual(before);
  return e.message;
}

// ---- the WAL --------------------------------------------------------------------------------

describe('WAL damage', () => {
  // Small segments and no flush: several segments stay on disk, the newest one with many records.
  const OPTS = { segmentBytes: 16 * 1024, autoFlush: false, worker: false } satisfies Partial<CoreOptions>;
  let template: string;
  let written: Map<string, number>;

  beforeAll(async () => {
    template = path.join(root, 'wal-template');
    const core = await Core.open({ dir: template, ...OPTS });
    written = await populate(core, 0, 150, 200);
    await core.close();
    const segs = walSegments(template);
    expect(segs.length, 'the template needs several segments').toBeGreaterThanOrEqual(3);
    expect(parseWal(segs[segs.length - 1]).records.length, 'the newest segment needs several records').toBeGreaterThanOrEqual(6);
  });

  const lastSegment = (dir: string): { file: string; records: WalRecordInfo[]; size: number } => {
    const segs = walSegments(dir);
    const file = segs[segs.length - 1];
    return { file, ...parseWal(file) };
  };

  /**
   * Opens a directory whose newest segment has a torn tail at `offset`: the tail is cut and
   * reported, what came before is intact, what the tail held is gone, the core takes new writes,
   * and all of it survives another (clean) reopen.
   */
  async function expectTornTail(dir: string, file: string, offset: number, lost: string[], reason?: RegExp): Promise<void> {
    const size = fs.statSync(file).size;
    const kept = new Map([...written].filter(([n]) => !lost.includes(n)));
    const lastKept = Math.max(...kept.values());
    const core = await Core.open({ dir, ...OPTS });
    try {
      expect(core.torn, 'the torn tail was not reported').not.toBeNull();
      expect(path.basename(core.torn!.file)).toBe(path.basename(file));
      expect(core.torn!.offset).toBe(offset);
      expect(core.torn!.bytes).toBe(size - offset);
      if (reason) expect(core.torn!.reason).toMatch(reason);
      expect(fs.statSync(file).size, 'the tail was not cut off the file').toBe(offset);
      expectPresent(core, kept, 'after cutting the torn tail');
      for (const n of lost) expect(core.get('item', n, 'ns'), `${n} was in the torn tail`).toBeUndefined();
      expect(core.index).toBe(lastKept);
      // New writes succeed, at the next index, and a name lost with the tail can be created again.
      const again = await populate(core, 1000, 5, 50);
      expect(Math.min(...again.values())).toBe(lastKept + 1);
      for (const [n, rev] of again) kept.set(n, rev);
      if (lost.length > 0) {
        const res = await core.submit({ op: 'create', resource: { type: 'item', namespace: 'ns', name: lost[0], data: { recreated: true } } });
        kept.set(lost[0], res.index);
      }
    } finally {
      await core.close();
    }
    const reopened = await Core.open({ dir, ...OPTS });
    try {
      expect(reopened.torn, 'a clean reopen after the repair found a torn tail again').toBeNull();
      expectPresent(reopened, kept, 'after a second reopen');
      expect(reopened.query({ type: 'item' }).length).toBe(kept.size);
    } finally {
      await reopened.close();
    }
  }

  it('a newest segment cut in the middle of its last record: torn tail, everything before it kept', async () => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const rec = seg.records[seg.records.length - 1];
    const cut = rec.offset + 24 + Math.floor(rec.len / 2);
    fs.truncateSync(seg.file, cut);
    await expectTornTail(dir, seg.file, rec.offset, namesIn(rec), /cut short/);
  });

  it('a newest segment cut in the middle of a record header: torn tail', async () => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const rec = seg.records[seg.records.length - 2];
    fs.truncateSync(seg.file, rec.offset + 10);
    const lost = seg.records.slice(-2).flatMap(namesIn);
    await expectTornTail(dir, seg.file, rec.offset, lost, /header cut short/);
  });

  it.each([
    ['record magic', 0],
    ['body length', 4],
    ['index', 9],
    ['checksum', 17],
    ['body', -1],
  ])('a flipped byte in the last record (%s): torn tail', async (_what, at) => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const rec = seg.records[seg.records.length - 1];
    flipByte(seg.file, rec.offset + (at >= 0 ? at : 24 + Math.floor(rec.len / 2)));
    await expectTornTail(dir, seg.file, rec.offset, namesIn(rec));
  });

  it.each([
    ['4 KiB of zeros', () => Buffer.alloc(4096)],
    ['5 zero bytes (less than a record header)', () => Buffer.alloc(5)],
    ['1000 bytes of garbage', () => Buffer.from(Array.from({ length: 1000 }, mulberry32(7)).map((x) => Math.floor(x * 256)))],
    [
      'a record header whose body never made it',
      () => {
        const b = Buffer.alloc(24);
        b.writeUInt32LE(0x4c57304f, 0);
        b.writeUInt32LE(300, 4);
        return b;
      },
    ],
    ['a stray copy of the first record (wrong index)', (first: Buffer) => first],
  ])('%s appended to the newest segment: torn tail, nothing lost', async (_what, make) => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const first = fs.readFileSync(seg.file).subarray(seg.records[0].offset, seg.records[0].offset + seg.records[0].size);
    appendBytes(seg.file, make(Buffer.from(first)));
    await expectTornTail(dir, seg.file, seg.size, []);
  });

  it.each([
    ['empty', 0],
    ['cut inside its header', 11],
  ])('a crash while starting a new segment leaves it %s: torn tail, the header is rewritten, nothing lost', async (_what, bytes) => {
    const dir = copyOf(template);
    const prev = lastSegment(dir);
    const last = prev.records[prev.records.length - 1].index;
    const file = path.join(dir, 'wal', (last + 1).toString(16).padStart(16, '0') + '.wal');
    const header = Buffer.alloc(16);
    header.write('OS0WAL01', 0, 'latin1');
    header.writeUInt32LE(last + 1, 8);
    fs.writeFileSync(file, header.subarray(0, bytes));
    const core = await Core.open({ dir, ...OPTS });
    const kept = new Map(written);
    try {
      expect(core.torn).toMatchObject({ offset: 0, bytes });
      expect(path.basename(core.torn!.file)).toBe(path.basename(file));
      expect(fs.readFileSync(file).equals(header), 'the segment header was not rewritten').toBe(true);
      expectPresent(core, written, 'after a crash in rotation');
      expect(core.index).toBe(last);
      for (const [n, r] of await populate(core, 2000, 5, 10)) kept.set(n, r);
    } finally {
      await core.close();
    }
    expect(parseWal(file).records.map((r) => r.index)).toEqual([last + 1, last + 2, last + 3, last + 4, last + 5]);
    const again = await Core.open({ dir, ...OPTS });
    try {
      expect(again.torn).toBeNull();
      expectPresent(again, kept, 'reopened');
    } finally {
      await again.close();
    }
  });

  it.each([
    ['a body byte', -1],
    ['the record magic', 0],
    ['the body length', 5],
  ])('a flipped byte (%s) in a record in the middle of the newest segment: corrupt, naming segment and offset', async (_what, at) => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const rec = seg.records[Math.floor(seg.records.length / 2)];
    flipByte(seg.file, rec.offset + (at >= 0 ? at : 24 + Math.floor(rec.len / 2)));
    await expectCorrupt(dir, OPTS, path.basename(seg.file), `offset ${rec.offset}`);
  });

  it('a flipped byte in the first record of the newest segment: corrupt', async () => {
    const dir = copyOf(template);
    const seg = lastSegment(dir);
    const rec = seg.records[0];
    flipByte(seg.file, rec.offset + 24 + 3);
    await expectCorrupt(dir, OPTS, path.basename(seg.file), `offset ${rec.offset}`);
  });

  it('a flipped byte in the last record of a sealed segment (it would be a torn tail if it were the newest): corrupt', async () => {
    const dir = copyOf(template);
    const file = walSegments(dir)[0];
    const { records } = parseWal(file);
    const rec = records[records.length - 1];
    flipByte(file, rec.offset + 24 + Math.floor(rec.len / 2));
    await expectCorrupt(dir, OPTS, path.basename(file), `offset ${rec.offset}`);
  });

  it('a sealed segment cut short: corrupt', async () => {
    const dir = copyOf(template);
    const file = walSegments(dir)[1];
    const { records } = parseWal(file);
    const rec = records[records.length - 1];
    fs.truncateSync(file, rec.offset + 30);
    await expectCorrupt(dir, OPTS, path.basename(file), `offset ${rec.offset}`);
  });

  it('a sealed segment with a damaged header: corrupt', async () => {
    const dir = copyOf(template);
    const file = walSegments(dir)[1];
    flipByte(file, 2);
    await expectCorrupt(dir, OPTS, path.basename(file), 'offset 0');
  });

  it('a missing segment in the middle of the log: corrupt', async () => {
    const dir = copyOf(template);
    const segs = walSegments(dir);
    fs.rmSync(segs[1]);
    await expectCorrupt(dir, OPTS, path.basename(segs[0]));
  });

  it('the oldest segment missing (the log starts after index 1 with no sstable): corrupt', async () => {
    const dir = copyOf(template);
    fs.rmSync(walSegments(dir)[0]);
    await expectCorrupt(dir, OPTS);
  });

  it('the undamaged template opens cleanly (the damage above is what the tests detect)', async () => {
    const dir = copyOf(template);
    const core = await Core.open({ dir, ...OPTS });
    try {
      expect(core.torn).toBeNull();
      expectPresent(core, written, 'undamaged');
    } finally {
      await core.close();
    }
  });
});

// ---- sstables and the MANIFEST --------------------------------------------------------------

describe('sstable and MANIFEST damage', () => {
  // One base sstable (several data blocks) plus records in the WAL after it; no retained log
  // window, so the WAL holds only the records after the sstable.
  const OPTS = { worker: false, retainRecords: 0 } satisfies Partial<CoreOptions>;
  let baseTemplate: string;
  let baseWritten: Map<string, number>;
  // Several delta sstables, no base, plus WAL records after them.
  let deltaTemplate: string;
  let deltaWritten: Map<string, number>;
  const DELTA_OPTS = { segmentBytes: 16 * 1024, worker: false, deltasBeforeCompaction: 1000 } satisfies Partial<CoreOptions>;

  beforeAll(async () => {
    // Background flush and compaction after every sealed segment leave a base and no deltas.
    baseTemplate = path.join(root, 'base-template');
    let core = await Core.open({ dir: baseTemplate, ...OPTS, segmentBytes: 64 * 1024, deltasBeforeCompaction: 1 });
    baseWritten = await populate(core, 0, 600, 300);
    for (const [n, r] of await populate(core, 600, 10, 10)) baseWritten.set(n, r);
    await core.close();
    const m = readManifest(baseTemplate);
    expect(m.base, 'background compaction wrote no base sstable').not.toBeNull();
    expect(m.deltas).toEqual([]);
    expect(m.covered).toBeLessThan(Math.max(...baseWritten.values()));
    expect(parseSst(path.join(baseTemplate, 'sst', m.base!)).blocks.length, 'the base needs several data blocks').toBeGreaterThanOrEqual(3);

    deltaTemplate = path.join(root, 'delta-template');
    core = await Core.open({ dir: deltaTemplate, ...DELTA_OPTS });
    deltaWritten = await populate(core, 0, 300, 200);
    await core.close();
    const d = readManifest(deltaTemplate);
    expect(d.base).toBeNull();
    expect(d.deltas.length, 'the template needs several deltas').toBeGreaterThanOrEqual(3);
  });

  const sstFile = (dir: string, name: string): string => path.join(dir, 'sst', name);

  it('a flipped byte inside a data block of the base: corrupt, naming the .sst file and the block offset', async () => {
    const dir = copyOf(baseTemplate);
    const name = readManifest(dir).base!;
    const file = sstFile(dir, name);
    const blk = parseSst(file).blocks[1];
    flipByte(file, blk.offset + 16 + Math.floor(blk.len / 2));
    await expectCorrupt(dir, OPTS, name, `offset ${blk.offset}`, 'checksum');
  });

  it('a flipped byte in a data block header of the base: corrupt', async () => {
    const dir = copyOf(baseTemplate);
    const name = readManifest(dir).base!;
    const file = sstFile(dir, name);
    const blk = parseSst(file).blocks[0];
    flipByte(file, blk.offset + 1);
    await expectCorrupt(dir, OPTS, name, `offset ${blk.offset}`);
  });

  it('a flipped byte inside a data block of a delta: corrupt, naming that delta', async () => {
    const dir = copyOf(deltaTemplate);
    const name = readManifest(dir).deltas[1];
    const file = sstFile(dir, name);
    const blk = parseSst(file).blocks[0];
    flipByte(file, blk.offset + 16 + Math.floor(blk.len / 3));
    await expectCorrupt(dir, DELTA_OPTS, name, `offset ${blk.offset}`);
  });

  it.each([
    ['the "to" field', 8],
    ['the entry count', 16],
    ['the footer checksum', 40],
    ['the footer magic', 45],
  ])('a flipped byte in the footer (%s): corrupt, naming the file and the footer offset', async (_what, at) => {
    const dir = copyOf(baseTemplate);
    const name = readManifest(dir).base!;
    const file = sstFile(dir, name);
    const { footerOffset } = parseSst(file);
    flipByte(file, footerOffset + at);
    await expectCorrupt(dir, OPTS, name, `offset ${footerOffset}`);
  });

  it('a flipped byte in the index block (its checksum is part of the format): corrupt', async () => {
    const dir = copyOf(baseTemplate);
    const name = readManifest(dir).base!;
    const file = sstFile(dir, name);
    const { index } = parseSst(file);
    flipByte(file, index.offset + 16 + Math.floor(index.len / 2));
    await expectCorrupt(dir, OPTS, name, `offset ${index.offset}`);
  });

  it('an sstable cut short: corrupt', async () => {
    const dir = copyOf(baseTemplate);
    const name = readManifest(dir).base!;
    const file = sstFile(dir, name);
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    await expectCorrupt(dir, OPTS, name);
  });

  it('a crash in the middle of compaction and flush: stray *.sst.tmp and an unreferenced .sst are deleted on open, data intact', async () => {
    const dir = copyOf(deltaTemplate);
    const sst = path.join(dir, 'sst');
    const m = readManifest(dir);
    const manifestBefore = fs.readFileSync(path.join(sst, 'MANIFEST'));
    // A compaction that finished its output (renamed into place) but died before the MANIFEST named it.
    const doneName = `base-${m.covered.toString(16).padStart(16, '0')}.sst`;
    runJob({ kind: 'compact', inputs: m.deltas.map((f) => path.join(sst, f)), to: m.covered, out: path.join(sst, doneName) });
    // One that died half-way through writing, and a flush that did, and a MANIFEST being replaced.
    const full = fs.readFileSync(path.join(sst, doneName));
    fs.writeFileSync(path.join(sst, `base-${(m.covered + 7).toString(16).padStart(16, '0')}.sst.tmp`), full.subarray(0, Math.floor(full.length / 2)));
    fs.writeFileSync(path.join(sst, `delta-${m.covered.toString(16).padStart(16, '0')}-${(m.covered + 7).toString(16).padStart(16, '0')}.sst.tmp`), full.subarray(0, 100));
    fs.writeFileSync(path.join(sst, 'MANIFEST.tmp'), '12345\n{"base":');
    const strays = fs.readdirSync(sst).filter((f) => f !== 'MANIFEST' && !m.deltas.includes(f));
    expect(strays.length).toBe(4);

    const expected = new Map(deltaWritten);
    const core = await Core.open({ dir, ...DELTA_OPTS });
    try {
      expect(fs.readdirSync(sst).sort()).toEqual(['MANIFEST', ...m.deltas].sort());
      expect(fs.readFileSync(path.join(sst, 'MANIFEST')).equals(manifestBefore)).toBe(true);
      expectPresent(core, expected, 'after the interrupted compaction');
      expect(core.query({ type: 'item' }).length).toBe(expected.size);
      // And compaction works afterwards.
      for (const [n, r] of await populate(core, 5000, 20, 10)) expected.set(n, r);
      await core.checkpoint();
    } finally {
      await core.close();
    }
    const after = readManifest(dir);
    expect(after.deltas, 'checkpoint() did not fold the deltas into a base').toEqual([]);
    expect(after.covered, 'checkpoint() did not flush the WAL').toBe(Math.max(...expected.values()));
    const again = await Core.open({ dir, ...DELTA_OPTS });
    try {
      expectPresent(again, expected, 'after a checkpoint following the interrupted compaction');
    } finally {
      await again.close();
    }
  });

  it('a crash after compaction replaced the MANIFEST but before it deleted its inputs: the old deltas are deleted, data intact', async () => {
    const dir = copyOf(deltaTemplate);
    const sst = path.join(dir, 'sst');
    const m = readManifest(dir);
    const name = `base-${m.covered.toString(16).padStart(16, '0')}.sst`;
    runJob({ kind: 'compact', inputs: m.deltas.map((f) => path.join(sst, f)), to: m.covered, out: path.join(sst, name) });
    const body = JSON.stringify({ base: name, deltas: [], covered: m.covered });
    fs.writeFileSync(path.join(sst, 'MANIFEST'), `${crc32c(Buffer.from(body))}\n${body}`);
    const core = await Core.open({ dir, ...DELTA_OPTS });
    try {
      expect(fs.readdirSync(sst).sort()).toEqual(['MANIFEST', name]);
      expectPresent(core, deltaWritten, 'after the interrupted clean-up');
      expect(core.query({ type: 'item' }).length).toBe(deltaWritten.size);
      expect(core.stats().covered).toBe(m.covered);
    } finally {
      await core.close();
    }
  });

  it('a MANIFEST with a flipped byte: corrupt, naming the MANIFEST; no sstable deleted', async () => {
    const dir = copyOf(baseTemplate);
    const file = path.join(dir, 'sst', 'MANIFEST');
    const text = fs.readFileSync(file, 'utf8');
    flipByte(file, text.indexOf('base-') + 6);
    await expectCorrupt(dir, OPTS, 'MANIFEST');
  });

  it('a MANIFEST cut to nothing: corrupt', async () => {
    const dir = copyOf(baseTemplate);
    fs.truncateSync(path.join(dir, 'sst', 'MANIFEST'), 0);
    await expectCorrupt(dir, OPTS, 'MANIFEST');
  });

  it('a MANIFEST cut in the middle of its JSON: corrupt', async () => {
    const dir = copyOf(baseTemplate);
    const file = path.join(dir, 'sst', 'MANIFEST');
    fs.truncateSync(file, fs.statSync(file).size - 5);
    await expectCorrupt(dir, OPTS, 'MANIFEST');
  });

  it('a MANIFEST that names an sstable that is gone: corrupt, naming the file', async () => {
    const dir = copyOf(deltaTemplate);
    const m = readManifest(dir);
    fs.rmSync(path.join(dir, 'sst', m.deltas[1]));
    await expectCorrupt(dir, DELTA_OPTS, m.deltas[1]);
  });

  it('a MANIFEST that is gone while sstables and a WAL that depends on them remain: corrupt, and the sstables are not deleted', async () => {
    const dir = copyOf(baseTemplate);
    // The WAL starts after what the sstable holds: without the sstable, records 1.. are gone.
    expect(parseWal(walSegments(dir)[0]).first).toBe(readManifest(dir).covered + 1);
    fs.rmSync(path.join(dir, 'sst', 'MANIFEST'));
    await expectCorrupt(dir, OPTS);
  });

  it('the undamaged templates open cleanly', async () => {
    for (const [template, written, opts] of [
      [baseTemplate, baseWritten, OPTS],
      [deltaTemplate, deltaWritten, DELTA_OPTS],
    ] as const) {
      const dir = copyOf(template);
      const core = await Core.open({ dir, ...opts });
      try {
        expect(core.torn).toBeNull();
        expectPresent(core, written, 'undamaged');
      } finally {
        await core.close();
      }
    }
  });
});
