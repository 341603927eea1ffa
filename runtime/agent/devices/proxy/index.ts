/**
 * The proxy device: L4 TCP load balancers on this machine, each named by a proxy id and set by
 * node-commands. See README.md beside it.
 *
 *   const proxy = new ProxyDevice({ emit });
 *   await proxy.handle({ id: 'c-1', type: 'proxy.configure', proxy: {
 *     proxyId: 'demo/web', listen: { host: '127.0.0.1', port: 18080 },
 *     backends: [{ host: '127.0.0.1', port: 20001 }, { host: '127.0.0.1', port: 20002 }],
 *     health: { type: 'http', path: '/healthz', intervalMs: 2000 } } });
 *   await proxy.handle({ id: 'c-2', type: 'proxy.remove', proxyId: 'demo/web' });
 */
import { Commands, DeviceError, type Device, type DeviceEvent, type Emit, type FailedEvent } from '../device.ts';
import { Balancer, type BalancerEvent, type BalancerSnapshot } from './balancer.ts';
import { checkConfig, ConfigError, type ProxyConfig, type ProxyConfigInput } from './config.ts';

export type { BackendSpec, ProxyConfigInput } from './config.ts';
export type { BackendSnapshot, BalancerSnapshot, Health } from './balancer.ts';
export { proxyMetrics } from './metrics.ts';

import type { ProxyCommand, ProxyConfiguredEvent, ProxyEvent } from '../../../../core/bus/messages.ts';
export type { ProxyCommand, ProxyConfiguredEvent, ProxyDrainedEvent, ProxyEvent, ProxyHealthEvent, ProxyRemovedEvent } from '../../../../core/bus/messages.ts';

export interface ProxySnapshot {
  proxies: BalancerSnapshot[];
  /** Removed load balancers whose connections are still draining. */
  stopping: BalancerSnapshot[];
}

export interface ProxyDeviceOptions {
  emit: Emit<ProxyEvent>;
  /** Load balancers this device runs at once (64 by default). */
  proxiesMax?: number;
}

export class ProxyDevice implements Device<ProxyCommand, ProxyEvent, ProxySnapshot> {
  readonly name = 'proxy';
  private readonly commands: Commands<ProxyEvent>;
  private readonly proxies = new Map<string, Balancer>();
  private readonly stopping = new Set<Balancer>();
  private readonly proxiesMax: number;
  /** Commands for one proxy id run one after another, so two configures never race a listen. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(opts: ProxyDeviceOptions) {
    this.commands = new Commands<ProxyEvent>('proxy', opts.emit);
    this.proxiesMax = opts.proxiesMax ?? 64;
  }

  handle(command: ProxyCommand): Promise<ProxyEvent | FailedEvent> {
    return this.commands.run(command, async () => {
      switch (command?.type) {
        case 'proxy.configure': {
          let config: ProxyConfig;
          try {
            config = checkConfig(command.proxy);
          } catch (e) {
            if (e instanceof ConfigError) throw new DeviceError('invalid', e.message);
            throw e;
          }
          return this.serial(config.proxyId, () => this.configure(config));
        }
        case 'proxy.remove': {
          const { proxyId } = command;
          if (typeof proxyId !== 'string' || proxyId === '') throw new DeviceError('invalid', 'proxy.remove needs proxyId, the id the load balancer was configured with');
          return this.serial(proxyId, async () => ({ type: 'removed' as const, proxyId, existed: this.remove(proxyId) }));
        }
        default:
          throw new DeviceError('invalid', `the proxy device takes proxy.configure and proxy.remove, not ${JSON.stringify((command as { type?: unknown })?.type)}`);
      }
    });
  }

  snapshot(): ProxySnapshot {
    return {
      proxies: [...this.proxies.values()].map((b) => b.snapshot()),
      stopping: [...this.stopping].map((b) => b.snapshot()),
    };
  }

  /** Cuts every connection and stops listening: load balancers live as long as their agent. */
  async close(): Promise<void> {
    this.commands.close();
    const all = [...this.proxies.values(), ...this.stopping];
    this.proxies.clear();
    await Promise.all(all.map((b) => b.destroy()));
    this.stopping.clear();
  }

  private async configure(config: ProxyConfig): Promise<Omit<ProxyConfiguredEvent, 'device' | 'at' | 'commandId'>> {
    const existing = this.proxies.get(config.proxyId);
    const sameListen = existing && existing.listen.host === config.listen.host && (config.listen.port === 0 || existing.listen.port === config.listen.port);
    if (existing && sameListen) {
      const changed = existing.reconfigure(config);
      return { type: 'configured', proxyId: config.proxyId, listen: existing.listen, changed };
    }
    for (const other of this.proxies.values()) {
      if (other !== existing && config.listen.port !== 0 && other.listen.port === config.listen.port && other.listen.host === config.listen.host) {
        throw new DeviceError('conflict', `load balancer ${other.proxyId} already listens on ${config.listen.host}:${config.listen.port}; remove it or pick another port`);
      }
    }
    if (!existing && this.proxies.size >= this.proxiesMax) {
      throw new DeviceError('limit', `this machine runs ${this.proxiesMax} load balancers, the most it may; remove one first`);
    }
    let balancer: Balancer;
    try {
      // A new address for an existing load balancer: listen there first, so that a refusal
      // leaves the old one serving; only the same port on another host needs the old one gone.
      balancer = await Balancer.start(config, (e) => this.onBalancerEvent(e)).catch(async (e: unknown) => {
        if (!existing || existing.listen.port !== config.listen.port) throw e;
        this.remove(config.proxyId);
        await new Promise((r) => setImmediate(r)); // let the old listening socket close first
        return Balancer.start(config, (ev) => this.onBalancerEvent(ev));
      });
    } catch (e) {
      throw new DeviceError('host', (e as Error).message);
    }
    if (existing && this.proxies.get(config.proxyId) === existing) this.remove(config.proxyId);
    this.proxies.set(config.proxyId, balancer);
    return { type: 'configured', proxyId: config.proxyId, listen: balancer.listen, changed: true };
  }

  private remove(proxyId: string): boolean {
    const b = this.proxies.get(proxyId);
    if (!b) return false;
    this.proxies.delete(proxyId);
    this.stopping.add(b);
    void b.stop().then(() => this.stopping.delete(b));
    return true;
  }

  private onBalancerEvent(e: BalancerEvent): void {
    this.commands.event(e);
  }

  private serial<T>(proxyId: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(proxyId) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => {});
    this.queues.set(proxyId, tail);
    void tail.then(() => {
      if (this.queues.get(proxyId) === tail) this.queues.delete(proxyId);
    });
    return run;
  }
}
