/**
 * The volume device's interface: directories with a size quota, made available to a process by
 * path, kept across process restarts, deleted only on request. `local.ts` implements it over a
 * `Quota` backend: a loop-mounted ext4 file (hard: the file system is full at the quota) or a
 * measured directory (soft: over the quota, the tree turns read-only). See README.md.
 */
import type { Device } from '../device.ts';

export type QuotaKind = 'loop' | 'measured';

import type { VolumeCommand, VolumeEvent } from '../../../../core/bus/messages.ts';
export type {
  VolumeEnsureCommand as EnsureCommand,
  VolumeDeleteCommand as DeleteCommand,
  VolumeCommand,
  VolumeEnsuredEvent as EnsuredEvent,
  VolumeDeletedEvent as DeletedEvent,
  VolumeQuotaEvent as QuotaEvent,
  VolumeEvent,
} from '../../../../core/bus/messages.ts';

export interface VolumeInfo {
  volume: string;
  path: string;
  sizeBytes: number;
  /** At the last measurement. */
  usedBytes: number;
  hard: boolean;
  /** Over its quota: writes are refused until it is back under. */
  refusing: boolean;
}

export interface VolumeSnapshot {
  quota: QuotaKind;
  volumesMax: number;
  volumes: VolumeInfo[];
}

export interface VolumeDevice extends Device<VolumeCommand, VolumeEvent, VolumeSnapshot> {
  /** Measures every volume now (the device also does it every measureMs), refusing writes where over. */
  measure(): Promise<void>;
}
