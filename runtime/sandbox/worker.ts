/**
 * A sandbox process: the child that pool.ts forks. It holds isolated-vm isolates, runs one
 * invocation at a time per isolate in a fresh context, and answers the parent over IPC
 * (protocol.ts). It counts each invocation's CPU and wall time from outside the isolate and
 * disposes an isolate that breaks a limit. It trusts nothing that comes out of an isolate.
 *
 * Per program (keyed by the parent: code hash + memory limit + app) it keeps a few idle isolates,
 * each with the program compiled once into a Script whose completion value is the prelude's
 * `start` function. After each invocation, while the process is idle, the isolate gets its next
 * context: a new one with the Script run in it (no program code runs yet). A warm invocation is
 * then one asynchronous apply of `start`. An isolate is recycled after `recycleAfter` invocations.
 */
import ivm from 'isolated-vm';
import { randomInt } from 'node:crypto';
import * as vm from 'node:vm';
import { prelude } from './prelude.ts';
import { HOST_CALLS } from './host-calls.ts';
import { formatBytes, oneLine } from './errors.ts';
import { HOST_ARGS_BYTES_MAX, PROGRAM_FILENAME, type DoneFailed, type DoneOk, type Limits, type ToChild, type ToParent } from './protocol.ts';

interface Config {
  recycleAfter: number;
  /** Idle isolates kept across all programs; the oldest beyond this are disposed. */
  idleMax: number;
  /** A fresh isolate of this memory limit is kept ready, so a cold program skips creating one. */
  spareMemoryMb: number;
}

const config: Config = { recycleAfter: 500, idleMax: 16, spareMemoryMb: 64, ...parseConfig(process.argv[2]) };

function parseConfig(arg: string | undefined): Partial<Config> {
  if (!arg) return {};
  const c = JSON.parse(arg) as Partial<Config>;
  return c && typeof c === 'object' ? c : {};
}

const WATCHDOG_MS = 5;
const PROGRAMS_MAX = 128;
const PROGRAM_BYTES_TOTAL_MAX = 128 * 2 ** 20;

// The host-call table crosses as a JSON literal on the first line (source maps count lines).
const PREFIX = `(${prelude.toString()})(${JSON.stringify(HOST_CALLS)}, function () {\n`;
const PREFIX_LINES = PREFIX.split('\n').length - 1;

interface ProgramEntry {
  source: string; // PREFIX + code + suffix
  bytes: number;
}

interface Iso {
  key: string;
  iso: ivm.Isolate;
  memoryMb: number;
  script: ivm.Script;
  uses: number;
  /** Made once per isolate; the prelude passes the invocation's token with every call. */
  sendCb: ivm.Callback;
  doneCb: ivm.Callback;
  /** A fresh context with the prelude evaluated, made while the process was idle so a warm
   * invocation does not wait for context creation. No program code has run in it. */
  next: Prepared | null;
  nextTimer: NodeJS.Immediate | null;
}

interface Prepared {
  context: ivm.Context;
  start: ivm.Reference;
}

interface Invocation {
  rid: number;
  /** A random number the prelude passes back with every call. */
  token: number;
  entry: Iso;
  limits: Limits;
  context: ivm.Context;
  t0: number;
  cpu0: bigint;
  cpuMs: number;
  /** isolated-vm operations issued and not yet settled: the isolate is busy while > 0. */
  ops: number;
  deliver: ivm.Reference | null;
  replies: [cid: number, ok: boolean, value: string][];
  logs: string[];
  logBytes: number;
  calls: number;
  /** The program's result, sent once the isolate is idle (ops === 0). */
  outcome: DoneOk | DoneFailed | null;
  ended: boolean;
}

const programs = new Map<string, ProgramEntry>(); // LRU: oldest first
let programBytes = 0;
const idle = new Map<string, Iso[]>();
const idleOrder: Iso[] = []; // oldest first
const spares: Iso['iso'][] = [];
const active = new Map<number, Invocation>();
const byToken = new Map<number, Invocation>();

function newToken(): number {
  let t: number;
  do t = randomInt(2 ** 47); while (byToken.has(t));
  return t;
}
let watchdog: NodeJS.Timeout | null = null;

/** Messages to the parent go out once per turn of the event loop, as one array when several. */
const outbox: ToParent[] = [];
function send(msg: ToParent): void {
  outbox.push(msg);
  if (outbox.length === 1) setImmediate(flush);
}
function flush(): void {
  const batch = outbox.splice(0);
  if (process.connected && batch.length > 0) process.send!(batch.length === 1 ? batch[0] : batch);
}

process.on('disconnect', () => process.exit(0));
process.on('message', (raw: unknown) => {
  if (Array.isArray(raw)) for (const m of raw) onMessage(m as ToChild);
  else onMessage(raw as ToChild);
});

function onMessage(m: ToChild): void {
  try {
    if (m.t === 'run') run(m);
    else if (m.t === 'reply') reply(m.rid, m.cid, m.ok, m.value);
    else if (m.t === 'abort') {
      const inv = active.get(m.rid);
      if (inv) fail(inv, m.code, m.message);
    }
  } catch (e) {
    // A bug here must not leave the parent waiting: answer, and keep serving.
    if (m.t === 'run') {
      const inv = active.get(m.rid);
      if (inv) fail(inv, 'crashed', `the sandbox failed: ${(e as Error)?.message ?? String(e)}`);
      else send(failed(m.rid, 'crashed', `the sandbox failed: ${(e as Error)?.message ?? String(e)}`));
    }
  }
}

function newIsolate(memoryMb: number): ivm.Isolate {
  return new ivm.Isolate({
    memoryLimit: memoryMb,
    // isolated-vm's advice: after this, nothing in the process can be trusted. The parent sees
    // the process die and restarts it.
    onCatastrophicError: (message: string) => {
      process.stderr.write(`sandbox: catastrophic isolate error: ${message}\n`);
      process.abort();
    },
  });
}

function replenishSpare(): void {
  if (spares.length === 0) setImmediate(() => spares.length === 0 && spares.push(newIsolate(config.spareMemoryMb)));
}

function program(pid: string, code: string | undefined, rid: number): ProgramEntry | null {
  let p = programs.get(pid);
  if (p) {
    programs.delete(pid);
    programs.set(pid, p);
    return p;
  }
  if (code === undefined) {
    send({ t: 'need', rid });
    return null;
  }
  // The program must be a script on its own, so that wrapping it in a function cannot change its
  // meaning (a crafted "program" could otherwise close the wrapper and run code while the Script
  // is evaluated synchronously). vm.Script only parses here; nothing runs.
  new vm.Script(code, { filename: PROGRAM_FILENAME });
  const source = `${PREFIX}${code}\n;return typeof __os0_program === 'undefined' ? undefined : __os0_program;\n})`;
  p = { source, bytes: source.length };
  programs.set(pid, p);
  programBytes += p.bytes;
  while (programs.size > PROGRAMS_MAX || programBytes > PROGRAM_BYTES_TOTAL_MAX) {
    const [oldId, old] = programs.entries().next().value!;
    programs.delete(oldId);
    programBytes -= old.bytes;
  }
  return p;
}

function acquire(key: string, p: ProgramEntry, memoryMb: number): Iso {
  const list = idle.get(key);
  const found = list?.pop();
  if (found) {
    idleOrder.splice(idleOrder.indexOf(found), 1);
    if (list!.length === 0) idle.delete(key);
    return found;
  }
  let iso: ivm.Isolate;
  if (memoryMb === config.spareMemoryMb && spares.length > 0) {
    iso = spares.pop()!;
    replenishSpare();
  } else iso = newIsolate(memoryMb);
  const script = iso.compileScriptSync(p.source, { filename: PROGRAM_FILENAME, lineOffset: -PREFIX_LINES });
  const e: Iso = { key, iso, memoryMb, script, uses: 0, sendCb: null!, doneCb: null!, next: null, nextTimer: null };
  // A call names its invocation by an unguessable token; one from an earlier invocation's
  // context (still queued), or naming an invocation in another isolate, is dropped.
  const mine = (token: unknown): Invocation | undefined => {
    const inv = typeof token === 'number' ? byToken.get(token) : undefined;
    return inv && inv.entry === e ? inv : undefined;
  };
  e.sendCb = new ivm.Callback(
    (token: unknown, id: unknown, method: unknown, payload: unknown) => {
      const inv = mine(token);
      if (inv) onSend(inv, id, method, payload);
    },
    { ignored: true },
  );
  e.doneCb = new ivm.Callback(
    (token: unknown, kind: unknown, a: unknown, b: unknown) => {
      const inv = mine(token);
      if (inv) onDone(inv, kind, a, b);
    },
    { ignored: true },
  );
  return e;
}

/** Makes the next invocation's context while the process is idle (after the result is sent). */
function prepareNext(e: Iso): void {
  e.nextTimer = setImmediate(() => {
    e.nextTimer = null;
    try {
      e.next = makeContext(e);
    } catch {
      e.next = null; // take() tries again, and reports
    }
  });
}

function makeContext(e: Iso): Prepared {
  const context = e.iso.createContextSync();
  // Evaluates the prelude and defines the program's loader: no program code runs here.
  return { context, start: e.script.runSync(context, { reference: true }) as ivm.Reference };
}

/** The prepared context if there is one, else a new one made now. */
function take(e: Iso): Prepared {
  if (e.nextTimer) clearImmediate(e.nextTimer);
  e.nextTimer = null;
  const ready = e.next;
  e.next = null;
  return ready ?? makeContext(e);
}

function release(e: Iso): void {
  e.uses++;
  if (e.iso.isDisposed) return;
  if (e.uses >= config.recycleAfter) return dispose(e);
  prepareNext(e);
  let list = idle.get(e.key);
  if (!list) idle.set(e.key, (list = []));
  list.push(e);
  idleOrder.push(e);
  while (idleOrder.length > config.idleMax) {
    const old = idleOrder.shift()!;
    const l = idle.get(old.key)!;
    l.splice(l.indexOf(old), 1);
    if (l.length === 0) idle.delete(old.key);
    dispose(old);
  }
}

function dispose(e: Iso): void {
  if (e.nextTimer) clearImmediate(e.nextTimer);
  e.nextTimer = null;
  e.next = null;
  if (!e.iso.isDisposed) e.iso.dispose();
}

function run(m: Extract<ToChild, { t: 'run' }>): void {
  let p: ProgramEntry | null;
  try {
    p = program(m.pid, m.code, m.rid);
  } catch (e) {
    return send(failed(m.rid, 'invalid', `the program is not a valid script: ${(e as Error)?.message ?? String(e)}`));
  }
  if (!p) return;
  let entry: Iso | null = null;
  let prepared: Prepared;
  try {
    entry = acquire(m.key, p, m.limits.memoryMb);
    prepared = take(entry);
  } catch (e) {
    if (entry) dispose(entry);
    return send(failed(m.rid, 'crashed', `the program's isolate could not start: ${(e as Error)?.message ?? String(e)}`));
  }
  begin(m, entry, prepared);
}

function begin(m: Extract<ToChild, { t: 'run' }>, entry: Iso, { context, start }: Prepared): void {
  const inv: Invocation = {
    rid: m.rid,
    token: newToken(),
    entry,
    limits: m.limits,
    context,
    t0: performance.now(),
    cpu0: entry.iso.cpuTime,
    cpuMs: 0,
    ops: 0,
    deliver: null,
    replies: [],
    logs: [],
    logBytes: 0,
    calls: 0,
    outcome: null,
    ended: false,
  };
  active.set(m.rid, inv);
  byToken.set(inv.token, inv);
  startWatchdog();
  const l = m.limits;
  inv.ops++;
  start
    .apply(undefined, [entry.sendCb, entry.doneCb, inv.token, m.input, l.logBytes, l.outputBytes, l.hostCalls], { result: { reference: true } })
    .then(
      (deliver: unknown) => {
        start.release();
        if (inv.ended) return;
        inv.deliver = deliver as ivm.Reference;
        for (const [cid, ok, value] of inv.replies.splice(0)) deliverReply(inv, cid, ok, value);
      },
      (e: unknown) => opFailed(inv, e),
    )
    .finally(() => settled(inv));
}

function onSend(inv: Invocation, id: unknown, method: unknown, payload: unknown): void {
  if (inv.ended || typeof id !== 'number' || typeof method !== 'string' || typeof payload !== 'string') return;
  if (method === 'log') {
    inv.logBytes += Buffer.byteLength(payload) + 1;
    if (inv.logBytes > inv.limits.logBytes) return logOver(inv);
    inv.logs.push(payload);
  } else if (method === 'over') {
    if (payload === 'log') logOver(inv);
    else callsOver(inv);
  } else {
    inv.calls++;
    if (inv.calls > inv.limits.hostCalls) return callsOver(inv);
    if (payload.length > HOST_ARGS_BYTES_MAX) return reply(inv.rid, id, false, `${method}: arguments are larger than ${formatBytes(HOST_ARGS_BYTES_MAX)}`);
    send({ t: 'call', rid: inv.rid, cid: id, method, args: payload });
  }
}

const logOver = (inv: Invocation): void => fail(inv, 'log', `log output is over its limit of ${formatBytes(inv.limits.logBytes)}`);
const callsOver = (inv: Invocation): void => fail(inv, 'calls', `made more than ${inv.limits.hostCalls} host calls; the limit is ${inv.limits.hostCalls}`);

function onDone(inv: Invocation, kind: unknown, a: unknown, b: unknown): void {
  if (inv.ended || inv.outcome) return;
  const l = inv.limits;
  if (kind === 0 && typeof a === 'string') {
    const bytes = Buffer.byteLength(a);
    if (bytes > l.outputBytes) inv.outcome = failed(inv.rid, 'output', `output is ${formatBytes(bytes)}; the limit is ${formatBytes(l.outputBytes)}`);
    else inv.outcome = { t: 'done', rid: inv.rid, ok: true, output: a, logs: inv.logs, cpuMs: 0, wallMs: 0 };
  } else if (kind === 1 && typeof a === 'string') {
    if (a === 'RangeError: Array buffer allocation failed') {
      inv.outcome = failed(inv.rid, 'memory', `memory limit of ${l.memoryMb} MB exceeded (an ArrayBuffer allocation failed)`);
    } else inv.outcome = { ...failed(inv.rid, 'threw', a), stack: typeof b === 'string' ? b : '' };
  } else if (kind === 2 && typeof a === 'string') {
    inv.outcome = failed(inv.rid, 'output', `output is not JSON: ${a}`);
  } else if (kind === 3 && typeof a === 'number') {
    inv.outcome = failed(inv.rid, 'output', `output is ${formatBytes(a)}; the limit is ${formatBytes(l.outputBytes)}`);
  } else {
    inv.outcome = failed(inv.rid, 'threw', 'the program ended without a result');
  }
  if (inv.ops === 0) complete(inv);
}

function reply(rid: number, cid: number, ok: boolean, value: string): void {
  const inv = active.get(rid);
  if (!inv || inv.ended) return;
  if (typeof cid !== 'number' || typeof ok !== 'boolean' || typeof value !== 'string') return;
  if (inv.deliver) deliverReply(inv, cid, ok, value);
  else inv.replies.push([cid, ok, value]);
}

function deliverReply(inv: Invocation, cid: number, ok: boolean, value: string): void {
  inv.ops++;
  // The program's continuations run in this call's microtask checkpoint: it is program time.
  inv
    .deliver!.apply(undefined, [cid, ok, value])
    .then(undefined, (e: unknown) => opFailed(inv, e))
    .finally(() => settled(inv));
}

function settled(inv: Invocation): void {
  inv.ops--;
  if (inv.ops === 0 && inv.outcome && !inv.ended) complete(inv);
}

function opFailed(inv: Invocation, e: unknown): void {
  if (inv.ended) return;
  const err = e as { message?: unknown; name?: unknown; stack?: unknown } | null;
  const msg = typeof err?.message === 'string' ? err.message : String(e);
  if (/memory limit/i.test(msg)) return fail(inv, 'memory', `memory limit of ${inv.limits.memoryMb} MB exceeded`);
  if (inv.entry.iso.isDisposed) return fail(inv, 'crashed', `the program's isolate was lost: ${msg}`);
  // Otherwise the program left a promise rejected with no handler at the end of a task, which
  // isolated-vm throws to whoever started the task. Like Node, that ends the invocation, unless
  // the program already produced its outcome (whose callback may still be on its way: wait a turn).
  const name = typeof err?.name === 'string' && err.name ? err.name : 'Error';
  const stack = typeof err?.stack === 'string' ? err.stack : '';
  setImmediate(() => {
    if (inv.ended || inv.outcome) return;
    inv.outcome = { ...failed(inv.rid, 'threw', `unhandled promise rejection: ${name}: ${msg}`), stack };
    if (inv.ops === 0) complete(inv);
  });
}

function measure(inv: Invocation): void {
  if (!inv.entry.iso.isDisposed) inv.cpuMs = Number(inv.entry.iso.cpuTime - inv.cpu0) / 1e6;
}

function complete(inv: Invocation): void {
  const out = inv.outcome!;
  measure(inv);
  finish(inv, { ...out, logs: inv.logs, cpuMs: inv.cpuMs, wallMs: performance.now() - inv.t0 }, !out.ok && out.code === 'memory');
}

/** Ends an invocation with a failure now; an isolate that is still busy is disposed. */
function fail(inv: Invocation, code: string, message: string): void {
  if (inv.ended) return;
  measure(inv);
  const mustDispose = inv.ops > 0 || code === 'memory';
  finish(inv, { ...failed(inv.rid, code, message), logs: inv.logs, cpuMs: inv.cpuMs, wallMs: performance.now() - inv.t0 }, mustDispose);
}

function finish(inv: Invocation, msg: DoneOk | DoneFailed, disposeIsolate: boolean): void {
  inv.ended = true;
  active.delete(inv.rid);
  byToken.delete(inv.token);
  if (active.size === 0) stopWatchdog();
  send(msg);
  if (disposeIsolate) dispose(inv.entry);
  else {
    inv.deliver?.release();
    inv.context.release();
  }
  release(inv.entry);
}

function failed(rid: number, code: string, message: string): DoneFailed {
  return { t: 'done', rid, ok: false, code, message: oneLine(message), logs: [], cpuMs: 0, wallMs: 0 };
}

function startWatchdog(): void {
  if (watchdog) return;
  watchdog = setInterval(check, WATCHDOG_MS);
}

function stopWatchdog(): void {
  if (watchdog) clearInterval(watchdog);
  watchdog = null;
}

/** CPU and wall time, counted from outside the isolate; and isolates isolated-vm disposed. */
function check(): void {
  const now = performance.now();
  for (const inv of active.values()) {
    const l = inv.limits;
    if (inv.entry.iso.isDisposed) {
      fail(inv, 'memory', `memory limit of ${l.memoryMb} MB exceeded`);
      continue;
    }
    measure(inv);
    if (inv.cpuMs > l.cpuMs) fail(inv, 'timeout', `timed out: used more than ${l.cpuMs} ms of CPU`);
    else if (now - inv.t0 > l.wallMs) fail(inv, 'timeout', `timed out: ran longer than ${l.wallMs} ms`);
  }
}

spares.push(newIsolate(config.spareMemoryMb));
send({ t: 'ready' });
