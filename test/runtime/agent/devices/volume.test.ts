/** The volume device's cases against each quota backend this host has (loop-mounted ext4, measured). */
import { describe } from 'vitest';
import { openQuota, type QuotaKind } from '../../../../runtime/agent/devices/volume/index.ts';
import { volumeCases } from './volume.case.ts';

function has(kind: QuotaKind): boolean {
  try {
    openQuota(kind);
    return true;
  } catch {
    return false;
  }
}

for (const kind of ['loop', 'measured'] as const) {
  describe.skipIf(!has(kind))(`volume device with ${kind} quotas`, () => volumeCases(kind));
}
