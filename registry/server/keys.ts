/**
 * The registry's own keys in its data folder (PROTOCOL.md "Keys of the registry"), in the
 * publisher key format: registry.key/.pub (the metadata key, made at first start) and
 * root.key/.pub (the operator's root key; only root.pub is needed once it exists).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateKeyPair, keyIdOf, publicKeyOf, readPublicKey, readSecretKey } from '../package/keys.ts';

export interface RegistryKeys {
  metadata: { keyId: string; publicKey: Uint8Array; secretKey: Uint8Array };
  root: { keyId: string; publicKey: Uint8Array };
}

const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64') + '\n';

function writeNew(file: string, text: string, mode: number): void {
  fs.writeFileSync(file, text, { mode, flag: 'wx' });
  fs.chmodSync(file, mode);
}

/** Reads the keys, making the missing ones at first start; refuses to replace a key clients may have pinned. */
export function loadKeys(dir: string): RegistryKeys {
  const f = (n: string): string => path.join(dir, n);
  if (!fs.existsSync(f('registry.key'))) {
    if (fs.existsSync(f('registry.pub'))) {
      throw new Error(`${f('registry.key')} is missing but registry.pub is there: restore registry.key (clients pinned its key), or move registry.pub away to start over with a new key`);
    }
    const kp = generateKeyPair();
    writeNew(f('registry.key'), b64(kp.secretKey), 0o600);
    writeNew(f('registry.pub'), b64(kp.publicKey), 0o644);
  }
  const secretKey = readSecretKey(f('registry.key'));
  const publicKey = publicKeyOf(secretKey);
  if (!fs.existsSync(f('registry.pub'))) writeNew(f('registry.pub'), b64(publicKey), 0o644);
  else if (!Buffer.from(readPublicKey(f('registry.pub'))).equals(Buffer.from(publicKey))) {
    throw new Error(`${f('registry.pub')} is not the public half of registry.key; restore the pair`);
  }
  if (!fs.existsSync(f('root.pub'))) {
    if (fs.existsSync(f('root.key'))) writeNew(f('root.pub'), b64(publicKeyOf(readSecretKey(f('root.key')))), 0o644);
    else {
      const kp = generateKeyPair();
      writeNew(f('root.key'), b64(kp.secretKey), 0o600);
      writeNew(f('root.pub'), b64(kp.publicKey), 0o644);
    }
  }
  const rootPub = readPublicKey(f('root.pub'));
  return {
    metadata: { keyId: keyIdOf(publicKey), publicKey, secretKey },
    root: { keyId: keyIdOf(rootPub), publicKey: rootPub },
  };
}
