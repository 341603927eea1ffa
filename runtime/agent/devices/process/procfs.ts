/**
 * What the process device asks Linux's /proc: a process's start time (to tell a pid from a reused
 * one), the boot id (to tell this boot from the last), process groups and descendants.
 */
import * as fs from 'node:fs';

export interface Stat {
  pid: number;
  ppid: number;
  pgid: number;
  /** One letter: R, S, D, Z (zombie), T, X… */
  state: string;
  /** Clock ticks since boot when the process started: with the boot id, names one process for good. */
  startTicks: number;
}

/** /proc/PID/stat, or undefined when there is no such process. */
export function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces and ')': split after the last ')'.
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); field N is rest[N - 3].
  return { pid, state: rest[0], ppid: Number(rest[1]), pgid: Number(rest[2]), startTicks: Number(rest[19]) };
}

/** True while the process that started at `startTicks` still exists (a zombie counts as gone). */
export function isSame(pid: number, startTicks: number): boolean {
  const s = readStat(pid);
  return s !== undefined && s.startTicks === startTicks && s.state !== 'Z' && s.state !== 'X';
}

let bootIdCache: string | undefined;
export function bootId(): string {
  bootIdCache ??= fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  return bootIdCache;
}

/** Every live process on the host (bounded by /proc itself). */
export function allStats(): Stat[] {
  const out: Stat[] = [];
  for (const name of fs.readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const s = readStat(Number(name));
    if (s && s.state !== 'Z' && s.state !== 'X') out.push(s);
  }
  return out;
}

/**
 * The live members of process group `pgid` and every live descendant of `rootPid` (a child that
 * left the group with setsid is still found while its parent chain leads back to the root).
 */
export function treeOf(rootPid: number, pgid: number, stats: Stat[] = allStats()): number[] {
  const found = new Set<number>();
  const children = new Map<number, number[]>();
  for (const s of stats) {
    if (s.pgid === pgid) found.add(s.pid);
    const list = children.get(s.ppid);
    if (list) list.push(s.pid);
    else children.set(s.ppid, [s.pid]);
  }
  const live = new Set(stats.map((s) => s.pid));
  const queue = live.has(rootPid) ? [rootPid] : [];
  for (const p of found) queue.push(p);
  while (queue.length > 0) {
    const p = queue.pop() as number;
    if (live.has(p)) found.add(p);
    for (const c of children.get(p) ?? []) if (!found.has(c)) queue.push(c);
  }
  return [...found];
}

/**
 * Processes whose environment holds `marker` (`KEY=value`), with the value of `key` in it;
 * processes we may not read are skipped.
 */
export function findByEnv(marker: string, key: string): Array<{ pid: number; value: string | undefined }> {
  const out: Array<{ pid: number; value: string | undefined }> = [];
  const prefix = key + '=';
  for (const s of allStats()) {
    let env: string;
    try {
      env = fs.readFileSync(`/proc/${s.pid}/environ`, 'latin1');
    } catch {
      continue;
    }
    const vars = env.split('\0');
    if (!vars.includes(marker)) continue;
    out.push({ pid: s.pid, value: vars.find((v) => v.startsWith(prefix))?.slice(prefix.length) });
  }
  return out;
}

/** Sends a signal, ignoring a process that is already gone. */
export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
