/**
 * The process device: programs run for tasks, in their own process group, within memory, CPU and
 * pids limits, with rotated logs, taken back by the next agent after a restart. See README.md.
 */
export type * from './process.ts';
export { LocalProcesses, PROCESS_DEFAULTS, type LocalProcessOptions } from './local.ts';
export { openLimiter } from './detect.ts';
export type { Enforcement, Limiter, LimiterKind, Limits, Placement } from './limits.ts';
export { LogReader, LOG_DEFAULTS, type LogLine, type LogOptions, type Stream } from './logs.ts';
