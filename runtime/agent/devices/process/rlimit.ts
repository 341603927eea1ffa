/**
 * Limits through rlimits, for hosts without usable cgroups: RLIMIT_DATA holds each process's
 * heap and private mappings (not the tree's sum), RLIMIT_NPROC counts the processes of the user
 * (and root is exempt), and there is no CPU rate. The snapshot says so through `enforced`.
 */
import type { Limiter, Limits, Placement } from './limits.ts';

export class RlimitLimiter implements Limiter {
  readonly kind = 'rlimit' as const;
  readonly enforced = {
    memory: 'rlimit RLIMIT_DATA, per process',
    cpu: 'none',
    pids: process.getuid?.() === 0 ? 'none (RLIMIT_NPROC does not hold root)' : 'rlimit RLIMIT_NPROC, per user',
  };

  place(task: string, limits: Limits): Placement {
    // util-linux prlimit on the launcher itself (shells spell ulimit's options differently).
    const opts: string[] = [];
    if (limits.memoryBytes !== undefined) opts.push(`--data=${limits.memoryBytes}`);
    if (limits.pids !== undefined) opts.push(`--nproc=${limits.pids}`);
    return { kind: this.kind, task, dirs: [], shell: opts.length > 0 ? [`prlimit --pid $$ ${opts.join(' ')}`] : [] };
  }

  members(): number[] {
    return [];
  }

  oomKilled(): boolean {
    return false;
  }

  async release(): Promise<boolean> {
    return true;
  }

  leftovers(): Placement[] {
    return [];
  }

  tidy(): void {}
}
