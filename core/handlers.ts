/**
 * Handlers: code that reacts to changes matching a query, in log order, after apply. Each has a
 * cursor (the last index it finished) kept in `handlers.json`, so a handler that restarts resumes
 * where it stopped. Every handler reads the retained log window at its own pace: a slow or
 * failing one delays only itself; there is no queue to overflow. A failing event is retried with
 * backoff, then recorded and passed over.
 *
 * Remote handlers (clients over HTTP) fetch events after their cursor and acknowledge them;
 * an acknowledgement is durable (fsync) before it returns, so a client that crashes and comes
 * back neither misses nor repeats an event it acknowledged.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Action, Core } from './core.ts';
import { OsError } from './errors.ts';
import { describeIoError } from './fileio.ts';
import type { Resource } from './resource.ts';
import type { Query } from './tree/tree.ts';

export interface HandlerEvent {
  action: Action;
  index: number;
  old: Resource | null;
  new: Resource | null;
}

export type HandlerQuery = Pick<Query, 'type' | 'namespace' | 'tags'>;

export interface HandlerSpec {
  name: string;
  query: HandlerQuery;
  handle(ev: HandlerEvent): void | Promise<void>;
  /** Where a handler new to this data directory starts: 'now' (default) or after an index. */
  from?: 'now' | number;
  /** Attempts per event before it is recorded as failed and passed over (5). */
  attempts?: number;
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
  owner?: string;
}

interface State {
  name: string;
  remote: boolean;
  /** For a remote handler: the actor that registered it, the only one (besides admins) who may use it. */
  owner?: string;
  query: HandlerQuery;
  cursor: number;
  delivered: number;
  failures: number;
  lastError: string | null;
  stop: (() => void) | null;
}

export function matches(q: HandlerQuery, r: Resource): boolean {
  if (q.type !== undefined && r.type !== q.type) return false;
  const ns = q.namespace ?? '';
  if (ns !== '' && r.namespace !== ns && !(r.namespace.startsWith(ns) && r.namespace.charCodeAt(ns.length) === 47)) return false;
  if (q.tags) for (const k in q.tags) if (r.tags?.[k] !== q.tags[k]) return false;
  return true;
}

const sleep = (ms: number, stopped: Promise<void>): Promise<void> => Promise.race([new Promise<void>((r) => setTimeout(r, ms).unref()), stopped]);

export class Handlers {
  private readonly core: Core;
  private readonly file: string;
  private readonly states = new Map<string, State>();
  private saveTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(core: Core, dir: string) {
    this.core = core;
    this.file = path.join(dir, 'handlers.json');
    if (fs.existsSync(this.file)) {
      const saved = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, { cursor: number; query: HandlerQuery; remote: boolean; owner?: string }>;
      for (const [name, s] of Object.entries(saved)) {
        this.states.set(name, { name, remote: s.remote, owner: s.owner, query: s.query, cursor: s.cursor, delivered: 0, failures: 0, lastError: null, stop: null });
      }
    }
  }

  /** Starts an in-process handler; returns a function that stops it. */
  register(spec: HandlerSpec): () => void {
    let st = this.states.get(spec.name);
    if (st?.stop) throw new OsError('conflict', `handler ${spec.name} is already running`);
    if (st?.remote) throw new OsError('conflict', `handler ${spec.name} is registered as a remote handler; an in-process one cannot take over its cursor`);
    if (!st) {
      const cursor = spec.from === undefined || spec.from === 'now' ? this.core.index : spec.from;
      st = { name: spec.name, remote: false, query: spec.query, cursor, delivered: 0, failures: 0, lastError: null, stop: null };
      this.states.set(spec.name, st);
      this.save();
    }
    st.query = spec.query;
    let stopNow!: () => void;
    const stopped = new Promise<void>((r) => (stopNow = r));
    let running = true;
    st.stop = () => {
      running = false;
      stopNow();
    };
    void this.loop(st, spec, () => running, stopped);
    return () => {
      st!.stop?.();
      st!.stop = null;
      this.save();
    };
  }

  private async loop(st: State, spec: HandlerSpec, running: () => boolean, stopped: Promise<void>): Promise<void> {
    const history = this.core.history;
    const attempts = spec.attempts ?? 5;
    while (running()) {
      const recs = history.read(st.cursor + 1, 256);
      if (recs === 'gone') {
        st.lastError = `fell behind the retained log window at ${st.cursor}; resumed at ${history.lastIndex}`;
        st.failures++;
        st.cursor = history.lastIndex;
        this.save();
        continue;
      }
      if (recs.length === 0) {
        await Promise.race([history.waitAfter(st.cursor), stopped]);
        continue;
      }
      for (const c of recs) {
        for (const ch of c.changes) {
          const r = ch.new ?? ch.old!;
          if (!matches(st.query, r)) continue;
          const ev: HandlerEvent = { action: ch.action, index: c.index, old: ch.old, new: ch.new };
          for (let attempt = 1; ; attempt++) {
            try {
              await spec.handle(ev);
              st.delivered++;
              break;
            } catch (e) {
              st.lastError = `index ${c.index}: ${(e as Error)?.message ?? String(e)}`;
              if (attempt >= attempts || !running()) {
                st.failures++;
                break;
              }
              await sleep(Math.min(5000, 10 * 2 ** attempt), stopped);
            }
          }
          if (!running()) return;
        }
        st.cursor = c.index;
        this.save();
      }
    }
  }

  /** Registers (or updates the query of) a remote handler; returns its cursor. */
  registerRemote(name: string, query: HandlerQuery, from?: number, owner?: string): number {
    let st = this.states.get(name);
    if (st && !st.remote) throw new OsError('conflict', `handler ${name} is an in-process handler`);
    if (st && owner !== undefined && st.owner !== undefined && st.owner !== owner) throw new OsError('conflict', `handler ${name} belongs to ${st.owner}; pick another name`);
    const before = st ? st.query : null;
    if (!st) {
      st = { name, remote: true, owner, query, cursor: from ?? this.core.index, delivered: 0, failures: 0, lastError: null, stop: null };
      this.states.set(name, st);
    } else st.query = query;
    try {
      this.saveNow();
    } catch (e) {
      // Nothing half-done stays behind: not the handler, not the temporary file.
      if (before === null) this.states.delete(name);
      else st.query = before;
      try {
        fs.rmSync(this.file + '.tmp', { force: true });
      } catch {} // not ours to remove (not a file)
      throw new OsError('unavailable', describeIoError(e, `saving handler ${name}`));
    }
    return st.cursor;
  }

  /** Events for a remote handler after its cursor (waits up to waitMs for the first). */
  async poll(name: string, max: number, waitMs: number): Promise<{ cursor: number; events: HandlerEvent[]; last: number }> {
    const st = this.remote(name);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const from = st.cursor + 1;
      const recs = this.core.history.read(from, 1024);
      if (recs === 'gone') throw new OsError('conflict', `handler ${name} is behind the retained log window (cursor ${st.cursor}); re-list and register it again`);
      const events: HandlerEvent[] = [];
      let last = st.cursor;
      for (const c of recs) {
        for (const ch of c.changes) {
          if (matches(st.query, ch.new ?? ch.old!)) events.push({ action: ch.action, index: c.index, old: ch.old, new: ch.new });
        }
        last = c.index;
        if (events.length >= max) break;
      }
      const left = deadline - Date.now();
      if (events.length > 0 || left <= 0) return { cursor: st.cursor, events, last };
      await Promise.race([this.core.history.waitAfter(last), new Promise((r) => setTimeout(r, left).unref())]);
    }
  }

  /** Durably moves a remote handler's cursor forward to `index`. */
  async ack(name: string, index: number): Promise<number> {
    const st = this.remote(name);
    if (!Number.isSafeInteger(index) || index < 0) throw new OsError('invalid', 'ack needs an index (a non-negative integer)');
    if (index > this.core.index) throw new OsError('invalid', `cannot acknowledge ${index}: the log ends at ${this.core.index}`);
    if (index > st.cursor) {
      st.cursor = index;
      st.delivered++;
      this.saveNow();
    }
    return st.cursor;
  }

  remove(name: string): void {
    const st = this.states.get(name);
    if (!st) throw new OsError('not_found', `no handler ${name}`);
    st.stop?.();
    this.states.delete(name);
    this.saveNow();
  }

  private remote(name: string): State {
    const st = this.states.get(name);
    if (!st || !st.remote) throw new OsError('not_found', `no remote handler ${name}; register it first`);
    return st;
  }

  /** Who registered a remote handler (undefined for in-process ones). */
  ownerOf(name: string): string | undefined {
    return this.states.get(name)?.owner;
  }

  status(): HandlerStatus[] {
    const last = this.core.index;
    return [...this.states.values()].map((s) => ({
      name: s.name,
      remote: s.remote,
      query: s.query,
      cursor: s.cursor,
      lag: last - s.cursor,
      delivered: s.delivered,
      failures: s.failures,
      lastError: s.lastError,
      owner: s.owner,
    }));
  }

  /** In-process cursors are saved at most every 50 ms (after a crash, at most that much repeats). */
  private save(): void {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      this.saveNow();
    }, 50);
    this.saveTimer.unref();
  }

  private saveNow(): void {
    const out: Record<string, { cursor: number; query: HandlerQuery; remote: boolean; owner?: string }> = {};
    for (const s of this.states.values()) out[s.name] = { cursor: s.cursor, query: s.query, remote: s.remote, owner: s.owner };
    const tmp = this.file + '.tmp';
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(out));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    const dfd = fs.openSync(path.dirname(this.file), 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
  }

  close(): void {
    for (const s of this.states.values()) s.stop?.();
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    this.saveNow();
    this.closed = true;
  }
}
