/**
 * The instance's trust policy: `trusted-key` resources (cluster-wide, named by key id) whose
 * `data.publicKey` is a publisher key, or with `kind: root` a registry operator's root key.
 * The key id is always recomputed from the key: a resource's name is never believed.
 */
import type { Core } from '../core/core.ts';
import { keyIdOf } from '../registry/package/keys.ts';
import type { TrustPolicy } from '../registry/client/types.ts';

export const TRUSTED_KEY = 'trusted-key';

export interface TrustedKey {
  keyId: string;
  kind: 'publisher' | 'root';
  publicKey: Uint8Array;
}

export function trustedKeys(core: Core): TrustedKey[] {
  const out: TrustedKey[] = [];
  for (const r of core.query({ type: TRUSTED_KEY })) {
    const d = r.data as { publicKey?: string; kind?: string };
    if (typeof d.publicKey !== 'string') continue;
    const key = new Uint8Array(Buffer.from(d.publicKey, 'base64'));
    if (key.length !== 32) continue;
    out.push({ keyId: keyIdOf(key), kind: d.kind === 'root' ? 'root' : 'publisher', publicKey: key });
  }
  return out;
}

export function trustPolicy(core: Core): TrustPolicy {
  const keys = trustedKeys(core);
  return { publisherKeys: keys.filter((k) => k.kind === 'publisher').map((k) => k.publicKey), rootKeys: keys.filter((k) => k.kind === 'root').map((k) => k.publicKey) };
}
