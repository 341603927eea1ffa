/**
 * The node agent: osØ's hands on one machine (README.md beside this file).
 *
 *   const agent = new Agent({ name: 'n1', dataDir, bus, capacity?, ports, labels, dnsPort });
 *   await agent.start();   // devices open (processes re-adopted), `registered`, heartbeats, commands
 *   await agent.stop();    // `leaving`; processes keep running for the next agent to adopt
 *
 * Node-commands arrive on the bus stream `cmd.NAME` (durable consumer `agent`), are dispatched
 * by their `<device>.<verb>` type, and are acked only after their outcome event is on `events`:
 * an agent that dies in between gets the command again, and the device answers it from memory
 * (idempotent by id) or, after a restart, by looking (a start of a running task is `already`).
 * Every event leaves through one ordered outbox (bounded; on overflow the oldest `log` events go
 * first, then the oldest others, counted).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ApiClient } from '../../core/api/client/index.ts';
import { commandStream, EVENTS, type Bus, type Consumer, type Message } from '../../core/bus/bus.ts';
import type { AgentEvent, DeviceEvent, FailedEvent, MachineCapacity, MachineUsage, NodeCommand } from '../../core/bus/messages.ts';
import { DnsDevice } from './devices/dns/index.ts';
import { LocalProcesses } from './devices/process/index.ts';
import { ProxyDevice } from './devices/proxy/index.ts';
import { LocalVolumes } from './devices/volume/index.ts';

export interface AgentOptions {
  /** The node's name: 1-64 letters, digits, "-" or "_"; its command stream is `cmd.NAME`. */
  name: string;
  /** The agent's own directory (process state and logs, volumes). */
  dataDir: string;
  bus: Bus;
  /**
   * The typed API client with the node's token (os0 node join), for what the agent reads from
   * the tree (what is assigned to it); the host agent of `os0 up` has none (it shares the core).
   */
  api?: ApiClient;
  /** Detected from the OS when absent (all CPUs, all memory). */
  capacity?: Partial<MachineCapacity>;
  /** The port range processes get PORT from, inclusive (default 20000-20999). */
  ports?: [number, number];
  labels?: Record<string, string>;
  /** ms between heartbeats (default 5000); the machine is down after three missed ones. */
  heartbeatMs?: number;
  /** The DNS device's UDP and TCP port on `dnsHost` (0: any free one); null: no DNS device. */
  dnsPort?: number | null;
  dnsHost?: string;
  /** Node-commands handled at once (default 32). */
  inFlightMax?: number;
  /** Events waiting to be published (default 10,000). */
  outboxMax?: number;
  /** Process device settings passed through. */
  processesMax?: number;
  graceMs?: number;
  /** One line of progress or warning. */
  report?: (message: string) => void;
}

export const AGENT_DEFAULTS = { ports: [20000, 20999] as [number, number], heartbeatMs: 5000, inFlightMax: 32, outboxMax: 10_000 } as const;
/** A bus stream name and a resource name at once: lowercase letters, digits, "-" and "_". */
const NAME_RE = /^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$/;
const LABEL_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
const LABELS_MAX = 64;
const DEVICES = ['process', 'volume', 'proxy', 'dns'] as const;
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((r) => {
    const t = setTimeout(r, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), r()), { once: true });
  });

/** What the OS says this machine has. */
export function detectCapacity(): MachineCapacity {
  return { cpu: os.availableParallelism(), memoryMb: Math.floor(os.totalmem() / 2 ** 20) };
}

/** Checks an agent's options; a one-line message naming the flag to fix, or undefined. */
export function checkAgentOptions(o: Pick<AgentOptions, 'name' | 'capacity' | 'ports' | 'labels' | 'heartbeatMs'>): string | undefined {
  if (!NAME_RE.test(o.name)) return `node name "${o.name}" must be 1-64 lowercase letters, digits, "-" or "_", starting and ending with a letter or digit (--name)`;
  const c = o.capacity ?? {};
  if (c.cpu !== undefined && !(Number.isFinite(c.cpu) && c.cpu > 0 && c.cpu <= 4096)) return `--cpu must be a number of CPUs above 0 (got ${c.cpu})`;
  if (c.memoryMb !== undefined && !(Number.isInteger(c.memoryMb) && c.memoryMb > 0)) return `--memory-mb must be a whole number of MiB above 0 (got ${c.memoryMb})`;
  if (o.ports) {
    const [a, b] = o.ports;
    if (!Number.isInteger(a) || !Number.isInteger(b) || a < 1024 || b > 65535 || a > b) return `--ports must be A-B with 1024 <= A <= B <= 65535 (got ${a}-${b})`;
  }
  const labels = Object.entries(o.labels ?? {});
  if (labels.length > LABELS_MAX) return `at most ${LABELS_MAX} labels`;
  for (const [k, v] of labels) {
    if (!LABEL_KEY_RE.test(k)) return `label key "${k}" must be letters, digits, ".", "_", "/" or "-" (--labels k=v,...)`;
    if (typeof v !== 'string' || v.length > 256) return `label ${k}: the value must be a string of at most 256 characters`;
  }
  if (o.heartbeatMs !== undefined && !(Number.isInteger(o.heartbeatMs) && o.heartbeatMs >= 50 && o.heartbeatMs <= 600_000)) return 'heartbeatMs must be 50-600000';
  return undefined;
}

type AnyDevice = { name: string; handle(c: never): Promise<DeviceEvent>; snapshot(): unknown; close(): Promise<void> };

interface Outgoing {
  data: DeviceEvent & { node: string };
  id?: string;
  done: () => void;
  fail: (e: Error) => void;
}

export class Agent {
  readonly name: string;
  readonly opts: AgentOptions;
  readonly capacity: MachineCapacity;
  readonly ports: [number, number];
  readonly labels: Record<string, string>;
  readonly heartbeatMs: number;
  readonly api: ApiClient | null;
  private processes: LocalProcesses | null = null;
  private volumes: LocalVolumes | null = null;
  private proxy: ProxyDevice | null = null;
  private dnsDev: DnsDevice | null = null;
  private consumer: Consumer | null = null;
  private readonly ac = new AbortController();
  private loop: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly outbox: Outgoing[] = [];
  private pumping: Promise<void> | null = null;
  /** Publishes of command outcomes, by command id, awaited before the command is acked. */
  private readonly outcomes = new Map<string, Promise<void>>();
  private readonly chains = new Map<string, Promise<void>>();
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private stopped = false;
  /** Once stopping: when unpublished events are given up. */
  private giveUpAt = Infinity;
  /** Events dropped because the outbox was full. */
  dropped = 0;
  /** Node-commands handled (each acked). */
  handled = 0;

  constructor(opts: AgentOptions) {
    const bad = checkAgentOptions(opts);
    if (bad) throw new Error(bad);
    this.opts = opts;
    this.name = opts.name;
    const detected = detectCapacity();
    this.capacity = { cpu: opts.capacity?.cpu ?? detected.cpu, memoryMb: opts.capacity?.memoryMb ?? detected.memoryMb };
    this.ports = opts.ports ?? [...AGENT_DEFAULTS.ports];
    this.labels = { ...(opts.labels ?? {}) };
    this.heartbeatMs = opts.heartbeatMs ?? AGENT_DEFAULTS.heartbeatMs;
    this.api = opts.api ?? null;
  }

  /** Opens the devices (re-adopting processes), registers, heartbeats and consumes `cmd.NAME`. */
  async start(): Promise<void> {
    fs.mkdirSync(this.opts.dataDir, { recursive: true });
    const emit = (e: DeviceEvent) => this.publish(e);
    try {
      this.processes = await LocalProcesses.open({
        dataDir: path.join(this.opts.dataDir, 'processes'),
        emit,
        ports: this.ports,
        processesMax: this.opts.processesMax,
        graceMs: this.opts.graceMs,
      });
      this.volumes = await LocalVolumes.open({ dataDir: path.join(this.opts.dataDir, 'volumes'), emit });
      this.proxy = new ProxyDevice({ emit });
      if (this.opts.dnsPort !== null) this.dnsDev = await DnsDevice.start({ port: this.opts.dnsPort ?? 7053, host: this.opts.dnsHost, emit });
      this.consumer = await this.opts.bus.consumer(commandStream(this.name), 'agent', { ackWaitMs: 60_000, deliveriesMax: 20, ackPendingMax: 1000 });
      await this.agentEvent({
        type: 'registered',
        capacity: this.capacity,
        ports: this.ports,
        labels: this.labels,
        heartbeatMs: this.heartbeatMs,
        hostname: os.hostname(),
      });
    } catch (e) {
      await this.closeDevices();
      throw e;
    }
    this.heartbeat = setInterval(() => void this.agentEvent({ type: 'heartbeat', capacity: this.capacity, usage: this.usage(), heartbeatMs: this.heartbeatMs }).catch(() => {}), this.heartbeatMs);
    this.heartbeat.unref?.();
    void this.agentEvent({ type: 'heartbeat', capacity: this.capacity, usage: this.usage(), heartbeatMs: this.heartbeatMs }).catch(() => {});
    this.loop = this.consume();
  }

  /** The DNS device's port (when it runs). */
  get dnsPort(): number | null {
    return this.dnsDev ? (this.dnsDev.snapshot().port as number) : null;
  }

  usage(): MachineUsage {
    const snap = this.processes?.snapshot();
    return {
      cpu: Math.round(os.loadavg()[0] * 100) / 100,
      memoryMb: Math.floor((os.totalmem() - os.freemem()) / 2 ** 20),
      processes: snap ? snap.processes.length : 0,
    };
  }

  /** What each device holds now. */
  snapshot(): Record<string, unknown> {
    return {
      name: this.name,
      capacity: this.capacity,
      ports: this.ports,
      labels: this.labels,
      handled: this.handled,
      dropped: this.dropped,
      process: this.processes?.snapshot(),
      volume: this.volumes?.snapshot(),
      proxy: this.proxy?.snapshot(),
      dns: this.dnsDev?.snapshot(),
    };
  }

  /** The process device (for `os0 logs` and tests). */
  get processDevice(): LocalProcesses {
    if (!this.processes) throw new Error('the agent is not started');
    return this.processes;
  }

  /**
   * Stops taking commands, lets those in flight finish (up to `waitMs`), says `leaving`, and
   * closes the devices: processes keep running (the next agent on this data dir adopts them).
   */
  async stop(waitMs = 5000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.ac.abort();
    this.wake?.();
    if (this.heartbeat) clearInterval(this.heartbeat);
    const until = Date.now() + waitMs;
    this.giveUpAt = until;
    await Promise.race([this.loop ?? Promise.resolve(), sleep(waitMs)]);
    while (this.inFlight > 0 && Date.now() < until) await sleep(20);
    await Promise.race([this.agentEvent({ type: 'leaving' }).catch(() => {}), sleep(Math.max(0, until - Date.now()))]);
    await this.closeDevices();
  }

  private async closeDevices(): Promise<void> {
    for (const d of [this.dnsDev, this.proxy, this.volumes, this.processes]) {
      try {
        await d?.close();
      } catch {}
    }
    this.dnsDev = this.proxy = this.volumes = this.processes = null;
  }

  private agentEvent(body: AgentEvent extends infer E ? (E extends AgentEvent ? Omit<E, 'device' | 'at'> : never) : never): Promise<void> {
    return this.publish({ ...body, device: 'agent', at: Date.now() } as DeviceEvent);
  }

  /** Queues an event for `events`; resolves once the bus holds it. */
  private publish(e: DeviceEvent): Promise<void> {
    const max = this.opts.outboxMax ?? AGENT_DEFAULTS.outboxMax;
    if (this.outbox.length >= max) {
      // Log lines are in the files anyway: they go first; then the oldest of the rest.
      let i = this.outbox.findIndex((o) => o.data.type === 'log');
      if (i < 0) i = 0;
      const [gone] = this.outbox.splice(i, 1);
      gone.fail(new Error('the agent\'s outbox was full'));
      this.dropped++;
    }
    // An outcome gets a stable id: published again after a redelivery, the bus keeps it once.
    const id = e.commandId ? `o-${createHash('sha256').update(`${this.name}\0${e.commandId}\0${e.type}`).digest('hex').slice(0, 40)}` : undefined;
    const p = new Promise<void>((done, fail) => this.outbox.push({ data: { ...e, node: this.name }, id, done, fail }));
    p.catch(() => {});
    if (e.commandId) this.outcomes.set(e.commandId, p);
    this.pumping ??= this.pump().finally(() => (this.pumping = null));
    return p;
  }

  /** Publishes the outbox in order; a failed publish is retried with backoff until it works or the agent is closed. */
  private async pump(): Promise<void> {
    let wait = 50;
    while (this.outbox.length) {
      const o = this.outbox[0];
      try {
        await this.opts.bus.publish(EVENTS, o.data, o.id ? { id: o.id } : undefined);
        this.outbox.shift();
        o.done();
        wait = 50;
      } catch (e) {
        if (Date.now() > this.giveUpAt) {
          for (const x of this.outbox.splice(0)) x.fail(new Error(`events not published: ${(e as Error).message}`));
          break;
        }
        this.opts.report?.(`publishing events: ${(e as Error).message}; retrying`);
        await sleep(wait);
        wait = Math.min(wait * 2, 2000);
      }
    }
  }

  /** The command loop: fetch what there is room for, dispatch each, ack after its outcome is published. */
  private async consume(): Promise<void> {
    const max = this.opts.inFlightMax ?? AGENT_DEFAULTS.inFlightMax;
    let wait = 100;
    while (!this.ac.signal.aborted) {
      if (this.inFlight >= max) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      let msgs: Message[];
      try {
        msgs = await this.consumer!.fetch({ max: max - this.inFlight, waitMs: 2000, signal: this.ac.signal });
        wait = 100;
      } catch (e) {
        if (this.ac.signal.aborted) break;
        this.opts.report?.(`reading ${commandStream(this.name)}: ${(e as Error).message}; retrying`);
        await sleep(wait, this.ac.signal);
        wait = Math.min(wait * 2, 5000);
        continue;
      }
      for (const m of msgs) this.dispatch(m);
    }
  }

  private dispatch(m: Message): void {
    this.inFlight++;
    const cmd = m.data as NodeCommand;
    const key = chainKey(cmd);
    const prev = this.chains.get(key) ?? Promise.resolve();
    const run = prev.then(() => this.run(m));
    const tail = run.finally(() => {
      if (this.chains.get(key) === tail) this.chains.delete(key);
      this.inFlight--;
      this.wake?.();
      this.wake = null;
    });
    this.chains.set(key, tail);
  }

  private async run(m: Message): Promise<void> {
    const cmd = m.data as NodeCommand;
    const id = typeof cmd?.id === 'string' && cmd.id ? cmd.id : `bus-${m.seq}`;
    try {
      const device = this.deviceFor(cmd);
      if (typeof device === 'string') await this.publish(failed(id, 'invalid', device));
      else {
        await device.handle(cmd as never);
        // The device emitted the outcome; wait until the bus holds it.
        await (this.outcomes.get(id) ?? Promise.resolve());
      }
      this.outcomes.delete(id);
      await this.consumer!.ack(m.seq);
      this.handled++;
    } catch (e) {
      // Not acked: the bus delivers it again after its ack wait, and the device answers it again.
      this.opts.report?.(`command ${id}: ${(e as Error).message}`);
      this.outcomes.delete(id);
    }
  }

  private deviceFor(cmd: NodeCommand): AnyDevice | string {
    if (cmd === null || typeof cmd !== 'object' || typeof cmd.type !== 'string') return 'a node-command is an object {id, type: "<device>.<verb>", ...}';
    const dev = cmd.type.split('.')[0];
    const found = { process: this.processes, volume: this.volumes, proxy: this.proxy, dns: this.dnsDev }[dev as (typeof DEVICES)[number]];
    if (!DEVICES.includes(dev as (typeof DEVICES)[number])) return `no device "${dev}" for ${cmd.type}: devices are ${DEVICES.join(', ')}`;
    if (!found) return `the ${dev} device does not run on node ${this.name}`;
    return found as unknown as AnyDevice;
  }
}

function failed(commandId: string, code: FailedEvent['code'], error: string): FailedEvent {
  return { device: 'agent', type: 'failed', at: Date.now(), commandId, code, error };
}

/** Commands on one thing (a task, a volume, a load balancer, a record) run in stream order; others at once. */
function chainKey(cmd: NodeCommand): string {
  const c = cmd as unknown as Record<string, unknown> | null;
  if (!c || typeof c !== 'object') return '?';
  const dev = String(c.type ?? '').split('.')[0];
  const rec = c.record as { id?: unknown } | undefined;
  const proxy = c.proxy as { proxyId?: unknown } | undefined;
  const thing = c.task ?? c.volume ?? c.proxyId ?? proxy?.proxyId ?? c.recordId ?? rec?.id ?? c.id;
  return `${dev}:${String(thing)}`;
}
