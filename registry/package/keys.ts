/**
 * Publisher keys: ed25519 (tweetnacl). `publisher.key` holds the 64-byte secret key in base64
 * (mode 0600), `publisher.pub` the 32-byte public key in base64. A key's id is the first 16 hex
 * digits of the SHA-256 of its 32 public-key bytes. Every failure is one line naming the file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import nacl from 'tweetnacl';

export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

export const SECRET_KEY_FILE = 'publisher.key';
export const PUBLIC_KEY_FILE = 'publisher.pub';

export function generateKeyPair(): KeyPair {
  const kp = nacl.sign.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** First 16 hex digits of sha256(public key bytes). */
export function keyIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest('hex').slice(0, 16);
}

/** The public half of a secret key. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return nacl.sign.keyPair.fromSecretKey(secretKey).publicKey;
}

/**
 * Writes DIR/publisher.key (0600) and DIR/publisher.pub; refuses to overwrite either.
 * Returns the files and the key id.
 */
export function writeKeyPair(dir: string, kp: KeyPair = generateKeyPair()): { keyFile: string; pubFile: string; keyId: string } {
  fs.mkdirSync(dir, { recursive: true });
  const keyFile = path.join(dir, SECRET_KEY_FILE);
  const pubFile = path.join(dir, PUBLIC_KEY_FILE);
  for (const f of [keyFile, pubFile]) if (fs.existsSync(f)) throw new Error(`${f} already exists; not overwriting a key (move it away first)`);
  // 'wx' fails if the file appeared meanwhile; mode applies at creation, before any byte is written.
  fs.writeFileSync(keyFile, Buffer.from(kp.secretKey).toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  fs.chmodSync(keyFile, 0o600); // the umask may have narrowed it further; never wider
  fs.writeFileSync(pubFile, Buffer.from(kp.publicKey).toString('base64') + '\n', { mode: 0o644, flag: 'wx' });
  return { keyFile, pubFile, keyId: keyIdOf(kp.publicKey) };
}

function readBase64(file: string, bytes: number, what: string): Uint8Array {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: no such ${what} file (create one with os0 keygen)` : `${file}: cannot read it (${(e as Error).message})`);
  }
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) throw new Error(`${file}: not an ${what}: expected one line of base64`);
  const buf = Buffer.from(t, 'base64');
  if (buf.length !== bytes) throw new Error(`${file}: not an ${what}: expected ${bytes} bytes of base64, got ${buf.length}`);
  return new Uint8Array(buf);
}

/** Reads a publisher.key; checks that its public half is consistent. */
export function readSecretKey(file: string): Uint8Array {
  const sk = readBase64(file, nacl.sign.secretKeyLength, 'ed25519 secret key');
  // tweetnacl's 64-byte secret key is seed || public key: the public half must derive from the seed.
  const derived = nacl.sign.keyPair.fromSeed(sk.slice(0, 32)).publicKey;
  if (!Buffer.from(derived).equals(Buffer.from(sk.slice(32)))) throw new Error(`${file}: not a valid ed25519 secret key (its public half does not match its seed)`);
  return sk;
}

export function readPublicKey(file: string): Uint8Array {
  return readBase64(file, nacl.sign.publicKeyLength, 'ed25519 public key');
}
