/**
 * The core's log record as every reader sees it (contract: ../wal/FORMAT.md, "Record body"):
 * when, who, and each change with the resource before (`old`) and after (`new`) it. The body
 * written to the WAL holds exactly what a reader gets back, so a record decoded from disk deep-
 * equals the one the core kept in memory.
 *
 * Body: two JSON texts on two lines. The first is all that replay and compaction need; the
 * second, what readers need besides:
 *   `{"t":TIME,"a":ACTOR,"c":[CHANGE,...]}` "\n" `[OLD|null,...]`
 *   CHANGE = `{"o":"create"|"update","r":NEW}` | `{"o":"delete","r":KEY}`
 *   OLD    = the whole resource an update replaced or a delete removed (null for a create)
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

/** A change as written in a record body's first line (`r`: the new resource, or for a delete the key of the one removed). */
export interface LoggedChange {
  o: Action;
  r: Resource;
}

export interface LogBody {
  t: string;
  a: string;
  c: LoggedChange[];
}

const NEWLINE = 10;

/** The first line of a body: what replay and compaction read (the second line is never parsed for them). */
export function decodeBody(body: Buffer): LogBody {
  const nl = body.indexOf(NEWLINE);
  return JSON.parse((nl < 0 ? body : body.subarray(0, nl)).toString('utf8')) as LogBody;
}

/** The record a reader gets, from a WAL body (the inverse of what Core.sequence writes). */
export function decodeRecord(index: number, body: Buffer): Committed {
  const nl = body.indexOf(NEWLINE);
  const b = JSON.parse((nl < 0 ? body : body.subarray(0, nl)).toString('utf8')) as LogBody;
  // Records written before the second line existed (FORMAT.md) read with the delete's key as
  // its old, and old = null for an update.
  const olds = nl < 0 ? null : (JSON.parse(body.subarray(nl + 1).toString('utf8')) as (Resource | null)[]);
  const changes: Change[] = new Array(b.c.length);
  for (let i = 0; i < b.c.length; i++) {
    const ch = b.c[i];
    const old = olds ? olds[i] : null;
    if (ch.o === 'create') changes[i] = { action: 'create', old: null, new: ch.r };
    else if (ch.o === 'update') changes[i] = { action: 'update', old, new: ch.r };
    else changes[i] = { action: 'delete', old: old ?? ch.r, new: null };
  }
  return { index, time: b.t, actor: b.a, changes };
}

/**
 * Builds a record body change by change: `add` takes the resources already serialised
 * (`oldJson` null for a create, `newJson` null for a delete).
 */
export class BodyWriter {
  private head: string;
  private olds = '';
  private n = 0;
  constructor(timeJson: string, actorJson: string) {
    this.head = '{"t":' + timeJson + ',"a":' + actorJson + ',"c":[';
  }

  add(oldJson: string | null, newJson: string | null, deleteKeyJson: string): void {
    const sep = this.n++ === 0 ? '' : ',';
    if (newJson === null) this.head += sep + '{"o":"delete","r":' + deleteKeyJson + '}';
    else this.head += sep + (oldJson === null ? '{"o":"create","r":' : '{"o":"update","r":') + newJson + '}';
    this.olds += sep + (oldJson ?? 'null');
  }

  /** Characters so far (a lower bound on bytes). */
  get length(): number {
    return this.head.length + this.olds.length;
  }

  finish(): string {
    return this.head + ']}\n[' + this.olds + ']';
  }
}

/** The key a delete's first line carries: enough for replay and compaction. */
export function deleteKeyJson(r: Resource, index: number): string {
  return JSON.stringify({ id: r.id, namespace: r.namespace, type: r.type, name: r.name, revision: index });
}

/** The resource a change is about: the new version, or for a delete the one deleted. */
export function subjectOf(ch: Change): Resource {
  return (ch.new ?? ch.old)!;
}
