/**
 * Health checks from the kernel: every running process whose service declares `health` is probed
 * at its machine's address and port — `{tcp: true}`: a TCP connection; `{http: PATH}`: a GET that
 * answers 2xx or 3xx — and its `ready` flag (hence its task's state, `healthy` or `running`) follows:
 * up after one success, down after three failures in a row. The process device's own `ready`
 * event still counts; probing here covers HTTP paths and a `ready` that was lost with a crash.
 * At most PROBES_MAX probes run at once, each bounded by PROBE_TIMEOUT_MS.
 */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Core } from '../core.ts';
import type { Command } from '../resource.ts';
import { machinesOf } from './scheduler.ts';
import { taskObserved } from './sensor.ts';
import { dataOf, type AssignmentData, type ProcessData, type TaskData } from './shapes.ts';
import { same, submitAll } from './write.ts';

const PROBE_TIMEOUT_MS = 1000;
const PROBES_MAX = 64;
const FAILURES_MAX = 3;

export function probe(host: string, port: number, check: TaskData['health']): Promise<boolean> {
  return new Promise((resolve) => {
    if (!check) return resolve(true);
    if ('http' in check) {
      const req = http.get({ host, port, path: check.http, timeout: PROBE_TIMEOUT_MS }, (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) < 400);
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      return;
    }
    const s = net.connect({ host, port });
    const t = setTimeout(() => s.destroy(), PROBE_TIMEOUT_MS);
    s.once('connect', () => {
      // A polite close (FIN, reading what the program says): a reset could break a program
      // that writes on accept.
      resolve(true);
      s.resume();
      s.end();
    });
    s.once('end', () => clearTimeout(t));
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

export class Health {
  private readonly core: Core;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly failures = new Map<string, number>();
  private readonly report: (m: string) => void;

  constructor(core: Core, opts: { intervalMs?: number; report?: (m: string) => void } = {}) {
    this.core = core;
    this.intervalMs = opts.intervalMs ?? 1000;
    this.report = opts.report ?? (() => {});
  }

  start(): void {
    this.timer = setInterval(() => void this.round(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  async round(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const core = this.core;
      const machines = machinesOf(core);
      const todo: { ns: string; name: string; p: ProcessData; t: TaskData }[] = [];
      for (const r of core.query({ type: 'process' })) {
        const p = dataOf<ProcessData>(r);
        if (!p || p.state !== 'running' || p.port === null) continue;
        const t = dataOf<TaskData>(core.get('task', r.name, r.namespace));
        if (!t?.health) continue;
        todo.push({ ns: r.namespace, name: r.name, p, t });
      }
      const results: boolean[] = [];
      for (let i = 0; i < todo.length; i += PROBES_MAX) {
        const chunk = todo.slice(i, i + PROBES_MAX);
        results.push(...(await Promise.all(chunk.map((x) => probe(machines.get(x.p.machine)?.address ?? '127.0.0.1', x.p.port!, x.t.health)))));
      }
      const cmds: Command[] = [];
      todo.forEach((x, i) => {
        const k = `${x.ns}/${x.name}/${x.p.pid}`;
        let ready = x.p.ready;
        if (results[i]) {
          this.failures.delete(k);
          ready = true;
        } else {
          const n = (this.failures.get(k) ?? 0) + 1;
          this.failures.set(k, n);
          if (n >= FAILURES_MAX) ready = false;
        }
        // Re-read: the sensor may have written since the round began.
        const cur = this.core.get('process', x.name, x.ns);
        const cd = dataOf<ProcessData>(cur);
        if (!cd || cd.pid !== x.p.pid || cd.state !== 'running' || cd.ready === ready) return;
        const next = { ...cd, ready };
        cmds.push({ op: 'apply', resource: { type: 'process', namespace: x.ns, name: x.name, tags: cur!.tags, data: next } });
        const task = this.core.get('task', x.name, x.ns);
        if (task) {
          const to = taskObserved(next, dataOf<AssignmentData>(this.core.get('assignment', x.name, x.ns)), x.t);
          const co = this.core.get('task/observed', x.name, x.ns);
          if (!co || !same(co.data, to)) cmds.push({ op: 'apply', resource: { type: 'task/observed', namespace: x.ns, name: x.name, owner: [task.id], tags: task.tags, data: to } });
        }
      });
      if (this.failures.size > 100_000) this.failures.clear();
      await submitAll(core, cmds);
    } catch (e) {
      this.report(`kernel health: ${(e as Error).message}`);
    } finally {
      this.busy = false;
    }
  }
}
