/**
 * A load balancer's configuration as `proxy.configure` gives it, checked and with its defaults.
 */
import * as net from 'node:net';
import { HEALTH_DEFAULTS, type HealthCheck, type HealthTiming } from './health.ts';

import type { BackendSpec, ProxyConfigInput } from '../../../../core/bus/messages.ts';
export type { BackendSpec, ProxyConfigInput } from '../../../../core/bus/messages.ts';

export interface ProxyConfig {
  proxyId: string;
  listen: { host: string; port: number };
  backends: Required<BackendSpec>[];
  check: HealthCheck;
  timing: HealthTiming;
  drainTimeoutMs: number;
  connectionsMax: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

export const BACKENDS_MAX = 256;
const CONNECTIONS_MAX_DEFAULT = 10_000;
export const CONNECTIONS_MAX_LIMIT = 100_000;
const ID_CHARS_MAX = 256;
const DAY_MS = 24 * 3600 * 1000;

export class ConfigError extends Error {}

const bad = (message: string) => new ConfigError(message);

function ms(v: unknown, name: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) throw bad(`${name} must be a whole number of milliseconds from ${min} to ${max}`);
  return v as number;
}

function port(v: unknown, name: string, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min || (v as number) > 65535) throw bad(`${name} must be a port number from ${min} to 65535`);
  return v as number;
}

function host(v: unknown, name: string): string {
  if (typeof v !== 'string' || v === '' || v.length > 253 || !(net.isIP(v) || /^[A-Za-z0-9.-]+$/.test(v))) throw bad(`${name} must be an IP address or a host name, e.g. 127.0.0.1`);
  return v;
}

export function checkConfig(input: ProxyConfigInput): ProxyConfig {
  if (input === null || typeof input !== 'object') throw bad('proxy.configure needs proxy: {proxyId, listen: {host, port}, backends: [{host, port}], health?}');
  const { proxyId } = input;
  if (typeof proxyId !== 'string' || proxyId === '' || proxyId.length > ID_CHARS_MAX) throw bad(`proxyId must be a string of 1-${ID_CHARS_MAX} characters`);
  if (input.listen === null || typeof input.listen !== 'object') throw bad('listen must be {host, port}, e.g. {host: "127.0.0.1", port: 18080}');
  const listen = { host: input.listen.host === undefined ? '127.0.0.1' : host(input.listen.host, 'listen.host'), port: port(input.listen.port, 'listen.port', 0) };
  if (!Array.isArray(input.backends)) throw bad('backends must be a list of {host, port} (it may be empty)');
  if (input.backends.length > BACKENDS_MAX) throw bad(`a load balancer takes at most ${BACKENDS_MAX} backends, not ${input.backends.length}`);
  const backends: Required<BackendSpec>[] = [];
  const ids = new Set<string>();
  for (const [i, b] of input.backends.entries()) {
    if (b === null || typeof b !== 'object') throw bad(`backends[${i}] must be {host, port}`);
    const spec = { host: host(b.host, `backends[${i}].host`), port: port(b.port, `backends[${i}].port`, 1) };
    const id = b.id === undefined ? `${spec.host}:${spec.port}` : b.id;
    if (typeof id !== 'string' || id === '' || id.length > ID_CHARS_MAX) throw bad(`backends[${i}].id must be a string of 1-${ID_CHARS_MAX} characters`);
    if (ids.has(id)) throw bad(`backend id "${id}" appears twice; give each backend its own id or address`);
    ids.add(id);
    backends.push({ id, ...spec });
  }
  let h = input.health ?? {};
  if (h === null || typeof h !== 'object') throw bad('health must be {type: "tcp"} or {type: "http", path: "/healthz"}, with intervalMs, timeoutMs, healthyThreshold, unhealthyThreshold');
  // A service's own spelling (`health: {http: /healthz}` or `{tcp: true}`) is taken as is.
  const service = h as { http?: unknown; tcp?: unknown; type?: unknown };
  if (service.type === undefined && typeof service.http === 'string') h = { ...h, type: 'http', path: service.http } as typeof h;
  else if (service.type === undefined && service.tcp === true) h = { ...h, type: 'tcp' } as typeof h;
  let check: HealthCheck;
  if (h.type === undefined || h.type === 'tcp') check = { type: 'tcp' };
  else if (h.type === 'http') {
    const path = (h as { path?: unknown }).path;
    if (typeof path !== 'string' || !path.startsWith('/') || path.length > 2048 || /[\s]/.test(path)) throw bad('health.path must be a request path such as /healthz');
    const hostHeader = (h as { host?: unknown }).host;
    if (hostHeader !== undefined && (typeof hostHeader !== 'string' || !/^[A-Za-z0-9.:[\]-]{1,255}$/.test(hostHeader))) throw bad('health.host must be a host name');
    check = { type: 'http', path, ...(hostHeader === undefined ? {} : { host: hostHeader as string }) };
  } else throw bad(`health.type must be "tcp" or "http", not ${JSON.stringify((h as { type?: unknown }).type)}`);
  const timing: HealthTiming = {
    intervalMs: ms(h.intervalMs, 'health.intervalMs', HEALTH_DEFAULTS.intervalMs, 50, 3_600_000),
    timeoutMs: ms(h.timeoutMs, 'health.timeoutMs', HEALTH_DEFAULTS.timeoutMs, 10, 600_000),
    healthyThreshold: count(h.healthyThreshold, 'health.healthyThreshold', HEALTH_DEFAULTS.healthyThreshold),
    unhealthyThreshold: count(h.unhealthyThreshold, 'health.unhealthyThreshold', HEALTH_DEFAULTS.unhealthyThreshold),
  };
  return {
    proxyId,
    listen,
    backends,
    check,
    timing,
    drainTimeoutMs: ms(input.drainTimeoutMs, 'drainTimeoutMs', 30_000, 0, DAY_MS),
    connectionsMax: count(input.connectionsMax, 'connectionsMax', CONNECTIONS_MAX_DEFAULT, CONNECTIONS_MAX_LIMIT),
    connectTimeoutMs: ms(input.connectTimeoutMs, 'connectTimeoutMs', 3000, 10, 600_000),
    idleTimeoutMs: ms(input.idleTimeoutMs, 'idleTimeoutMs', 600_000, 100, DAY_MS),
  };
}

function count(v: unknown, name: string, fallback: number, max = 100): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) throw bad(`${name} must be a whole number from 1 to ${max}`);
  return v as number;
}
