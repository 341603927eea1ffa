/**
 * An app's key chain (PROTOCOL.md "The key chain"): the checks of a rotation record (signed by
 * the current key) and of a recovery record (signed by the registry's root key) before the
 * record's key is appended. Every refusal is a RegistryError naming what was wrong.
 */
import { keyIdOf } from '../package/keys.ts';
import { RECOVERY, recordMessage, ROTATION } from '../signing.ts';
import type { KeyEntry, KeyRecord } from '../client/types.ts';
import { verifyDetached } from '../package/ed25519.ts';
import { RegistryError } from './errors.ts';


export const currentKey = (chain: KeyEntry[]): KeyEntry => chain[chain.length - 1];

const HEX64 = /^[0-9a-f]{64}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

function base64Bytes(s: unknown, bytes: number, what: string): Uint8Array {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw new RegistryError('invalid', `${what} must be base64`);
  const b = Buffer.from(s, 'base64');
  if (b.length !== bytes) throw new RegistryError('invalid', `${what} must be ${bytes} bytes of base64, not ${b.length}`);
  return new Uint8Array(b);
}

/** The shape of a record, or a one-line `invalid` error. */
function parseRecord(body: unknown, type: typeof ROTATION | typeof RECOVERY): KeyRecord {
  const what = type === ROTATION ? 'a rotation record' : 'a recovery record';
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new RegistryError('invalid', `the body must be ${what} (a JSON object)`);
  const r = body as Record<string, unknown>;
  if (r.type !== type) throw new RegistryError('invalid', `the record's type must be "${type}", not ${JSON.stringify(r.type)}`);
  for (const f of ['app', 'from', 'to', 'publicKey', 'time', 'signature'] as const) {
    if (typeof r[f] !== 'string') throw new RegistryError('invalid', `${what} needs "${f}" (a string)`);
  }
  if (!Array.isArray(r.keep) || !r.keep.every((d) => typeof d === 'string' && HEX64.test(d))) {
    throw new RegistryError('invalid', `${what}: "keep" must be an array of package digests (64 hex digits)`);
  }
  if (!ISO.test(r.time as string)) throw new RegistryError('invalid', `${what}: "time" must be an ISO time such as 2026-01-01T00:00:00.000Z`);
  if (type === RECOVERY && typeof r.rootKeyId !== 'string') throw new RegistryError('invalid', `${what} needs "rootKeyId" (the root key's id)`);
  const allowed = new Set(['type', 'app', 'from', 'to', 'publicKey', 'keep', 'time', 'signature', ...(type === RECOVERY ? ['rootKeyId'] : [])]);
  for (const k of Object.keys(r)) if (!allowed.has(k)) throw new RegistryError('invalid', `${what} has an unknown field "${k}"`);
  return r as unknown as KeyRecord;
}

/**
 * Checks a rotation (`root` absent) or recovery (`root` given) record against the app's chain;
 * returns the entry to append (`since`: now, when the registry accepted it).
 */
export function checkRecord(app: string, chain: KeyEntry[], body: unknown, nowIso: string, root?: { keyId: string; publicKey: Uint8Array }): KeyEntry {
  const type = root ? RECOVERY : ROTATION;
  const r = parseRecord(body, type);
  const cur = currentKey(chain);
  if (r.app !== app) throw new RegistryError('invalid', `the record is for app "${r.app}", not "${app}"; sign one for ${app}`);
  if (r.from !== cur.keyId) {
    const old = chain.some((k) => k.keyId === r.from);
    throw new RegistryError('forbidden', `the record moves ${app} from key ${r.from}, but ${app}'s current key is ${cur.keyId}${old ? ` (${r.from} was rotated out)` : ''}; sign a record from the current key`);
  }
  const newKey = base64Bytes(r.publicKey, 32, 'the record\'s "publicKey"');
  if (keyIdOf(newKey) !== r.to) throw new RegistryError('invalid', `the record's "to" is ${r.to}, but its publicKey has id ${keyIdOf(newKey)}`);
  if (chain.some((k) => k.keyId === r.to)) throw new RegistryError('conflict', `key ${r.to} is already in ${app}'s key chain; rotate to a new key`);
  const sig = base64Bytes(r.signature, 64, 'the record\'s "signature"');
  if (root) {
    if (r.rootKeyId !== root.keyId) throw new RegistryError('forbidden', `the recovery is signed by root key ${r.rootKeyId}, not this registry's root key ${root.keyId}`);
    if (!verifyDetached(recordMessage(r), sig, root.publicKey)) throw new RegistryError('forbidden', `the recovery of ${app} is not signed by this registry's root key ${root.keyId}; sign it with root.key`);
  } else if (!verifyDetached(recordMessage(r), sig, Buffer.from(cur.publicKey, 'base64'))) {
    throw new RegistryError('forbidden', `the rotation of ${app} is not signed by its current key ${cur.keyId}; sign it with that key`);
  }
  return { keyId: r.to, publicKey: r.publicKey, since: nowIso, record: r };
}
