/**
 * What the registry keeps on disk, in its data folder:
 *
 *   registry.json                  lowdb: every app (owner, key chain, versions) and token
 *   blobs/sha256/<2 hex>/<64 hex>  each .tgz, named by the SHA-256 of its bytes
 *
 * A blob is written to a temporary file, fsynced, renamed into place and its folder fsynced
 * before the metadata that names it. registry.json is replaced the same way (lowdb with an
 * fsyncing adapter). lowdb writes the whole file each time, so concurrent saves are coalesced:
 * every change made while a write runs is carried by the one next write.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Low, type Adapter } from 'lowdb';
import type { KeyEntry, VersionEntry } from '../client/types.ts';

export interface AppRecord {
  name: string;
  /** The actor that first published the name. */
  owner: string;
  created: string;
  /** The key chain (PROTOCOL.md "The key chain"); the last entry is the current key. */
  keys: KeyEntry[];
  versions: Record<string, VersionEntry>;
}

export interface TokenRecord {
  id: string;
  actor: string;
  description: string;
  created: string;
  /** Hex SHA-256 of the token's secret part; the secret itself is never stored. */
  sha256: string;
  admin: boolean;
  /** The embedding's token (an osØ token id) this one was made with: it dies with that token. */
  parent?: string;
}

export interface RegistryData {
  format: 'os0-registry-v1';
  apps: Record<string, AppRecord>;
  tokens: Record<string, TokenRecord>;
}

const empty = (): RegistryData => ({ format: 'os0-registry-v1', apps: {}, tokens: {} });

function fsyncDir(dir: string): Promise<void> {
  return fs.promises.open(dir, 'r').then(async (h) => {
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  });
}

/** Writes `bytes` to `file` durably: a temporary file beside it, fsync, rename, fsync the folder. */
async function writeDurably(file: string, bytes: Buffer | string): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const h = await fs.promises.open(tmp, 'w', 0o644);
  try {
    await h.writeFile(bytes);
    await h.sync();
  } finally {
    await h.close();
  }
  try {
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(path.dirname(file));
}

/** lowdb's adapter for registry.json, durable (see writeDurably). */
class DurableJsonFile implements Adapter<RegistryData> {
  private readonly file: string;
  constructor(file: string) {
    this.file = file;
  }
  async read(): Promise<RegistryData | null> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    try {
      return JSON.parse(text) as RegistryData;
    } catch (e) {
      throw new Error(`${this.file} is not JSON (${(e as Error).message}); restore it from a backup`);
    }
  }
  write(data: RegistryData): Promise<void> {
    return writeDurably(this.file, JSON.stringify(data));
  }
}

export const sha256Hex = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

export class Store {
  readonly dir: string;
  private readonly db: Low<RegistryData>;
  private writing: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** lowdb writes done, for tests and the bench (coalescing shows as fewer writes than saves). */
  writes = 0;

  private constructor(dir: string, db: Low<RegistryData>) {
    this.dir = dir;
    this.db = db;
  }

  static async open(dir: string): Promise<Store> {
    fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    const db = new Low<RegistryData>(new DurableJsonFile(path.join(dir, 'registry.json')), empty());
    await db.read();
    if (db.data.format !== 'os0-registry-v1') throw new Error(`${path.join(dir, 'registry.json')}: unknown format ${JSON.stringify(db.data.format)}`);
    db.data.apps ??= {};
    db.data.tokens ??= {};
    return new Store(dir, db);
  }

  get data(): RegistryData {
    return this.db.data;
  }

  /**
   * Persists everything changed so far. Resolves once a write that began after this call has
   * finished: concurrent callers share writes, so N saves during one write cost one more.
   */
  save(): Promise<void> {
    if (this.queued) return this.queued;
    const start = (): Promise<void> => {
      const w = this.db.write().then(() => {
        this.writes++;
      });
      this.writing = w;
      const clear = (): void => {
        if (this.writing === w) this.writing = null;
      };
      w.then(clear, clear);
      return w;
    };
    if (!this.writing) return start();
    const q = this.writing.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.queued = null;
      return start();
    });
    this.queued = q;
    return q;
  }

  /** Resolves when no write is running or queued. */
  async idle(): Promise<void> {
    while (this.queued || this.writing) await (this.queued ?? this.writing)!.catch(() => {});
  }

  blobPath(hex: string): string {
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not a blob name: ${hex}`);
    return path.join(this.dir, 'blobs', 'sha256', hex.slice(0, 2), hex);
  }

  /** Stores a .tgz under the SHA-256 of its bytes; returns that hex. */
  async putBlob(bytes: Buffer): Promise<string> {
    const hex = sha256Hex(bytes);
    const file = this.blobPath(hex);
    try {
      if ((await fs.promises.stat(file)).size === bytes.length) return hex; // the same bytes, already durable
    } catch {}
    const created = await fs.promises.mkdir(path.dirname(file), { recursive: true });
    if (created !== undefined) await fsyncDir(path.dirname(path.dirname(file)));
    await writeDurably(file, bytes);
    return hex;
  }

  readBlob(hex: string): Promise<Buffer> {
    return fs.promises.readFile(this.blobPath(hex));
  }
}
