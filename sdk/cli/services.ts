/**
 * Services that start in order and stop in reverse: the shape of every osØ process (`os0 up`,
 * and later `os0 node join` and `os0 fleet up`). A start that fails stops, in reverse, what had
 * started (a rollback), so a process that cannot come up leaves nothing half-done behind.
 *
 * A service's own start either completes or undoes its own partial work before it throws; its
 * stop is called once, only after a start that completed.
 */

export interface StartContext {
  /** One line of progress or warning (os0 up prints it as `os0: ...` on stderr). */
  report(message: string): void;
}

/** Why a service is stopped: a shutdown of a running instance, or the rollback of a failed start. */
export type StopReason = 'shutdown' | 'rollback';

export interface Service {
  readonly name: string;
  start(ctx: StartContext): Promise<void>;
  stop(reason: StopReason): Promise<void>;
}

/** A start that failed (and was rolled back): the message is the failing service's own. */
export class StartError extends Error {
  readonly service: string;
  /** Errors of stops during the rollback, if any (the rollback went on past them). */
  readonly rollbackErrors: { service: string; error: unknown }[];
  constructor(service: string, cause: unknown, rollbackErrors: { service: string; error: unknown }[]) {
    super((cause as Error)?.message ?? String(cause), { cause });
    this.service = service;
    this.rollbackErrors = rollbackErrors;
  }
}

export type ServicesState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export class Services {
  private readonly list: Service[] = [];
  private readonly started: Service[] = [];
  private stateNow: ServicesState = 'new';
  private abort = false;
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;
  /** How long each service's start took, in ms, in start order (for `npm run bench -- instance`). */
  readonly startMs: Record<string, number> = {};

  get state(): ServicesState {
    return this.stateNow;
  }

  /** The services, in start order. */
  get names(): string[] {
    return this.list.map((s) => s.name);
  }

  add(service: Service): this {
    if (this.stateNow !== 'new') throw new Error(`cannot add service ${service.name}: the instance was already started`);
    if (this.list.some((s) => s.name === service.name)) throw new Error(`two services named ${service.name}`);
    this.list.push(service);
    return this;
  }

  /** Starts every service in order; on a failure (or a stop() meanwhile) rolls back and throws StartError. */
  start(ctx: StartContext = { report: () => {} }): Promise<void> {
    if (this.stateNow !== 'new') return Promise.reject(new Error(`cannot start: the instance is ${this.stateNow}`));
    this.stateNow = 'starting';
    this.starting = this.run(ctx);
    return this.starting;
  }

  private async run(ctx: StartContext): Promise<void> {
    for (const s of this.list) {
      let failure: unknown = null;
      if (this.abort) failure = new Error('stopped while starting');
      else {
        try {
          const t0 = performance.now();
          await s.start(ctx);
          this.startMs[s.name] = performance.now() - t0;
          this.started.push(s);
          if (this.abort) failure = new Error('stopped while starting');
        } catch (e) {
          failure = e;
        }
      }
      if (failure !== null) {
        const errors = await this.stopStarted('rollback');
        this.stateNow = 'failed';
        throw new StartError(s.name, failure, errors);
      }
    }
    this.stateNow = 'running';
  }

  /**
   * Stops every started service in reverse order, going on past failures (the first is thrown
   * after all were tried). During a start, makes it roll back instead and waits for that.
   */
  stop(): Promise<void> {
    if (this.stateNow === 'starting') {
      this.abort = true;
      return this.starting!.then(
        () => this.stop(),
        () => undefined,
      );
    }
    if (this.stopping) return this.stopping;
    if (this.stateNow !== 'running') {
      this.stateNow = this.stateNow === 'new' ? 'stopped' : this.stateNow;
      return Promise.resolve();
    }
    this.stateNow = 'stopping';
    this.stopping = this.stopStarted('shutdown').then((errors) => {
      this.stateNow = 'stopped';
      if (errors.length) {
        const first = errors[0];
        throw new Error(`stopping ${first.service}: ${(first.error as Error)?.message ?? String(first.error)}`, { cause: first.error });
      }
    });
    return this.stopping;
  }

  private async stopStarted(reason: StopReason): Promise<{ service: string; error: unknown }[]> {
    const errors: { service: string; error: unknown }[] = [];
    while (this.started.length) {
      const s = this.started.pop()!;
      try {
        await s.stop(reason);
      } catch (error) {
        errors.push({ service: s.name, error });
      }
    }
    return errors;
  }
}

/** A service from two functions (for small pieces that need no class of their own). */
export function service(name: string, start: (ctx: StartContext) => Promise<void> | void, stop: (reason: StopReason) => Promise<void> | void = () => {}): Service {
  return {
    name,
    start: async (ctx) => void (await start(ctx)),
    stop: async (reason) => void (await stop(reason)),
  };
}
