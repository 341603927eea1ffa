/**
 * The process device's interface: the commands it takes, the events it emits, what it shows.
 * See README.md beside this file; `local.ts` is the implementation, with its limits through a
 * `Limiter` (cgroup v1, cgroup v2 or rlimits).
 */
import type { Device, DeviceCommand, DeviceEvent } from '../device.ts';
import type { Enforcement, LimiterKind, Limits } from './limits.ts';
import type { LogReader, Stream } from './logs.ts';

export interface StartCommand extends DeviceCommand {
  readonly type: 'process.start';
  /** The task this process runs for: [A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters. */
  readonly task: string;
  /** The program and its arguments; the program is looked up on the env's PATH unless it holds a '/'. */
  readonly argv: readonly string[];
  /** The whole environment, besides PORT, OS0_TASK and OS0_AGENT, which the device adds. */
  readonly env?: Record<string, string>;
  /** Absolute; default '/'. */
  readonly cwd?: string;
  /** A port of the device's range; default: the next free one. Given to the program as PORT. */
  readonly port?: number;
  readonly limits?: Limits;
  /** Emit `ready` once PORT accepts TCP connections on 127.0.0.1 (within timeoutMs, default 30 s). */
  readonly ready?: { readonly port: true; readonly timeoutMs?: number };
}

export interface StopCommand extends DeviceCommand {
  readonly type: 'process.stop';
  readonly task: string;
  /** SIGTERM to the group, then SIGKILL after this long; default the device's graceMs. */
  readonly graceMs?: number;
}

export type ProcessCommand = StartCommand | StopCommand;

export interface StartedEvent extends DeviceEvent {
  readonly type: 'started';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
  /** True when the task already had this process: the command changed nothing. */
  readonly already: boolean;
}

export interface Exit {
  /** The exit code, or null when a signal ended it or the code could not be known. */
  readonly exitCode: number | null;
  /** The signal's name (SIGKILL…), or null. */
  readonly signal: string | null;
  /** The kernel killed a process of the task for memory (cgroups only). */
  readonly oomKilled: boolean;
}

export interface StoppedEvent extends DeviceEvent, Exit {
  readonly type: 'stopped';
  readonly task: string;
  /** Null when there was no process to stop (already: true). */
  readonly pid: number | null;
  readonly already: boolean;
}

export interface ExitedEvent extends DeviceEvent, Exit {
  readonly type: 'exited';
  readonly task: string;
  readonly pid: number;
  /** A stop command (or a cleanup) ended it. */
  readonly requested: boolean;
}

export interface ReadyEvent extends DeviceEvent {
  readonly type: 'ready';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
}

export interface LogEvent extends DeviceEvent {
  readonly type: 'log';
  readonly task: string;
  readonly stream: Stream;
  readonly line: string;
  /** Lines not sent as events since the last one (over the rate bound; they are in the files). */
  readonly dropped: number;
}

/** A process started by an earlier run of the agent, taken back after a restart. */
export interface AdoptedEvent extends DeviceEvent {
  readonly type: 'adopted';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
}

export type ProcessEvent = StartedEvent | StoppedEvent | ExitedEvent | ReadyEvent | LogEvent | AdoptedEvent;

export interface ProcessInfo {
  task: string;
  pid: number;
  port: number;
  state: 'running' | 'stopping';
  /** ms since the epoch. */
  startedAt: number;
  adopted: boolean;
  argv: string[];
  limits: Limits;
}

export interface ProcessSnapshot {
  limiter: LimiterKind;
  enforced: Enforcement;
  ports: [number, number];
  processesMax: number;
  processes: ProcessInfo[];
}

export interface ProcessDevice extends Device<ProcessCommand, ProcessEvent, ProcessSnapshot> {
  /** A task's log files, for `os0 logs` (tail and follow); also after its process has ended. */
  logs(task: string): LogReader;
}
