/**
 * How a volume's size is held: one small interface, two ways.
 *
 *   loop      a file of exactly sizeBytes, formatted ext4 (no blocks reserved for root) and
 *             mounted with `mount -o loop` on the volume's path: writes past the quota fail with
 *             ENOSPC, for root too. Needs root, mkfs.ext4 and loop devices.
 *   measured  a plain directory: its usage is measured (every file's allocated blocks) and, once
 *             over the quota, write permission is taken from every file and directory in it until
 *             it is back under. Holds against programs that do not run as root, and only from
 *             the measurement on.
 */
import type { QuotaKind } from './volume.ts';

/** One volume as the state file keeps it. */
export interface VolumeRecord {
  volume: string;
  sizeBytes: number;
  path: string;
  /** loop: the file system's image file. */
  image?: string;
  owner?: { uid: number; gid: number };
  /** 'creating' until made: a crash in between leaves a record that the next open removes. */
  state: 'creating' | 'ready';
  createdAt: number;
  usedBytes: number;
  /** measured: over the quota, the write bits taken from each path (relative to the volume). */
  cleared?: Record<string, number>;
}

export interface Quota {
  readonly kind: QuotaKind;
  readonly hard: boolean;
  /** Makes the volume, empty, at r.path. */
  create(r: VolumeRecord): Promise<void>;
  /** Makes an existing volume usable again, after an agent restart or a reboot (mounts it). */
  attach(r: VolumeRecord): Promise<void>;
  /** Bytes in use now. */
  usage(r: VolumeRecord): Promise<number>;
  /** measured: takes (true) or gives back (false) write permission; a hard quota needs neither. */
  refuse(r: VolumeRecord, on: boolean): void;
  /** Removes it for good: unmounted, loop device detached, files gone; 'conflict' while in use. */
  remove(r: Pick<VolumeRecord, 'volume' | 'path' | 'image'>): Promise<void>;
}
