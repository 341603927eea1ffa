/**
 * Tag selectors, as `os0 get -l` and `?tags=` take them: comma-separated requirements that must
 * all hold.
 *   k=v    the tag k is v          k!=v   the tag k is not v (or k is absent)
 *   k      the tag k is present    !k     the tag k is absent
 * The tree answers `k=v` and `k` from its tag index; `k!=v` and `!k` only narrow what the other
 * parts of a query (type, namespace, positive tags) found.
 */
import { OsError } from '../errors.ts';
import { LIMITS } from '../resource.ts';

export interface TagSelector {
  /** k=v */
  equal?: Record<string, string>;
  /** k!=v */
  notEqual?: Record<string, string>;
  /** k */
  present?: string[];
  /** !k */
  absent?: string[];
}

const KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

/** `role=web,tier!=db,canary,!legacy` → a selector; a clear error for anything else. */
export function parseSelector(s: string | undefined): TagSelector | undefined {
  if (s === undefined || s.trim() === '') return undefined;
  const sel: TagSelector = {};
  const parts = s.split(',').map((p) => p.trim());
  if (parts.length > LIMITS.tagCount) throw new OsError('invalid', `a tag selector has at most ${LIMITS.tagCount} parts (got ${parts.length})`);
  for (const part of parts) {
    const bad = (): OsError => new OsError('invalid', `tag selector "${part}" must be key=value, key!=value, key or !key`);
    const ne = part.indexOf('!=');
    const eq = part.indexOf('=');
    let key: string;
    if (ne > 0 && ne < eq) {
      key = part.slice(0, ne);
      (sel.notEqual ??= {})[key] = part.slice(ne + 2);
    } else if (eq > 0) {
      key = part.slice(0, eq);
      const v = part.slice(eq + 1).replace(/^=/, ''); // k==v reads as k=v
      if (sel.equal?.[key] !== undefined && sel.equal[key] !== v) throw new OsError('invalid', `tag selector asks for ${key}=${sel.equal[key]} and ${key}=${v}: nothing can match both`);
      (sel.equal ??= {})[key] = v;
    } else if (part.startsWith('!')) {
      key = part.slice(1);
      (sel.absent ??= []).push(key);
    } else {
      key = part;
      (sel.present ??= []).push(key);
    }
    if (!KEY.test(key) || key.length > LIMITS.tagKeyChars) throw bad();
  }
  return sel;
}

/** Whether tags satisfy every requirement of the selector. */
export function selects(sel: TagSelector, tags: Record<string, string> | undefined): boolean {
  const t = tags ?? {};
  if (sel.equal) for (const k in sel.equal) if (t[k] !== sel.equal[k]) return false;
  if (sel.notEqual) for (const k in sel.notEqual) if (t[k] === sel.notEqual[k]) return false;
  if (sel.present) for (const k of sel.present) if (t[k] === undefined) return false;
  if (sel.absent) for (const k of sel.absent) if (t[k] !== undefined) return false;
  return true;
}

/** The selector's parts that the tag index cannot answer alone (k!=v, !k, k), or undefined. */
export function residual(sel: TagSelector | undefined): TagSelector | undefined {
  if (!sel || (!sel.notEqual && !sel.present && !sel.absent)) return undefined;
  return { notEqual: sel.notEqual, present: sel.present, absent: sel.absent };
}
