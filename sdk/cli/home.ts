/**
 * The per-user folder for what belongs to a person, not to a project: publisher keys and the
 * registries added with `os0 registry add`. `$OS0_HOME`, else `$XDG_CONFIG_HOME/os0`, else
 * `~/.config/os0`.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';

export function os0Home(): string {
  if (process.env.OS0_HOME) return path.resolve(process.env.OS0_HOME);
  const config = process.env.XDG_CONFIG_HOME || path.join(homedir(), '.config');
  return path.join(config, 'os0');
}

/** The top of the git work tree holding `dir` (or a folder that would be created there), if any. */
export function gitWorkTree(dir: string): string | undefined {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (existsSync(path.join(d, '.git'))) return d;
    if (path.dirname(d) === d) return undefined;
  }
}
