/**
 * What the registry client remembers for this instance (rollback protection, each app's key
 * chain, the pinned registry key), kept in the resource `configuration system/store-client`. Acceptances made
 * while planning an install are held aside and written in the install's own batch, so an
 * install that fails leaves them unrecorded.
 */
import type { Core } from '../core/core.ts';
import type { Command } from '../core/resource.ts';
import type { ClientState } from '../registry/client/types.ts';
import semver from 'semver';

export const STATE_NAMESPACE = 'system';
export const STATE_NAME = 'store-client';

interface Persisted {
  pinned: Record<string, string>;
  accepted: Record<string, string>;
  chains: Record<string, string[]>;
}

export class StoreClientState implements ClientState {
  private readonly core: Core;
  private readonly pendingAccepted = new Map<string, string>();
  private readonly pendingPins = new Map<string, string>();
  private readonly pendingChains = new Map<string, string[]>();

  constructor(core: Core) {
    this.core = core;
  }

  private persisted(): Persisted {
    const d = this.core.get('configuration', STATE_NAME, STATE_NAMESPACE)?.data as Partial<Persisted> | undefined;
    return { pinned: { ...(d?.pinned ?? {}) }, accepted: { ...(d?.accepted ?? {}) }, chains: { ...(d?.chains ?? {}) } };
  }

  highestAccepted(app: string): string | null {
    const a = this.pendingAccepted.get(app);
    const b = this.persisted().accepted[app] ?? null;
    if (a && b) return semver.gt(a, b) ? a : b;
    return a ?? b;
  }

  accepted(app: string, version: string): void {
    const h = this.highestAccepted(app);
    if (!h || semver.gt(version, h)) this.pendingAccepted.set(app, version);
  }

  acceptedChain(app: string): string[] | null {
    return this.pendingChains.get(app) ?? this.persisted().chains[app] ?? null;
  }

  acceptChain(app: string, keyIds: string[]): void {
    this.pendingChains.set(app, [...keyIds]);
  }

  pinnedKey(url: string): string | null {
    return this.pendingPins.get(url) ?? this.persisted().pinned[url] ?? null;
  }

  pin(url: string, key: string): void {
    this.pendingPins.set(url, key);
  }

  /** The command that records what is pending, or null; call discard() or committed() after. */
  command(): Command | null {
    if (this.pendingAccepted.size === 0 && this.pendingPins.size === 0 && this.pendingChains.size === 0) return null;
    const p = this.persisted();
    for (const [k, v] of this.pendingPins) p.pinned[k] = v;
    for (const [k, v] of this.pendingAccepted) if (!p.accepted[k] || semver.gt(v, p.accepted[k])) p.accepted[k] = v;
    for (const [k, v] of this.pendingChains) p.chains[k] = v;
    return { op: 'apply', resource: { type: 'configuration', namespace: STATE_NAMESPACE, name: STATE_NAME, data: p } };
  }

  discard(): void {
    this.pendingAccepted.clear();
    this.pendingPins.clear();
    this.pendingChains.clear();
  }
}
