/**
 * The core: submit → filters → sequence → WAL (group commit) → apply to the tree → subscribers.
 *
 * Sequencing is synchronous: a command is checked against the tree *plus an overlay of accepted
 * commands that are not durable yet*, given the next log index, encoded and queued on the WAL.
 * Only when the WAL reports the index durable is it applied to the tree (so a reader never sees
 * what a crash could take back), its submitter acknowledged and its subscribers called, always
 * in log order.
 */
import * as path from 'node:path';
import { OsError } from './errors.ts';
import { BodyWriter, decodeBody, decodeRecord, deleteKeyJson, type Change, type Committed } from './log/record.ts';
import { LogReader } from './log/reader.ts';
import type { Filter, FilterContext, PlannedChange, StateView } from './filter.ts';
import { tightenModes, type FileIO } from './fileio.ts';
import { API_VERSION, checkSubmission, ID_PATTERN, keyOf, LIMITS, newId, type Command, type Resource } from './resource.ts';
import { Levels } from './sstable/levels.ts';
import type { Entry } from './sstable/sstable.ts';
import { Tree, type Query } from './tree/tree.ts';
import { encodeRecord, RECORD_BODY_BYTES_MAX } from './wal/codec.ts';
import { Wal, type TornTail } from './wal/wal.ts';

export interface CoreOptions {
  /** Data directory: `wal/` and `sst/` live in it. */
  dir: string;
  /** WAL segment size (64 MiB). */
  segmentBytes?: number;
  io?: FileIO;
  filters?: Filter[];
  /** Run flush and compaction in a worker thread (default true). */
  worker?: boolean;
  /** Flush sealed WAL segments into sstables automatically (default true). */
  autoFlush?: boolean;
  /** Compact once this many deltas have piled up (4). */
  deltasBeforeCompaction?: number;
  /** Records kept in memory for watches and handlers (2,048). */
  historyRecords?: number;
  /** Records kept on disk after they are in sstables, so readers can resume from them (500,000). */
  retainRecords?: number;
  /** Where the core reports what it repaired or failed to do in the background. */
  report?: (message: string) => void;
}

export type { Action, Change, Committed } from './log/record.ts';

export interface SubmitResult {
  index: number;
  /** The stored resources, in command order (for a delete: the resource deleted). */
  resources: Resource[];
  /**
   * Resources an `apply` left as they were because the document matched them already: they are
   * not in `resources`, no log record names them and no subscriber hears of them. When every
   * command of a submission is unchanged, nothing is written and `index` is the last index
   * that state depends on.
   */
  unchanged?: Resource[];
}

export interface SubmitOptions {
  actor?: string;
  /** The app store's own submissions (never set from a request): may change store resources and pick fresh ids. */
  via?: 'store';
}

interface Pending {
  index: number;
  time: string;
  actor: string;
  planned: PlannedChange[];
  keys: string[];
  resolve: (r: SubmitResult) => void;
  reject: (e: unknown) => void;
}

/** Whether an apply of `input` would store exactly what `old` holds (key order aside). */
function sameContent(old: Resource, input: Command['resource']): boolean {
  if (input.id !== undefined && input.id !== old.id) return false;
  return (
    deepEqual(old.data, input.data) &&
    deepEqual(old.tags, input.tags ?? {}) &&
    deepEqual(old.owner, input.owner) &&
    deepEqual(old.cost, input.cost)
  );
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const ob = b as Record<string, unknown>;
  if (ka.length !== Object.keys(ob).length) return false;
  const oa = a as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(ob, k) && deepEqual(oa[k], ob[k]));
}

let isoMs = 0;
let isoText = '';
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    isoText = new Date(ms).toISOString();
  }
  return isoText;
}

/** The largest record a cascade may make: half what the WAL could take, well above any batch. */
const CASCADE_RECORD_BYTES_MAX = RECORD_BODY_BYTES_MAX / 2;

const describe = (ns: string, type: string, name: string): string => `${type} ${ns ? ns + '/' : ''}${name}`;

export class Core {
  readonly dir: string;
  readonly tree = new Tree();
  /** The retained log window: what watches, handlers and `os0 log` read (memory or disk, the same records). */
  readonly history: LogReader<Committed>;
  /** What recovery cut from the WAL's tail, if anything. */
  torn: TornTail | null = null;
  private wal!: Wal;
  private levels!: Levels;
  private readonly filters: Filter[];
  private readonly checkFilters: Filter[];
  private readonly admitFilters: Filter[];
  private readonly report: (m: string) => void;
  private readonly autoFlush: boolean;
  private readonly deltasBeforeCompaction: number;
  private readonly retainRecords: number;
  private nextIndex = 1;
  private applied = 0;
  private readonly pending: Pending[] = [];
  /** Accepted changes not yet durable, by key and by id: the change itself is the entry. */
  private readonly overlay = new Map<string, PlannedChange>();
  private readonly overlayIds = new Map<string, PlannedChange>();
  /** owner id → ids of not-yet-durable resources that name it as owner. */
  private readonly pendingOwned = new Map<string, Set<string>>();
  private readonly subscribers = new Set<(c: Committed) => void>();
  private background: Promise<void> = Promise.resolve();
  private closed = false;
  readonly view: StateView;
  readonly counters = { accepted: 0, rejected: new Map<string, number>() };

  private constructor(opts: CoreOptions) {
    this.dir = opts.dir;
    this.filters = opts.filters ?? [];
    this.checkFilters = this.filters.filter((f) => f.check);
    this.admitFilters = this.filters.filter((f) => f.admit);
    this.report = opts.report ?? (() => {});
    this.autoFlush = opts.autoFlush ?? true;
    this.deltasBeforeCompaction = opts.deltasBeforeCompaction ?? 4;
    this.retainRecords = opts.retainRecords ?? 500_000;
    const historyRecords = opts.historyRecords ?? 2048;
    this.history = new LogReader<Committed>({
      source: () => this.wal,
      decode: decodeRecord,
      capacity: historyRecords,
      // A record may hold up to 1000 changes (a batch): bound those too.
      weight: (c) => c.changes.length,
      weightMax: historyRecords * 10,
      io: opts.io,
    });
    this.view = { get: (ns, type, name) => this.lookup(ns, type, name), getById: (id) => this.lookupId(id) };
  }

  /** Opens a data directory: newest sstables, then the WAL after them. */
  static async open(opts: CoreOptions): Promise<Core> {
    // Only its owner may read a data directory: 0700 directories, 0600 files, whatever the umask.
    tightenModes(opts.dir);
    const core = new Core(opts);
    core.levels = Levels.open({ dir: path.join(opts.dir, 'sst'), worker: opts.worker });
    core.levels.load((block) => core.loadBlock(block));
    const { wal, torn, lastIndex } = await Wal.open(
      {
        dir: path.join(opts.dir, 'wal'),
        segmentBytes: opts.segmentBytes,
        io: opts.io,
        onDurable: (i) => core.onDurable(i),
        onFailure: (e) => core.onFailure(e),
        onSealed: () => {
          if (core.autoFlush) core.schedule(() => core.flushSealed());
        },
      },
      core.levels.covered,
      (index, body) => core.replay(index, body),
    );
    core.wal = wal;
    core.torn = torn;
    if (torn) core.report(`WAL: cut a torn tail of ${torn.bytes} bytes at offset ${torn.offset} of ${torn.file} (${torn.reason})`);
    core.applied = Math.max(lastIndex, core.levels.covered);
    core.nextIndex = core.applied + 1;
    core.history.reset(core.applied);
    for (const f of core.filters) f.load?.(core.tree);
    if (lastIndex < core.levels.covered) {
      throw new OsError('corrupt', `WAL ends at ${lastIndex} but sstables cover ${core.levels.covered}: the WAL is missing records`);
    }
    return core;
  }

  /** Records accepted but not yet durable and applied. */
  get pendingCount(): number {
    return this.pending.length;
  }

  /** Log index of the last command applied (durable and visible). */
  get index(): number {
    return this.applied;
  }

  /** Submits one command or an atomic batch; resolves once durable and applied. */
  submit(submission: unknown, opts: SubmitOptions = {}): Promise<SubmitResult> {
    try {
      let commands = checkSubmission(submission);
      const actor = opts.actor ?? 'system';
      const via = opts.via;
      // Filters that answer synchronously (no app filter applies) keep the fast path.
      for (let i = 0; i < this.checkFilters.length; i++) {
        const out = this.checkFilters[i].check!(commands, { actor, view: this.view, via });
        if (out instanceof Promise) return out.then((o) => this.runChecks(o ?? commands, actor, i + 1, via));
        if (out) commands = out;
      }
      return this.sequence(commands, actor, via);
    } catch (e) {
      this.countRejection(e);
      return Promise.reject(e);
    }
  }

  private async runChecks(commands: Command[], actor: string, from: number, via: 'store' | undefined): Promise<SubmitResult> {
    const ctx: FilterContext = { actor, view: this.view, via };
    try {
      for (let i = from; i < this.checkFilters.length; i++) {
        const out = await this.checkFilters[i].check!(commands, ctx);
        if (out) commands = out;
      }
    } catch (e) {
      this.countRejection(e);
      throw e;
    }
    return this.sequence(commands, actor, via);
  }

  private countRejection(e: unknown): void {
    const key = e instanceof OsError ? (e.filter ?? e.code) : 'internal';
    this.counters.rejected.set(key, (this.counters.rejected.get(key) ?? 0) + 1);
  }

  private lookup(ns: string, type: string, name: string): Resource | null {
    if (this.overlay.size > 0) {
      const o = this.overlay.get(keyOf(ns, type, name));
      if (o) return o.next;
    }
    return this.tree.get(ns, type, name) ?? null;
  }

  private lookupId(id: string): Resource | null {
    if (this.overlayIds.size > 0) {
      const o = this.overlayIds.get(id);
      if (o) return o.next;
    }
    return this.tree.getById(id) ?? null;
  }

  /** Plans, checks and queues the commands at one index; synchronous up to the WAL append. */
  private sequence(commands: Command[], actor: string, via?: 'store'): Promise<SubmitResult> {
    if (this.closed) return Promise.reject(new OsError('closed', 'osØ is shutting down; retry against the restarted server'));
    const index = this.nextIndex;
    const time = isoNow();
    const planned: PlannedChange[] = [];
    const keys: string[] = [];
    // Several changes to one key in one record: later ones see earlier ones.
    let local = null as Map<string, Resource | null> | null;
    // Filters see the record's earlier changes too (a batch may create a namespace and its contents).
    let localIds = null as Map<string, Resource | null> | null;
    const view: StateView =
      commands.length > 1
        ? {
            get: (ns, type, name) => {
              const k = keyOf(ns, type, name);
              return local?.has(k) ? local.get(k)! : this.lookup(ns, type, name);
            },
            getById: (id) => (localIds?.has(id) ? localIds.get(id)! : this.lookupId(id)),
          }
        : this.view;
    const ctx: FilterContext = { actor, view, via };
    const admitted: PlannedChange[] = [];
    let text = '';
    const body = new BodyWriter(`"${time}"`, this.actorJson(actor));
    // What a cascade adds is not the submitter's to split: it counts against the record's limit only.
    let cascadeChars = 0;
    let unchanged: Resource[] | undefined;
    const emit = (change: PlannedChange, key: string): void => {
      for (const f of this.admitFilters) {
        f.admit!(change, ctx);
        if (f.release) admitted.push(change);
      }
      const { old, next } = change;
      let json: string | null = null;
      if (next) {
        json = JSON.stringify(next);
        if (json.length > LIMITS.resourceBytes / 4 && Buffer.byteLength(json) > LIMITS.resourceBytes) {
          throw new OsError('too_large', `${describe(next.namespace, next.type, next.name)} is ${Buffer.byteLength(json)} bytes; a resource may be at most ${LIMITS.resourceBytes} bytes (move bulk data elsewhere)`);
        }
      }
      // The record carries old as well as new, so every reader (memory or disk) gets the same change.
      const before = body.length;
      body.add(old ? this.jsonOf(old) : null, json, next ? '' : deleteKeyJson(old!, index));
      if (change.cascadeFrom !== undefined) cascadeChars += body.length - before;
      if (next) this.lastJson.set(next, json!);
      planned.push(change);
      keys.push(key);
      // Deletes are recorded too, so a cascade reaching one resource twice (shared or cyclic owners) deletes it once.
      if (commands.length > 1 || local || !next) {
        (local ??= new Map()).set(key, next);
        (localIds ??= new Map()).set((next ?? old)!.id, next);
      }
    };
    try {
      for (let i = 0; i < commands.length; i++) {
        const cmd = commands[i];
        const input = cmd.resource;
        let ns = input.namespace ?? '';
        let name = input.name;
        const type = input.type;
        let old: Resource | null;
        if (name === undefined) {
          old = input.id !== undefined ? view.getById(input.id) : null;
          if (!old || old.type !== type) throw new OsError('not_found', `no ${type} with id ${input.id}`);
          ns = old.namespace;
          name = old.name;
        }
        const key = keyOf(ns, type, name);
        old = local?.has(key) ? local.get(key)! : this.lookup(ns, type, name);
        if (cmd.op === 'create' && old) throw new OsError('conflict', `${describe(ns, type, name)} already exists (revision ${old.revision}); use apply or update to change it`);
        if ((cmd.op === 'update' || cmd.op === 'delete') && !old) throw new OsError('not_found', `${describe(ns, type, name)} does not exist`);
        if (cmd.expect !== undefined && (old?.revision ?? 0) !== cmd.expect) {
          throw new OsError('conflict', `${describe(ns, type, name)} is at revision ${old?.revision ?? 0}, not ${cmd.expect} as expected; read it again and retry`);
        }
        if (old && input.id !== undefined && input.id !== old.id) throw new OsError('conflict', `${describe(ns, type, name)} has id ${old.id}, not ${input.id}`);
        if (cmd.op === 'apply' && old && sameContent(old, input)) {
          (unchanged ??= []).push(old);
          continue;
        }
        if (cmd.op === 'delete') {
          emit({ command: cmd, old, next: null }, key);
          this.cascade(old!, cmd, emit, () => local);
          continue;
        }
        let id = old?.id ?? input.id;
        if (id === undefined) id = newId(Date.now());
        else if (!old) {
          // Ids are the server's: fresh, never reused. Only the store names the ids of a batch it
          // links by owner, and those come from newId() too.
          if (via !== 'store' || !ID_PATTERN.test(id)) throw new OsError('invalid', `${describe(ns, type, name)}: ids are assigned by the server; leave "id" out of a create`);
          if (view.getById(id)) throw new OsError('conflict', `id ${id} is taken by another resource`);
        }
        if (input.owner) {
          for (const o of input.owner) {
            if (!view.getById(o)) throw new OsError('not_found', `${describe(ns, type, name)} names owner ${o}, which does not exist`);
          }
        }
        const next: Resource = {
          apiVersion: API_VERSION,
          id,
          namespace: ns,
          type,
          name,
          created: old?.created ?? time,
          updated: time,
          revision: index,
          owner: input.owner,
          tags: input.tags ?? {},
          cost: input.cost,
          data: input.data,
        };
        emit({ command: cmd, old, next }, key);
      }
      text = body.finish();
      if (text.length - cascadeChars > LIMITS.batchBytes && Buffer.byteLength(text) - cascadeChars > LIMITS.batchBytes) {
        throw new OsError('too_large', `the record is ${Buffer.byteLength(text) - cascadeChars} bytes; at most ${LIMITS.batchBytes} fit in one atomic batch (split it)`);
      }
      if (text.length > CASCADE_RECORD_BYTES_MAX / 3 && Buffer.byteLength(text) > CASCADE_RECORD_BYTES_MAX) {
        throw new OsError('too_large', `deleting this removes ${planned.length} resources (what it owns, transitively), ${Buffer.byteLength(text)} bytes in one record; at most ${CASCADE_RECORD_BYTES_MAX} fit: delete some of what it owns first`);
      }
    } catch (e) {
      this.releaseAll(admitted);
      this.countRejection(e);
      return Promise.reject(e);
    }
    if (planned.length === 0) return this.settleUnchanged(unchanged ?? []);
    const record = encodeRecord(index, text);
    this.nextIndex++;
    for (let i = 0; i < planned.length; i++) {
      const ch = planned[i];
      const next = ch.next;
      this.overlay.set(keys[i], ch);
      this.overlayIds.set((next ?? ch.old)!.id, ch);
      if (next?.owner) for (const o of next.owner) {
        let ids = this.pendingOwned.get(o);
        if (!ids) this.pendingOwned.set(o, (ids = new Set()));
        ids.add(next.id);
      }
    }
    this.counters.accepted++;
    return new Promise<SubmitResult>((resolve, reject) => {
      const done = unchanged ? (r: SubmitResult) => resolve({ ...r, unchanged }) : resolve;
      this.pending.push({ index, time, actor, planned, keys, resolve: done, reject });
      this.wal.append(record, index);
    });
  }

  /**
   * A submission that changes nothing writes nothing. What it was compared with may still be in
   * the overlay (accepted, not yet durable): it answers once that is durable, or fails with it.
   */
  private settleUnchanged(unchanged: Resource[]): Promise<SubmitResult> {
    const last = this.pending.at(-1);
    if (!last) return Promise.resolve({ index: this.applied, resources: [], unchanged });
    return new Promise<SubmitResult>((resolve, reject) => {
      const { resolve: resolveLast, reject: rejectLast } = last;
      last.resolve = (r) => {
        resolveLast(r);
        resolve({ index: last.index, resources: [], unchanged });
      };
      last.reject = (e) => {
        rejectLast(e);
        reject(e);
      };
    });
  }

  /** Plans the deletes of everything `owner` owns, transitively, into the same record. */
  private cascade(owner: Resource, cmd: Command, emit: (c: PlannedChange, key: string) => void, local: () => Map<string, Resource | null> | null): void {
    const stack = [owner];
    while (stack.length > 0) {
      const o = stack.pop()!;
      const ids = new Set(this.tree.ownedBy(o.id) ?? []);
      for (const id of this.pendingOwned.get(o.id) ?? []) ids.add(id);
      for (const id of ids) {
        const child = this.lookupId(id);
        if (!child) continue;
        const key = keyOf(child.namespace, child.type, child.name);
        if (local()?.get(key) === null) continue; // already deleted in this record
        try {
          emit({ command: { op: 'delete', resource: { type: child.type, namespace: child.namespace, name: child.name } }, old: child, next: null, cascadeFrom: o.id }, key);
        } catch (e) {
          const err = e instanceof OsError ? e : new OsError('internal', String(e));
          throw new OsError(err.code, `cannot delete ${describe(owner.namespace, owner.type, owner.name)}: ${describe(child.namespace, child.type, child.name)}, which it owns, blocks it: ${err.message}`, err.filter);
        }
        stack.push(child);
      }
    }
  }

  private releaseAll(changes: PlannedChange[]): void {
    for (const ch of changes) {
      for (const f of this.admitFilters) {
        try {
          f.release?.(ch);
        } catch (e) {
          this.report(`filter ${f.name} failed to release: ${(e as Error).message}`);
        }
      }
    }
  }

  /**
   * The JSON written for a resource this process stored, so that logging it again as an update's
   * or a delete's `old` costs a lookup, not a second serialisation.
   */
  private readonly lastJson = new WeakMap<Resource, string>();
  private jsonOf(r: Resource): string {
    return this.lastJson.get(r) ?? JSON.stringify(r);
  }

  private lastActor = '';
  private lastActorJson = '""';
  private actorJson(actor: string): string {
    if (actor !== this.lastActor) {
      this.lastActor = actor;
      this.lastActorJson = JSON.stringify(actor);
    }
    return this.lastActorJson;
  }

  private onDurable(last: number): void {
    while (this.pending.length > 0 && this.pending[0].index <= last) this.apply(this.pending.shift()!);
    this.history.notify();
  }

  private apply(p: Pending): void {
    const changes: Change[] = [];
    const resources: Resource[] = [];
    for (let i = 0; i < p.planned.length; i++) {
      const { old, next } = p.planned[i];
      if (next) this.tree.put(next);
      else this.tree.delete(old!.namespace, old!.type, old!.name);
      const ch = p.planned[i];
      if (this.overlay.get(p.keys[i]) === ch) this.overlay.delete(p.keys[i]);
      const id = (next ?? old)!.id;
      if (this.overlayIds.get(id) === ch) this.overlayIds.delete(id);
      if (next?.owner && this.pendingOwned.size > 0) for (const o of next.owner) {
        const ids = this.pendingOwned.get(o);
        ids?.delete(id);
        if (ids?.size === 0) this.pendingOwned.delete(o);
      }
      changes.push({ action: !next ? 'delete' : old ? 'update' : 'create', old, new: next });
      resources.push((next ?? old)!);
    }
    this.applied = p.index;
    const c: Committed = { index: p.index, time: p.time, actor: p.actor, changes };
    this.history.push(p.index, c);
    if (this.subscribers.size > 0) {
      for (const s of this.subscribers) {
        try {
          s(c);
        } catch (e) {
          this.report(`subscriber failed at index ${p.index}: ${(e as Error).message}`);
        }
      }
    }
    p.resolve({ index: p.index, resources });
  }

  /** The WAL refused everything not yet durable: refuse it here too and forget the overlay. */
  private onFailure(err: OsError): void {
    const failed = this.pending.splice(0);
    this.overlay.clear();
    this.overlayIds.clear();
    this.pendingOwned.clear();
    for (const p of failed) this.releaseAll(p.planned);
    this.nextIndex = this.wal.durableIndex + 1;
    this.counters.accepted -= failed.length;
    for (const p of failed) {
      this.countRejection(err);
      p.reject(err);
    }
    this.report(err.message);
  }

  private loadBlock(block: Entry[]): void {
    for (const e of block) {
      if (e.$del) this.tree.delete(e.namespace, e.type, e.name);
      else this.tree.put(e as unknown as Resource);
    }
  }

  private replay(index: number, body: Buffer): void {
    for (const ch of decodeBody(body).c) {
      if (ch.o !== 'delete') this.tree.put(ch.r);
      else this.tree.delete(ch.r.namespace, ch.r.type, ch.r.name);
    }
    this.applied = index;
  }

  // ---- reads -------------------------------------------------------------------------------

  get(type: string, name: string, namespace = ''): Resource | undefined {
    return this.tree.get(namespace, type, name);
  }

  getById(id: string): Resource | undefined {
    return this.tree.getById(id);
  }

  query(q: Query): Resource[] {
    return this.tree.query(q);
  }

  /** Called with every record after it is applied, in log order. Returns an unsubscribe function. */
  subscribe(fn: (c: Committed) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  // ---- background ----------------------------------------------------------------------------

  private schedule(job: () => Promise<void>): Promise<void> {
    const run = this.background.then(job);
    this.background = run.catch((e: Error) => this.report(`background: ${e.message}`));
    return run;
  }

  private async flushSealed(): Promise<void> {
    const to = this.wal.sealedThrough;
    if (to <= this.levels.covered) return;
    await this.levels.flush(this.wal.segmentPaths(this.levels.covered, to), to);
    await this.wal.dropThrough(Math.min(to, this.applied - this.retainRecords));
    if (this.levels.deltaCount >= this.deltasBeforeCompaction) await this.levels.compact();
  }

  /** Seals the WAL, flushes it into an sstable and compacts: afterwards a restart reads one sstable. */
  async checkpoint(): Promise<void> {
    await this.wal.seal();
    await this.schedule(async () => {
      await this.flushSealed();
      await this.levels.compact();
    });
  }

  stats(): { index: number; resources: number; covered: number; sstables: string[]; fsyncs: number } {
    return { index: this.applied, resources: this.tree.size, covered: this.levels.covered, sstables: this.levels.files, fsyncs: this.wal.syncCount };
  }

  /** fdatasync latencies of recent group commits (ms). */
  fsyncSamples(): Float64Array {
    return this.wal.syncMs.subarray(0, Math.min(this.wal.syncCount, this.wal.syncMs.length));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.wal.drain();
    await this.background;
    await this.wal.close();
    await this.levels.close();
  }
}
