/**
 * ClientState implementations: in memory (tests, one-shot use) and a JSON file (the CLI). Both
 * remember the highest version accepted per app, so a later, older one counts as a rollback.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import semver from 'semver';
import type { ClientState } from './types.ts';

interface StateData {
  pins: Record<string, string>;
  accepted: Record<string, string>;
  chains: Record<string, string[]>;
}

const higher = (a: string | undefined, b: string): string => (a && semver.valid(a) && semver.gte(a, b) ? a : b);

export class MemoryClientState implements ClientState {
  protected data: StateData = { pins: {}, accepted: {}, chains: {} };

  highestAccepted(app: string): string | null {
    return this.data.accepted[app] ?? null;
  }
  accepted(app: string, version: string): void {
    this.data.accepted[app] = higher(this.data.accepted[app], version);
    this.changed();
  }
  acceptedChain(app: string): string[] | null {
    return this.data.chains[app] ?? null;
  }
  acceptChain(app: string, keyIds: string[]): void {
    this.data.chains[app] = [...keyIds];
    this.changed();
  }
  pinnedKey(registryUrl: string): string | null {
    return this.data.pins[normalizeUrl(registryUrl)] ?? null;
  }
  pin(registryUrl: string, publicKeyBase64: string): void {
    this.data.pins[normalizeUrl(registryUrl)] = publicKeyBase64;
    this.changed();
  }
  protected changed(): void {}
}

/**
 * A JSON file `{"pins": {URL: key}, "accepted": {APP: version}, "chains": {APP: [keyId]}}`, read once when constructed and
 * rewritten atomically (temp file, fsync, rename) on every change.
 */
export class FileClientState extends MemoryClientState {
  readonly file: string;

  constructor(file: string) {
    super();
    this.file = path.resolve(file);
    let text: string | null = null;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${this.file}: cannot read the registry client state (${(e as Error).message})`);
    }
    if (text !== null) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`${this.file}: the registry client state is not JSON (fix or remove it; removing it forgets pinned registry keys)`);
      }
      const o = parsed as Partial<StateData> | null;
      const ok = (r: unknown): r is Record<string, string> => r !== null && typeof r === 'object' && !Array.isArray(r) && Object.values(r).every((v) => typeof v === 'string');
      if (!o || typeof o !== 'object' || !ok(o.pins ?? {}) || !ok(o.accepted ?? {})) {
        throw new Error(`${this.file}: the registry client state must be {"pins": {...}, "accepted": {...}} (fix or remove it)`);
      }
      const chains = (o as { chains?: unknown }).chains ?? {};
      const okChains = chains !== null && typeof chains === 'object' && !Array.isArray(chains) && Object.values(chains).every((v) => Array.isArray(v) && v.every((k) => typeof k === 'string'));
      if (!okChains) throw new Error(`${this.file}: the registry client state's "chains" must be {APP: [keyId, ...]} (fix or remove it)`);
      this.data = { pins: { ...(o.pins ?? {}) }, accepted: { ...(o.accepted ?? {}) }, chains: { ...(chains as Record<string, string[]>) } };
    }
  }

  protected override changed(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeSync(fd, JSON.stringify(this.data, null, 2) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
  }
}

/** Registry URLs are compared without trailing slashes. */
export function normalizeUrl(url: string): string {
  return url.replace(/\/+$/, '');
}
