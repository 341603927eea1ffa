/**
 * Registry tokens: `os0r_<id>_<secret>`, 16 hex digits of id and 64 of secret. Only the
 * SHA-256 of the secret is stored; a token is checked by id, then by a constant-time compare.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { RegistryError } from './errors.ts';
import { sha256Hex, type Store, type TokenRecord } from './store.ts';

export interface Caller {
  actor: string;
  admin: boolean;
  /** The registry token's id, when the caller used one. */
  tokenId?: string;
  /** The embedding's token the caller used (os0 up: an osØ token id). */
  parent?: string;
}

const TOKEN = /^os0r_([0-9a-f]{16})_([0-9a-f]{64})$/;
const ACTOR = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
export const ADMIN_ACTOR = 'admin';

export function checkActor(actor: unknown): string {
  if (typeof actor !== 'string' || !ACTOR.test(actor)) {
    throw new RegistryError('invalid', `"actor" must be 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit (got ${JSON.stringify(actor)})`);
  }
  return actor;
}

export class Tokens {
  private readonly store: Store;
  constructor(store: Store) {
    this.store = store;
  }

  /** Adds a token (not saved: the caller saves); returns its record and the secret token, shown once. */
  create(actor: string, description: string, admin: boolean, now: Date, parent?: string): { record: TokenRecord; token: string } {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('hex');
    const record: TokenRecord = { id, actor, description, created: now.toISOString(), sha256: sha256Hex(secret), admin, ...(parent ? { parent } : {}) };
    this.store.data.tokens[id] = record;
    return { record, token: `os0r_${id}_${secret}` };
  }

  /** The caller a token stands for, or null when it is unknown, malformed or revoked. */
  authenticate(token: string): Caller | null {
    const m = TOKEN.exec(token);
    if (!m) return null;
    const rec = this.store.data.tokens[m[1]];
    if (!rec) return null;
    const ok = timingSafeEqual(Buffer.from(rec.sha256, 'hex'), Buffer.from(sha256Hex(m[2]), 'hex'));
    return ok ? { actor: rec.actor, admin: rec.admin, tokenId: rec.id, ...(rec.parent ? { parent: rec.parent } : {}) } : null;
  }

  list(caller: Caller): Omit<TokenRecord, 'sha256'>[] {
    return Object.values(this.store.data.tokens)
      .filter((t) => caller.admin || t.actor === caller.actor)
      .sort((a, b) => (a.created < b.created ? -1 : a.created > b.created ? 1 : a.id < b.id ? -1 : 1))
      .map(({ id, actor, description, created, admin }) => ({ id, actor, description, created, admin }));
  }

  get(id: string): TokenRecord | undefined {
    return Object.hasOwn(this.store.data.tokens, id) ? this.store.data.tokens[id] : undefined;
  }

  remove(id: string): void {
    delete this.store.data.tokens[id];
  }
}
