// What the signed-in token may see, kept live: one paged list (every page at one log index), then
// the watch stream from that index. Changes are applied to the maps as they arrive (cheap);
// drawing waits for the next animation frame, once per frame however many changes came. The
// page's memory is bounded: at most MAX_RESOURCES resources and LOG_MAX log records are kept.

export const MAX_RESOURCES = 200_000;
export const LOG_MAX = 2000;

export const keyOf = (r) => `${r.namespace}\u0000${r.type}\u0000${r.name}`;

export class Live {
  constructor(api, onDraw) {
    this.api = api;
    this.onDraw = onDraw;
    this.byKey = new Map();
    this.byId = new Map();
    /** Direct (not rolled-up) counts per namespace and type, and cost per hour per namespace. */
    this.counts = new Map();
    this.cost = new Map();
    this.index = 0;
    this.log = [];
    this.logIndex = 0;
    this.logBusy = false;
    this.logAgain = false;
    this.frame = 0;
    this.state = 'loading';
    this.error = '';
    this.dropped = 0;
    this.abort = new AbortController();
    /** Changes seen since the last draw (what the views may re-sort). */
    this.changed = 0;
  }

  async start() {
    let index = 0;
    for await (const p of this.api.listPages({ limit: 2000 })) {
      for (const r of p.items) this.put(r);
      index = p.index;
    }
    this.index = index;
    await this.loadLog();
    this.state = 'live';
    this.draw();
    void this.follow(index);
  }

  stop() {
    this.abort.abort();
  }

  put(r) {
    const k = keyOf(r);
    const old = this.byKey.get(k);
    if (old) this.unput(old);
    else if (this.byKey.size >= MAX_RESOURCES) {
      this.dropped++;
      return;
    }
    this.byKey.set(k, r);
    this.byId.set(r.id, r);
    let c = this.counts.get(r.namespace);
    if (!c) this.counts.set(r.namespace, (c = new Map()));
    c.set(r.type, (c.get(r.type) ?? 0) + 1);
    if (r.cost) this.cost.set(r.namespace, (this.cost.get(r.namespace) ?? 0) + r.cost);
  }

  unput(r) {
    this.byKey.delete(keyOf(r));
    this.byId.delete(r.id);
    const c = this.counts.get(r.namespace);
    if (c) {
      const n = (c.get(r.type) ?? 1) - 1;
      if (n > 0) c.set(r.type, n);
      else c.delete(r.type);
      if (c.size === 0) this.counts.delete(r.namespace);
    }
    if (r.cost) this.cost.set(r.namespace, (this.cost.get(r.namespace) ?? 0) - r.cost);
  }

  apply(ev) {
    if (ev.type === 'change') {
      const old = this.byKey.get(keyOf(ev.resource));
      if (ev.action === 'delete') {
        if (old) this.unput(old);
      } else {
        // A namespace keeps the status its list gave (the stream carries the resource alone).
        const r = old?.status && ev.resource.type === 'namespace' ? { ...ev.resource, status: old.status } : ev.resource;
        this.put(r);
      }
      this.changed++;
    }
    if (ev.index > this.index) this.index = ev.index;
    this.draw();
    if (ev.type === 'change') this.followLog();
  }

  /** The watch stream: everything, or (for a token that may not watch everywhere) each namespace it sees. */
  async follow(index) {
    const signal = this.abort.signal;
    const one = async (q) => {
      const w = this.api.watch({ ...q, since: index }, { signal, reconnect: true });
      await w.open();
      return (async () => {
        for await (const ev of w) this.apply(ev);
      })();
    };
    try {
      let runs;
      try {
        runs = [await one({})];
      } catch (e) {
        if (e?.status !== 403) throw e;
        runs = [];
        for (const ns of this.roots().slice(0, 8)) runs.push(await one({ namespace: ns }));
      }
      await Promise.all(runs);
      if (!signal.aborted) throw new Error('the watch stream ended');
    } catch (e) {
      if (signal.aborted) return;
      // Fell behind the retained log: list again (every page at one new index) and watch from there.
      const now = Date.now();
      this.relists = (this.relists ?? []).filter((t) => now - t < 60_000);
      if (e?.status === 409 && this.relists.length < 3) {
        this.relists.push(now);
        this.abort.abort();
        this.abort = new AbortController();
        for (const m of [this.byKey, this.byId, this.counts, this.cost]) m.clear();
        this.state = 'loading';
        this.draw();
        return void this.start().catch((x) => {
          this.state = 'stopped';
          this.error = `${x?.message ?? x}; sign in again`;
          this.draw();
        });
      }
      this.state = 'stopped';
      this.error = `${e?.message ?? e}; sign in again to re-list`;
      this.draw();
    }
  }

  /** The top-most namespaces of what is visible. */
  roots() {
    const all = [...new Set([...this.byKey.values()].map((r) => r.namespace).filter((n) => n !== ''))].sort();
    const out = [];
    for (const ns of all) if (!out.some((p) => ns === p || ns.startsWith(`${p}/`))) out.push(ns);
    return out;
  }

  async loadLog() {
    const recs = await this.api.log({ limit: 500 });
    this.log = recs;
    this.logIndex = recs.length ? recs[recs.length - 1].index : this.index;
    if (this.logIndex < this.index) this.logIndex = this.index;
  }

  /** Fetches the log records after the last one held: one request at a time, again if more came. */
  followLog() {
    if (this.logBusy) {
      this.logAgain = true;
      return;
    }
    this.logBusy = true;
    void (async () => {
      try {
        do {
          this.logAgain = false;
          const recs = await this.api.log({ since: this.logIndex, limit: 1000 });
          if (recs.length) {
            this.log.push(...recs);
            if (this.log.length > LOG_MAX) this.log.splice(0, this.log.length - LOG_MAX);
            this.logIndex = recs[recs.length - 1].index;
            this.draw();
          }
          if (recs.length === 1000) this.logAgain = true;
        } while (this.logAgain && !this.abort.signal.aborted);
      } catch (e) {
        // Fell out of the retained log: start again from the newest records.
        if (e?.status === 409) await this.loadLog().catch(() => {});
      } finally {
        this.logBusy = false;
      }
    })();
  }

  draw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.onDraw();
      this.changed = 0;
    });
  }

  /** Resources of one type, as a list (the fleet and apps views). */
  ofType(type) {
    const out = [];
    for (const r of this.byKey.values()) if (r.type === type) out.push(r);
    return out;
  }
}
