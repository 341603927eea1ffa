/** Mounts and loop devices as the kernel lists them (/proc/self/mountinfo, /sys/block/loop*). */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function mountPoints(): string[] {
  const text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => unescape(l.split(' ')[4]));
}

export function isMountPoint(dir: string): boolean {
  const want = path.resolve(dir);
  return mountPoints().includes(want);
}

/** Loop devices (/dev/loopN) whose backing file is `image`. */
export function loopsOf(image: string): string[] {
  const want = path.resolve(image);
  const out: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync('/sys/block').filter((n) => n.startsWith('loop'));
  } catch {
    return [];
  }
  for (const n of names) {
    let backing: string;
    try {
      backing = fs.readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue; // not bound
    }
    if (backing === want || backing === `${want} (deleted)`) out.push(`/dev/${n}`);
  }
  return out;
}
