/**
 * One L4 load balancer: a TCP listener that hands each connection to the next healthy backend
 * (round robin) and then only moves bytes, with `pipe` both ways and Nagle off, so no JS runs per
 * chunk beyond the streams' own. Bytes are counted from the sockets' own counters when a
 * connection closes (and read live for a snapshot), not chunk by chunk.
 *
 * Backends are health-checked on a timer each (health.ts); a connection that cannot be made
 * counts as a failed check and the next backend is tried, so a client is not refused while
 * another backend would take it. A removed backend drains: no new connections, the ones it has
 * go on until they end or the drain timeout cuts them.
 */
import * as net from 'node:net';
import type { ProxyConfig } from './config.ts';
import { probe } from './health.ts';

export type Health = 'unknown' | 'healthy' | 'unhealthy';

/** What a balancer reports on its own (the device stamps and emits it). */
export type BalancerEvent =
  | { type: 'health'; proxyId: string; backendId: string; health: Health; error?: string }
  | { type: 'drained'; proxyId: string; backendId: string; forced: boolean; connectionsCut: number };

export interface BackendSnapshot {
  id: string;
  host: string;
  port: number;
  health: Health;
  draining: boolean;
  connectionsActive: number;
  connectionsTotal: number;
  /** Connections that could not be made to it. */
  connectFailures: number;
  /** Bytes sent to it, and received from it. */
  bytesIn: number;
  bytesOut: number;
  lastCheckAt: number | null;
  lastError: string | null;
}

export interface BalancerSnapshot {
  proxyId: string;
  listen: { host: string; port: number };
  state: 'serving' | 'stopping';
  connectionsActive: number;
  connectionsMax: number;
  connectionsTotal: number;
  /** Closed at once: over connectionsMax, or no backend to take them. */
  refusedOverLimit: number;
  refusedNoBackend: number;
  /** Bytes from clients, and to clients. */
  bytesIn: number;
  bytesOut: number;
  backends: BackendSnapshot[];
}

interface Conn {
  client: net.Socket;
  backend: net.Socket;
  to: Backend;
  connected: boolean;
}

class Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  health: Health = 'unknown';
  passes = 0;
  failures = 0;
  draining = false;
  gone = false;
  readonly conns = new Set<Conn>();
  connectionsTotal = 0;
  connectFailures = 0;
  /** Bytes of its closed connections; the open ones are read from their sockets. */
  bytesInClosed = 0;
  bytesOutClosed = 0;
  lastCheckAt: number | null = null;
  lastError: string | null = null;
  timer: NodeJS.Timeout | undefined;
  drainTimer: NodeJS.Timeout | undefined;

  constructor(spec: { id: string; host: string; port: number }) {
    this.id = spec.id;
    this.host = spec.host;
    this.port = spec.port;
  }
}

/** Connection attempts for one client before it is closed (each to a different backend). */
const ATTEMPTS_MAX = 3;

export class Balancer {
  readonly proxyId: string;
  private config: ProxyConfig;
  private readonly server: net.Server;
  private readonly onEvent: (e: BalancerEvent) => void;
  private readonly active = new Map<string, Backend>();
  private readonly draining = new Set<Backend>();
  private eligible: Backend[] = [];
  private next = 0;
  private readonly clients = new Set<net.Socket>();
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private connectionsTotal = 0;
  private refusedOverLimit = 0;
  private refusedNoBackend = 0;
  private bytesInClosed = 0;
  private bytesOutClosed = 0;

  private constructor(config: ProxyConfig, server: net.Server, onEvent: (e: BalancerEvent) => void) {
    this.proxyId = config.proxyId;
    this.config = config;
    this.server = server;
    this.onEvent = onEvent;
    server.maxConnections = config.connectionsMax;
    server.on('connection', (s) => this.onConnection(s));
    server.on('drop', () => this.refusedOverLimit++);
    for (const spec of config.backends) this.add(spec);
    this.pickable();
  }

  /** Listens on `config.listen`; the port (when 0 was asked) is in `listen` after. */
  static async start(config: ProxyConfig, onEvent: (e: BalancerEvent) => void): Promise<Balancer> {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: config.listen.host, port: config.listen.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      const at = `${config.listen.host}:${config.listen.port}`;
      if (e.code === 'EADDRINUSE') throw new Error(`load balancer ${config.proxyId} cannot listen on ${at}: the port is in use; pick another port`);
      if (e.code === 'EACCES') throw new Error(`load balancer ${config.proxyId} cannot listen on ${at}: a port below 1024 needs privileges; pick another port`);
      throw new Error(`load balancer ${config.proxyId} cannot listen on ${at}: ${e.code ?? e.message}`);
    });
    server.on('error', () => {}); // accept errors (EMFILE…) drop that one connection, not the listener
    const bound = (server.address() as net.AddressInfo).port;
    return new Balancer({ ...config, listen: { ...config.listen, port: bound } }, server, onEvent);
  }

  get listen(): { host: string; port: number } {
    return { ...this.config.listen };
  }

  /**
   * Applies a new configuration with the same listen address: new backends join (checked at
   * once), missing ones drain, health, timeouts and limits change. Returns whether anything did.
   */
  reconfigure(config: ProxyConfig): boolean {
    const before = JSON.stringify(this.comparable(this.config));
    const healthChanged = JSON.stringify([config.check, config.timing]) !== JSON.stringify([this.config.check, this.config.timing]);
    this.config = { ...config, listen: this.config.listen };
    this.server.maxConnections = config.connectionsMax;
    const wanted = new Map(config.backends.map((b) => [b.id, b]));
    for (const b of [...this.active.values()]) {
      const spec = wanted.get(b.id);
      if (!spec || spec.host !== b.host || spec.port !== b.port) this.drain(b);
    }
    for (const spec of config.backends) {
      if (this.active.has(spec.id)) {
        if (healthChanged) this.schedule(this.active.get(spec.id)!, 0);
        continue;
      }
      const revived = [...this.draining].find((b) => b.id === spec.id && b.host === spec.host && b.port === spec.port);
      if (revived) {
        clearTimeout(revived.drainTimer);
        this.draining.delete(revived);
        revived.draining = false;
        this.active.set(revived.id, revived);
        this.schedule(revived, 0);
      } else this.add(spec);
    }
    this.pickable();
    return before !== JSON.stringify(this.comparable(config));
  }

  /**
   * Stops accepting and drains every backend; resolves once the last connection is gone (or cut
   * at the drain timeout).
   */
  stop(): Promise<void> {
    if (this.stopped) return this.stopped;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const b of [...this.active.values()]) this.drain(b);
    this.pickable();
    // Clients still waiting for a backend connection have nowhere to go now.
    this.stopped = closed;
    return closed;
  }

  /** Cuts everything at once (the agent is going away). */
  async destroy(): Promise<void> {
    const stopping = this.stop();
    for (const b of [...this.draining]) this.cut(b);
    for (const c of this.clients) c.destroy();
    await stopping;
  }

  snapshot(): BalancerSnapshot {
    let bytesIn = this.bytesInClosed;
    let bytesOut = this.bytesOutClosed;
    for (const c of this.clients) {
      bytesIn += c.bytesRead;
      bytesOut += c.bytesWritten;
    }
    return {
      proxyId: this.proxyId,
      listen: { ...this.config.listen },
      state: this.stopping ? 'stopping' : 'serving',
      connectionsActive: this.clients.size,
      connectionsMax: this.config.connectionsMax,
      connectionsTotal: this.connectionsTotal,
      refusedOverLimit: this.refusedOverLimit,
      refusedNoBackend: this.refusedNoBackend,
      bytesIn,
      bytesOut,
      backends: [...this.active.values(), ...this.draining].map((b) => backendSnapshot(b)),
    };
  }

  private comparable(c: ProxyConfig): unknown {
    return { ...c, listen: undefined };
  }

  private add(spec: { id: string; host: string; port: number }): void {
    const b = new Backend(spec);
    this.active.set(b.id, b);
    this.schedule(b, 0);
  }

  /** The backends a new connection may go to: healthy ones; if none is, those not checked yet. */
  private pickable(): void {
    const all = [...this.active.values()];
    const healthy = all.filter((b) => b.health === 'healthy');
    this.eligible = healthy.length > 0 ? healthy : all.filter((b) => b.health === 'unknown');
  }

  private pick(tried: Set<Backend>): Backend | undefined {
    const list = this.eligible;
    for (let i = 0; i < list.length; i++) {
      const b = list[this.next % list.length];
      this.next = (this.next + 1) % 1_000_000_007;
      if (!tried.has(b)) return b;
    }
    return undefined;
  }

  private onConnection(client: net.Socket): void {
    if (this.stopping) {
      client.destroy();
      return;
    }
    this.connectionsTotal++;
    this.clients.add(client);
    client.on('error', () => {});
    client.once('close', () => {
      this.clients.delete(client);
      this.bytesInClosed += client.bytesRead;
      this.bytesOutClosed += client.bytesWritten;
    });
    this.connect(client, new Set());
  }

  private connect(client: net.Socket, tried: Set<Backend>): void {
    const to = this.stopping ? undefined : this.pick(tried);
    if (!to || client.destroyed) {
      if (!to) this.refusedNoBackend++;
      client.destroy();
      return;
    }
    tried.add(to);
    const backend = net.connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: true });
    const conn: Conn = { client, backend, to, connected: false };
    to.conns.add(conn);
    to.connectionsTotal++;
    let connectError = '';
    const connectTimer = setTimeout(() => {
      connectError = `no connection within ${this.config.connectTimeoutMs} ms`;
      backend.destroy();
    }, this.config.connectTimeoutMs);
    const clientGone = (hadError: boolean) => {
      // A client that closed cleanly has also ended both ways: the backend has been told by pipe.
      if (hadError || !conn.connected) backend.destroy();
    };
    client.once('close', clientGone);
    backend.on('error', (e: NodeJS.ErrnoException) => {
      if (!conn.connected) connectError = `connect: ${e.code ?? e.message}`;
    });
    backend.once('connect', () => {
      clearTimeout(connectTimer);
      conn.connected = true;
      client.setTimeout(this.config.idleTimeoutMs, () => {
        client.destroy();
        backend.destroy();
      });
      client.pipe(backend);
      backend.pipe(client);
    });
    backend.once('close', (hadError) => {
      clearTimeout(connectTimer);
      to.conns.delete(conn);
      to.bytesInClosed += backend.bytesWritten;
      to.bytesOutClosed += backend.bytesRead;
      if (!conn.connected) {
        client.off('close', clientGone);
        if (client.destroyed) {
          // The client left before the backend answered: no fault of the backend's.
          if (to.draining && to.conns.size === 0) this.drained(to, false, 0);
          return;
        }
        to.connectFailures++;
        this.failed(to, connectError || 'connection closed before it was made');
        if (tried.size < ATTEMPTS_MAX) this.connect(client, tried);
        else {
          this.refusedNoBackend++;
          client.destroy();
        }
      } else if (hadError) client.destroy();
      if (to.draining && to.conns.size === 0) this.drained(to, false, 0);
    });
  }

  private drain(b: Backend): void {
    if (b.draining) return;
    b.draining = true;
    clearTimeout(b.timer);
    this.active.delete(b.id);
    this.draining.add(b);
    if (b.conns.size === 0) {
      this.drained(b, false, 0);
      return;
    }
    b.drainTimer = setTimeout(() => this.cut(b), this.config.drainTimeoutMs);
    b.drainTimer.unref();
  }

  private cut(b: Backend): void {
    const n = b.conns.size;
    for (const c of [...b.conns]) {
      c.client.destroy();
      c.backend.destroy();
    }
    if (!b.gone) this.drained(b, n > 0, n);
  }

  private drained(b: Backend, forced: boolean, connectionsCut: number): void {
    if (b.gone) return;
    b.gone = true;
    clearTimeout(b.drainTimer);
    this.draining.delete(b);
    this.onEvent({ type: 'drained', proxyId: this.proxyId, backendId: b.id, forced, connectionsCut });
  }

  private schedule(b: Backend, delayMs: number): void {
    clearTimeout(b.timer);
    b.timer = setTimeout(() => void this.check(b), delayMs);
    b.timer.unref();
  }

  private async check(b: Backend): Promise<void> {
    const startedAt = Date.now();
    const { check, timing } = this.config;
    const r = await probe(check, b.host, b.port, timing.timeoutMs);
    if (b.draining || this.stopping) return;
    b.lastCheckAt = Date.now();
    if (r.ok) this.passed(b);
    else this.failed(b, r.error ?? 'failed');
    this.schedule(b, Math.max(0, timing.intervalMs - (Date.now() - startedAt)));
  }

  private passed(b: Backend): void {
    b.passes++;
    b.failures = 0;
    // A backend never checked before joins on its first pass; one that failed needs the threshold.
    const needed = b.health === 'unknown' ? 1 : this.config.timing.healthyThreshold;
    if (b.health !== 'healthy' && b.passes >= needed) this.turn(b, 'healthy');
  }

  private failed(b: Backend, error: string): void {
    b.failures++;
    b.passes = 0;
    b.lastError = error;
    if (b.health !== 'unhealthy' && b.failures >= this.config.timing.unhealthyThreshold) this.turn(b, 'unhealthy', error);
  }

  private turn(b: Backend, health: Health, error?: string): void {
    b.health = health;
    if (b.draining) return;
    this.pickable();
    this.onEvent({ type: 'health', proxyId: this.proxyId, backendId: b.id, health, ...(error ? { error } : {}) });
  }
}

function backendSnapshot(b: Backend): BackendSnapshot {
  let bytesIn = b.bytesInClosed;
  let bytesOut = b.bytesOutClosed;
  for (const c of b.conns) {
    bytesIn += c.backend.bytesWritten;
    bytesOut += c.backend.bytesRead;
  }
  return {
    id: b.id,
    host: b.host,
    port: b.port,
    health: b.health,
    draining: b.draining,
    connectionsActive: b.conns.size,
    connectionsTotal: b.connectionsTotal,
    connectFailures: b.connectFailures,
    bytesIn,
    bytesOut,
    lastCheckAt: b.lastCheckAt,
    lastError: b.lastError,
  };
}
