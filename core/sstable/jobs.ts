/**
 * The two background jobs, as plain synchronous functions (they run in the compaction worker,
 * or inline in tests): flush sealed WAL segments into a delta sstable, and merge a base and its
 * deltas into a new base.
 */
import * as fs from 'node:fs';
import { decodeBody } from '../log/record.ts';
import { readSealedSegmentSync } from '../log/segments.ts';
import { entryKey, SstReader, SstWriter, type Entry } from './sstable.ts';

export interface FlushJob {
  kind: 'flush';
  segments: string[];
  from: number;
  to: number;
  out: string;
}

export interface CompactJob {
  kind: 'compact';
  inputs: string[];
  to: number;
  out: string;
}

export type Job = FlushJob | CompactJob;
export interface JobResult {
  path: string;
  entries: number;
  bytes: number;
}

interface Row {
  key: string;
  rev: number;
  json: string;
}

/** Every change in log records from+1..to, as versioned entries sorted by key and revision. */
export function flush(job: FlushJob): JobResult {
  const rows: Row[] = [];
  for (const file of job.segments) {
    for (const rec of readSealedSegmentSync(file)) {
      if (rec.index <= job.from || rec.index > job.to) continue;
      for (const ch of decodeBody(rec.body).c) {
        const e = ch.o === 'delete' ? { $del: 1, id: ch.r.id, namespace: ch.r.namespace, type: ch.r.type, name: ch.r.name, revision: rec.index } : (ch.r as unknown as Entry);
        rows.push({ key: entryKey(e), rev: rec.index, json: JSON.stringify(e) });
      }
    }
  }
  rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.rev - b.rev));
  const tmp = job.out + '.tmp';
  const w = new SstWriter(tmp, 'delta');
  try {
    for (const r of rows) w.add(r.key, r.json);
    const res = w.finish(job.from, job.to);
    fs.renameSync(tmp, job.out);
    return { path: job.out, entries: res.entries, bytes: res.bytes };
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Merges sorted inputs (oldest first) keeping only the newest live version of each key. */
export function compact(job: CompactJob): JobResult {
  const readers = job.inputs.map((p) => new SstReader(p));
  const iters = readers.map((r) => r.entries());
  const heads: (Entry | null)[] = [];
  const keys: string[] = [];
  const advance = (i: number): void => {
    const n = iters[i].next();
    heads[i] = n.done ? null : n.value;
    keys[i] = n.done ? '' : entryKey(n.value);
  };
  for (let i = 0; i < iters.length; i++) advance(i);
  const tmp = job.out + '.tmp';
  const w = new SstWriter(tmp, 'base');
  try {
    for (;;) {
      let min: string | null = null;
      for (let i = 0; i < heads.length; i++) if (heads[i] && (min === null || keys[i] < min)) min = keys[i];
      if (min === null) break;
      let win: Entry | null = null;
      for (let i = 0; i < heads.length; i++) {
        // Later inputs hold later indexes: on a tie the later one wins.
        while (heads[i] && keys[i] === min) {
          if (!win || heads[i]!.revision >= win.revision) win = heads[i];
          advance(i);
        }
      }
      if (win && !win.$del) w.add(min, JSON.stringify(win));
    }
    const res = w.finish(0, job.to);
    fs.renameSync(tmp, job.out);
    return { path: job.out, entries: res.entries, bytes: res.bytes };
  } catch (e) {
    w.abort();
    throw e;
  } finally {
    for (const r of readers) r.close();
  }
}

export function runJob(job: Job): JobResult {
  return job.kind === 'flush' ? flush(job) : compact(job);
}
