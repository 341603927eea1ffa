/**
 * One health probe of a backend: a TCP connect, or an HTTP GET whose status must be 2xx or 3xx.
 * A probe never throws and never outlives its timeout.
 */
import * as http from 'node:http';
import * as net from 'node:net';

import type { HealthCheck, HealthTiming } from '../../../../core/bus/messages.ts';
export type { HealthCheck, HealthTiming } from '../../../../core/bus/messages.ts';

export const HEALTH_DEFAULTS: HealthTiming = { intervalMs: 2000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 2 };

export interface ProbeResult {
  ok: boolean;
  /** Why it failed, one line. */
  error?: string;
}

export function probe(check: HealthCheck, host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return check.type === 'http' ? probeHttp(check, host, port, timeoutMs) : probeTcp(host, port, timeoutMs);
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => finish({ ok: false, error: `no TCP connection within ${timeoutMs} ms` }), timeoutMs);
    let done = false;
    function finish(r: ProbeResult): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    }
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: `TCP connect: ${e.code ?? e.message}` }));
  });
}

function probeHttp(check: { path: string; host?: string }, host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const req = http.request({
      host,
      port,
      path: check.path,
      method: 'GET',
      agent: false,
      headers: { host: check.host ?? `${host}:${port}`, connection: 'close', 'user-agent': 'os0-proxy-health' },
    });
    const timer = setTimeout(() => finish({ ok: false, error: `no HTTP answer within ${timeoutMs} ms` }), timeoutMs);
    function finish(r: ProbeResult): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    }
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      finish(status >= 200 && status < 400 ? { ok: true } : { ok: false, error: `HTTP ${check.path} answered ${status}` });
    });
    req.once('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: `HTTP ${check.path}: ${e.code ?? e.message}` }));
    req.end();
  });
}
