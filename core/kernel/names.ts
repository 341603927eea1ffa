/**
 * Names the kernel gives things: a service's DNS name in the zone `os0.`, and the name a task has
 * on a node (the process device's task id). Pure functions; the DNS device uses the same one.
 *
 *   serviceDnsName('demo', 'web')       -> 'web.demo.os0.'
 *   serviceDnsName('acme/prod', 'web')  -> 'web.prod.acme.os0.'   (the path read right to left)
 */
export const ZONE = 'os0';

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** The DNS name of `name` in `namespace`: the name, the namespace path read last segment first, then the zone. */
export function serviceDnsName(namespace: string, name: string): string {
  if (typeof namespace !== 'string' || typeof name !== 'string') throw new TypeError('serviceDnsName takes a namespace and a name, both strings');
  const segments = namespace === '' ? [] : namespace.split('/').reverse();
  const fqdn = [name, ...segments, ZONE].join('.').toLowerCase() + '.';
  if (fqdn.length > 254) throw new TypeError(`namespace "${namespace}" and name "${name}" make a DNS name longer than 253 characters`);
  for (const label of fqdn.slice(0, -1).split('.')) {
    if (label.length > 63) throw new TypeError(`namespace "${namespace}" and name "${name}" make no DNS name: label "${label}" is longer than 63 characters`);
    if (!LABEL.test(label)) throw new TypeError(`namespace "${namespace}" and name "${name}" make no DNS name: "${fqdn}" is not a DNS name (each label is letters, digits, '-' or '_')`);
  }
  return fqdn;
}

/** The id a task runs under on its node ([A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters): namespace segments joined by '.', '~'-free. */
export function nodeTaskId(namespace: string, task: string): string {
  const id = `${namespace.replace(/\//g, '.')}_${task}`;
  if (id.length > 100) throw new TypeError(`task ${namespace}/${task} makes a node task id longer than 100 characters; use a shorter service name`);
  return id;
}

/** The inverse of nodeTaskId: [namespace, task]. */
export function parseNodeTaskId(id: string): [string, string] | null {
  const at = id.indexOf('_');
  if (at <= 0) return null;
  return [id.slice(0, at).replace(/\./g, '/'), id.slice(at + 1)];
}
