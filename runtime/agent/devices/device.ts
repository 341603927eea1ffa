/**
 * The shape every node-agent device shares (process, volume, proxy, dns). See README.md beside it.
 *
 *   const dev = new SomeDevice({ ...options, emit: (e) => bus.publish(e) });
 *   const outcome = await dev.handle({ id: 'c-1', type: 'process.start', ... });
 *   dev.snapshot();            // what the device holds now, plain JSON
 *   await dev.close();         // let go of this agent process's handles; durable work stays
 *
 * Every command has an id and gets exactly one outcome event (`commandId` set): a success type
 * named by the device, or `failed` with a code and a one-line error. The outcome is both emitted
 * and returned; the agent publishes from `emit` only, the return value is for callers that wait.
 * Later happenings (a process exits, a health check turns) are events without `commandId`.
 */

// The command and event shapes live in core (core/bus/messages.ts) so the kernel reads the same ones.
import type { DeviceCommand, DeviceEvent, FailedEvent, FailureCode } from '../../../core/bus/messages.ts';
export type { DeviceCommand, DeviceEvent, FailedEvent, FailureCode };

export type Emit<E extends DeviceEvent = DeviceEvent> = (event: E | FailedEvent) => void;

export interface Device<C extends DeviceCommand, E extends DeviceEvent, S> {
  readonly name: string;
  /** Runs a command once per id; a repeated id gets the same outcome again, without redoing the work. */
  handle(command: C): Promise<E | FailedEvent>;
  /** What the device holds now, as plain JSON (for heartbeats, the console, tests). */
  snapshot(): S;
  /** Stops timers, watchers and listeners of this agent process. Durable work is undone by commands only. */
  close(): Promise<void>;
}

/** Thrown inside a device to become a `failed` outcome. */
export class DeviceError extends Error {
  readonly code: FailureCode;
  constructor(code: FailureCode, message: string) {
    super(message);
    this.name = 'DeviceError';
    this.code = code;
  }
}

export const COMMAND_ID_CHARS_MAX = 128;

/**
 * Outcome fields a device's work returns; `Commands` stamps device, at and commandId on them.
 * Distributes over a union of events, so each event type keeps its own fields.
 */
export type OutcomeBody<E extends DeviceEvent> = E extends DeviceEvent ? Omit<E, 'device' | 'at' | 'commandId'> : never;

/**
 * Idempotency by id, a bound on commands in flight, and one outcome per command: the part of
 * `handle` every device shares. `run(command, work)` calls `work` at most once per remembered id.
 */
export class Commands<E extends DeviceEvent> {
  private readonly outcomes = new Map<string, Promise<E | FailedEvent>>();
  private inFlight = 0;
  private closed = false;
  readonly device: string;
  private readonly emit: Emit<E>;
  private readonly inFlightMax: number;
  private readonly rememberedMax: number;

  constructor(device: string, emit: Emit<E>, opts: { inFlightMax?: number; rememberedMax?: number } = {}) {
    this.device = device;
    this.emit = emit;
    this.inFlightMax = opts.inFlightMax ?? 64;
    this.rememberedMax = opts.rememberedMax ?? 1024;
  }

  run(command: DeviceCommand, work: () => Promise<OutcomeBody<E>>): Promise<E | FailedEvent> {
    const id = typeof command?.id === 'string' ? command.id : '';
    const known = id ? this.outcomes.get(id) : undefined;
    if (known) return known.then((e) => (this.send(e), e));
    const refused = this.refusal(id);
    if (refused) {
      // Not remembered: the same id may be retried once the device has room.
      this.send(refused);
      return Promise.resolve(refused);
    }
    const outcome = this.start(id, work);
    {
      this.outcomes.set(id, outcome);
      // Forget the oldest ids first: Map keeps insertion order.
      while (this.outcomes.size > this.rememberedMax) this.outcomes.delete(this.outcomes.keys().next().value as string);
    }
    return outcome.then((e) => (this.send(e), e));
  }

  /** Stamps and emits an event that answers no command (exited, ready, log…). */
  event(body: OutcomeBody<E>): void {
    this.send({ ...body, device: this.device, at: Date.now() } as unknown as E);
  }

  close(): void {
    this.closed = true;
  }

  private failed(id: string, code: FailureCode, error: string): FailedEvent {
    return { device: this.device, type: 'failed', at: Date.now(), commandId: id, code, error };
  }

  private refusal(id: string): FailedEvent | undefined {
    if (!id || id.length > COMMAND_ID_CHARS_MAX) return this.failed(id, 'invalid', `command id must be a string of 1-${COMMAND_ID_CHARS_MAX} characters`);
    if (this.closed) return this.failed(id, 'closed', `the ${this.device} device is closed; restart the agent`);
    if (this.inFlight >= this.inFlightMax) return this.failed(id, 'busy', `${this.inFlightMax} ${this.device} commands already in flight; retry later`);
    return undefined;
  }

  private async start(id: string, work: () => Promise<OutcomeBody<E>>): Promise<E | FailedEvent> {
    this.inFlight++;
    try {
      const body = await work();
      return { ...body, device: this.device, at: Date.now(), commandId: id } as unknown as E;
    } catch (e) {
      if (e instanceof DeviceError) return this.failed(id, e.code, e.message);
      return this.failed(id, 'host', `${this.device}: ${(e as Error)?.message ?? String(e)}`.split('\n')[0]);
    } finally {
      this.inFlight--;
    }
  }

  private send(e: E | FailedEvent): void {
    try {
      this.emit(e);
    } catch {
      // A failing listener must not break the device; the agent's emit owns its own errors.
    }
  }
}
