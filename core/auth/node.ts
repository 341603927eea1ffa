/**
 * The rights of a node agent, actor `node:NAME`: it may write the observed state of its own
 * machine (`machine/observed` NAME in namespace `system`) and of what runs on it (`process` and
 * `TYPE/observed` resources whose `data.machine` is NAME), and read those plus what is assigned
 * to it (`assignment` resources whose `data.machine` is NAME); nothing else. No policy widens or
 * narrows them: they follow from the name. Its events go on busØ, where the bus routes let it
 * publish to `events` and consume only `cmd.NAME`.
 */
import type { Resource } from '../resource.ts';

export const NODE_PREFIX = 'node:';

/** NAME for `node:NAME`, else null. */
export function nodeOf(actor: string): string | null {
  return actor.startsWith(NODE_PREFIX) ? actor.slice(NODE_PREFIX.length) : null;
}

type R = Pick<Resource, 'type' | 'namespace' | 'name' | 'data'>;

const machineOf = (r: R): unknown => (r.data as { machine?: unknown } | null)?.machine;

function ownMachine(node: string, r: R): boolean {
  return (r.type === 'machine' || r.type === 'machine/observed') && r.namespace === 'system' && r.name === node;
}

/** Whether node NAME may create, update or delete this resource (check old and new alike). */
export function nodeMayWrite(node: string, r: R): boolean {
  if (r.type === 'machine/observed') return ownMachine(node, r);
  if (r.type === 'process' || r.type.endsWith('/observed')) return machineOf(r) === node;
  return false;
}

/** Whether node NAME may get, list or watch this resource. */
export function nodeMayRead(node: string, r: R): boolean {
  if (ownMachine(node, r)) return true;
  if (r.type === 'assignment' || r.type === 'assignment/observed') return machineOf(r) === node;
  return nodeMayWrite(node, r);
}
