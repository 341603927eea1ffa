/**
 * App names (PROTOCOL.md "Publishing", step 3): lowercase letters, digits and `-`; and the
 * confusable check, by skeleton, so that `he11o` cannot sit beside `hello`.
 */
import { RegistryError } from './errors.ts';

const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The skeleton of a name: lowercase, `-` removed, `0`→`o`, `1` and `i`→`l`, `rn`→`m`, `vv`→`w`.
 * Dashes go first so that `r-n` meets `m` too; the folds are applied once, left to right.
 */
export function skeleton(name: string): string {
  return name.toLowerCase().replace(/-/g, '').replace(/0/g, 'o').replace(/[1i]/g, 'l').replace(/rn/g, 'm').replace(/vv/g, 'w');
}

/** Throws a one-line `invalid` error unless `name` is a well-formed app name. */
export function checkName(name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new RegistryError('invalid', 'the app has no name; set "name" in os0.json');
  if (/[A-Z]/.test(name)) throw new RegistryError('invalid', `app name "${name}" has uppercase letters; names are lowercase (use "${name.toLowerCase()}")`);
  if (!NAME.test(name)) {
    throw new RegistryError('invalid', `app name "${name}" must be 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit`);
  }
  return name;
}

/** Names by skeleton: finds the existing app a new name would be confused with. */
export class Skeletons {
  private readonly bySkeleton = new Map<string, string>();

  add(name: string): void {
    const s = skeleton(name);
    if (!this.bySkeleton.has(s)) this.bySkeleton.set(s, name);
  }

  /** The existing app, other than `name` itself, whose skeleton equals `name`'s; or null. */
  confusedWith(name: string): string | null {
    const other = this.bySkeleton.get(skeleton(name));
    return other !== undefined && other !== name ? other : null;
  }
}
