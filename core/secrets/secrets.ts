/**
 * Secrets sealed at rest (docs/architecture.md, and README.md beside this file).
 *
 * A `secret` resource is written as {KEY: VALUE, ...} and stored as {keys: [KEY, ...], sealed}:
 * the values are sealed by a check filter, before any other filter that could show them (app
 * filters) and long before the log, so no plaintext reaches the WAL, sstables, history, watches,
 * handler events, the log or metrics. Sealing: AES-256-GCM under a data key derived per write
 * (HKDF-SHA256, fresh salt) from the instance's key-encryption key (KEK), with the secret's
 * identity (type, namespace, name) as associated data, so a ciphertext moved onto another
 * secret does not open.
 *
 * The KEKs live in DATA/secrets.key (mode 0600), outside the WAL and sstables:
 * {"version":1,"current":KID,"keys":{KID: base64(32 bytes)}}. `rotate()` adds a new KEK and makes
 * it current, then re-seals every secret in the background, one durable command each; an old KEK
 * is dropped from the file only once no secret is sealed under it. The file is replaced
 * atomically (write, fsync, rename, fsync the directory), so a kill at any point leaves either
 * the old file or the new one, and every secret opens under a key that file holds.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OsError, Rejection } from '../errors.ts';
import type { Filter, FilterContext } from '../filter.ts';
import type { Command, Resource } from '../resource.ts';

export const KEY_FILE = 'secrets.key';
/** What a value reads as without the reveal verb; applying it back keeps the stored value. */
export const REDACTED = '(redacted)';
export const SECRET_LIMITS = { keys: 64, keyChars: 128, valueBytes: 64 * 1024, totalBytes: 192 * 1024 } as const;
const KEY_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const INFO = Buffer.from('os0 secret v1');

export interface SealedData {
  keys: string[];
  sealed: string;
}

interface KeyFile {
  version: 1;
  current: string;
  keys: Record<string, string>;
}

const b64 = (b: Buffer): string => b.toString('base64url');
const aad = (namespace: string, name: string): Buffer => Buffer.from(`os0 secret\u0000${namespace}\u0000${name}`);

export function isSealed(data: unknown): data is SealedData {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return false;
  const d = data as Record<string, unknown>;
  return Object.keys(d).length === 2 && Array.isArray(d.keys) && typeof d.sealed === 'string' && d.sealed.startsWith('v1.');
}

/** The key id a sealed blob names. */
export const kidOf = (data: SealedData): string => data.sealed.split('.')[1];

/** The instance's key-encryption keys, as kept in DATA/secrets.key. */
export class Keyring {
  readonly file: string;
  private data: KeyFile;

  private constructor(file: string, data: KeyFile) {
    this.file = file;
    this.data = data;
  }

  /** The key file of a data directory, or null when there is none. Throws one line when it is unreadable. */
  static load(dir: string): Keyring | null {
    const file = path.join(dir, KEY_FILE);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new OsError('corrupt', `cannot read ${file}: ${(e as Error).message}; restore it from a backup (nothing was changed)`);
    }
    let d: KeyFile;
    try {
      d = JSON.parse(text) as KeyFile;
      if (d.version !== 1 || typeof d.current !== 'string' || !d.keys || typeof d.keys[d.current] !== 'string') throw new Error('bad shape');
      for (const k of Object.values(d.keys)) if (Buffer.from(k, 'base64').length !== 32) throw new Error('a key is not 32 bytes');
    } catch {
      throw new OsError('corrupt', `${file} is not an osØ key file; restore it from a backup (nothing was changed)`);
    }
    return new Keyring(file, d);
  }

  /** A new key file with one fresh KEK (first start). */
  static create(dir: string): Keyring {
    const kid = randomBytes(4).toString('hex');
    const k = new Keyring(path.join(dir, KEY_FILE), { version: 1, current: kid, keys: { [kid]: randomBytes(32).toString('base64') } });
    k.save();
    return k;
  }

  get current(): string {
    return this.data.current;
  }

  get kids(): string[] {
    return Object.keys(this.data.keys);
  }

  has(kid: string): boolean {
    return Object.hasOwn(this.data.keys, kid);
  }

  key(kid: string): Buffer {
    const k = this.data.keys[kid];
    if (typeof k !== 'string' || !Object.hasOwn(this.data.keys, kid)) throw new OsError('corrupt', `no key ${kid} in ${this.file}`);
    return Buffer.from(k, 'base64');
  }

  /** A new current KEK; the old ones stay until retire() finds them unused. */
  rotate(): string {
    let kid: string;
    do kid = randomBytes(4).toString('hex');
    while (this.has(kid));
    this.data = { version: 1, current: kid, keys: { ...this.data.keys, [kid]: randomBytes(32).toString('base64') } };
    this.save();
    return kid;
  }

  /** Drops every KEK but the current one that no secret uses. */
  retire(inUse: Set<string>): string[] {
    const gone = this.kids.filter((k) => k !== this.current && !inUse.has(k));
    if (gone.length === 0) return [];
    const keys = { ...this.data.keys };
    for (const k of gone) delete keys[k];
    this.data = { ...this.data, keys };
    this.save();
    return gone;
  }

  private save(): void {
    const tmp = this.file + '.tmp';
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(this.data));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.chmodSync(tmp, 0o600);
    fs.renameSync(tmp, this.file);
    const dfd = fs.openSync(path.dirname(this.file), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  }
}

/** Seals values for the secret at (namespace, name) under the current KEK. */
export function seal(ring: Keyring, namespace: string, name: string, values: Record<string, string>): SealedData {
  const kid = ring.current;
  const salt = randomBytes(16);
  const dk = Buffer.from(hkdfSync('sha256', ring.key(kid), salt, INFO, 32));
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dk, iv);
  c.setAAD(aad(namespace, name));
  const ct = Buffer.concat([c.update(JSON.stringify(values), 'utf8'), c.final()]);
  return { keys: Object.keys(values).sort(), sealed: ['v1', kid, b64(salt), b64(iv), b64(ct), b64(c.getAuthTag())].join('.') };
}

/** Opens a stored secret; a one-line error (no value in it) when it does not open. */
export function unseal(ring: Keyring, r: Pick<Resource, 'namespace' | 'name' | 'data'>): Record<string, string> {
  const where = `secret ${r.namespace ? r.namespace + '/' : ''}${r.name}`;
  if (!isSealed(r.data)) throw new OsError('corrupt', `${where} is not sealed; write its values again with os0 secret set`);
  const [, kid, salt, iv, ct, tag] = r.data.sealed.split('.');
  if (!ring.has(kid)) throw new OsError('corrupt', `${where} is sealed under key ${kid}, which ${ring.file} does not hold; restore the key file from a backup`);
  try {
    const dk = Buffer.from(hkdfSync('sha256', ring.key(kid), Buffer.from(salt, 'base64url'), INFO, 32));
    const d = createDecipheriv('aes-256-gcm', dk, Buffer.from(iv, 'base64url'));
    d.setAAD(aad(r.namespace, r.name));
    d.setAuthTag(Buffer.from(tag, 'base64url'));
    const text = Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
    return JSON.parse(text) as Record<string, string>;
  } catch {
    throw new OsError('corrupt', `${where} does not open with key ${kid}: the key file is not the one it was sealed with, or the secret was moved or altered`);
  }
}

/** A secret as people see it without reveal: its keys, every value redacted. */
export function redact<R extends Resource>(r: R): R {
  if (r.type !== 'secret' || !isSealed(r.data)) return r;
  const data: Record<string, string> = {};
  for (const k of r.data.keys) data[k] = REDACTED;
  return { ...r, data };
}

/**
 * The check filter that seals: {KEY: VALUE} in, {keys, sealed} out, before any filter after it
 * (app filters) or the log can see a value. Only `system` may write an already sealed form
 * (key rotation). A value written as REDACTED keeps the stored value of that key.
 */
export class SecretSealer implements Filter {
  readonly name = 'secret';
  private readonly ring: () => Keyring;

  constructor(ring: () => Keyring) {
    this.ring = ring;
  }

  check(commands: Command[], ctx: FilterContext): void | Command[] {
    let out: Command[] | undefined;
    for (let i = 0; i < commands.length; i++) {
      const c = commands[i];
      if (c.resource.type !== 'secret' || c.op === 'delete') continue;
      const data = c.resource.data;
      if (ctx.actor === 'system' && isSealed(data)) continue;
      let ns = c.resource.namespace ?? '';
      let name = c.resource.name;
      const old0 = name === undefined && c.resource.id !== undefined ? ctx.view.getById(c.resource.id) : null;
      if (old0) {
        ns = old0.namespace;
        name = old0.name;
      }
      const where = `secret ${ns ? ns + '/' : ''}${name}`;
      const values = checkValues(data, where);
      if (Object.values(values).includes(REDACTED)) {
        const old = ctx.view.get(ns, 'secret', name);
        const kept = old ? unseal(this.ring(), old) : {};
        for (const [k, v] of Object.entries(values)) {
          if (v !== REDACTED) continue;
          if (!Object.hasOwn(kept, k)) throw new Rejection('secret', `${where}: ${k} is ${REDACTED} but has no stored value to keep; give its value`);
          values[k] = kept[k];
        }
      }
      out ??= commands.slice();
      out[i] = { ...c, resource: { ...c.resource, data: seal(this.ring(), ns, name, values) } };
    }
    return out;
  }
}

function checkValues(data: unknown, where: string): Record<string, string> {
  const usage = `a secret's data is its values, {KEY: "value", ...}; use os0 secret set`;
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new Rejection('secret', `${where}: ${usage}`);
  const entries = Object.entries(data as Record<string, unknown>);
  if (entries.length > SECRET_LIMITS.keys) throw new Rejection('secret', `${where} has ${entries.length} keys; at most ${SECRET_LIMITS.keys}`);
  const out: Record<string, string> = {};
  let total = 0;
  for (const [k, v] of entries) {
    if (k.length > SECRET_LIMITS.keyChars || !KEY_NAME.test(k)) throw new Rejection('secret', `${where}: key "${k.slice(0, 40)}" must be letters, digits, '_', '.', '-', starting with a letter or '_'`);
    if (typeof v !== 'string') throw new Rejection('secret', `${where}: the value of ${k} must be a string; ${usage}`);
    const n = Buffer.byteLength(v);
    if (n > SECRET_LIMITS.valueBytes) throw new Rejection('secret', `${where}: the value of ${k} is ${n} bytes; at most ${SECRET_LIMITS.valueBytes}`);
    total += n;
    out[k] = v;
  }
  if (total > SECRET_LIMITS.totalBytes) throw new Rejection('secret', `${where}: its values are ${total} bytes together; at most ${SECRET_LIMITS.totalBytes}`);
  return out;
}
