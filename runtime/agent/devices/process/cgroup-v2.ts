/**
 * Limits through cgroup v2: one cgroup per task under `<agent's cgroup>/os0-<name>`. v2 lets a
 * cgroup hand controllers to its children only while it holds no processes itself, so the agent
 * moves itself into a leaf (`agent`) of its own cgroup first when it has to.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hierarchy, readProcs, readSmall, removeDirs, rmdirQuiet, unknownTasks, type Limiter, type Limits, type Placement } from './limits.ts';

const CPU_PERIOD_US = 100_000;
const NEEDED = ['memory', 'cpu', 'pids'];

function enable(dir: string): void {
  fs.writeFileSync(path.join(dir, 'cgroup.subtree_control'), NEEDED.map((c) => '+' + c).join(' '));
}

export class CgroupV2Limiter implements Limiter {
  readonly kind = 'cgroup-v2' as const;
  readonly enforced = { memory: 'cgroup-v2 memory.max', cpu: 'cgroup-v2 cpu.max', pids: 'cgroup-v2 pids.max' };
  private readonly base: string;

  private constructor(base: string) {
    this.base = base;
  }

  static open(name: string): CgroupV2Limiter | string {
    const h = hierarchy('unified');
    if (!h) return 'no cgroup v2 hierarchy mounted';
    const have = (readSmall(path.join(h.self, 'cgroup.controllers')) ?? '').trim().split(/\s+/);
    const missing = NEEDED.filter((c) => !have.includes(c));
    if (missing.length > 0) return `cgroup v2 lacks the ${missing.join(', ')} controller(s) here`;
    try {
      try {
        enable(h.self);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EBUSY') throw e;
        const leaf = path.join(h.self, 'agent');
        fs.mkdirSync(leaf, { recursive: true });
        fs.writeFileSync(path.join(leaf, 'cgroup.procs'), String(process.pid));
        enable(h.self);
      }
      const base = path.join(h.self, `os0-${name}`);
      fs.mkdirSync(base, { recursive: true });
      enable(base);
      return new CgroupV2Limiter(base);
    } catch (e) {
      return `cannot delegate cgroup v2 controllers under ${h.self}: ${(e as Error).message}`;
    }
  }

  place(task: string, limits: Limits): Placement {
    const dir = path.join(this.base, task);
    try {
      this.write(dir, limits);
    } catch (e) {
      rmdirQuiet(dir);
      throw e;
    }
    return { kind: this.kind, task, dirs: [dir], shell: [`echo $$ > '${path.join(dir, 'cgroup.procs')}'`] };
  }

  private write(dir: string, limits: Limits): void {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'memory.max'), limits.memoryBytes === undefined ? 'max' : String(limits.memoryBytes));
    const swap = path.join(dir, 'memory.swap.max');
    if (fs.existsSync(swap)) fs.writeFileSync(swap, limits.memoryBytes === undefined ? 'max' : '0');
    const quota = limits.cpus === undefined ? 'max' : String(Math.max(1000, Math.round(limits.cpus * CPU_PERIOD_US)));
    fs.writeFileSync(path.join(dir, 'cpu.max'), `${quota} ${CPU_PERIOD_US}`);
    fs.writeFileSync(path.join(dir, 'pids.max'), limits.pids === undefined ? 'max' : String(limits.pids));
  }

  members(p: Placement): number[] {
    return readProcs(p.dirs[0]);
  }

  oomKilled(p: Placement): boolean {
    const m = /^oom_kill (\d+)$/m.exec(readSmall(path.join(p.dirs[0], 'memory.events')) ?? '');
    return m !== null && Number(m[1]) > 0;
  }

  async release(p: Placement): Promise<boolean> {
    // cgroup.kill (Linux 5.14+) ends whatever is left in one step.
    try {
      fs.writeFileSync(path.join(p.dirs[0], 'cgroup.kill'), '1');
    } catch {
      // Older kernels: the device already signalled every member.
    }
    return removeDirs(p.dirs);
  }

  leftovers(known: Set<string>): Placement[] {
    return unknownTasks(this.base, known).map((task) => ({ kind: this.kind, task, dirs: [path.join(this.base, task)], shell: [] }));
  }

  tidy(): void {
    rmdirQuiet(this.base);
  }
}
