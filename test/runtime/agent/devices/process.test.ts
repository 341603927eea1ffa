/** The process device's cases against each limiter this host has (cgroup v2, cgroup v1, rlimits). */
import { describe } from 'vitest';
import { openLimiter, type LimiterKind } from '../../../../runtime/agent/devices/process/index.ts';
import { processCases } from './process.case.ts';

function has(kind: LimiterKind): boolean {
  try {
    openLimiter(`probe-${process.pid}`, kind).tidy();
    return true;
  } catch {
    return false;
  }
}

const kinds: Array<[LimiterKind, number]> = [
  ['cgroup-v2', 41000],
  ['cgroup-v1', 42000],
  ['rlimit', 43000],
];
for (const [kind, portBase] of kinds) {
  describe.skipIf(!has(kind))(`process device with ${kind} limits`, () => processCases(kind, portBase));
}
