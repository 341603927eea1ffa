/**
 * What crosses between the Sandbox (parent) and a sandbox process (worker.ts, the child), over
 * node's IPC channel. Only plain data crosses: programs as source text, inputs, outputs and host
 * call arguments as JSON strings. Nothing compiled (no V8 cached data, no snapshots) ever does.
 *
 *   parent → child  run     {rid, key, pid, code?, input, limits}   start an invocation
 *                   reply   {rid, cid, ok, value}                   a host call's answer (JSON or message)
 *                   abort   {rid, code, message}                    stop it (the parent ended it)
 *   child → parent  ready   {}                                      isolated-vm loaded
 *                   need    {rid}                                   resend `run` with the code
 *                   call    {rid, cid, method, args}                a host call (args: JSON array)
 *                   done    {rid, ok, output | code+message+stack, logs, cpuMs, wallMs}
 */

export interface Limits {
  /** The isolate's heap (isolated-vm memoryLimit; a guideline: hostile code reaches 2–3×). */
  memoryMb: number;
  /** Time the isolate spends running, counted from outside (isolate.cpuTime). */
  cpuMs: number;
  /** From start to result, host calls included. */
  wallMs: number;
  /** UTF-8 bytes of the result's JSON. */
  outputBytes: number;
  /** UTF-8 bytes of all ctx.log lines together. */
  logBytes: number;
  /** Host calls (ctx.resources.*, ctx.commands.*) per invocation. */
  hostCalls: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({
  memoryMb: 64,
  cpuMs: 1000,
  wallMs: 10_000,
  outputBytes: 2 ** 20,
  logBytes: 2 ** 20,
  hostCalls: 10_000,
});

/** The most a caller may raise each limit to; a bound on everything, the defaults included. */
export const MAX_LIMITS: Limits = Object.freeze({
  memoryMb: 1024,
  cpuMs: 60_000,
  wallMs: 300_000,
  outputBytes: 64 * 2 ** 20,
  logBytes: 64 * 2 ** 20,
  hostCalls: 1_000_000,
});

/** isolated-vm refuses less. */
export const MIN_MEMORY_MB = 8;

/** Host calls one invocation may have outstanding at once; more wait their turn. */
export const HOST_CONCURRENCY_MAX = 16;
/** JSON of one host call's arguments, and of one host call's answer. */
export const HOST_ARGS_BYTES_MAX = 2 ** 20;
export const HOST_RESULT_BYTES_MAX = 8 * 2 ** 20;
/** A program's bundled source. */
export const PROGRAM_BYTES_MAX = 16 * 2 ** 20;

/** The host calls a program can make, by the name that crosses the boundary: host-calls.ts defines them. */
export { HOST_METHODS, type HostMethod } from './host-calls.ts';

export type ToChild =
  | { t: 'run'; rid: number; key: string; pid: string; code?: string; input: string; limits: Limits }
  | { t: 'reply'; rid: number; cid: number; ok: boolean; value: string }
  | { t: 'abort'; rid: number; code: string; message: string };

export type DoneOk = { t: 'done'; rid: number; ok: true; output: string; logs: string[]; cpuMs: number; wallMs: number };
export type DoneFailed = {
  t: 'done';
  rid: number;
  ok: false;
  code: string;
  message: string;
  /** For code 'threw': the stack as the isolate printed it (`os0-program.js:line:col` frames). */
  stack?: string;
  logs: string[];
  cpuMs: number;
  wallMs: number;
};

export type ToParent =
  | { t: 'ready' }
  | { t: 'need'; rid: number }
  | { t: 'call'; rid: number; cid: number; method: string; args: string }
  | DoneOk
  | DoneFailed;

/** The file name stack frames of a program carry inside the isolate. */
export const PROGRAM_FILENAME = 'os0-program.js';
