/**
 * The volume device's interface: directories with a size quota, made available to a process by
 * path, kept across process restarts, deleted only on request. `local.ts` implements it over a
 * `Quota` backend: a loop-mounted ext4 file (hard: the file system is full at the quota) or a
 * measured directory (soft: over the quota, the tree turns read-only). See README.md.
 */
import type { Device, DeviceCommand, DeviceEvent } from '../device.ts';

export type QuotaKind = 'loop' | 'measured';

export interface EnsureCommand extends DeviceCommand {
  readonly type: 'volume.ensure';
  /** [A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters. */
  readonly volume: string;
  readonly sizeBytes: number;
  /** Who owns the volume's top directory (default root), so a program running as that user can write. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

export interface DeleteCommand extends DeviceCommand {
  readonly type: 'volume.delete';
  readonly volume: string;
}

export type VolumeCommand = EnsureCommand | DeleteCommand;

export interface EnsuredEvent extends DeviceEvent {
  readonly type: 'ensured';
  readonly volume: string;
  /** Where a process finds it: give this path to the process (env or cwd). */
  readonly path: string;
  readonly sizeBytes: number;
  /** True when the host enforces the quota itself (the file system fills up). */
  readonly hard: boolean;
  readonly already: boolean;
}

export interface DeletedEvent extends DeviceEvent {
  readonly type: 'deleted';
  readonly volume: string;
  readonly already: boolean;
}

/** A measured volume went over its quota and now refuses writes (or came back under it). */
export interface QuotaEvent extends DeviceEvent {
  readonly type: 'over-quota' | 'under-quota';
  readonly volume: string;
  readonly usedBytes: number;
  readonly sizeBytes: number;
}

export type VolumeEvent = EnsuredEvent | DeletedEvent | QuotaEvent;

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
