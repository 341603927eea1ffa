/**
 * Limits through cgroup v1: one cgroup per task in each of the memory, cpu and pids hierarchies,
 * under the agent's own cgroup there, in `os0/<name>/<task>`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hierarchy, readProcs, readSmall, removeDirs, rmdirQuiet, unknownTasks, type Limiter, type Limits, type Placement } from './limits.ts';

const CONTROLLERS = ['memory', 'cpu', 'pids'] as const;
const CFS_PERIOD_US = 100_000;

export class CgroupV1Limiter implements Limiter {
  readonly kind = 'cgroup-v1' as const;
  readonly enforced = { memory: 'cgroup-v1 memory.limit_in_bytes', cpu: 'cgroup-v1 cpu.cfs_quota_us', pids: 'cgroup-v1 pids.max' };
  /** Per controller, the directory that holds one cgroup per task. */
  private readonly bases: Record<(typeof CONTROLLERS)[number], string>;

  private constructor(bases: Record<(typeof CONTROLLERS)[number], string>) {
    this.bases = bases;
  }

  /** The limiter, or a one-line reason this host cannot have it. */
  static open(name: string): CgroupV1Limiter | string {
    const bases: Partial<Record<(typeof CONTROLLERS)[number], string>> = {};
    for (const c of CONTROLLERS) {
      const h = hierarchy(c);
      if (!h) return `no cgroup v1 ${c} hierarchy mounted`;
      const base = path.join(h.self, 'os0', name);
      try {
        fs.mkdirSync(base, { recursive: true });
      } catch (e) {
        return `cannot make cgroup ${base}: ${(e as Error).message}`;
      }
      bases[c] = base;
    }
    return new CgroupV1Limiter(bases as Record<(typeof CONTROLLERS)[number], string>);
  }

  place(task: string, limits: Limits): Placement {
    const dirs = CONTROLLERS.map((c) => path.join(this.bases[c], task));
    try {
      this.write(dirs, limits);
    } catch (e) {
      for (const d of dirs) rmdirQuiet(d);
      throw e;
    }
    return { kind: this.kind, task, dirs, shell: dirs.map((d) => `echo $$ > '${path.join(d, 'cgroup.procs')}'`) };
  }

  private write(dirs: string[], limits: Limits): void {
    for (const d of dirs) fs.mkdirSync(d, { recursive: true });
    const [mem, cpu, pids] = dirs;
    if (limits.memoryBytes !== undefined) {
      fs.writeFileSync(path.join(mem, 'memory.limit_in_bytes'), String(limits.memoryBytes));
      // Without swap accounting the file is absent; with it, swap must not lift the limit.
      const memsw = path.join(mem, 'memory.memsw.limit_in_bytes');
      if (fs.existsSync(memsw)) fs.writeFileSync(memsw, String(limits.memoryBytes));
    }
    fs.writeFileSync(path.join(cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
    fs.writeFileSync(path.join(cpu, 'cpu.cfs_quota_us'), limits.cpus === undefined ? '-1' : String(Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US))));
    fs.writeFileSync(path.join(pids, 'pids.max'), limits.pids === undefined ? 'max' : String(limits.pids));
  }

  members(p: Placement): number[] {
    const all = new Set<number>();
    for (const d of p.dirs) for (const pid of readProcs(d)) all.add(pid);
    return [...all];
  }

  oomKilled(p: Placement): boolean {
    const text = readSmall(path.join(p.dirs[0], 'memory.oom_control')) ?? '';
    const m = /^oom_kill (\d+)$/m.exec(text);
    return m !== null && Number(m[1]) > 0;
  }

  release(p: Placement): Promise<boolean> {
    return removeDirs(p.dirs);
  }

  leftovers(known: Set<string>): Placement[] {
    const tasks = new Set<string>();
    for (const c of CONTROLLERS) for (const t of unknownTasks(this.bases[c], known)) tasks.add(t);
    return [...tasks].map((task) => ({ kind: this.kind, task, dirs: CONTROLLERS.map((c) => path.join(this.bases[c], task)), shell: [] }));
  }

  tidy(): void {
    for (const c of CONTROLLERS) {
      rmdirQuiet(this.bases[c]);
      rmdirQuiet(path.dirname(this.bases[c]));
    }
  }
}
