/**
 * Helpers for the device case suites: an event collector that can wait, and the OS's own view of
 * processes read straight from /proc (independent of the device's code, so a test checks the
 * device against the kernel, not against itself).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '..', '..', '..', '..');
/** The project's pinned Node.js 22 (type stripping). */
export const NODE = path.join(ROOT, 'node_modules', '.bin', 'node');

export interface Collected<E> {
  events: E[];
  emit: (e: E) => void;
  /** The first event (past or future) matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (e: E) => boolean, timeoutMs?: number, what?: string): Promise<E>;
}

export function collect<E>(): Collected<E> {
  const events: E[] = [];
  const waiters: Array<{ pred: (e: E) => boolean; resolve: (e: E) => void }> = [];
  return {
    events,
    emit(e) {
      events.push(e);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i].pred(e)) {
          waiters[i].resolve(e);
          waiters.splice(i, 1);
        }
      }
    },
    waitFor(pred, timeoutMs = 10_000, what = 'event') {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise<E>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms; saw ${JSON.stringify(events.slice(-5))}`)), timeoutMs);
        waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });
    },
  };
}

/** State letter of a process from /proc, or undefined when it does not exist. */
export function procState(pid: number): string | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Alive as the kernel sees it: present and not a zombie. */
export function alive(pid: number): boolean {
  const s = procState(pid);
  return s !== undefined && s !== 'Z' && s !== 'X';
}

/** `pid` and every live descendant of it, from the parent links in /proc. */
export function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const n of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const s = fs.readFileSync(`/proc/${n}/stat`, 'latin1');
      parent.set(Number(n), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [c, p] of parent) if (p === out[i] && alive(c)) out.push(c);
  return out.filter(alive);
}

export async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
