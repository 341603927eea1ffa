/**
 * busØ: the fleet's log (README.md beside this file). One interface, JetStream's semantics:
 *
 * - streams: one ordered command stream per node (`cmd.NODE`) and one event stream (`events`);
 *   a message gets the next sequence of its stream (from 1) and keeps it;
 * - publish is acknowledged once the message is stored (durable on the embedded bus; held by a
 *   quorum on JetStream); a message id seen within the duplicate window is not stored again;
 * - durable consumers with explicit acks: a delivered message that is not acked within its ack
 *   wait (or is nak'd) is delivered again; after `deliveriesMax` deliveries it is parked: never
 *   delivered again, listed and counted by `parked()` / `info()`;
 * - a new consumer starts at the first retained message, at new ones only, or at a sequence
 *   (replay); re-opening a durable consumer resumes where its acks left it;
 * - limits: a message larger than `messageBytesMax` is refused; a stream keeps at most
 *   `streamMessagesMax` messages, `streamBytesMax` bytes, and none older than `streamAgeMsMax`
 *   (the oldest go first).
 *
 * The kernel's executor publishes node-commands to `cmd.NODE`; a node agent consumes its own
 * stream and publishes events; the sensor processor consumes `events`.
 */
import { randomUUID } from 'node:crypto';
import { OsError } from '../errors.ts';

export const EVENTS = 'events';

export interface BusLimits {
  /** A message (its JSON encoding) larger than this is refused. */
  messageBytesMax: number;
  streamMessagesMax: number;
  streamBytesMax: number;
  streamAgeMsMax: number;
  /** A message id published again within this window is acknowledged as a duplicate and not stored. */
  duplicateWindowMs: number;
}

export const DEFAULT_LIMITS: BusLimits = {
  messageBytesMax: 1_000_000,
  streamMessagesMax: 100_000,
  streamBytesMax: 64 * 1024 * 1024,
  streamAgeMsMax: 7 * 24 * 3600_000,
  duplicateWindowMs: 2 * 60_000,
};

export interface PublishOptions {
  /** Message id for de-duplication (and for a consumer's idempotence); a random one when absent. */
  id?: string;
}

export interface Published {
  stream: string;
  seq: number;
  /** True when the id was seen within the window: `seq` is the original message's. */
  duplicate: boolean;
}

export interface Message {
  stream: string;
  seq: number;
  id: string;
  /** When the bus stored it, ms since the epoch. */
  time: number;
  data: unknown;
  /** 1 on the first delivery. */
  deliveries: number;
}

export interface ConsumerOptions {
  /** Where a new durable consumer starts: 'first' retained (default), 'new' only, or a sequence. Ignored when it exists. */
  start?: 'first' | 'new' | number;
  /** A delivered message not acked within this is delivered again (30 s). */
  ackWaitMs?: number;
  /** Deliveries before a message is parked (5). */
  deliveriesMax?: number;
  /** Most delivered and not yet acked at once (1,000). */
  ackPendingMax?: number;
}

export interface FetchOptions {
  /** Most messages returned (100, at most 1,000). */
  max?: number;
  /** How long to wait for the first message (0: return at once; at most 30 s). */
  waitMs?: number;
  /** Stops the wait (e.g. the HTTP client that asked went away), so nothing is delivered to no one. */
  signal?: AbortSignal;
}

export interface StreamInfo {
  stream: string;
  /** Sequence of the oldest retained message (last + 1 when empty). */
  first: number;
  last: number;
  messages: number;
  bytes: number;
}

export interface ConsumerInfo {
  stream: string;
  durable: string;
  /** Every message at or below this is acked or parked. */
  ackFloor: number;
  /** Delivered and not yet acked. */
  ackPending: number;
  /** Retained messages not yet delivered. */
  waiting: number;
  parked: number;
}

export interface Consumer {
  readonly stream: string;
  readonly durable: string;
  /** Up to `max` messages, in stream order for first deliveries; waits up to `waitMs` for one. */
  fetch(opts?: FetchOptions): Promise<Message[]>;
  /** Done with it: never delivered again. Durable when this resolves. Acking an unknown or old seq is a no-op. */
  ack(seq: number): Promise<void>;
  /** Deliver it again after `delayMs` (0), or park it when it has had its deliveries. */
  nak(seq: number, delayMs?: number): Promise<void>;
  info(): Promise<ConsumerInfo>;
  /** Parked messages, oldest first (at most `max`, 100). */
  parked(max?: number): Promise<Message[]>;
}

export interface Bus {
  publish(stream: string, data: unknown, opts?: PublishOptions): Promise<Published>;
  /** Opens a durable consumer, creating it the first time. */
  consumer(stream: string, durable: string, opts?: ConsumerOptions): Promise<Consumer>;
  info(stream: string): Promise<StreamInfo>;
  close(): Promise<void>;
}

const NODE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const DURABLE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ID_RE = /^[\x21-\x7e]{1,128}$/;

/** The command stream of a node. */
export function commandStream(node: string): string {
  if (!NODE_RE.test(node)) throw new OsError('invalid', `node name "${node}" cannot name a bus stream: use 1-64 letters, digits, "-" or "_"`);
  return `cmd.${node}`;
}

export function checkStream(stream: string): void {
  if (stream === EVENTS) return;
  if (stream.startsWith('cmd.') && NODE_RE.test(stream.slice(4))) return;
  throw new OsError('invalid', `no bus stream "${stream}": streams are "events" and "cmd.NODE" (NODE: 1-64 letters, digits, "-" or "_")`);
}

export function checkDurable(durable: string): void {
  if (!DURABLE_RE.test(durable)) throw new OsError('invalid', `consumer name "${durable}" is not valid: use 1-64 letters, digits, "-" or "_"`);
}

/** The id a message is stored with, checked or made up. */
export function messageId(opts: PublishOptions | undefined): string {
  const id = opts?.id;
  if (id === undefined) return randomUUID();
  if (typeof id !== 'string' || !ID_RE.test(id)) throw new OsError('invalid', 'a message id is 1-128 printable ASCII characters without spaces');
  return id;
}

/** The JSON encoding of a message's data, refused when it is too large. */
export function encodeData(stream: string, data: unknown, limits: BusLimits): Buffer {
  if (data === undefined) throw new OsError('invalid', `a message on ${stream} needs data (any JSON value)`);
  const buf = Buffer.from(JSON.stringify(data));
  if (buf.length > limits.messageBytesMax) {
    throw new OsError('too_large', `a message of ${buf.length} bytes is larger than the bus allows (${limits.messageBytesMax}); send a reference to the data instead`);
  }
  return buf;
}

export interface ResolvedConsumerOptions {
  start: 'first' | 'new' | number;
  ackWaitMs: number;
  deliveriesMax: number;
  ackPendingMax: number;
}

export function consumerOptions(o: ConsumerOptions | undefined): ResolvedConsumerOptions {
  const start = o?.start ?? 'first';
  if (start !== 'first' && start !== 'new' && !(Number.isSafeInteger(start) && start >= 1)) {
    throw new OsError('invalid', 'a consumer starts at "first", "new" or a sequence (an integer from 1)');
  }
  const int = (v: number | undefined, d: number, min: number, max: number, what: string): number => {
    if (v === undefined) return d;
    if (!Number.isSafeInteger(v) || v < min || v > max) throw new OsError('invalid', `${what} must be an integer from ${min} to ${max}`);
    return v;
  };
  return {
    start,
    ackWaitMs: int(o?.ackWaitMs, 30_000, 10, 3600_000, 'ackWaitMs'),
    deliveriesMax: int(o?.deliveriesMax, 5, 1, 1000, 'deliveriesMax'),
    ackPendingMax: int(o?.ackPendingMax, 1000, 1, 100_000, 'ackPendingMax'),
  };
}

export function fetchOptions(o: FetchOptions | undefined): { max: number; waitMs: number } {
  const max = Math.min(Math.max(1, Math.floor(o?.max ?? 100)), 1000);
  const waitMs = Math.min(Math.max(0, Math.floor(o?.waitMs ?? 0)), 30_000);
  return { max, waitMs };
}

export function resolveLimits(l: Partial<BusLimits> | undefined): BusLimits {
  const out = { ...DEFAULT_LIMITS, ...l };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isSafeInteger(v) || v < 1) throw new OsError('invalid', `bus limit ${k} must be a positive integer`);
  }
  return out;
}
