/**
 * The body of one log record (see wal/FORMAT.md): when, who, and the changes as applied.
 * `{"t":TIME,"a":ACTOR,"c":[{"o":"create"|"update","r":RESOURCE} | {"o":"delete","r":KEY},...]}`
 */
import type { Resource } from './resource.ts';

export type LoggedAction = 'create' | 'update' | 'delete';

/** For a delete, `r` holds only id, namespace, type, name and the deleting revision. */
export interface LoggedChange {
  o: LoggedAction;
  r: Resource;
}

export interface LogBody {
  t: string;
  a: string;
  c: LoggedChange[];
}

export function decodeBody(body: Buffer): LogBody {
  return JSON.parse(body.toString('utf8')) as LogBody;
}

export function deleteKeyJson(r: Resource, index: number): string {
  return JSON.stringify({ id: r.id, namespace: r.namespace, type: r.type, name: r.name, revision: index });
}
