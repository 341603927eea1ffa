/**
 * How a process is held to its memory, CPU and pids limits: one small interface, three ways.
 *
 *   cgroup-v1  memory.limit_in_bytes (+ memsw), cpu.cfs_quota_us, pids.max; one cgroup per task
 *              in each of the memory, cpu and pids hierarchies;
 *   cgroup-v2  memory.max (+ swap.max 0), cpu.max, pids.max; one cgroup per task;
 *   rlimit     RLIMIT_DATA for memory and RLIMIT_NPROC for pids (per user, and not enforced for
 *              root), no CPU rate: what a host without usable cgroups can do.
 *
 * A task's process is started by a small shell wrapper (launch.ts) that runs the placement's
 * `shell` lines (join the cgroups, set the rlimits) before the program, so even the program's
 * first fork is inside its limits.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export type LimiterKind = 'cgroup-v1' | 'cgroup-v2' | 'rlimit';

export interface Limits {
  /** Memory the task's processes may use together, in bytes. */
  memoryBytes?: number;
  /** CPU time per wall second, in CPUs (0.5 = half a core). */
  cpus?: number;
  /** Processes and threads the task may have at once. */
  pids?: number;
}

/** Where a task's processes are held, as plain JSON (kept in the device's state file). */
export interface Placement {
  kind: LimiterKind;
  task: string;
  /** The task's cgroup directories (none for rlimit). */
  dirs: string[];
  /** Shell lines the launcher runs before the program (`$$` is the launcher's pid). */
  shell: string[];
}

/** How each limit is enforced, or 'none'. */
export interface Enforcement {
  memory: string;
  cpu: string;
  pids: string;
}

export interface Limiter {
  readonly kind: LimiterKind;
  readonly enforced: Enforcement;
  /** Makes the task's group with its limits (replacing a leftover of the same name). */
  place(task: string, limits: Limits): Placement;
  /** Every pid in the task's group; [] when the limiter has no groups. */
  members(p: Placement): number[];
  /** True when the kernel killed one of the group's processes for memory. */
  oomKilled(p: Placement): boolean;
  /** Removes the group once its processes are gone; false if it still holds some. */
  release(p: Placement): Promise<boolean>;
  /** Groups this limiter made for tasks not in `known`: what a crash between steps left behind. */
  leftovers(known: Set<string>): Placement[];
  /** Removes this agent's own group directories if no task holds them any more. */
  tidy(): void;
}

export const LIMITS_MAX = { memoryBytes: 2 ** 50, cpus: 1024, pids: 4_194_304 } as const;

/** A one-line error for limits out of range, or undefined. */
export function checkLimits(l: unknown): string | undefined {
  if (l === undefined) return undefined;
  if (typeof l !== 'object' || l === null || Array.isArray(l)) return 'limits must be an object like {"memoryBytes": 268435456, "cpus": 0.5, "pids": 64}';
  for (const [k, v] of Object.entries(l)) {
    if (!Object.hasOwn(LIMITS_MAX, k)) return `unknown limit "${k}"; use memoryBytes, cpus or pids`;
    const max = LIMITS_MAX[k as keyof Limits];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) return `limit ${k} must be a number above 0 and at most ${max}`;
    if (k !== 'cpus' && !Number.isInteger(v)) return `limit ${k} must be a whole number`;
  }
  return undefined;
}

/** Reads a small kernel file, or undefined. */
export function readSmall(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Pids listed in a cgroup.procs file. */
export function readProcs(dir: string): number[] {
  const text = readSmall(path.join(dir, 'cgroup.procs'));
  if (!text) return [];
  return text.split('\n').filter(Boolean).map(Number);
}

/** Removes cgroup directories deepest first, retrying while the kernel still counts exiting tasks. */
export async function removeDirs(dirs: string[]): Promise<boolean> {
  for (let attempt = 0; attempt < 50; attempt++) {
    let left = 0;
    for (const d of dirs) {
      try {
        fs.rmdirSync(d);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') left++;
      }
    }
    if (left === 0) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** A cgroup hierarchy: where it is mounted and the agent's own cgroup inside it. */
export interface Hierarchy {
  mount: string;
  /** The agent's own cgroup as a directory under the mount. */
  self: string;
}

/**
 * The cgroup v1 hierarchy holding `controller`, or (with 'unified') the v2 one: from
 * /proc/self/mountinfo and /proc/self/cgroup.
 */
export function hierarchy(controller: string | 'unified'): Hierarchy | undefined {
  const mountinfo = readSmall('/proc/self/mountinfo') ?? '';
  const cgroups = readSmall('/proc/self/cgroup') ?? '';
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const f = left.split(' ');
    const [fstype, , superOpts] = right.split(' ');
    const root = f[3];
    const mount = f[4];
    let own: string | undefined;
    if (controller === 'unified') {
      if (fstype !== 'cgroup2') continue;
      own = cgroups.split('\n').find((l) => l.startsWith('0::'))?.slice(3);
    } else {
      if (fstype !== 'cgroup' || !(superOpts ?? '').split(',').includes(controller)) continue;
      own = cgroups
        .split('\n')
        .map((l) => l.split(':'))
        .find((p) => p.length >= 3 && p[1].split(',').includes(controller))?.[2];
    }
    if (own === undefined) continue;
    // The path in /proc/self/cgroup is from the hierarchy's root; the mount shows `root` of it.
    const rel = root === '/' ? own : own.startsWith(root) ? own.slice(root.length) : '/';
    return { mount, self: path.join(mount, rel) };
  }
  return undefined;
}

/** rmdir, ignoring a directory that is gone or still in use. */
export function rmdirQuiet(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // in use (tasks left for the next agent) or gone
  }
}

/** A task name as a directory name (task names are already checked to be path-safe). */
export function taskDir(base: string, task: string): string {
  return path.join(base, task);
}

/** Task directories under `base` that are not `known`. */
export function unknownTasks(base: string, known: Set<string>): string[] {
  let names: fs.Dirent[];
  try {
    names = fs.readdirSync(base, { withFileTypes: true });
  } catch {
    return [];
  }
  return names.filter((d) => d.isDirectory() && !known.has(d.name)).map((d) => d.name);
}
