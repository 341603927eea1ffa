/**
 * The kernel's zero-procs, together (README.md): the service reconciler, the scheduler, the
 * executor and the sensor processor, the health checks, plus the loop that keeps each task's observed state in step
 * with its assignment. They run in-process as `system`, on the handler API apps use.
 */
import type { Bus } from '../bus/bus.ts';
import type { System } from '../system.ts';
import { Executor, type ResolveSecret } from './executor.ts';
import { Health } from './health.ts';
import { Loop } from './loop.ts';
import { Reconciler } from './reconciler.ts';
import { Scheduler } from './scheduler.ts';
import { refreshTaskObserved, Sensor } from './sensor.ts';

export { Fleet, type MachineView, type Placement, type PlacementRequest } from './placement.ts';
export { serviceDnsName, nodeTaskId } from './names.ts';
export { Executor, Reconciler, Scheduler, Sensor };
export type { ResolveSecret };

export interface KernelOptions {
  /** Reads a secret's key when a process is started (the executor's only way to a value). */
  resolveSecret?: ResolveSecret;
  report?: (message: string) => void;
}

export class Kernel {
  readonly reconciler: Reconciler;
  readonly scheduler: Scheduler;
  readonly executor: Executor;
  readonly sensor: Sensor;
  readonly health: Health;
  private readonly tasks: Loop;
  private readonly sys: System;

  constructor(sys: System, bus: Bus, opts: KernelOptions = {}) {
    this.sys = sys;
    const core = sys.core;
    this.reconciler = new Reconciler(core, opts.report);
    this.scheduler = new Scheduler(core, opts.report);
    this.executor = new Executor(core, bus, { resolveSecret: opts.resolveSecret, report: opts.report });
    this.sensor = new Sensor(core, bus, opts.report);
    this.health = new Health(core, { report: opts.report });
    this.tasks = new Loop({ name: 'tasks', queries: [{ type: 'assignment' }, { type: 'task' }], pass: () => refreshTaskObserved(core), report: opts.report });
  }

  async start(): Promise<void> {
    const h = this.sys.handlers;
    await this.sensor.start();
    this.scheduler.start(h);
    this.executor.start(h);
    this.tasks.start(h);
    this.reconciler.start(h);
    this.health.start();
  }

  async stop(): Promise<void> {
    await this.health.stop();
    await this.reconciler.stop();
    await this.tasks.stop();
    await this.executor.stop();
    await this.scheduler.stop();
    await this.sensor.stop();
  }
}
