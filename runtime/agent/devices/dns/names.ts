/**
 * Names in the zone `os0.`: how a resource's namespace and name become a DNS name, and how the
 * DNS device checks and normalises the names it is given.
 *
 *   serviceDnsName('demo', 'web')       -> 'web.demo.os0.'
 *   serviceDnsName('acme/prod', 'web')  -> 'web.prod.acme.os0.'   (the path read right to left,
 *                                                                   as DNS reads its labels)
 */

/** The zone the DNS device is authoritative for, without and with its trailing dot. */
export const ZONE = 'os0';
export const ZONE_FQDN = 'os0.';

const LABEL_CHARS_MAX = 63;
/** RFC 1035: 255 bytes on the wire, which leaves 253 characters in dotted form. */
const NAME_CHARS_MAX = 253;
/** Letters, digits, '-' and '_' (the last for SRV's `_service._proto` labels). */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** The DNS name osØ gives `name` in `namespace`: one function, in core, shared with the kernel. */
export { serviceDnsName } from '../../../../core/kernel/names.ts';

/**
 * `name` in the form the zone keys its records by: lowercase, no trailing dot (`web.demo.os0`).
 * Accepts a name with or without its trailing dot. Does not check it; see `nameError`.
 */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Whether a canonical name lies in the zone (the apex `os0` included). */
export function inZone(canonical: string): boolean {
  return canonical === ZONE || canonical.endsWith('.' + ZONE);
}

/** Why `name` (with or without its trailing dot) cannot hold a record in the zone, or null. */
export function nameError(name: string): string | null {
  if (typeof name !== 'string' || name === '') return 'a name is required, e.g. web.demo.os0.';
  const c = canonicalName(name);
  if (c.length > NAME_CHARS_MAX) return `"${name}" is longer than ${NAME_CHARS_MAX} characters`;
  if (!inZone(c)) return `"${name}" is outside the zone ${ZONE_FQDN}; end it with .${ZONE_FQDN}`;
  for (const label of c.split('.')) {
    if (label.length > LABEL_CHARS_MAX) return `label "${label}" of "${name}" is longer than ${LABEL_CHARS_MAX} characters`;
    if (!LABEL.test(label)) return `"${name}" is not a DNS name: each label is letters, digits, '-' or '_' and cannot start or end with '-'`;
  }
  return null;
}

/** The names above `canonical` inside the zone, nearest first, the apex excluded. */
export function ancestorsInZone(canonical: string): string[] {
  const out: string[] = [];
  let at = canonical.indexOf('.');
  while (at >= 0) {
    const parent = canonical.slice(at + 1);
    if (parent === ZONE) break;
    out.push(parent);
    at = canonical.indexOf('.', at + 1);
  }
  return out;
}
