/**
 * The data of the fleet's resources as the kernel reads and writes them (README.md beside this
 * file describes each). Readers are tolerant: a field that is missing or malformed reads as its
 * default, so one bad document cannot stop a zero-proc.
 */
import type { Resource } from '../resource.ts';
import type { MachineView } from './placement.ts';

export type EnvValue = string | { secret: string; key: string };

export interface ServiceSpec {
  replicas: number;
  command: string[];
  cwd?: string;
  env: Record<string, EnvValue>;
  resources: { cpu: number; memoryMb: number };
  health: { tcp: true } | { http: string } | null;
  dependsOn: { service: string; state: 'running' | 'healthy' }[];
  loadBalancer: { port: number } | null;
  /** Machine labels every replica needs. */
  constraints: Record<string, string>;
  restart: { backoffMs: number; backoffMaxMs: number; stableMs: number };
  /** Grace between SIGTERM and SIGKILL on stop. */
  stopGraceMs: number;
}

/** What a task carries: everything needed to start its process, the spec it was made from. */
export interface TaskData {
  service: string;
  slot: number;
  /** Hash of the parts of the spec that need a new process when they change. */
  spec: string;
  command: string[];
  cwd?: string;
  env: Record<string, EnvValue>;
  resources: { cpu: number; memoryMb: number };
  health: ServiceSpec['health'];
  constraints: Record<string, string>;
  restart: ServiceSpec['restart'];
  stopGraceMs: number;
}

export interface RequestData {
  task: string;
  service: string;
  cpu: number;
  memoryMb: number;
  ports: number;
  labels: Record<string, string>;
}

export interface AssignmentData {
  task: string;
  service: string;
  /** null while pending. */
  machine: string | null;
  state: 'placed' | 'pending';
  /** Why it is pending (or why a move is blocked). */
  reason?: string;
  /** Bumped on every placement: a new generation is a new process. */
  generation: number;
  at: string;
  /** The machine it was moved away from (down, drained). */
  from?: string;
}

export interface ProcessData {
  task: string;
  /** The resource id of the task it runs for (a task made again under the same name is another). */
  taskId?: string;
  service: string;
  machine: string;
  generation: number;
  state: 'starting' | 'running' | 'exited' | 'stopping' | 'stopped';
  pid: number | null;
  port: number | null;
  ready: boolean;
  exitCode: number | null;
  signal: string | null;
  requested: boolean;
  /** Starts after the first. */
  restarts: number;
  /** Exits in a row that came before the service's stable period. */
  crashes: number;
  startedAt: string | null;
  exitedAt: string | null;
  /** When the executor starts it again (backoff). */
  restartAt?: string | null;
}

export interface TaskObserved {
  state: 'pending' | 'starting' | 'running' | 'healthy' | 'crashloop' | 'exited' | 'stopping';
  machine: string | null;
  reason?: string;
  restarts: number;
  port: number | null;
  pid: number | null;
}

/** A machine as the kernel reads it: what placement needs (MachineView), plus where and how it drains. */
export interface MachineInfo extends MachineView {
  address: string;
  drain: { deadline: number; parallelism: number } | null;
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const numOr = (v: unknown, d: number): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : d);
const strMap = (v: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  if (isObj(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
};

export function readService(r: Resource): ServiceSpec {
  const d = isObj(r.data) ? r.data : {};
  const env: Record<string, EnvValue> = {};
  if (isObj(d.env)) {
    for (const [k, v] of Object.entries(d.env)) {
      if (typeof v === 'string') env[k] = v;
      else if (isObj(v) && typeof v.secret === 'string' && typeof v.key === 'string') env[k] = { secret: v.secret, key: v.key };
    }
  }
  const res = isObj(d.resources) ? d.resources : {};
  let health: ServiceSpec['health'] = null;
  if (isObj(d.health)) {
    if (typeof d.health.http === 'string') health = { http: d.health.http };
    else if (d.health.tcp === true) health = { tcp: true };
  }
  const dependsOn: ServiceSpec['dependsOn'] = [];
  if (Array.isArray(d.dependsOn)) {
    for (const x of d.dependsOn) if (isObj(x) && typeof x.service === 'string') dependsOn.push({ service: x.service, state: x.state === 'healthy' ? 'healthy' : 'running' });
  }
  const restart = isObj(d.restart) ? d.restart : {};
  return {
    replicas: Math.min(1000, Math.floor(numOr(d.replicas, 1))),
    command: Array.isArray(d.command) ? d.command.filter((x): x is string => typeof x === 'string') : [],
    cwd: typeof d.cwd === 'string' ? d.cwd : undefined,
    env,
    resources: { cpu: numOr(res.cpu, 0.1), memoryMb: numOr(res.memoryMb, 64) },
    health,
    dependsOn,
    loadBalancer: isObj(d.loadBalancer) && typeof d.loadBalancer.port === 'number' ? { port: d.loadBalancer.port } : null,
    constraints: strMap(isObj(d.constraints) ? d.constraints.labels ?? d.constraints : undefined),
    restart: { backoffMs: numOr(restart.backoffMs, 500), backoffMaxMs: numOr(restart.backoffMaxMs, 30_000), stableMs: numOr(restart.stableMs, 10_000) },
    stopGraceMs: numOr(d.stopGraceMs, 5000),
  };
}

export function readMachine(desired: Resource | undefined, observed: Resource | undefined, name: string): MachineInfo {
  const o = isObj(observed?.data) ? (observed!.data as Record<string, unknown>) : {};
  const d = isObj(desired?.data) ? (desired!.data as Record<string, unknown>) : {};
  const cap = isObj(o.capacity) ? o.capacity : o;
  let ports: [number, number] = [0, -1];
  const p = o.ports ?? d.ports;
  if (Array.isArray(p) && p.length === 2) ports = [Number(p[0]), Number(p[1])];
  else if (typeof p === 'string' && /^\d+-\d+$/.test(p)) ports = p.split('-').map(Number) as [number, number];
  else if (isObj(p)) ports = [Number(p.from ?? p.min ?? p.first ?? 0), Number(p.to ?? p.max ?? p.last ?? -1)];
  const health = o.health ?? o.state;
  const drain = isObj(d.drain) ? { deadline: Date.parse(String(d.drain.deadline)) || Infinity, parallelism: Math.max(1, Math.floor(numOr(d.drain.parallelism, 1))) } : null;
  return {
    name,
    cpu: numOr(cap.cpu, 0),
    memoryMb: numOr(cap.memoryMb, 0),
    ports,
    labels: { ...strMap(d.labels), ...strMap(o.labels) },
    up: observed !== undefined && health !== 'down',
    cordoned: d.cordoned === true || o.cordoned === true || drain !== null,
    address: typeof o.address === 'string' ? o.address : '127.0.0.1',
    drain,
  };
}

export const dataOf = <T>(r: Resource | undefined | null): T | undefined => (r && isObj(r.data) ? (r.data as T) : undefined);
