/**
 * The registry: state (store, search index, skeletons, metadata cache) and the operations of
 * PROTOCOL.md as methods; routes.ts puts them on HTTP. Every refusal is a RegistryError thrown
 * before anything is written.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import semver from 'semver';
import type { KeyEntry, PublishResult, RegistryInfo, SearchResult, VersionEntry } from '../client/types.ts';
import { keyIdOf } from '../package/keys.ts';
import { signedMessage } from '../package/pack.ts';
import { privateKeyObject, verifyDetached } from '../package/ed25519.ts';
import { RegistryError } from './errors.ts';
import { checkRecord, currentKey } from './keychain.ts';
import { loadKeys, type RegistryKeys } from './keys.ts';
import { latestOf, MetadataCache, type CachedMetadata } from './metadata.ts';
import { KeyedMutex } from './mutex.ts';
import { checkName, skeleton, Skeletons } from './names.ts';
import { checkPackage, type RegistryLimits } from './package.ts';
import { RateLimiter } from './ratelimit.ts';
import { routes } from './routes.ts';
import { SearchIndex } from './search.ts';
import { Store, type AppRecord, type TokenRecord } from './store.ts';
import { ADMIN_ACTOR, checkActor, Tokens, type Caller } from './tokens.ts';

export type { RegistryLimits } from './package.ts';
export type { Caller } from './tokens.ts';

export interface RegistryOptions {
  /** Data folder: registry.json (lowdb), blobs/, registry.key/.pub, root.key/.pub, admin.token. */
  dir: string;
  limits?: Partial<RegistryLimits>;
  /** Lifetime of a signed metadata document (86,400). */
  metadataTtlSeconds?: number;
  /** ms clock, for tests of expiry. */
  now?: () => number;
  /** An embedding (os0 up) may accept its own tokens: return the actor, or null to fall back to registry tokens. */
  authenticate?: (token: string) => { actor: string; admin: boolean; parent?: string } | null;
  /**
   * Whether an embedding's token is still alive: a registry token made with one (its `parent`)
   * stops working once that token is revoked.
   */
  parentAlive?: (parent: string) => boolean;
}

export const DEFAULT_LIMITS: RegistryLimits = {
  maxPackageBytes: 32 * 1024 * 1024,
  maxFiles: 1000,
  maxUnpackedBytes: 32 * 1024 * 1024,
  publishesPerMinute: 60,
  requestsPerSecond: 0,
};

export const ADMIN_TOKEN_FILE = 'admin.token';
export const SEARCH_LIMIT_DEFAULT = 20;
export const SEARCH_LIMIT_MAX = 100;

const own = <T>(o: Record<string, T>, k: string): T | undefined => (Object.hasOwn(o, k) ? o[k] : undefined);

export class Registry {
  readonly app: Hono;
  /** The admin token, on the first start only (also in DIR/admin.token, mode 0600); null later. */
  readonly adminToken: string | null;
  readonly dir: string;
  readonly limits: RegistryLimits;
  readonly keys: RegistryKeys;
  readonly store: Store;
  readonly tokens: Tokens;
  readonly metadata: MetadataCache;
  readonly searchIndex = new SearchIndex();
  private readonly skeletons = new Skeletons();
  private readonly locks = new KeyedMutex();
  private readonly writeLimiter: RateLimiter;
  readonly requestLimiter: RateLimiter;
  private readonly embedAuth: RegistryOptions['authenticate'];
  private readonly parentAlive: RegistryOptions['parentAlive'];
  readonly now: () => number;
  private server: ServerType | null = null;

  /** Use Registry.open(). */
  constructor(opts: RegistryOptions, store: Store, keys: RegistryKeys, adminToken: string | null) {
    this.dir = opts.dir;
    this.store = store;
    this.keys = keys;
    this.adminToken = adminToken;
    this.now = opts.now ?? Date.now;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    for (const [k, v] of Object.entries(this.limits)) {
      if (!Number.isFinite(v) || v < 0) throw new Error(`registry limit ${k} must be a number >= 0, not ${v}`);
    }
    this.embedAuth = opts.authenticate;
    this.parentAlive = opts.parentAlive;
    this.tokens = new Tokens(store);
    this.metadata = new MetadataCache({ key: privateKeyObject(keys.metadata.secretKey), keyId: keys.metadata.keyId, ttlS: opts.metadataTtlSeconds ?? 86_400, now: this.now });
    this.writeLimiter = new RateLimiter(this.limits.publishesPerMinute, 60_000, this.now);
    this.requestLimiter = new RateLimiter(this.limits.requestsPerSecond, 1000, this.now);
    for (const app of Object.values(store.data.apps)) this.indexApp(app);
    this.app = routes(this);
  }

  static async open(opts: RegistryOptions): Promise<Registry> {
    const dir = path.resolve(opts.dir);
    fs.mkdirSync(dir, { recursive: true });
    const keys = loadKeys(dir);
    const store = await Store.open(dir);
    let adminToken: string | null = null;
    if (!Object.values(store.data.tokens).some((t) => t.admin)) {
      const tokens = new Tokens(store);
      adminToken = tokens.create(ADMIN_ACTOR, 'the registry admin, made at first start', true, new Date(opts.now?.() ?? Date.now())).token;
      await store.save();
      const file = path.join(dir, ADMIN_TOKEN_FILE);
      fs.writeFileSync(file, adminToken + '\n', { mode: 0o600 });
      fs.chmodSync(file, 0o600);
    }
    return new Registry({ ...opts, dir }, store, keys, adminToken);
  }

  info(): RegistryInfo {
    const k = (x: { keyId: string; publicKey: Uint8Array }) => ({ keyId: x.keyId, publicKey: Buffer.from(x.publicKey).toString('base64') });
    return { keys: { metadata: k(this.keys.metadata), root: k(this.keys.root) }, limits: { ...this.limits } };
  }

  // ---- who is calling ----------------------------------------------------------------------

  /** The caller of a bearer token, or a 401. */
  authenticate(token: string | null): Caller {
    if (!token) throw new RegistryError('unauthorized', 'this needs a registry token: pass --registry-token or set OS0_REGISTRY_TOKEN');
    const embedded = this.embedAuth?.(token);
    if (embedded) return { actor: embedded.actor, admin: embedded.admin, ...(embedded.parent ? { parent: embedded.parent } : {}) };
    const c = this.tokens.authenticate(token);
    if (c?.parent !== undefined && this.parentAlive && !this.parentAlive(c.parent)) {
      throw new RegistryError('unauthorized', 'the registry token was made with a token that has since been revoked; make a new one');
    }
    if (!c) throw new RegistryError('unauthorized', 'the registry token is not valid (revoked or mistyped); ask the registry admin for a new one (os0 registry token create)');
    return c;
  }

  /** Takes one of the actor's writes for this minute, or a 429. */
  limitWrite(caller: Caller): void {
    const wait = this.writeLimiter.take(caller.actor);
    if (wait > 0) throw new RegistryError('rate_limited', `${caller.actor} made more than ${this.limits.publishesPerMinute} writes in a minute; retry in ${wait} s`, wait);
  }

  // ---- apps --------------------------------------------------------------------------------

  appRecord(name: string): AppRecord | undefined {
    return own(this.store.data.apps, name);
  }

  private requireApp(name: string): AppRecord {
    const app = this.appRecord(name);
    if (!app) throw new RegistryError('not_found', `no app "${name}" in this registry; check the name (os0 search ${name})`);
    return app;
  }

  private requireOwner(app: AppRecord, caller: Caller, what: string): void {
    if (!caller.admin && caller.actor !== app.owner) throw new RegistryError('forbidden', `${app.name} belongs to ${app.owner}; only its owner or the registry admin can ${what}`);
  }

  private indexApp(app: AppRecord): void {
    this.skeletons.add(app.name);
    const latest = latestOf(app.versions);
    const versions = Object.keys(app.versions);
    const shown = latest ?? (versions.length ? versions.reduce((a, b) => (semver.gt(a, b) ? a : b)) : null);
    const v = shown === null ? undefined : app.versions[shown];
    this.searchIndex.put({ name: app.name, version: latest, description: v?.description ?? '', keywords: v?.keywords ?? [] });
  }

  /** Records a change to an app durably, then refreshes what is derived from it. */
  private async commit(app: AppRecord, undo: () => void): Promise<void> {
    try {
      await this.store.save();
    } catch (e) {
      undo();
      this.metadata.invalidate(app.name); // a GET meanwhile may have cached the undone change
      throw new RegistryError('internal', `cannot write ${path.join(this.dir, 'registry.json')}: ${(e as Error).message}`);
    }
    this.metadata.invalidate(app.name);
    this.indexApp(app);
  }

  /** The signed metadata of an app, cached (see MetadataCache). */
  metadataOf(name: string): CachedMetadata {
    return this.metadata.get(this.requireApp(name));
  }

  /** POST /v1/apps: PROTOCOL.md "Publishing", steps 1 to 6. `publicKey`: base64, needed for a new app's first key. */
  async publish(tgz: Buffer, caller: Caller, publicKey?: string): Promise<PublishResult> {
    const p = checkPackage(tgz, this.limits);
    const name = checkName(p.manifest.name);
    const version = p.manifest.version;
    const sig = p.signature;
    // One publish at a time per skeleton: the same name, and names confusable with it.
    return this.locks.run(skeleton(name), async () => {
      let app = this.appRecord(name);
      let key: KeyEntry;
      if (!app) {
        const other = this.skeletons.confusedWith(name);
        if (other) throw new RegistryError('conflict', `app name "${name}" is confusable with the existing app "${other}"; choose a clearly different name`);
        if (!publicKey) throw new RegistryError('invalid', `the first publish of ${name} must send the signing key's public key (header x-os0-public-key: base64 of publisher.pub)`);
        const pub = Buffer.from(publicKey, 'base64');
        if (pub.length !== 32 || !/^[A-Za-z0-9+/]+={0,2}$/.test(publicKey.trim())) throw new RegistryError('invalid', 'x-os0-public-key must be the base64 of a 32-byte ed25519 public key (the line in publisher.pub)');
        if (keyIdOf(pub) !== sig.keyId) throw new RegistryError('invalid', `x-os0-public-key is key ${keyIdOf(pub)}, but ${name}@${version} is signed by key ${sig.keyId}; send the signing key's .pub`);
        key = { keyId: sig.keyId, publicKey: pub.toString('base64'), since: new Date(this.now()).toISOString() };
      } else {
        this.requireOwner(app, caller, 'publish it');
        const cur = currentKey(app.keys);
        if (sig.keyId !== cur.keyId) {
          const old = app.keys.findIndex((k) => k.keyId === sig.keyId);
          if (old >= 0) throw new RegistryError('forbidden', `${name}@${version} is signed by key ${sig.keyId}, which was rotated out of ${name} on ${app.keys[old + 1].since}; sign it with the current key ${cur.keyId}`);
          throw new RegistryError('forbidden', `${name}@${version} is signed by key ${sig.keyId}, which is not a key of ${name}; sign it with its current key ${cur.keyId} (or rotate to the new key first)`);
        }
        key = cur;
      }
      const message = signedMessage(p.digest);
      if (!verifyDetached(message, Buffer.from(sig.signature, 'base64'), Buffer.from(key.publicKey, 'base64'))) {
        throw new RegistryError('forbidden', `${name}@${version}: the signature by key ${sig.keyId} does not verify; sign the package again`);
      }
      if (app) {
        const same = Object.keys(app.versions).find((v) => semver.eq(v, version));
        if (same !== undefined) {
          throw new RegistryError('conflict', `${name}@${same} is already published${app.versions[same].yanked ? ' (and yanked)' : ''}; versions are immutable: bump "version" in os0.json`);
        }
      }
      await this.store.putBlob(tgz);
      const m = p.manifest;
      const entry: VersionEntry = {
        version,
        digest: p.digest,
        integrity: p.integrity,
        size: p.size,
        keyId: sig.keyId,
        published: new Date(this.now()).toISOString(),
        yanked: false,
        description: typeof m.description === 'string' ? m.description : '',
        keywords: Array.isArray(m.keywords) ? m.keywords.filter((k): k is string => typeof k === 'string') : [],
        ...(typeof m.license === 'string' ? { license: m.license } : {}),
        dependencies: m.dependencies && typeof m.dependencies === 'object' ? { ...m.dependencies } : {},
      };
      // The blob is durable; now the metadata (a download finds the blob by the entry's integrity).
      let undo: () => void;
      if (!app) {
        app = { name, owner: caller.actor, created: entry.published, keys: [key], versions: { [version]: entry } };
        this.store.data.apps[name] = app;
        undo = () => delete this.store.data.apps[name];
      } else {
        const a = app;
        a.versions[version] = entry;
        undo = () => delete a.versions[version];
      }
      await this.commit(app, undo);
      return { name, version, digest: p.digest, integrity: p.integrity, size: p.size, keyId: sig.keyId };
    });
  }

  /** The .tgz of a version, with its entry (headers come from the entry, never from the bytes). */
  async download(name: string, version: string): Promise<{ entry: VersionEntry; bytes: Buffer }> {
    const app = this.requireApp(name);
    const entry = own(app.versions, version);
    if (!entry) throw new RegistryError('not_found', `${name} has no version ${version}; see GET /v1/apps/${name} for its versions`);
    const hex = Buffer.from(entry.integrity.slice('sha256-'.length), 'base64').toString('hex');
    try {
      return { entry, bytes: await this.store.readBlob(hex) };
    } catch (e) {
      throw new RegistryError('internal', `the package of ${name}@${version} is missing from the blob store (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the operator must restore blobs/`);
    }
  }

  async yank(name: string, version: string, body: unknown, caller: Caller): Promise<VersionEntry> {
    const b = body as { yanked?: unknown; reason?: unknown } | null;
    if (!b || typeof b !== 'object' || typeof b.yanked !== 'boolean') throw new RegistryError('invalid', 'the body must be {"yanked": true|false, "reason"?: "..."}');
    if (b.reason !== undefined && (typeof b.reason !== 'string' || b.reason.length > 1000)) throw new RegistryError('invalid', '"reason" must be a string of at most 1000 characters');
    return this.locks.run(skeleton(name), async () => {
      const app = this.requireApp(name);
      this.requireOwner(app, caller, 'yank its versions');
      const entry = own(app.versions, version);
      if (!entry) throw new RegistryError('not_found', `${name} has no version ${version}; see GET /v1/apps/${name} for its versions`);
      const before = { ...entry };
      entry.yanked = b.yanked as boolean;
      if (entry.yanked && typeof b.reason === 'string') entry.yankReason = b.reason;
      else delete entry.yankReason;
      await this.commit(app, () => {
        app.versions[version] = before;
      });
      return entry;
    });
  }

  /** Rotation (`recovery` false, signed by the current key) or recovery (admin, signed by the root key). */
  async changeKey(name: string, body: unknown, caller: Caller, recovery: boolean): Promise<KeyEntry[]> {
    if (recovery && !caller.admin) throw new RegistryError('forbidden', 'only the registry admin can recover an app\'s key');
    return this.locks.run(skeleton(name), async () => {
      const app = this.requireApp(name);
      this.requireOwner(app, caller, 'rotate its key');
      const entry = checkRecord(name, app.keys, body, new Date(this.now()).toISOString(), recovery ? this.keys.root : undefined);
      app.keys.push(entry);
      await this.commit(app, () => void app.keys.pop());
      return app.keys;
    });
  }

  search(q: string, limit: number): SearchResult[] {
    return this.searchIndex.search(q, limit);
  }

  // ---- tokens ------------------------------------------------------------------------------

  async createToken(body: unknown, caller: Caller): Promise<{ id: string; actor: string; token: string }> {
    const b = body as { actor?: unknown; description?: unknown } | null;
    if (!b || typeof b !== 'object') throw new RegistryError('invalid', 'the body must be {"actor": "...", "description"?: "..."}');
    const actor = checkActor(b.actor);
    if (b.description !== undefined && (typeof b.description !== 'string' || b.description.length > 200)) throw new RegistryError('invalid', '"description" must be a string of at most 200 characters');
    if (!caller.admin && actor !== caller.actor) throw new RegistryError('forbidden', `you are ${caller.actor}: you can create tokens for yourself only; the registry admin creates them for others`);
    // A token made with another (an embedding's token, or a registry token that has one) dies with it.
    const { record, token } = this.tokens.create(actor, (b.description as string | undefined) ?? '', false, new Date(this.now()), caller.parent);
    await this.saveTokens(() => this.tokens.remove(record.id));
    return { id: record.id, actor, token };
  }

  listTokens(caller: Caller): Omit<TokenRecord, 'sha256'>[] {
    return this.tokens.list(caller);
  }

  async revokeToken(id: string, caller: Caller): Promise<{ id: string; revoked: true }> {
    const rec = this.tokens.get(id);
    if (!rec || (!caller.admin && rec.actor !== caller.actor)) throw new RegistryError('not_found', `no token ${id}${caller.admin ? '' : ` of ${caller.actor}`}; list them with os0 registry token ls`);
    this.tokens.remove(id);
    await this.saveTokens(() => {
      this.store.data.tokens[id] = rec;
    });
    return { id, revoked: true };
  }

  private async saveTokens(undo: () => void): Promise<void> {
    try {
      await this.store.save();
    } catch (e) {
      undo();
      throw new RegistryError('internal', `cannot write ${path.join(this.dir, 'registry.json')}: ${(e as Error).message}`);
    }
  }

  // ---- serving -----------------------------------------------------------------------------

  /** Listens on 127.0.0.1; resolves with the bound port (0: any free one). */
  listen(port: number): Promise<number> {
    if (this.server) return Promise.reject(new Error('the registry is already listening'));
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: this.app.fetch, port, hostname: '127.0.0.1' }, (info) => resolve(info.port));
      server.once('error', (e: NodeJS.ErrnoException) => {
        this.server = null;
        reject(new Error(e.code === 'EADDRINUSE' ? `port ${port} is in use; pass --port with a free one` : `cannot listen on 127.0.0.1:${port}: ${e.message}`));
      });
      this.server = server;
    });
  }

  /** Stops listening and waits for writes in flight. */
  async close(): Promise<void> {
    const s = this.server as (ServerType & { closeAllConnections?: () => void }) | null;
    this.server = null;
    if (s) {
      await new Promise<void>((r) => {
        s.close(() => r());
        s.closeAllConnections?.();
      });
    }
    await this.locks.idle();
    await this.store.idle();
  }
}
