/**
 * The volume device: directories with a size quota, hard (a loop-mounted ext4 file, as root) or
 * measured, made available to a process by path. See README.md.
 */
export type * from './volume.ts';
export { LocalVolumes, openQuota, VOLUME_DEFAULTS, type LocalVolumeOptions } from './local.ts';
export type { Quota, VolumeRecord } from './quota.ts';
export { isMountPoint, loopsOf } from './mounts.ts';
