/**
 * The machines zero-proc: turns node agents' `registered` and `heartbeat` events (busØ stream
 * `events`, durable consumer `machines`) into the `machine` resource of each node (namespace
 * `system`, created when absent, with its capacity, port range and labels in data) and its
 * observed state `machine/observed` (capacity, usage, heartbeatAt, health up|down). A timer marks
 * a machine down once three of its heartbeat intervals pass without one; a `leaving` event marks
 * it down at once. It submits as `system`.
 *
 *   const m = new Machines({ core, bus });
 *   await m.start();  ...  await m.stop();
 */
import { SYSTEM_ACTOR } from '../auth/permission.ts';
import { EVENTS, type Bus, type Consumer, type Message } from '../bus/bus.ts';
import type { HeartbeatEvent, MachineCapacity, MachineUsage, NodeEvent, RegisteredEvent } from '../bus/messages.ts';
import type { Core } from '../core.ts';
import type { Resource } from '../resource.ts';

export const MACHINES_NAMESPACE = 'system';
/** Missed heartbeat intervals after which a machine is down. */
export const MISSED_MAX = 3;
const NODES_MAX = 10_000;
const NAME_RE = /^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$/;

export interface MachineObserved {
  capacity: MachineCapacity;
  usage: MachineUsage | null;
  /** ISO time of the last heartbeat (or registration). */
  heartbeatAt: string;
  heartbeatMs: number;
  health: 'up' | 'down';
  /** Why it is down, one line. */
  reason?: string;
}

export interface MachinesOptions {
  core: Pick<Core, 'submit' | 'get' | 'query'>;
  bus: Bus;
  /** How often machines are checked for missed heartbeats (1 s). */
  checkMs?: number;
  /** Durable consumer name on `events` (machines). */
  durable?: string;
  report?: (message: string) => void;
}

interface Seen {
  capacity: MachineCapacity;
  usage: MachineUsage | null;
  heartbeatMs: number;
  /** ms since the epoch, by this process's clock when the event arrived. */
  last: number;
  /** The event's own time, for heartbeatAt. */
  at: number;
  health: 'up' | 'down';
}

export class Machines {
  private readonly opts: MachinesOptions;
  private consumer: Consumer | null = null;
  private readonly seen = new Map<string, Seen>();
  private readonly ac = new AbortController();
  private loop: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Events taken from the bus (for tests and metrics). */
  handled = 0;

  constructor(opts: MachinesOptions) {
    this.opts = opts;
  }

  async start(): Promise<void> {
    // Machines already known come back as they were last observed: a restarted core does not
    // forget a machine, and one whose heartbeats stopped while it was down is marked down.
    for (const r of this.opts.core.query({ type: 'machine/observed', namespace: MACHINES_NAMESPACE })) {
      const d = r.data as Partial<MachineObserved>;
      if (!d.capacity || typeof d.heartbeatAt !== 'string' || r.namespace !== MACHINES_NAMESPACE) continue;
      const at = Date.parse(d.heartbeatAt);
      this.seen.set(r.name, { capacity: d.capacity, usage: d.usage ?? null, heartbeatMs: d.heartbeatMs ?? 5000, last: at, at, health: d.health === 'down' ? 'down' : 'up' });
    }
    this.consumer = await this.opts.bus.consumer(EVENTS, this.opts.durable ?? 'machines', { start: 'new', ackWaitMs: 30_000 });
    this.loop = this.consume();
    this.timer = setInterval(() => void this.check().catch((e) => this.opts.report?.(`machines: ${(e as Error).message}`)), this.opts.checkMs ?? 1000);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    this.ac.abort();
    if (this.timer) clearInterval(this.timer);
    await this.loop?.catch(() => {});
  }

  private async consume(): Promise<void> {
    let wait = 100;
    while (!this.ac.signal.aborted) {
      let msgs: Message[];
      try {
        msgs = await this.consumer!.fetch({ max: 256, waitMs: 1000, signal: this.ac.signal });
        wait = 100;
      } catch (e) {
        if (this.ac.signal.aborted) return;
        this.opts.report?.(`machines: reading events: ${(e as Error).message}; retrying`);
        await new Promise((r) => setTimeout(r, wait));
        wait = Math.min(wait * 2, 5000);
        continue;
      }
      for (const m of msgs) {
        try {
          await this.handle(m.data as NodeEvent);
          await this.consumer!.ack(m.seq);
          this.handled++;
        } catch (e) {
          if (this.ac.signal.aborted) return;
          this.opts.report?.(`machines: event ${m.seq}: ${(e as Error).message}`);
          await this.consumer!.nak(m.seq, 1000).catch(() => {});
        }
      }
    }
  }

  /** One event from `events`: only the agent's own (`device: agent`) matter here. */
  async handle(e: NodeEvent): Promise<void> {
    if (!e || typeof e !== 'object' || e.device !== 'agent' || typeof e.node !== 'string' || !NAME_RE.test(e.node)) return;
    const node = e.node;
    const now = Date.now();
    if (e.type === 'registered') {
      const r = e as NodeEvent<RegisteredEvent>;
      if (!validCapacity(r.capacity)) return;
      await this.ensureMachine(node, r);
      this.remember(node, { capacity: r.capacity, usage: null, heartbeatMs: r.heartbeatMs, last: now, at: r.at, health: 'up' });
      await this.writeObserved(node);
    } else if (e.type === 'heartbeat') {
      const h = e as NodeEvent<HeartbeatEvent>;
      if (!validCapacity(h.capacity)) return;
      const was = this.seen.get(node);
      // A heartbeat older than one already seen (a redelivery) changes nothing.
      if (was && h.at < was.at) return;
      this.remember(node, { capacity: h.capacity, usage: h.usage ?? null, heartbeatMs: h.heartbeatMs, last: now, at: h.at, health: 'up' });
      if (!this.opts.core.get('machine', node, MACHINES_NAMESPACE)) await this.ensureMachine(node, { capacity: h.capacity, ports: null, labels: {} });
      await this.writeObserved(node);
    } else if (e.type === 'leaving') {
      const was = this.seen.get(node);
      if (!was || was.health === 'down') return;
      was.health = 'down';
      await this.writeObserved(node, 'its agent stopped');
    }
  }

  /** Marks down every machine whose last heartbeat is more than three intervals old. */
  async check(now = Date.now()): Promise<void> {
    for (const [node, s] of this.seen) {
      if (s.health === 'up' && now - s.last > MISSED_MAX * s.heartbeatMs) {
        s.health = 'down';
        await this.writeObserved(node, `no heartbeat for ${Math.round((now - s.last) / 1000)} s (${MISSED_MAX} intervals of ${s.heartbeatMs} ms)`);
      }
    }
  }

  private remember(node: string, s: Seen): void {
    if (!this.seen.has(node) && this.seen.size >= NODES_MAX) return;
    this.seen.set(node, s);
  }

  private async ensureMachine(node: string, r: { capacity: MachineCapacity; ports: readonly [number, number] | null; labels: Readonly<Record<string, string>> }): Promise<void> {
    const existing = this.opts.core.get('machine', node, MACHINES_NAMESPACE);
    if (existing) return;
    const data: Record<string, unknown> = { cpu: r.capacity.cpu, memoryMb: r.capacity.memoryMb, labels: { ...r.labels } };
    if (r.ports) data.ports = [...r.ports];
    const res: Partial<Resource> = { type: 'machine', namespace: MACHINES_NAMESPACE, name: node, tags: { 'os0/node': node }, data };
    try {
      await this.opts.core.submit({ op: 'create', resource: res }, { actor: SYSTEM_ACTOR });
    } catch (e) {
      // Someone (a person, the machines driver) created it meanwhile: theirs stands.
      if (!this.opts.core.get('machine', node, MACHINES_NAMESPACE)) throw e;
    }
  }

  private async writeObserved(node: string, reason?: string): Promise<void> {
    const s = this.seen.get(node);
    if (!s) return;
    const data: MachineObserved = {
      capacity: s.capacity,
      usage: s.usage,
      heartbeatAt: new Date(s.at).toISOString(),
      heartbeatMs: s.heartbeatMs,
      health: s.health,
      ...(s.health === 'down' && reason ? { reason } : {}),
    };
    await this.opts.core.submit({ op: 'apply', resource: { type: 'machine/observed', namespace: MACHINES_NAMESPACE, name: node, data } }, { actor: SYSTEM_ACTOR });
  }
}

function validCapacity(c: unknown): c is MachineCapacity {
  const x = c as MachineCapacity | null;
  return !!x && typeof x === 'object' && Number.isFinite(x.cpu) && x.cpu > 0 && Number.isFinite(x.memoryMb) && x.memoryMb > 0;
}
