/**
 * The shape every zero-proc shares: handlers (core/handlers.ts, the API apps use) on the types it
 * reads only wake it; one pass then compares desired with observed state in the tree and acts on
 * the difference. Passes never overlap; kicks during a pass make one more pass. A periodic resync
 * (the handlers' own) kicks it too, so a missed event delays convergence and never breaks it.
 */
import type { HandlerQuery, Handlers } from '../handlers.ts';

export interface LoopOptions {
  name: string;
  /** What wakes it. Each becomes a handler named `kernel.NAME.TYPE`. */
  queries: HandlerQuery[];
  pass(): Promise<void>;
  /** Periodic resync (2 s). */
  resyncMs?: number;
  /** Batches kicks that come together (10 ms). */
  settleMs?: number;
  report?: (message: string) => void;
}

export class Loop {
  private readonly opts: LoopOptions;
  private stops: (() => void)[] = [];
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private lastError = '';
  passes = 0;

  constructor(opts: LoopOptions) {
    this.opts = opts;
  }

  start(handlers: Handlers): void {
    for (const q of this.opts.queries) {
      this.stops.push(
        handlers.register({
          name: `kernel.${this.opts.name}.${q.type ?? 'all'}`,
          query: q,
          from: 'now',
          handle: () => this.kick(),
          resync: () => this.kick(),
          resyncMs: this.opts.resyncMs ?? 2000,
        }),
      );
    }
    this.kick();
  }

  /** Asks for a pass soon. */
  kick(delayMs?: number): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer && delayMs === undefined) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), delayMs ?? this.opts.settleMs ?? 10);
  }

  private run(): void {
    this.timer = null;
    if (this.closed) return;
    this.running = true;
    this.idle = (async () => {
      try {
        await this.opts.pass();
        this.passes++;
        this.lastError = '';
      } catch (e) {
        const m = (e as Error)?.message ?? String(e);
        if (m !== this.lastError) this.opts.report?.(`kernel ${this.opts.name}: ${m}`);
        this.lastError = m;
        this.again = true;
      } finally {
        this.running = false;
        if (this.again && !this.closed) {
          this.again = false;
          this.kick(this.lastError ? 500 : undefined);
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const s of this.stops) s();
    this.stops = [];
    await this.idle;
  }
}
