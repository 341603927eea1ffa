/**
 * The wire shapes on busØ between the kernel and node agents (data types only, no code).
 *
 * - A node-command is published on `cmd.NODE` as the message's data, with the bus message id set
 *   to the command's id (`bus.publish(commandStream(node), cmd, { id: cmd.id })`), so the bus
 *   de-duplicates a repeated publish and the agent's devices a repeated delivery.
 *   `type` is `<device>.<verb>`: process.start, process.stop, volume.ensure, volume.delete,
 *   proxy.configure, proxy.remove, dns.set, dns.remove.
 * - An event is published on `events` as one flat JSON object: the device's event with the
 *   agent's `node` beside it. Every command gets exactly one outcome event (`commandId` set): the
 *   device's success type, or `failed` (an unknown device or verb is answered by device `agent`).
 *   Later happenings (exited, ready, log, health, heartbeat…) carry no `commandId`.
 *
 * The runtime's devices (runtime/agent/devices/) take and emit exactly these types; they import
 * them from here so the kernel (executor, sensor, machines) and the agent cannot drift apart.
 */

// ---------------------------------------------------------------------------------------------
// The shapes every device shares.

/** A node-command: `type` is `<device>.<verb>`; `id` is 1-128 characters and names it for good. */
export interface DeviceCommand {
  readonly id: string;
  readonly type: string;
}

/** What a device reports. `at` is milliseconds since the epoch. */
export interface DeviceEvent {
  readonly device: string;
  readonly type: string;
  readonly at: number;
  /** Set on the one outcome of a command. */
  readonly commandId?: string;
}

export type FailureCode = 'invalid' | 'busy' | 'limit' | 'not-found' | 'conflict' | 'host' | 'closed';

/** A command's outcome when it did not happen. */
export interface FailedEvent extends DeviceEvent {
  readonly type: 'failed';
  readonly commandId: string;
  readonly code: FailureCode;
  /** One line: what was wrong and what to do. */
  readonly error: string;
}

// ---------------------------------------------------------------------------------------------
// process

export interface ProcessLimits {
  /** Memory the task's processes may use together, in bytes. */
  memoryBytes?: number;
  /** CPU time per wall second, in CPUs (0.5 = half a core). */
  cpus?: number;
  /** Processes and threads the task may have at once. */
  pids?: number;
}

export interface ProcessStartCommand extends DeviceCommand {
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
  readonly limits?: ProcessLimits;
  /** Emit `ready` once PORT accepts TCP connections on 127.0.0.1 (within timeoutMs, default 30 s). */
  readonly ready?: { readonly port: true; readonly timeoutMs?: number };
}

export interface ProcessStopCommand extends DeviceCommand {
  readonly type: 'process.stop';
  readonly task: string;
  /** SIGTERM to the group, then SIGKILL after this long; default the device's graceMs. */
  readonly graceMs?: number;
}

export type ProcessCommand = ProcessStartCommand | ProcessStopCommand;

export interface ProcessStartedEvent extends DeviceEvent {
  readonly type: 'started';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
  /** True when the task already had this process: the command changed nothing. */
  readonly already: boolean;
}

export interface ProcessExit {
  /** The exit code, or null when a signal ended it or the code could not be known. */
  readonly exitCode: number | null;
  /** The signal's name (SIGKILL…), or null. */
  readonly signal: string | null;
  /** The kernel killed a process of the task for memory (cgroups only). */
  readonly oomKilled: boolean;
}

export interface ProcessStoppedEvent extends DeviceEvent, ProcessExit {
  readonly type: 'stopped';
  readonly task: string;
  /** Null when there was no process to stop (already: true). */
  readonly pid: number | null;
  readonly already: boolean;
}

export interface ProcessExitedEvent extends DeviceEvent, ProcessExit {
  readonly type: 'exited';
  readonly task: string;
  readonly pid: number;
  /** A stop command (or a cleanup) ended it. */
  readonly requested: boolean;
}

export interface ProcessReadyEvent extends DeviceEvent {
  readonly type: 'ready';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
}

/** 'out' for stdout, 'err' for stderr. */
export type LogStream = 'out' | 'err';

export interface ProcessLogEvent extends DeviceEvent {
  readonly type: 'log';
  readonly task: string;
  readonly stream: LogStream;
  readonly line: string;
  /** Lines not sent as events since the last one (over the rate bound; they are in the files). */
  readonly dropped: number;
}

/** A process started by an earlier run of the agent, taken back after a restart. */
export interface ProcessAdoptedEvent extends DeviceEvent {
  readonly type: 'adopted';
  readonly task: string;
  readonly pid: number;
  readonly port: number;
}

export type ProcessEvent = ProcessStartedEvent | ProcessStoppedEvent | ProcessExitedEvent | ProcessReadyEvent | ProcessLogEvent | ProcessAdoptedEvent;

// ---------------------------------------------------------------------------------------------
// volume

export interface VolumeEnsureCommand extends DeviceCommand {
  readonly type: 'volume.ensure';
  /** [A-Za-z0-9][A-Za-z0-9._-]*, at most 100 characters. */
  readonly volume: string;
  readonly sizeBytes: number;
  /** Who owns the volume's top directory (default root), so a program running as that user can write. */
  readonly owner?: { readonly uid: number; readonly gid: number };
}

export interface VolumeDeleteCommand extends DeviceCommand {
  readonly type: 'volume.delete';
  readonly volume: string;
}

export type VolumeCommand = VolumeEnsureCommand | VolumeDeleteCommand;

export interface VolumeEnsuredEvent extends DeviceEvent {
  readonly type: 'ensured';
  readonly volume: string;
  /** Where a process finds it: give this path to the process (env or cwd). */
  readonly path: string;
  readonly sizeBytes: number;
  /** True when the host enforces the quota itself (the file system fills up). */
  readonly hard: boolean;
  readonly already: boolean;
}

export interface VolumeDeletedEvent extends DeviceEvent {
  readonly type: 'deleted';
  readonly volume: string;
  readonly already: boolean;
}

/** A measured volume went over its quota and now refuses writes (or came back under it). */
export interface VolumeQuotaEvent extends DeviceEvent {
  readonly type: 'over-quota' | 'under-quota';
  readonly volume: string;
  readonly usedBytes: number;
  readonly sizeBytes: number;
}

export type VolumeEvent = VolumeEnsuredEvent | VolumeDeletedEvent | VolumeQuotaEvent;

// ---------------------------------------------------------------------------------------------
// proxy

export type HealthCheck =
  | { type: 'tcp' }
  | { type: 'http'; /** Request path, e.g. /healthz. */ path: string; /** Host header; the backend's address by default. */ host?: string };

export interface HealthTiming {
  /** Time between the starts of two probes of one backend. */
  intervalMs: number;
  /** A probe that takes longer fails. */
  timeoutMs: number;
  /** Consecutive passes that make an unhealthy (or new) backend healthy. */
  healthyThreshold: number;
  /** Consecutive failures (probes or connections that could not be made) that make it unhealthy. */
  unhealthyThreshold: number;
}

export interface BackendSpec {
  /** Names the backend across reconfigurations; `host:port` by default. */
  id?: string;
  host: string;
  port: number;
}

/** What `proxy.configure` carries (everything but `listen.port` and `backends` has a default). */
export interface ProxyConfigInput {
  /** Names the load balancer in this device, e.g. `demo/web`. */
  proxyId: string;
  listen: { host?: string; port: number };
  backends: BackendSpec[];
  /**
   * TCP connect by default; or `{type: 'http', path: '/healthz'}` (a service's `{http: '/healthz'}`
   * and `{tcp: true}` are understood too); timing fields beside it.
   */
  health?: (HealthCheck | { type?: undefined }) & Partial<HealthTiming>;
  /** How long a removed backend's connections may go on before they are cut (30 s). */
  drainTimeoutMs?: number;
  /** Client connections held at once (10,000); more are closed at accept. */
  connectionsMax?: number;
  /** A backend that does not accept within this is a failure, and the next one is tried (3 s). */
  connectTimeoutMs?: number;
  /** A connection with no bytes either way for this long is closed (10 min). */
  idleTimeoutMs?: number;
}

export type ProxyCommand =
  | { readonly id: string; readonly type: 'proxy.configure'; readonly proxy: ProxyConfigInput }
  | { readonly id: string; readonly type: 'proxy.remove'; readonly proxyId: string };

/** `proxy.configure` done: listening, backends as given (`changed` false when it already was). */
export interface ProxyConfiguredEvent extends DeviceEvent {
  readonly type: 'configured';
  readonly proxyId: string;
  readonly listen: { host: string; port: number };
  readonly changed: boolean;
}

/** `proxy.remove` done: no longer listening; its connections drain (`drained` events follow). */
export interface ProxyRemovedEvent extends DeviceEvent {
  readonly type: 'removed';
  readonly proxyId: string;
  readonly existed: boolean;
}

/** A backend turned healthy or unhealthy (no command). */
export interface ProxyHealthEvent extends DeviceEvent {
  readonly type: 'health';
  readonly proxyId: string;
  readonly backendId: string;
  readonly health: 'unknown' | 'healthy' | 'unhealthy';
  readonly error?: string;
}

/** A removed backend has no connections left (`forced`: the drain timeout cut some). */
export interface ProxyDrainedEvent extends DeviceEvent {
  readonly type: 'drained';
  readonly proxyId: string;
  readonly backendId: string;
  readonly forced: boolean;
  readonly connectionsCut: number;
}

export type ProxyEvent = ProxyConfiguredEvent | ProxyRemovedEvent | ProxyHealthEvent | ProxyDrainedEvent;

// ---------------------------------------------------------------------------------------------
// dns

export type DnsRecordType = 'A' | 'AAAA' | 'CNAME' | 'SRV' | 'TXT';

export interface SrvValue {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

/**
 * A record as it is set. `value` by type: A an IPv4 address, AAAA an IPv6 address, CNAME a name,
 * SRV `{priority, weight, port, target}` or the string `"priority weight port target"`, TXT a
 * string or a list of strings (each cut into 255-byte pieces on the wire).
 */
export interface DnsRecordInput {
  id: string;
  name: string;
  type: DnsRecordType;
  value: string | string[] | SrvValue;
  ttl?: number;
}

export type DnsCommand =
  | { readonly id: string; readonly type: 'dns.set'; readonly record: DnsRecordInput }
  | { readonly id: string; readonly type: 'dns.remove'; readonly recordId: string };

/** `dns.set` done: the record is served (`changed` false when it already was, as given). */
export interface DnsSetEvent extends DeviceEvent {
  readonly type: 'set';
  readonly recordId: string;
  readonly name: string;
  readonly changed: boolean;
  readonly serial: number;
}

/** `dns.remove` done: the record is no longer served (`existed` false when it never was). */
export interface DnsRemovedEvent extends DeviceEvent {
  readonly type: 'removed';
  readonly recordId: string;
  readonly existed: boolean;
  readonly serial: number;
}

export type DnsEvent = DnsSetEvent | DnsRemovedEvent;

// ---------------------------------------------------------------------------------------------
// The agent itself (device `agent`): its machine, and commands no device took.

export interface MachineCapacity {
  /** CPUs the agent offers (may be fractional). */
  cpu: number;
  memoryMb: number;
}

export interface MachineUsage {
  /** CPUs busy: the host's one-minute load average. */
  cpu: number;
  /** Memory in use on the host (total minus available). */
  memoryMb: number;
  /** Processes the process device runs now. */
  processes: number;
}

/** Sent when an agent starts: what its machine offers. The machine resource follows from it. */
export interface RegisteredEvent extends DeviceEvent {
  readonly device: 'agent';
  readonly type: 'registered';
  readonly capacity: MachineCapacity;
  /** The port range processes are given PORT from, inclusive. */
  readonly ports: readonly [number, number];
  readonly labels: Readonly<Record<string, string>>;
  /** Heartbeats follow every this many ms; three missed ones mark the machine down. */
  readonly heartbeatMs: number;
  readonly hostname: string;
}

/** Sent every `heartbeatMs` while the agent runs. */
export interface HeartbeatEvent extends DeviceEvent {
  readonly device: 'agent';
  readonly type: 'heartbeat';
  readonly capacity: MachineCapacity;
  readonly usage: MachineUsage;
  readonly heartbeatMs: number;
}

/** Sent when an agent stops on purpose (its processes keep running, to be adopted by the next one). */
export interface LeavingEvent extends DeviceEvent {
  readonly device: 'agent';
  readonly type: 'leaving';
}

export type AgentEvent = RegisteredEvent | HeartbeatEvent | LeavingEvent;

// ---------------------------------------------------------------------------------------------
// On the bus.

/** The data of a message on `cmd.NODE`. */
export type NodeCommand = ProcessCommand | VolumeCommand | ProxyCommand | DnsCommand;

/** Every event a device or the agent sends. */
export type AnyDeviceEvent = ProcessEvent | VolumeEvent | ProxyEvent | DnsEvent | AgentEvent | FailedEvent;

/** The data of a message on `events`: the event, flat, with the node that sent it. */
export type NodeEvent<E extends DeviceEvent = AnyDeviceEvent> = E extends DeviceEvent ? E & { readonly node: string } : never;

/** The devices a node-command's type may name. */
export type DeviceName = 'process' | 'volume' | 'proxy' | 'dns';
