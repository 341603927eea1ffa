/**
 * The signed metadata envelope of an app (PROTOCOL.md "The metadata envelope"), cached: a GET
 * costs a map lookup and the body's bytes, no signing. An app's document is re-signed when the
 * app changed (invalidate) or when less than half of its lifetime is left.
 */
import type { KeyObject } from 'node:crypto';
import semver from 'semver';
import { metadataMessage } from '../signing.ts';
import type { AppMetadata, MetadataEnvelope, VersionEntry } from '../client/types.ts';
import { signDetached } from '../package/ed25519.ts';
import type { AppRecord } from './store.ts';


/** The highest non-yanked, non-prerelease version, or null. */
export function latestOf(versions: Record<string, VersionEntry>): string | null {
  let best: string | null = null;
  for (const v of Object.values(versions)) {
    if (v.yanked || semver.prerelease(v.version) !== null) continue;
    if (best === null || semver.gt(v.version, best)) best = v.version;
  }
  return best;
}

export function buildSigned(app: AppRecord, issuedMs: number, ttlS: number): AppMetadata {
  const latest = latestOf(app.versions);
  return {
    type: 'os0-app-metadata-v1',
    name: app.name,
    issued: new Date(issuedMs).toISOString(),
    expires: new Date(issuedMs + ttlS * 1000).toISOString(),
    owner: app.owner,
    distTags: latest === null ? {} : { latest },
    keys: app.keys,
    versions: app.versions,
  };
}

export interface CachedMetadata {
  /** The envelope serialized, ready to send. */
  body: string;
  /** The same as UTF-8 bytes, written straight to node's response. */
  bytes: Buffer;
  etag: string;
  issuedMs: number;
}

export class MetadataCache {
  private readonly cache = new Map<string, CachedMetadata>();
  private readonly key: KeyObject;
  private readonly keyId: string;
  private readonly ttlS: number;
  private readonly now: () => number;
  /** Documents signed so far (tests and the bench check that GETs do not sign). */
  signed = 0;

  constructor(opts: { key: KeyObject; keyId: string; ttlS: number; now: () => number }) {
    this.key = opts.key;
    this.keyId = opts.keyId;
    this.ttlS = opts.ttlS;
    this.now = opts.now;
  }

  sign(signed: AppMetadata): MetadataEnvelope {
    const sig = signDetached(metadataMessage(signed), this.key);
    return { signed, signatures: [{ keyId: this.keyId, signature: sig.toString('base64') }] };
  }

  /** The app's current envelope, from the cache while more than half of its lifetime is left. */
  get(app: AppRecord): CachedMetadata {
    const t = this.now();
    const c = this.cache.get(app.name);
    if (c && t - c.issuedMs < (this.ttlS * 1000) / 2 && t >= c.issuedMs) return c;
    const env = this.sign(buildSigned(app, t, this.ttlS));
    this.signed++;
    const body = JSON.stringify(env);
    const fresh: CachedMetadata = { body, bytes: Buffer.from(body, 'utf8'), etag: `"${env.signatures[0].signature.slice(0, 27)}"`, issuedMs: t };
    this.cache.set(app.name, fresh);
    return fresh;
  }

  /** Forgets an app's document: the next GET signs a new one. */
  invalidate(name: string): void {
    this.cache.delete(name);
  }
}
