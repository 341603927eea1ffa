/**
 * Canonical JSON (PROTOCOL.md "Canonical JSON"): object keys sorted, no whitespace. Signed
 * registry documents are signed over these bytes, so both sides must produce them the same way.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
      throw new Error(`canonical JSON: ${typeof value} is not JSON`);
    }
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonical JSON: a number must be finite');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const o = value as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}
