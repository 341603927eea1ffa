/**
 * osØ never outlives the process that started it. Two ways of noticing that it went away:
 *
 *  - the IPC channel of bin.js's wrapper (when it re-executes itself on the pinned runtime): the
 *    channel closes the moment the wrapper dies, however it died (even kill -9);
 *  - on Linux, the chain of ancestors read from /proc: the parent, and above it every ancestor
 *    in this process's own process group (`npx os0 up` runs npm → `sh -c` → os0, all in the
 *    shell job's group: when npm is killed, the `sh` in between lives on, but it is re-parented,
 *    and the chain no longer matches). It is read every `intervalMs` (a few small reads).
 *
 * Ancestors outside the process group (the login shell, a terminal, systemd) are not watched:
 * a supervisor that starts os0 is its parent, and that is watched.
 */
import * as fs from 'node:fs';

export interface Lifeline {
  /** What is watched, for messages and tests: pids from the parent upwards. */
  readonly ancestors: number[];
  close(): void;
}

interface Stat {
  ppid: number;
  pgrp: number;
}

function stat(pid: number | 'self'): Stat | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses; it ends at the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  if (f[0] === 'Z' || f[0] === 'X') return null; // a zombie has exited
  return { ppid: Number(f[1]), pgrp: Number(f[2]) };
}

/** The pids this process's life hangs on: its parent, then its ancestors in its own process group. */
function chain(): number[] | null {
  const self = stat('self');
  if (!self) return null;
  const out: number[] = [];
  let pid = self.ppid;
  // Bounded: no real chain inside one process group is this deep.
  while (pid > 1 && out.length < 32) {
    out.push(pid);
    const s = stat(pid);
    if (!s || s.ppid <= 1) break;
    const above = stat(s.ppid);
    if (!above || above.pgrp !== self.pgrp) break;
    pid = s.ppid;
  }
  return out;
}

/** Calls `gone(why)` once when the process that started this one has gone away. */
export function watchParent(gone: (why: string) => void, opts: { intervalMs?: number } = {}): Lifeline {
  let fired = false;
  const fire = (why: string): void => {
    if (fired) return;
    fired = true;
    close();
    gone(why);
  };
  const onDisconnect = (): void => fire('the os0 wrapper that started it exited');
  if (process.channel) {
    // The channel must not keep the process alive, nor take messages: it is only a lifeline.
    process.channel.unref();
    process.once('disconnect', onDisconnect);
  }
  const first = process.platform === 'linux' ? chain() : null;
  let timer: NodeJS.Timeout | null = null;
  if (first && first.length) {
    timer = setInterval(() => {
      const now = chain();
      if (!now) return;
      for (let i = 0; i < first.length; i++) {
        if (now[i] !== first[i]) {
          fire(i === 0 ? `its parent process ${first[0]} exited` : `process ${first[i]}, which started it (through ${first.slice(0, i).join(', ')}), exited`);
          return;
        }
      }
    }, opts.intervalMs ?? 500);
    timer.unref();
  }
  function close(): void {
    if (timer) clearInterval(timer);
    timer = null;
    process.off('disconnect', onDisconnect);
  }
  return { ancestors: first ?? [], close };
}
