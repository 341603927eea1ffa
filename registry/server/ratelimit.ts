/**
 * Token buckets by key (an actor, a client address): `perWindow` requests per `windowMs`,
 * refilled continuously. Over the limit, the caller learns how many whole seconds to wait.
 * Buckets are bounded in number: when full, the ones that have refilled are dropped first.
 */
const MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  atMs: number;
}

export class RateLimiter {
  private readonly perWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(perWindow: number, windowMs: number, now: () => number) {
    this.perWindow = perWindow;
    this.windowMs = windowMs;
    this.now = now;
  }

  /** 0 when `key` may go ahead (and takes a token), else the seconds until it may. */
  take(key: string): number {
    if (this.perWindow <= 0) return 0;
    const t = this.now();
    const rate = this.perWindow / this.windowMs; // tokens per ms
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.prune(t, rate);
      b = { tokens: this.perWindow, atMs: t };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.perWindow, b.tokens + (t - b.atMs) * rate);
      b.atMs = t;
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000));
  }

  private prune(t: number, rate: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.atMs) * rate >= this.perWindow) this.buckets.delete(k);
    // Still full: everyone is busy; drop the oldest half rather than grow without bound.
    if (this.buckets.size >= MAX_BUCKETS) {
      let n = this.buckets.size / 2;
      for (const k of this.buckets.keys()) {
        if (n-- <= 0) break;
        this.buckets.delete(k);
      }
    }
  }
}
