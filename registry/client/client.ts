/**
 * The registry client (PROTOCOL.md "What the client checks"). The registry is not trusted: every
 * package it serves is checked against metadata signed by the pinned registry key, the app's key
 * chain, the caller's trust policy and what the caller accepted before.
 *
 *   const c = new RegistryClient({ url, trust: { publisherKeys: [pub] }, state: new FileClientState(f) });
 *   const pkg = await c.fetch('hello', '^1.0.0');      // FetchedPackage, checked end to end
 *   unpack(pkg.files, 'apps/hello');
 *
 * Every failure is a RegistryError with a one-line message.
 */
import { createHash } from 'node:crypto';
import semver from 'semver';
import nacl from 'tweetnacl';
import { keyIdOf, publicKeyOf } from '../package/keys.ts';
import { inspect, verifyInspected, type Inspected } from '../package/pack.ts';
import { MAX_PACKED_BYTES } from '../package/tar.ts';
import { MemoryClientState, normalizeUrl } from './state.ts';
import type {
  AppMetadata,
  ClientState,
  CreatedRegistryToken,
  FetchedPackage,
  FetchOptions,
  KeyEntry,
  PublishResult,
  RegistryInfo,
  RegistryTokenInfo,
  SearchResult,
  TrustPolicy,
  VerifiedMetadata,
  VersionEntry,
} from './types.ts';
import { decodeBase64, extendsChain, signRecovery, signRotation, trustReaches, verifyMetadata, vouches } from './verify.ts';

/** A registry answer read as JSON (metadata, search, tokens): ~8,000 versions of one app fit; a resolution of 100 apps holds at most 400 MiB. */
const MAX_JSON_BYTES = 4 * 1024 * 1024;

export class RegistryError extends Error {
  /** The HTTP status, when the registry answered with an error. */
  readonly status: number | undefined;
  /** The registry's error code (not_found, conflict, ...), when it gave one. */
  readonly code: string | undefined;
  constructor(message: string, status?: number, code?: string) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
  }
}

export interface RegistryClientOptions {
  url: string;
  /** Bearer token for writes (publish, yank, keys, tokens). */
  token?: string;
  /** What the caller trusts; a function is asked again on every fetch. */
  trust: TrustPolicy | (() => TrustPolicy | Promise<TrustPolicy>);
  /** Pins and accepted versions; default: in memory (forgotten with the client). */
  state?: ClientState;
  /** The registry's metadata key (base64), pinned by the caller; default: pinned on first use. */
  registryKey?: string;
  /** Milliseconds since the epoch (tests move it to check expiry). */
  now?: () => number;
  /** Per request, including reading the answer (default 60 s). */
  timeoutMs?: number;
}

const sha256b64 = (b: Buffer): string => `sha256-${createHash('sha256').update(b).digest('base64')}`;
const enc = encodeURIComponent;

export class RegistryClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly trustSource: RegistryClientOptions['trust'];
  private readonly state: ClientState;
  private readonly givenKey: string | undefined;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private metadataKey: Uint8Array | null = null;

  constructor(opts: RegistryClientOptions) {
    if (!/^https?:\/\/[^/]/.test(opts.url)) throw new RegistryError(`registry URL ${JSON.stringify(opts.url)} must start with http:// or https://`);
    this.url = normalizeUrl(opts.url);
    this.token = opts.token;
    this.trustSource = opts.trust;
    this.state = opts.state ?? new MemoryClientState();
    this.givenKey = opts.registryKey;
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  // ---- reads ---------------------------------------------------------------------------------

  async info(): Promise<RegistryInfo> {
    const i = await this.json<RegistryInfo>('GET', '/v1/registry');
    const k = (i as Partial<RegistryInfo>)?.keys;
    if (!k?.metadata || !decodeBase64(k.metadata.publicKey, nacl.sign.publicKeyLength) || !k.root || !decodeBase64(k.root.publicKey, nacl.sign.publicKeyLength)) {
      throw new RegistryError(`the registry at ${this.url} answered GET /v1/registry without its metadata and root keys; is it an osØ registry?`);
    }
    return i;
  }

  /** The metadata of APP, checked (signature, name, expiry, key chain); throws otherwise. */
  async metadata(name: string): Promise<AppMetadata> {
    return (await this.verifiedMetadata(name)).metadata;
  }

  /** metadata(), plus what the user should know (e.g. a key recovery). */
  async verifiedMetadata(name: string, trust?: TrustPolicy): Promise<VerifiedMetadata> {
    const key = await this.pinnedMetadataKey();
    const envelope = await this.json<unknown>('GET', `/v1/apps/${enc(name)}`);
    try {
      return verifyMetadata(envelope, name, key, trust ?? (await this.trust()), this.now());
    } catch (e) {
      throw new RegistryError(`${(e as Error).message} (registry ${this.url})`);
    }
  }

  /** The highest non-yanked version of APP satisfying RANGE (an exact version may be yanked). */
  async resolve(name: string, range = '*'): Promise<VersionEntry> {
    return pick((await this.metadata(name)), range);
  }

  /** Resolves, downloads and checks a package end to end (PROTOCOL.md "What the client checks"). */
  async fetch(name: string, range = '*', opts: FetchOptions = {}): Promise<FetchedPackage> {
    const progress = opts.onProgress ?? (() => {});
    const trust = await this.trust();
    progress(`fetching the metadata of ${name} from ${this.url}`);
    const { metadata, notices } = await this.verifiedMetadata(name, trust);
    const entry = pick(metadata, range);
    const what = `${name}@${entry.version}`;

    const highest = this.state.highestAccepted(name);
    if (highest && semver.valid(highest) && semver.lt(entry.version, highest) && !opts.allowRollback) {
      throw new RegistryError(`${what} is older than ${highest}, installed before: refusing a rollback (pass --allow-downgrade)`);
    }
    const chain = metadata.keys.map((k) => k.keyId);
    const rewritten = extendsChain(name, this.state.acceptedChain(name), chain);
    if (rewritten) throw new RegistryError(rewritten);
    const untrusted = trustReaches(name, entry.version, metadata.keys, entry.keyId, new Set(trust.publisherKeys.map(keyIdOf)));
    if (untrusted) throw new RegistryError(untrusted);
    const why = vouches(name, entry.version, metadata.keys, entry.keyId, entry.digest);
    if (why) throw new RegistryError(why);

    const tgz = await this.download(name, entry, progress);
    const integrity = sha256b64(tgz);
    if (integrity !== entry.integrity) {
      throw new RegistryError(`${what}: the downloaded package does not match the signed metadata (integrity ${integrity}, expected ${entry.integrity}): it was altered by the registry or on the way; refusing it`);
    }
    progress(`verifying ${what}`);
    const inspected = inspectOrRefuse(tgz, what);
    if (!inspected.signature) throw new RegistryError(`${what} is not signed: refusing it`);
    const signer = inspected.signature.keyId;
    const signerEntry = lastEntry(metadata.keys, signer);
    if (!signerEntry) throw new RegistryError(`${what} is signed by key ${signer}, which is not in the app's key chain: refusing it`);
    if (signer !== entry.keyId) throw new RegistryError(`${what} is signed by key ${signer}, but the signed metadata says ${entry.keyId}: refusing it`);
    let verified;
    try {
      verified = verifyInspected(inspected, [decodeBase64(signerEntry.publicKey, nacl.sign.publicKeyLength)!]);
    } catch (e) {
      throw new RegistryError(`${(e as Error).message}: refusing it`);
    }
    if (verified.digest !== entry.digest) throw new RegistryError(`${what}: the package's digest ${verified.digest} is not the one in the signed metadata (${entry.digest}): refusing it`);
    if (verified.manifest.name !== name || verified.manifest.version !== entry.version) {
      throw new RegistryError(`${what}: the package is ${verified.manifest.name}@${verified.manifest.version}: refusing it`);
    }
    await this.state.accepted(name, entry.version);
    await this.state.acceptChain(name, chain);
    progress(`${what} verified (digest ${entry.digest}, key ${signer})`);
    return {
      name,
      version: entry.version,
      manifest: verified.manifest,
      files: verified.files,
      digest: verified.digest,
      keyId: signer,
      tgz,
      integrity,
      notices,
    };
  }

  async search(term: string, limit?: number): Promise<SearchResult[]> {
    const q = `q=${enc(term)}${limit !== undefined ? `&limit=${limit}` : ''}`;
    const r = await this.json<{ results?: SearchResult[] }>('GET', `/v1/search?${q}`);
    if (!Array.isArray(r?.results)) throw new RegistryError(`the registry at ${this.url} answered a search without results`);
    return r.results;
  }

  // ---- writes --------------------------------------------------------------------------------

  /**
   * Uploads a signed package; checks it locally first and the registry's answer after. The first
   * publish of a name binds it to the signing key, whose public half the registry cannot know from
   * the package (signature.json names only its id): pass `publicKey` (sent as `x-os0-public-key`).
   */
  async publish(tgz: Buffer, opts: { publicKey?: Uint8Array; onProgress?: (message: string) => void } = {}): Promise<PublishResult> {
    let local;
    try {
      local = inspect(tgz);
    } catch (e) {
      throw new RegistryError((e as Error).message);
    }
    const what = `${local.manifest.name}@${local.manifest.version}`;
    if (!local.signature) throw new RegistryError(`${what} is not signed; sign it (os0 publish --key FILE signs it) before publishing`);
    const headers: Record<string, string> = { 'content-type': 'application/gzip' };
    if (opts.publicKey) {
      const id = keyIdOf(checkPublicKey(opts.publicKey));
      if (id !== local.signature.keyId) throw new RegistryError(`${what} is signed by key ${local.signature.keyId}, not by the public key given (${id})`);
      headers['x-os0-public-key'] = Buffer.from(opts.publicKey).toString('base64');
    }
    opts.onProgress?.(`uploading ${what} (${tgz.length} bytes) to ${this.url}`);
    const r = await this.json<PublishResult>('POST', '/v1/apps', tgz, headers);
    if (r?.digest !== local.digest || r.name !== local.manifest.name || r.version !== local.manifest.version) {
      throw new RegistryError(`the registry at ${this.url} answered the publish of ${what} with ${JSON.stringify(r)}; expected digest ${local.digest}`);
    }
    return r;
  }

  async yank(name: string, version: string, yanked = true, reason?: string): Promise<VersionEntry> {
    return this.json<VersionEntry>('POST', `/v1/apps/${enc(name)}/versions/${enc(version)}/yank`, { yanked, reason });
  }

  /**
   * Hands APP over to NEWPUBLICKEY with a rotation record signed by the current key. `keep`
   * defaults to the digests of every version the current key signed.
   */
  async rotateKey(name: string, currentSecretKey: Uint8Array, newPublicKey: Uint8Array, keep?: string[]): Promise<KeyEntry[]> {
    const current = keyIdOf(publicKeyOf(currentSecretKey));
    const { metadata } = await this.verifiedMetadata(name);
    const from = metadata.keys[metadata.keys.length - 1].keyId;
    let record;
    try {
      record = signRotation({ app: name, from, newPublicKey: checkPublicKey(newPublicKey), keep: keep ?? keptBy(metadata, from), time: new Date(this.now()).toISOString() }, currentSecretKey);
    } catch (e) {
      throw new RegistryError((e as Error).message);
    }
    if (current === record.to) throw new RegistryError(`${name}: the new key is the current key ${current}; give a different .pub`);
    return this.json<KeyEntry[]>('POST', `/v1/apps/${enc(name)}/keys`, record);
  }

  /** The registry operator replaces APP's key with NEWPUBLICKEY, signed by the root key (admin token). */
  async recover(name: string, rootSecretKey: Uint8Array, newPublicKey: Uint8Array, keep?: string[]): Promise<KeyEntry[]> {
    const base = await this.trust();
    const { metadata } = await this.verifiedMetadata(name, { ...base, rootKeys: [...(base.rootKeys ?? []), publicKeyOf(rootSecretKey)] });
    const from = metadata.keys[metadata.keys.length - 1].keyId;
    const record = signRecovery({ app: name, from, newPublicKey: checkPublicKey(newPublicKey), keep: keep ?? keptBy(metadata, from), time: new Date(this.now()).toISOString() }, rootSecretKey);
    return this.json<KeyEntry[]>('POST', `/v1/apps/${enc(name)}/recover`, record);
  }

  async createToken(actor: string, description?: string): Promise<CreatedRegistryToken> {
    return this.json<CreatedRegistryToken>('POST', '/v1/tokens', { actor, description });
  }

  async listTokens(): Promise<RegistryTokenInfo[]> {
    return this.json<RegistryTokenInfo[]>('GET', '/v1/tokens');
  }

  async revokeToken(id: string): Promise<{ id: string; revoked: boolean }> {
    return this.json<{ id: string; revoked: boolean }>('DELETE', `/v1/tokens/${enc(id)}`);
  }

  // ---- internals -----------------------------------------------------------------------------

  private async trust(): Promise<TrustPolicy> {
    const t = typeof this.trustSource === 'function' ? await this.trustSource() : this.trustSource;
    return { publisherKeys: t?.publisherKeys ?? [], rootKeys: t?.rootKeys ?? [] };
  }

  /** The metadata key: the caller's, else the pinned one, else pinned now; a different one is refused. */
  private async pinnedMetadataKey(): Promise<Uint8Array> {
    if (this.metadataKey) return this.metadataKey;
    const pinned = this.givenKey ?? this.state.pinnedKey(this.url);
    const served = (await this.info()).keys.metadata;
    const servedKey = decodeBase64(served.publicKey, nacl.sign.publicKeyLength)!;
    if (pinned !== null) {
      const pk = decodeBase64(pinned, nacl.sign.publicKeyLength);
      if (!pk) throw new RegistryError(`the pinned key of the registry at ${this.url} is not a base64 ed25519 public key`);
      if (!Buffer.from(pk).equals(Buffer.from(servedKey))) {
        throw new RegistryError(`the registry at ${this.url} now signs with key ${keyIdOf(servedKey)}, not the pinned key ${keyIdOf(pk)}: refusing its metadata`);
      }
      this.metadataKey = pk;
    } else {
      await this.state.pin(this.url, served.publicKey);
      this.metadataKey = servedKey;
    }
    return this.metadataKey;
  }

  private async download(name: string, entry: VersionEntry, progress: (m: string) => void): Promise<Buffer> {
    const max = Math.min(entry.size, MAX_PACKED_BYTES);
    const what = `${name}@${entry.version}`;
    progress(`downloading ${what} (${entry.size} bytes)`);
    const res = await this.request('GET', `/v1/apps/${enc(name)}/versions/${enc(entry.version)}/package`);
    let last = 0;
    return this.readBody(res, max, `the package ${what} is larger than the ${entry.size} bytes the signed metadata lists: refusing it`, (n) => {
      if (n - last >= 262144 || n === entry.size) {
        last = n;
        progress(`downloading ${what}: ${n} of ${entry.size} bytes`);
      }
    });
  }

  private async json<T>(method: string, p: string, body?: unknown, extraHeaders?: Record<string, string>): Promise<T> {
    const res = await this.request(method, p, body, extraHeaders);
    const buf = await this.readBody(res, MAX_JSON_BYTES, `the registry at ${this.url} answered ${method} ${p} with more than ${MAX_JSON_BYTES} bytes`);
    try {
      return JSON.parse(buf.toString('utf8')) as T;
    } catch {
      throw new RegistryError(`the registry at ${this.url} answered ${method} ${p} with something that is not JSON`);
    }
  }

  /** One request; network failures and error answers become one-line RegistryErrors. */
  private async request(method: string, p: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<Response> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: Uint8Array | string | undefined;
    if (Buffer.isBuffer(body)) {
      headers['content-type'] ??= 'application/octet-stream';
      payload = new Uint8Array(body.buffer, body.byteOffset, body.length);
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(this.url + p, { method, headers, body: payload, signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      const why = err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : (err.cause?.code ?? err.cause?.message ?? err.message);
      throw new RegistryError(`cannot reach the registry at ${this.url} (${why}); check that it runs and the URL is right`);
    }
    if (!res.ok) {
      let message = `the registry at ${this.url} answered ${method} ${p} with ${res.status} ${res.statusText}`;
      let code: string | undefined;
      try {
        const j = JSON.parse((await this.readBody(res, 65536, '')).toString('utf8')) as { error?: { message?: unknown; code?: unknown } };
        if (typeof j.error?.message === 'string' && j.error.message) message = j.error.message.split('\n')[0];
        if (typeof j.error?.code === 'string') code = j.error.code;
      } catch {}
      throw new RegistryError(message, res.status, code);
    }
    return res;
  }

  /** Reads a response body, refusing (and cancelling) it as soon as it passes MAX bytes. */
  private async readBody(res: Response, max: number, tooLarge: string, onBytes?: (n: number) => void): Promise<Buffer> {
    const declared = Number(res.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > max) {
      await res.body?.cancel().catch(() => {});
      throw new RegistryError(tooLarge);
    }
    if (!res.body) return Buffer.alloc(0);
    const reader = res.body.getReader();
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        n += value.length;
        if (n > max) {
          await reader.cancel().catch(() => {});
          throw new RegistryError(tooLarge);
        }
        chunks.push(Buffer.from(value.buffer, value.byteOffset, value.length));
        onBytes?.(n);
      }
    } catch (e) {
      if (e instanceof RegistryError) throw e;
      const err = e as Error;
      throw new RegistryError(`the answer of the registry at ${this.url} broke off (${err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : err.message})`);
    }
    return Buffer.concat(chunks, n);
  }
}

/** Resolution (PROTOCOL.md "What the client checks" 4). A dist-tag name is accepted as a range too. */
export function pick(m: AppMetadata, range: string): VersionEntry {
  const all = Object.keys(m.versions).filter((v) => semver.valid(v)).sort(semver.compare);
  const listed = all.length ? all.map((v) => (m.versions[v].yanked ? `${v} (yanked)` : v)).join(', ') : 'none';
  // A dist-tag only for what is not a version or range: a tag named "2.1.0" must not redirect it.
  const tag = semver.validRange(range) === null && Object.hasOwn(m.distTags ?? {}, range) ? m.distTags[range] : undefined;
  if (tag !== undefined && m.versions[tag]) return m.versions[tag];
  const exact = semver.valid(range);
  if (exact) {
    const e = m.versions[exact];
    if (!e) throw new RegistryError(`${m.name}@${range} is not published (versions: ${listed})`);
    return e;
  }
  if (semver.validRange(range) === null) throw new RegistryError(`${m.name}@${range}: ${JSON.stringify(range)} is not a semver range (e.g. ^1.2.0) or a version`);
  const best = semver.maxSatisfying(
    all.filter((v) => !m.versions[v].yanked),
    range,
  );
  if (!best) throw new RegistryError(`no version of ${m.name} satisfies ${range} (versions: ${listed})`);
  return m.versions[best];
}

/** The digests of the versions KEYID signed: what a rotation keeps by default. */
function keptBy(m: AppMetadata, keyId: string): string[] {
  return Object.values(m.versions)
    .filter((v) => v.keyId === keyId)
    .map((v) => v.digest)
    .sort();
}

function lastEntry(keys: KeyEntry[], keyId: string): KeyEntry | undefined {
  for (let i = keys.length - 1; i >= 0; i--) if (keys[i].keyId === keyId) return keys[i];
  return undefined;
}

/** The package unpacked and its structure checked (the signer is checked against the chain next). */
function inspectOrRefuse(tgz: Buffer, what: string): Inspected {
  try {
    return inspect(tgz);
  } catch (e) {
    throw new RegistryError(`${what}: ${(e as Error).message}: refusing it`);
  }
}

function checkPublicKey(k: Uint8Array): Uint8Array {
  if (!(k instanceof Uint8Array) || k.length !== nacl.sign.publicKeyLength) throw new RegistryError(`a new publisher key must be a ${nacl.sign.publicKeyLength}-byte ed25519 public key (a .pub file)`);
  return k;
}
