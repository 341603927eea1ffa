/**
 * The registry client's public interface (PROTOCOL.md "What the client checks"). The CLI and the
 * store import these types and `RegistryClient` from ./index.ts; nothing else of the client.
 */
import type { Manifest } from '../../runtime/invoke/manifest.ts';

/** What the caller trusts. Keys are 32-byte ed25519 public keys. */
export interface TrustPolicy {
  /** Publisher keys: a package is accepted when some key of its app's chain is one of these. */
  publisherKeys: Uint8Array[];
  /** Registry operators' root keys: a key recovery is accepted only when signed by one of these. */
  rootKeys?: Uint8Array[];
}

/** What the client remembers between runs (a file for the CLI, resources for the store). */
export interface ClientState {
  /** The highest version of APP accepted before (rollback protection), or null. */
  highestAccepted(app: string): string | null;
  /** Called after a version was accepted (fetch() succeeded). */
  accepted(app: string, version: string): void | Promise<void>;
  /**
   * The key ids of APP's chain as last accepted, or null: a registry may only ever extend it, so
   * it cannot hand an app back to a key its author rotated away from.
   */
  acceptedChain(app: string): string[] | null;
  acceptChain(app: string, keyIds: string[]): void | Promise<void>;
  /** The metadata key (base64 public key) pinned for a registry URL, or null. */
  pinnedKey(registryUrl: string): string | null;
  pin(registryUrl: string, publicKeyBase64: string): void | Promise<void>;
}

export interface RegistryKeyInfo {
  keyId: string;
  /** base64 of the 32-byte public key. */
  publicKey: string;
}

export interface RegistryInfo {
  keys: { metadata: RegistryKeyInfo; root: RegistryKeyInfo };
  limits: Record<string, number>;
}

export interface KeyRecord {
  type: 'os0-key-rotation-v1' | 'os0-key-recovery-v1';
  app: string;
  from: string;
  to: string;
  publicKey: string;
  keep: string[];
  time: string;
  rootKeyId?: string;
  signature: string;
}

export interface KeyEntry {
  keyId: string;
  publicKey: string;
  since: string;
  record?: KeyRecord;
}

export interface VersionEntry {
  version: string;
  digest: string;
  integrity: string;
  size: number;
  keyId: string;
  published: string;
  yanked: boolean;
  yankReason?: string;
  description?: string;
  keywords?: string[];
  license?: string;
  dependencies: Record<string, string>;
}

export interface AppMetadata {
  type: 'os0-app-metadata-v1';
  name: string;
  issued: string;
  expires: string;
  owner: string;
  distTags: Record<string, string>;
  keys: KeyEntry[];
  versions: Record<string, VersionEntry>;
}

export interface MetadataEnvelope {
  signed: AppMetadata;
  signatures: { keyId: string; signature: string }[];
}

/** A package downloaded and checked end to end. */
export interface FetchedPackage {
  name: string;
  version: string;
  manifest: Manifest;
  /** Every file of the package, in memory (bounded by the package reader). */
  files: Map<string, Buffer>;
  /** The package digest (FORMAT.md) and the key that signed it. */
  digest: string;
  keyId: string;
  /** The .tgz as downloaded, and its `sha256-<base64>` integrity. */
  tgz: Buffer;
  integrity: string;
  /** Things the user should know, e.g. that the app's key was replaced by a root key. */
  notices: string[];
}

export interface FetchOptions {
  /** Accept a version older than the highest accepted before for this app. */
  allowRollback?: boolean;
  onProgress?: (message: string) => void;
}

export interface PublishResult {
  name: string;
  version: string;
  digest: string;
  integrity: string;
  size: number;
  keyId: string;
}

export interface SearchResult {
  name: string;
  version: string | null;
  description: string;
  keywords: string[];
  score: number;
}

/** Metadata whose envelope, expiry and key chain were checked, with what the user should know. */
export interface VerifiedMetadata {
  metadata: AppMetadata;
  /** e.g. that the app's key was replaced by the registry operator's root key. */
  notices: string[];
}

/** A registry token as listed (never its secret). */
export interface RegistryTokenInfo {
  id: string;
  actor: string;
  description: string;
  created: string;
}

/** A token just created: `token` is shown once. */
export interface CreatedRegistryToken {
  id: string;
  actor: string;
  token: string;
}
