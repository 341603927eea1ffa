/**
 * The client's checks of signed registry documents (PROTOCOL.md "The metadata envelope", "The key
 * chain", "What the client checks" 2-3), as pure functions: no network, no state. Every failure
 * is an Error with a one-line message.
 */
import nacl from 'tweetnacl';
import { metadataMessage, RECOVERY, recordMessage, ROTATION } from '../signing.ts';
import { verifyDetached } from '../package/ed25519.ts';
import { keyIdOf, publicKeyOf } from '../package/keys.ts';
import type { AppMetadata, KeyEntry, KeyRecord, TrustPolicy, VerifiedMetadata } from './types.ts';


const isRecord = (o: unknown): o is Record<string, unknown> => o !== null && typeof o === 'object' && !Array.isArray(o);

/** base64 of exactly `bytes` bytes, or null. */
export function decodeBase64(s: unknown, bytes: number): Uint8Array | null {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return null;
  const b = Buffer.from(s, 'base64');
  return b.length === bytes ? new Uint8Array(b) : null;
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');


export interface RecordInput {
  app: string;
  /** The key id of the chain's current key (the one being replaced). */
  from: string;
  newPublicKey: Uint8Array;
  keep: string[];
  time: string;
}

/** A rotation record signed by the current publisher key (whose id must be `from`). */
export function signRotation(input: RecordInput, currentSecretKey: Uint8Array): KeyRecord {
  const signerId = keyIdOf(publicKeyOf(currentSecretKey));
  if (signerId !== input.from) throw new Error(`${input.app}: the current key of the app is ${input.from}; the key given is ${signerId} (rotate with the app's current publisher.key)`);
  return sign({ type: ROTATION, app: input.app, from: input.from, to: keyIdOf(input.newPublicKey), publicKey: b64(input.newPublicKey), keep: input.keep, time: input.time }, currentSecretKey);
}

/** A recovery record signed by the registry's root key. */
export function signRecovery(input: RecordInput, rootSecretKey: Uint8Array): KeyRecord {
  const rootKeyId = keyIdOf(publicKeyOf(rootSecretKey));
  return sign(
    { type: RECOVERY, app: input.app, from: input.from, to: keyIdOf(input.newPublicKey), publicKey: b64(input.newPublicKey), keep: input.keep, time: input.time, rootKeyId },
    rootSecretKey,
  );
}

function sign(unsigned: Omit<KeyRecord, 'signature'>, secretKey: Uint8Array): KeyRecord {
  const sig = nacl.sign.detached(recordMessage(unsigned), secretKey);
  return { ...unsigned, signature: b64(sig) };
}

/** Checks the envelope's signature by the pinned metadata key; returns `signed` (not yet checked further). */
export function checkEnvelope(envelope: unknown, app: string, metadataKey: Uint8Array): AppMetadata {
  const where = `metadata for ${app}`;
  if (!isRecord(envelope) || !isRecord(envelope.signed) || !Array.isArray(envelope.signatures)) {
    throw new Error(`${where} is not a signed metadata document ({signed, signatures}): the registry answered something else`);
  }
  const keyId = keyIdOf(metadataKey);
  const entry = (envelope.signatures as unknown[]).find((s) => isRecord(s) && s.keyId === keyId) as Record<string, unknown> | undefined;
  if (!entry) throw new Error(`${where} is not signed by the pinned registry key ${keyId}: refusing it`);
  const sig = decodeBase64(entry.signature, nacl.sign.signatureLength);
  let message: Uint8Array;
  try {
    message = metadataMessage(envelope.signed);
  } catch (e) {
    throw new Error(`${where}: cannot canonicalise it (${(e as Error).message})`);
  }
  if (!sig || !verifyDetached(message, sig, metadataKey)) {
    throw new Error(`${where}: the signature by registry key ${keyId} does not verify (altered by the registry or on the way): refusing it`);
  }
  return envelope.signed as unknown as AppMetadata;
}

/** Structural checks of signed metadata, so that later code never trips on a wrong type. */
function checkShape(m: AppMetadata, app: string): void {
  const bad = (what: string): never => {
    throw new Error(`metadata for ${app} is malformed: ${what}`);
  };
  if (m.type !== 'os0-app-metadata-v1') bad(`type is ${JSON.stringify(m.type)}, not os0-app-metadata-v1`);
  if (!Array.isArray(m.keys) || m.keys.length === 0) bad('it has no key chain');
  for (const k of m.keys) {
    if (!isRecord(k) || typeof k.keyId !== 'string' || typeof k.publicKey !== 'string' || typeof k.since !== 'string') bad('a key entry is not {keyId, publicKey, since}');
  }
  if (!isRecord(m.versions)) bad('versions is not an object');
  for (const [v, e] of Object.entries(m.versions)) {
    if (!isRecord(e) || e.version !== v || typeof e.digest !== 'string' || typeof e.integrity !== 'string' || typeof e.keyId !== 'string' || typeof e.size !== 'number') {
      bad(`version ${v} is not a {version, digest, integrity, size, keyId, ...} entry`);
    }
    if (typeof e.yanked !== 'boolean') bad(`version ${v}: yanked is not a boolean`);
  }
  if (m.distTags !== undefined && !isRecord(m.distTags)) bad('distTags is not an object');
}

const day = (iso: string): string => (/^\d{4}-\d{2}-\d{2}/.test(iso) ? iso.slice(0, 10) : iso);

/**
 * Checks the key chain link by link. Rotations must verify by the key before them; recoveries by a
 * root key the caller trusts. Returns the notices (one per recovery).
 */
export function checkChain(app: string, keys: KeyEntry[], trust: TrustPolicy): string[] {
  const notices: string[] = [];
  keys.forEach((k, i) => {
    const pk = decodeBase64(k.publicKey, nacl.sign.publicKeyLength);
    if (!pk || keyIdOf(pk) !== k.keyId) throw new Error(`the key chain of ${app}: entry ${i} (${k.keyId}) has a public key that does not match its id: refusing it`);
    if (i === 0) {
      if (k.record !== undefined) throw new Error(`the key chain of ${app}: its first key ${k.keyId} carries a record; the first key has none`);
      return;
    }
    const prev = keys[i - 1];
    const r = k.record;
    const what = `the key chain of ${app}: the change from key ${prev.keyId} to ${k.keyId}`;
    if (!isRecord(r)) throw new Error(`${what} has no signed record: refusing it`);
    if (r.app !== app || r.from !== prev.keyId || r.to !== k.keyId || r.publicKey !== k.publicKey || !Array.isArray(r.keep) || !r.keep.every((d) => typeof d === 'string') || typeof r.time !== 'string') {
      throw new Error(`${what}: its record does not describe that change (app, from, to, publicKey, keep, time): refusing it`);
    }
    const sig = decodeBase64(r.signature, nacl.sign.signatureLength);
    if (r.type === ROTATION) {
      const prevKey = decodeBase64(prev.publicKey, nacl.sign.publicKeyLength)!;
      if (!sig || !verifyDetached(recordMessage(r), sig, prevKey)) throw new Error(`${what}: the rotation record is not signed by ${prev.keyId}: refusing it`);
    } else if (r.type === RECOVERY) {
      const root = (trust.rootKeys ?? []).find((rk) => keyIdOf(rk) === r.rootKeyId);
      if (!root) {
        throw new Error(
          `${what} is a recovery on ${day(r.time)} signed by root key ${String(r.rootKeyId)}, which is not trusted (add the registry's root.pub with os0 trust add --root)`,
        );
      }
      if (!sig || !verifyDetached(recordMessage(r), sig, root)) throw new Error(`${what}: the recovery record does not verify with root key ${r.rootKeyId}: refusing it`);
      notices.push(`the key of ${app} was replaced by the registry operator's root key on ${day(r.time)}`);
    } else {
      throw new Error(`${what}: unknown record type ${JSON.stringify(r.type)}: refusing it`);
    }
  });
  return notices;
}

/** Envelope signature, name, expiry, shape and chain: everything the client checks about metadata. */
export function verifyMetadata(envelope: unknown, app: string, metadataKey: Uint8Array, trust: TrustPolicy, nowMs: number): VerifiedMetadata {
  const m = checkEnvelope(envelope, app, metadataKey);
  if (m.name !== app) throw new Error(`the registry answered metadata for ${JSON.stringify(m.name)} when asked for ${app}: refusing it`);
  const expires = typeof m.expires === 'string' ? Date.parse(m.expires) : NaN;
  if (!Number.isFinite(expires)) throw new Error(`metadata for ${app} has no valid expiry: refusing it`);
  if (expires <= nowMs) throw new Error(`metadata for ${app} expired at ${m.expires}: the registry (or someone between) is serving stale data`);
  checkShape(m, app);
  const notices = checkChain(app, m.keys, trust);
  return { metadata: m, notices };
}

/**
 * Whether the caller's trust reaches a package signed by `keyId`: trust flows forward only, so
 * some trusted key must stand at or before the signer's place in the chain. (A key added after
 * the signer says nothing about it: anyone can rotate their own app to someone else's public key.)
 * Returns null if it does, else the reason.
 */
export function trustReaches(app: string, version: string, keys: KeyEntry[], keyId: string, trustedIds: Set<string>): string | null {
  let idx = -1;
  for (let i = keys.length - 1; i >= 0; i--) if (keys[i].keyId === keyId) {
    idx = i;
    break;
  }
  if (idx !== -1 && keys.slice(0, idx + 1).some((k) => trustedIds.has(k.keyId))) return null;
  const later = keys.slice(idx + 1).find((k) => trustedIds.has(k.keyId));
  if (later) return `${app}@${version} is signed by key ${keyId}; the trusted key ${later.keyId} joined the app's chain after it, and vouches only for what comes after: refusing it`;
  return `${app} is signed by key ${keyId}, which is not trusted (add its .pub with os0 trust add)`;
}

/**
 * Whether `chain` (key ids) extends the one accepted before: the registry may add keys, never
 * take any back or change one. Returns null if it does, else the reason.
 */
export function extendsChain(app: string, before: string[] | null, chain: string[]): string | null {
  if (!before) return null;
  if (before.length <= chain.length && before.every((k, i) => chain[i] === k)) return null;
  return `the key chain of ${app} the registry serves now (${chain.join(' → ')}) does not extend the one accepted before (${before.join(' → ')}): refusing it (the registry, or someone between, rewrote the app's history)`;
}

/**
 * Whether the chain lets `keyId` vouch for `digest`: the chain's last key for anything; an
 * earlier key only for the digests kept by the record that replaced it. Returns null if it may,
 * else the reason.
 */
export function vouches(app: string, version: string, keys: KeyEntry[], keyId: string, digest: string): string | null {
  let idx = -1;
  for (let i = keys.length - 1; i >= 0; i--) {
    if (keys[i].keyId === keyId) {
      idx = i;
      break;
    }
  }
  if (idx === -1) return `${app}@${version} is signed by key ${keyId}, which is not in the app's key chain (${keys.map((k) => k.keyId).join(', ')}): refusing it`;
  if (idx === keys.length - 1) return null;
  const next = keys[idx + 1];
  if (next.record?.keep.includes(digest)) return null;
  return `${app}@${version} is signed by key ${keyId}, which was rotated out on ${day(next.record?.time ?? next.since)} and does not vouch for it: refusing it`;
}
