/**
 * The core's log record as every reader sees it (contract: ../wal/FORMAT.md, "Record body"):
 * when, who, and each change with the resource before (`old`) and after (`new`) it. The body
 * written to the WAL holds exactly what a reader gets back, so a record decoded from disk deep-
 * equals the one the core kept in memory.
 *
 * Body: `{"t":TIME,"a":ACTOR,"c":[CHANGE,...]}` where CHANGE is
 *   `{"o":"create","r":NEW}` | `{"o":"update","r":NEW,"p":OLD}` | `{"o":"delete","r":OLD}`.
 */
import type { Resource } from '../resource.ts';

export type Action = 'create' | 'update' | 'delete';

export interface Change {
  action: Action;
  /** The resource before the change: null for a create. */
  old: Resource | null;
  /** The resource after the change: null for a delete. */
  new: Resource | null;
}

/** One log record, as readers see it once it is durable and applied. */
export interface Committed {
  index: number;
  time: string;
  actor: string;
  changes: Change[];
}

/** A change as written in a record body (`r`: the resource the change is about; `p`: the one an update replaced). */
export interface LoggedChange {
  o: Action;
  r: Resource;
  p?: Resource;
}

export interface LogBody {
  t: string;
  a: string;
  c: LoggedChange[];
}

export function decodeBody(body: Buffer): LogBody {
  return JSON.parse(body.toString('utf8')) as LogBody;
}

/** The record a reader gets, from a WAL body (the inverse of what Core.sequence writes). */
export function decodeRecord(index: number, body: Buffer): Committed {
  const b = decodeBody(body);
  const changes: Change[] = new Array(b.c.length);
  for (let i = 0; i < b.c.length; i++) {
    const ch = b.c[i];
    if (ch.o === 'create') changes[i] = { action: 'create', old: null, new: ch.r };
    // Records written before `p` existed (see FORMAT.md) read with old = null.
    else if (ch.o === 'update') changes[i] = { action: 'update', old: ch.p ?? null, new: ch.r };
    else changes[i] = { action: 'delete', old: ch.r, new: null };
  }
  return { index, time: b.t, actor: b.a, changes };
}

/** The JSON of one change in a record body; `oldJson`/`newJson` are the resources already serialised. */
export function changeJson(oldJson: string | null, newJson: string | null): string {
  if (newJson === null) return '{"o":"delete","r":' + oldJson + '}';
  if (oldJson === null) return '{"o":"create","r":' + newJson + '}';
  return '{"o":"update","r":' + newJson + ',"p":' + oldJson + '}';
}

/** The resource a change is about: the new version, or for a delete the one deleted. */
export function subjectOf(ch: Change): Resource {
  return (ch.new ?? ch.old)!;
}
