/**
 * The process device's interface: the commands it takes, the events it emits, what it shows.
 * See README.md beside this file; `local.ts` is the implementation, with its limits through a
 * `Limiter` (cgroup v1, cgroup v2 or rlimits).
 */
import type { ProcessCommand, ProcessEvent } from '../../../../core/bus/messages.ts';
import type { Device } from '../device.ts';
import type { Enforcement, LimiterKind, Limits } from './limits.ts';
import type { LogReader } from './logs.ts';

export type {
  ProcessStartCommand as StartCommand,
  ProcessStopCommand as StopCommand,
  ProcessCommand,
  ProcessStartedEvent as StartedEvent,
  ProcessExit as Exit,
  ProcessStoppedEvent as StoppedEvent,
  ProcessExitedEvent as ExitedEvent,
  ProcessReadyEvent as ReadyEvent,
  ProcessLogEvent as LogEvent,
  ProcessAdoptedEvent as AdoptedEvent,
  ProcessEvent,
} from '../../../../core/bus/messages.ts';

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
