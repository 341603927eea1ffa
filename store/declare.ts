/**
 * What installing an app writes besides the `app` resource: everything its manifest declares,
 * each owned (directly or through its parent) by the app, so that deleting the app removes
 * exactly these, and tagged `os0/app: NAME`, so that an upgrade can tell which ones to keep,
 * change or drop.
 *
 *   type TYPE                         (cluster)   each of manifest.types
 *   capability|handler|filter|driver  APP.NAME    (cluster)
 *   service system/APP.SVC → component system/APP.SVC → task-group system/APP.SVC → task system/APP.SVC.I
 */
import type { ResourceInput } from '../core/resource.ts';
import type { Manifest } from '../runtime/invoke/manifest.ts';

export const APP_TAG = 'os0/app';
export const SERVICE_NAMESPACE = 'system';
/** Every type install may write, parents before children. */
export const DECLARED_TYPES = ['type', 'capability', 'handler', 'filter', 'driver', 'service', 'component', 'task-group', 'task'] as const;

/** A declared resource before ids are assigned: `parent` is the key of its owner (absent: the app). */
export interface Declared {
  key: string;
  parent?: string;
  resource: Omit<ResourceInput, 'owner' | 'id'> & { namespace: string };
}

export const keyOfDeclared = (r: { type: string; namespace?: string; name: string }): string => `${r.type}\u0000${r.namespace ?? ''}\u0000${r.name}`;

const limitsOf = (spec: { timeoutMs?: number; memoryMb?: number }) => ({
  ...(spec.timeoutMs !== undefined ? { timeoutMs: spec.timeoutMs } : {}),
  ...(spec.memoryMb !== undefined ? { memoryMb: spec.memoryMb } : {}),
});

export function declared(m: Manifest): Declared[] {
  const app = m.name;
  const tags = { [APP_TAG]: app };
  const out: Declared[] = [];
  const add = (resource: Declared['resource'], parent?: string): string => {
    const key = keyOfDeclared(resource);
    out.push({ key, parent, resource });
    return key;
  };
  const drivenBy = new Map<string, string>();
  for (const [name, d] of Object.entries(m.drivers ?? {})) for (const t of d.types) drivenBy.set(t, `${app}.${name}`);
  for (const [name, spec] of Object.entries(m.types ?? {})) {
    add({ type: 'type', namespace: '', name, tags, data: { ...spec, ...(drivenBy.has(name) ? { driver: app } : {}) } });
  }
  for (const [name, c] of Object.entries(m.capabilities)) {
    add({ type: 'capability', namespace: '', name: `${app}.${name}`, tags, data: { app, capability: name, description: c.description, ...limitsOf(c) } });
  }
  for (const [name, h] of Object.entries(m.handlers ?? {})) {
    add({ type: 'handler', namespace: '', name: `${app}.${name}`, tags, data: { app, handler: name, description: h.description, query: h.query, ...limitsOf(h) } });
  }
  for (const [name, f] of Object.entries(m.filters ?? {})) {
    add({ type: 'filter', namespace: '', name: `${app}.${name}`, tags, data: { app, filter: name, description: f.description, types: f.types ?? null, ...limitsOf(f) } });
  }
  for (const [name, d] of Object.entries(m.drivers ?? {})) {
    add({ type: 'driver', namespace: '', name: `${app}.${name}`, tags, data: { app, driver: name, description: d.description, types: d.types, ...limitsOf(d) } });
  }
  for (const [name, s] of Object.entries(m.services ?? {})) {
    const full = `${app}.${name}`;
    const ns = SERVICE_NAMESPACE;
    const replicas = s.replicas ?? 1;
    const svc = add({ type: 'service', namespace: ns, name: full, tags, data: { ...s, replicas } });
    const comp = add({ type: 'component', namespace: ns, name: full, tags, data: { app, service: full, command: s.command, cwd: s.cwd, env: s.env ?? {}, resources: s.resources ?? {} } }, svc);
    const group = add({ type: 'task-group', namespace: ns, name: full, tags, data: { app, service: full, component: full, count: replicas } }, comp);
    for (let i = 0; i < replicas; i++) add({ type: 'task', namespace: ns, name: `${full}.${i}`, tags, data: { app, service: full, taskGroup: full, index: i } }, group);
  }
  return out;
}
