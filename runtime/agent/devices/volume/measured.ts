/**
 * The soft quota: a plain directory, measured by walking it, made read-only while over its
 * quota. The walk is bounded (ENTRIES_MAX); a tree past that counts as over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMountPoint } from './mounts.ts';
import type { Quota, VolumeRecord } from './quota.ts';

export const ENTRIES_MAX = 200_000;

/** Every path in the tree (relative, '' for the top), directories before what they hold; undefined past ENTRIES_MAX. */
function walk(top: string): Array<{ rel: string; st: fs.Stats }> | undefined {
  const out: Array<{ rel: string; st: fs.Stats }> = [];
  const stack = [''];
  while (stack.length > 0) {
    const rel = stack.pop() as string;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(top, rel));
    } catch {
      continue; // removed while we walk
    }
    out.push({ rel, st });
    if (out.length > ENTRIES_MAX) return undefined;
    if (!st.isDirectory()) continue;
    let names: string[];
    try {
      names = fs.readdirSync(path.join(top, rel));
    } catch {
      continue;
    }
    for (const n of names) stack.push(rel ? path.join(rel, n) : n);
  }
  return out;
}

export class MeasuredQuota implements Quota {
  readonly kind = 'measured' as const;
  readonly hard = false;

  async create(r: VolumeRecord): Promise<void> {
    fs.mkdirSync(r.path, { recursive: true });
    await this.attach(r);
  }

  async attach(r: VolumeRecord): Promise<void> {
    fs.mkdirSync(r.path, { recursive: true });
    if (r.owner) fs.chownSync(r.path, r.owner.uid, r.owner.gid);
  }

  async usage(r: VolumeRecord): Promise<number> {
    const entries = walk(r.path);
    if (!entries) return Number.MAX_SAFE_INTEGER;
    const inodes = new Set<number>();
    let bytes = 0;
    for (const { st } of entries) {
      if (inodes.has(st.ino)) continue; // a hard link holds its blocks once
      inodes.add(st.ino);
      bytes += st.blocks * 512;
    }
    return bytes;
  }

  refuse(r: VolumeRecord, on: boolean): void {
    if (on) {
      const cleared: Record<string, number> = { ...(r.cleared ?? {}) };
      for (const { rel, st } of walk(r.path) ?? []) {
        if (st.isSymbolicLink() || !(st.isDirectory() || st.isFile())) continue;
        const bits = st.mode & 0o222;
        if (bits === 0) continue;
        try {
          fs.chmodSync(path.join(r.path, rel), st.mode & 0o7777 & ~0o222);
          cleared[rel] = (cleared[rel] ?? 0) | bits;
        } catch {
          // removed meanwhile
        }
      }
      r.cleared = cleared;
      return;
    }
    for (const [rel, bits] of Object.entries(r.cleared ?? {})) {
      const p = path.join(r.path, rel);
      try {
        fs.chmodSync(p, (fs.lstatSync(p).mode & 0o7777) | bits);
      } catch {
        // removed while refused
      }
    }
    delete r.cleared;
  }

  async remove(r: Pick<VolumeRecord, 'path'>): Promise<void> {
    // Never delete through a mount (a loop volume's, or anyone's).
    if (isMountPoint(r.path)) throw new Error(`${r.path} is a mount point; unmount it first`);
    fs.rmSync(r.path, { recursive: true, force: true });
  }
}
