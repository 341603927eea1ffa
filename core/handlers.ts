/**
 * Handlers: code that reacts to changes matching a query, in log order, after apply. Each reads
 * the log through the core's LogReader at its own pace, from a durable cursor (core/log/cursors.ts,
 * file `handlers.json`), so a slow or failing handler delays only itself and one that restarts
 * resumes where it stopped.
 *
 * Reconcile semantics:
 * - an event that still fails after `attempts` tries is **parked**: kept in the handler's status
 *   (`parked`, shown by GET /v1/handlers and counted in /metrics) until retryParked() or
 *   dropParked(); the handler goes on with the next event. A handler with PARKED_MAX parked
 *   events stops until a person looks at them;
 * - a handler that falls behind the retained log **re-lists**: its `resync` gets a snapshot of
 *   everything its query matches now, and it goes on from the snapshot's index;
 * - with `resyncMs`, the same snapshot comes periodically, so a level-triggered reconciler
 *   converges after any event it missed or mishandled.
 *
 * Remote handlers (clients over HTTP) poll events after their cursor and acknowledge them; an
 * acknowledgement is durable before it returns (group-committed with the others), so a client
 * that crashes neither misses nor repeats an event it acknowledged. One that fell behind the
 * retained log is answered `relist` with the index to list at, and acknowledges that index.
 */
import * as path from 'node:path';
import type { Action, Change, Core } from './core.ts';
import { OsError } from './errors.ts';
import { describeIoError, type FileIO } from './fileio.ts';
import { Cursors } from './log/cursors.ts';
import { GONE } from './log/reader.ts';
import type { Resource } from './resource.ts';
import type { Query } from './tree/tree.ts';

export interface HandlerEvent {
  action: Action;
  index: number;
  old: Resource | null;
  new: Resource | null;
}

export type HandlerQuery = Pick<Query, 'type' | 'namespace' | 'tags'>;

/** Everything a handler's query matches at one index: after a re-list, or periodically. */
export interface HandlerSnapshot {
  reason: 'relist' | 'resync';
  index: number;
  resources: Resource[];
}

export interface HandlerSpec {
  name: string;
  query: HandlerQuery;
  handle(ev: HandlerEvent): void | Promise<void>;
  /**
   * Takes the whole matching state (a level-triggered reconciler compares it with what it made
   * and repairs the difference). Called when the handler fell behind the retained log, and
   * every `resyncMs` if set. Without it, a handler that falls behind is moved to the snapshot's
   * index, and the jump is counted in its status (`relists`) and in /metrics.
   */
  resync?(snap: HandlerSnapshot): void | Promise<void>;
  /** Calls resync() this often while the handler is caught up (no periodic resync by default). */
  resyncMs?: number;
  /** Where a handler new to this data directory starts: 'now' (default) or after an index. */
  from?: 'now' | number;
  /** Attempts per event before it is parked (5). */
  attempts?: number;
  /** A further condition on what this handler may see (e.g. its app's rights), checked per event and per snapshot resource. */
  visible?: (r: Resource) => boolean;
}

/** An event that kept failing, kept where a person sees it. */
export interface ParkedEvent {
  index: number;
  /** Position of the change in its record. */
  change: number;
  action: Action;
  type: string;
  namespace: string;
  name: string;
  id: string;
  attempts: number;
  error: string;
  time: string;
}

export interface HandlerStatus {
  name: string;
  remote: boolean;
  query: HandlerQuery;
  cursor: number;
  lag: number;
  delivered: number;
  failures: number;
  lastError: string | null;
  parked: ParkedEvent[];
  relists: number;
  resyncs: number;
  owner?: string;
}

/** What handlers.json keeps per handler. */
interface Saved {
  cursor: number;
  query: HandlerQuery;
  remote: boolean;
  owner?: string;
  parked?: ParkedEvent[];
  relists?: number;
}

interface State {
  name: string;
  saved: Saved;
  delivered: number;
  failures: number;
  resyncs: number;
  lastError: string | null;
  stop: (() => void) | null;
  /** Wakes a running loop (new parked-event instructions). */
  poke: (() => void) | null;
  retry: boolean;
}

/** Parked events kept per handler; at this many the handler stops until they are dealt with. */
export const PARKED_MAX = 100;
const RECORDS_PER_READ = 256;
const BACKOFF_MS_MAX = 5000;

export function matches(q: HandlerQuery, r: Resource): boolean {
  if (q.type !== undefined && r.type !== q.type) return false;
  const ns = q.namespace ?? '';
  if (ns !== '' && r.namespace !== ns && !(r.namespace.startsWith(ns) && r.namespace.charCodeAt(ns.length) === 47)) return false;
  if (q.tags) for (const k in q.tags) if (r.tags?.[k] !== q.tags[k]) return false;
  return true;
}

/**
 * Whether a change concerns a query: its resource before or after does. So a handler on
 * `tags: {app: web}` sees the update that takes the tag away, and every delete of what it saw.
 */
export function matchesChange(q: HandlerQuery, ch: Change): boolean {
  return (ch.new !== null && matches(q, ch.new)) || (ch.old !== null && matches(q, ch.old));
}

const sleep = (ms: number, stopped: Promise<void>): Promise<void> => {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([new Promise<void>((r) => (t = setTimeout(r, ms))), stopped]).finally(() => clearTimeout(t));
};
const backoff = (attempt: number): number => Math.min(BACKOFF_MS_MAX, 10 * 2 ** attempt);
const message = (e: unknown): string => (e as Error)?.message ?? String(e);

export class Handlers {
  private readonly core: Core;
  private readonly cursors: Cursors<Saved>;
  private readonly states = new Map<string, State>();

  private constructor(core: Core, cursors: Cursors<Saved>) {
    this.core = core;
    this.cursors = cursors;
    for (const name of cursors.names()) this.states.set(name, this.state(name, cursors.get(name)!));
  }

  /** Opens the handlers' cursors in `dir` (DATA/handlers.json). */
  static async open(core: Core, dir: string, io?: FileIO): Promise<Handlers> {
    return new Handlers(core, await Cursors.open<Saved>({ file: path.join(dir, 'handlers.json'), io }));
  }

  private state(name: string, saved: Saved): State {
    return { name, saved, delivered: 0, failures: 0, resyncs: 0, lastError: null, stop: null, poke: null, retry: false };
  }

  private save(): void {
    this.cursors.touch();
  }

  /** Starts an in-process handler; returns a function that stops it. */
  register(spec: HandlerSpec): () => void {
    let st = this.states.get(spec.name);
    if (st?.stop) throw new OsError('conflict', `handler ${spec.name} is already running`);
    if (st?.saved.remote) throw new OsError('conflict', `handler ${spec.name} is registered as a remote handler; an in-process one cannot take over its cursor`);
    if (!st) {
      const cursor = spec.from === undefined || spec.from === 'now' ? this.core.index : spec.from;
      st = this.state(spec.name, { cursor, query: spec.query, remote: false });
      this.cursors.set(spec.name, st.saved);
      this.states.set(spec.name, st);
    }
    st.saved.query = spec.query;
    let stopNow!: () => void;
    const stopped = new Promise<void>((r) => (stopNow = r));
    let running = true;
    st.stop = () => {
      running = false;
      stopNow();
    };
    void this.loop(st, spec, () => running, stopped).catch((e) => {
      st.lastError = `stopped: ${message(e)}`;
    });
    return () => {
      st!.stop?.();
      st!.stop = null;
      this.save();
    };
  }

  private async loop(st: State, spec: HandlerSpec, running: () => boolean, stopped: Promise<void>): Promise<void> {
    const history = this.core.history;
    const attempts = spec.attempts ?? 5;
    let lastResync = Date.now();
    while (running()) {
      if (st.retry) await this.retryParkedEvents(st, spec, running);
      if ((st.saved.parked?.length ?? 0) >= PARKED_MAX) {
        st.lastError = `${PARKED_MAX} events are parked: retry or drop them to let this handler go on`;
        await this.poked(st);
        continue;
      }
      const recs = await history.read(st.saved.cursor + 1, RECORDS_PER_READ);
      if (recs === GONE) {
        await this.relist(st, spec, 'relist', running, stopped);
        lastResync = Date.now();
        continue;
      }
      if (recs.length === 0) {
        if (spec.resyncMs && spec.resync) {
          const due = lastResync + spec.resyncMs - Date.now();
          if (due <= 0) {
            await this.relist(st, spec, 'resync', running, stopped);
            lastResync = Date.now();
            continue;
          }
          let t: NodeJS.Timeout | undefined;
          await Promise.race([history.waitAfter(st.saved.cursor), stopped, new Promise<void>((r) => (t = setTimeout(r, due))), this.poked(st)]);
          clearTimeout(t);
        } else await Promise.race([history.waitAfter(st.saved.cursor), stopped, this.poked(st)]);
        continue;
      }
      for (const c of recs) {
        for (let i = 0; i < c.changes.length; i++) {
          const ch = c.changes[i];
          if (!matchesChange(st.saved.query, ch) || (spec.visible && !spec.visible((ch.new ?? ch.old)!))) continue;
          const ev: HandlerEvent = { action: ch.action, index: c.index, old: ch.old, new: ch.new };
          const err = await this.deliver(spec, ev, attempts, running, stopped);
          if (!running()) return; // the event is delivered again after a restart
          if (err === null) st.delivered++;
          else this.park(st, c.index, i, ev, attempts, err);
        }
        st.saved.cursor = c.index;
        this.save();
        if ((st.saved.parked?.length ?? 0) >= PARKED_MAX) break;
      }
    }
  }

  /** A promise that a retryParked() or dropParked() call resolves. */
  private poked(st: State): Promise<void> {
    if (st.retry) return Promise.resolve();
    return new Promise<void>((r) => (st.poke = r));
  }

  /** Tries one event up to `attempts` times with backoff; the last error, or null once it worked. */
  private async deliver(spec: HandlerSpec, ev: HandlerEvent, attempts: number, running: () => boolean, stopped: Promise<void>): Promise<string | null> {
    for (let attempt = 1; ; attempt++) {
      try {
        await spec.handle(ev);
        return null;
      } catch (e) {
        if (attempt >= attempts || !running()) return message(e);
        await sleep(backoff(attempt), stopped);
      }
    }
  }

  private park(st: State, index: number, change: number, ev: HandlerEvent, attempts: number, error: string): void {
    const r = (ev.new ?? ev.old)!;
    st.failures++;
    st.lastError = `index ${index}: ${error}`;
    (st.saved.parked ??= []).push({ index, change, action: ev.action, type: r.type, namespace: r.namespace, name: r.name, id: r.id, attempts, error, time: new Date().toISOString() });
    this.save();
  }

  /** Delivers the parked events again (once each); those that fail again stay parked. */
  private async retryParkedEvents(st: State, spec: HandlerSpec, running: () => boolean): Promise<void> {
    st.retry = false;
    const parked = st.saved.parked ?? [];
    const keep: ParkedEvent[] = [];
    for (const p of parked) {
      if (!running()) {
        keep.push(p);
        continue;
      }
      const recs = await this.core.history.read(p.index, 1);
      const ch = recs !== GONE ? recs[0]?.changes[p.change] : undefined;
      if (!ch) {
        // The record is no longer retained: a resync (if the handler has one) covers it.
        keep.push({ ...p, error: `record ${p.index} is no longer retained; ${spec.resync ? 'a resync covers it' : 'drop it'}` });
        continue;
      }
      try {
        await spec.handle({ action: ch.action, index: p.index, old: ch.old, new: ch.new });
        st.delivered++;
      } catch (e) {
        keep.push({ ...p, attempts: p.attempts + 1, error: message(e), time: new Date().toISOString() });
      }
    }
    st.saved.parked = keep;
    this.save();
  }

  /** Hands the handler everything its query matches now, and moves its cursor to that index. */
  private async relist(st: State, spec: HandlerSpec, reason: 'relist' | 'resync', running: () => boolean, stopped: Promise<void>): Promise<void> {
    if (reason === 'relist') {
      st.saved.relists = (st.saved.relists ?? 0) + 1;
      st.lastError = `fell behind the retained log at ${st.saved.cursor} (it starts at ${this.core.history.firstIndex}); ${spec.resync ? 're-listed' : 'moved to the current index without a re-list (the handler has no resync)'}`;
    }
    if (!spec.resync) {
      st.saved.cursor = this.core.index;
      this.save();
      return;
    }
    for (let attempt = 1; running(); attempt++) {
      // Taken synchronously, so the resources are exactly those at `index`.
      const index = this.core.index;
      const resources = this.core.query(st.saved.query).filter((r) => matches(st.saved.query, r) && (!spec.visible || spec.visible(r)));
      try {
        await spec.resync({ reason, index, resources });
        st.resyncs++;
        if (index > st.saved.cursor) st.saved.cursor = index;
        this.save();
        return;
      } catch (e) {
        st.failures++;
        st.lastError = `${reason} at ${index}: ${message(e)}`;
        // A periodic resync that fails waits for the next period; a re-list must succeed to go on.
        if (reason === 'resync') return;
        await sleep(backoff(attempt), stopped);
      }
    }
  }

  /** Delivers a handler's parked events again; those that fail stay parked. */
  retryParked(name: string): void {
    const st = this.states.get(name);
    if (!st || st.saved.remote) throw new OsError('not_found', `no in-process handler ${name}`);
    st.retry = true;
    st.poke?.();
  }

  /** Forgets a handler's parked events (someone dealt with them); returns how many. */
  dropParked(name: string): number {
    const st = this.states.get(name);
    if (!st) throw new OsError('not_found', `no handler ${name}`);
    const n = st.saved.parked?.length ?? 0;
    st.saved.parked = [];
    this.save();
    st.poke?.();
    return n;
  }

  /** Registers (or updates the query of) a remote handler; returns its cursor. */
  async registerRemote(name: string, query: HandlerQuery, from?: number, owner?: string): Promise<number> {
    let st = this.states.get(name);
    if (st && !st.saved.remote) throw new OsError('conflict', `handler ${name} is an in-process handler`);
    if (st && owner !== undefined && st.saved.owner !== undefined && st.saved.owner !== owner) throw new OsError('conflict', `handler ${name} belongs to ${st.saved.owner}; pick another name`);
    const before = st ? st.saved.query : null;
    if (!st) {
      st = this.state(name, { cursor: from ?? this.core.index, query, remote: true, owner });
      this.cursors.set(name, st.saved);
      this.states.set(name, st);
    } else {
      st.saved.query = query;
      this.save();
    }
    try {
      await this.cursors.commit();
    } catch (e) {
      // Nothing half-done stays behind: a handler whose registration could not be saved is forgotten.
      if (before === null) {
        this.states.delete(name);
        this.cursors.delete(name);
      } else st.saved.query = before;
      throw new OsError('unavailable', describeIoError(e, `saving handler ${name}`));
    }
    return st.saved.cursor;
  }

  /**
   * Events for a remote handler after its cursor (waits up to waitMs for the first). `visible`
   * is a further per-event condition (e.g. what the caller may see). A handler behind the
   * retained log gets `relist`: list the resources, then acknowledge `relist.index`.
   */
  async poll(
    name: string,
    max: number,
    waitMs: number,
    visible?: (r: Resource) => boolean,
  ): Promise<{ cursor: number; events: HandlerEvent[]; last: number; relist?: { index: number } }> {
    const st = this.remote(name);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const from = st.saved.cursor + 1;
      const recs = await this.core.history.read(from, 1024);
      if (recs === GONE) {
        st.saved.relists = (st.saved.relists ?? 0) + 1;
        st.lastError = `fell behind the retained log at ${st.saved.cursor}: told to re-list`;
        this.save();
        return { cursor: st.saved.cursor, events: [], last: st.saved.cursor, relist: { index: this.core.index } };
      }
      const events: HandlerEvent[] = [];
      let last = st.saved.cursor;
      for (const c of recs) {
        for (const ch of c.changes) {
          if (!matchesChange(st.saved.query, ch) || (visible && !visible((ch.new ?? ch.old)!))) continue;
          events.push({ action: ch.action, index: c.index, old: ch.old, new: ch.new });
        }
        last = c.index;
        if (events.length >= max) break;
      }
      const left = deadline - Date.now();
      if (events.length > 0 || left <= 0) return { cursor: st.saved.cursor, events, last };
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.core.history.waitAfter(last), new Promise((r) => (t = setTimeout(r, left)))]);
      clearTimeout(t);
    }
  }

  /** Durably moves a remote handler's cursor forward to `index`. */
  async ack(name: string, index: number): Promise<number> {
    const st = this.remote(name);
    if (!Number.isSafeInteger(index) || index < 0) throw new OsError('invalid', 'ack needs an index (a non-negative integer)');
    if (index > this.core.index) throw new OsError('invalid', `cannot acknowledge ${index}: the log ends at ${this.core.index}`);
    if (index > st.saved.cursor) {
      st.saved.cursor = index;
      st.delivered++;
      this.save();
      await this.cursors.commit();
    }
    return st.saved.cursor;
  }

  /** Removes a handler and its cursor; the promise resolves once that is durable (a failure shows in status()). */
  remove(name: string): Promise<void> {
    const st = this.states.get(name);
    if (!st) throw new OsError('not_found', `no handler ${name}`);
    st.stop?.();
    st.poke?.();
    this.states.delete(name);
    this.cursors.delete(name);
    return this.cursors.commit().catch(() => {});
  }

  private remote(name: string): State {
    const st = this.states.get(name);
    if (!st || !st.saved.remote) throw new OsError('not_found', `no remote handler ${name}; register it first`);
    return st;
  }

  /** Who registered a remote handler (undefined for in-process ones). */
  ownerOf(name: string): string | undefined {
    return this.states.get(name)?.saved.owner;
  }

  status(): HandlerStatus[] {
    const last = this.core.index;
    return [...this.states.values()].map((s) => ({
      name: s.name,
      remote: s.saved.remote,
      query: s.saved.query,
      cursor: s.saved.cursor,
      lag: last - s.saved.cursor,
      delivered: s.delivered,
      failures: s.failures,
      lastError: s.lastError ?? this.cursors.lastError,
      parked: s.saved.parked ?? [],
      relists: s.saved.relists ?? 0,
      resyncs: s.resyncs,
      owner: s.saved.owner,
    }));
  }

  /** Stops every handler and saves the cursors. */
  async close(): Promise<void> {
    for (const s of this.states.values()) {
      s.stop?.();
      s.poke?.();
    }
    await this.cursors.close();
  }
}
