/** Picks the best limiter this host allows: cgroup v2, then cgroup v1, then rlimits. */
import { CgroupV1Limiter } from './cgroup-v1.ts';
import { CgroupV2Limiter } from './cgroup-v2.ts';
import type { Limiter, LimiterKind } from './limits.ts';
import { RlimitLimiter } from './rlimit.ts';

/**
 * `name` keeps one agent's cgroups apart from another's on the same host. With `want`, that kind
 * or a one-line error saying why this host cannot have it.
 */
export function openLimiter(name: string, want?: LimiterKind): Limiter {
  if (want === 'rlimit') return new RlimitLimiter();
  const reasons: string[] = [];
  for (const [kind, open] of [
    ['cgroup-v2', CgroupV2Limiter.open],
    ['cgroup-v1', CgroupV1Limiter.open],
  ] as const) {
    if (want !== undefined && want !== kind) continue;
    const got = open(name);
    if (typeof got !== 'string') return got;
    reasons.push(got);
  }
  if (want !== undefined) throw new Error(`${want} limits are not available here: ${reasons.join('; ')}`);
  return new RlimitLimiter();
}
