/**
 * Ed25519 verification (and the server's signing) through node:crypto (OpenSSL). It is the same algorithm
 * and the same bytes as tweetnacl's `sign.detached` (RFC 8032, deterministic), about 100 times
 * faster: a publish verifies in ~0.1 ms instead of ~9 ms, a metadata document signs in ~0.05 ms
 * instead of ~6 ms. Keys stay in tweetnacl's formats (64-byte secret = seed ‖ public, 32-byte
 * public) so that every key file is shared with registry/package/keys.ts.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** A key object for tweetnacl's 64-byte secret key. */
export function privateKeyObject(secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== 64) throw new Error(`an ed25519 secret key is 64 bytes, not ${secretKey.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, Buffer.from(secretKey.subarray(0, 32))]), format: 'der', type: 'pkcs8' });
}

/** A key object for a 32-byte public key. */
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new Error(`an ed25519 public key is 32 bytes, not ${publicKey.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519, Buffer.from(publicKey)]), format: 'der', type: 'spki' });
}

/** The 64-byte detached signature of `message`. */
export function signDetached(message: Uint8Array, key: KeyObject): Buffer {
  return sign(null, message, key);
}

/** Whether `signature` (64 bytes) is `publicKey`'s over `message`; false for malformed input. */
export function verifyDetached(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array | KeyObject): boolean {
  if (signature.length !== 64) return false;
  try {
    const key = publicKey instanceof Uint8Array ? publicKeyObject(publicKey) : publicKey;
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
