/**
 * The dns device: an authoritative server for the zone `os0.` (UDP and TCP on one port), whose
 * records come and go by node-commands. See README.md beside it.
 *
 *   const dns = await DnsDevice.start({ port: 7053, emit });
 *   await dns.handle({ id: 'c-1', type: 'dns.set', record: { id: 'svc/demo/web', name: 'web.demo.os0.', type: 'A', value: '127.0.0.1' } });
 *   await dns.handle({ id: 'c-2', type: 'dns.remove', recordId: 'svc/demo/web' });
 */
import { Commands, DeviceError, type Device, type DeviceEvent, type Emit, type FailedEvent } from '../device.ts';
import { DnsServer, type DnsCounters } from './server.ts';
import { Zone, ZoneError, type DnsRecord, type DnsRecordInput } from './zone.ts';

export { serviceDnsName, ZONE_FQDN } from './names.ts';
export type { DnsRecord, DnsRecordInput, DnsRecordType, SrvValue } from './zone.ts';

import type { DnsCommand, DnsEvent } from '../../../../core/bus/messages.ts';
export type { DnsCommand, DnsEvent, DnsRemovedEvent, DnsSetEvent } from '../../../../core/bus/messages.ts';

export interface DnsSnapshot {
  zone: string;
  host: string;
  port: number;
  serial: number;
  recordsCount: number;
  recordsMax: number;
  records: DnsRecord[];
  counters: DnsCounters;
}

export interface DnsDeviceOptions {
  emit: Emit<DnsEvent>;
  /** 127.0.0.1 by default. */
  host?: string;
  /** UDP and TCP port, 7053 by default; 0 picks a free one. */
  port?: number;
  /** Records the zone may hold (10,000 by default); `dns.set` past it fails with `limit`. */
  recordsMax?: number;
}

export class DnsDevice implements Device<DnsCommand, DnsEvent, DnsSnapshot> {
  readonly name = 'dns';
  private readonly zone: Zone;
  private readonly server: DnsServer;
  private readonly commands: Commands<DnsEvent>;

  private constructor(zone: Zone, server: DnsServer, emit: Emit<DnsEvent>) {
    this.zone = zone;
    this.server = server;
    this.commands = new Commands<DnsEvent>('dns', emit);
  }

  static async start(opts: DnsDeviceOptions): Promise<DnsDevice> {
    let server: DnsServer | undefined;
    const zone = new Zone({ recordsMax: opts.recordsMax, onChange: () => server?.clearCache() });
    server = await DnsServer.listen({ zone, host: opts.host, port: opts.port });
    return new DnsDevice(zone, server, opts.emit);
  }

  get port(): number {
    return this.server.port;
  }

  get host(): string {
    return this.server.host;
  }

  handle(command: DnsCommand): Promise<DnsEvent | FailedEvent> {
    return this.commands.run(command, async () => {
      switch (command?.type) {
        case 'dns.set': {
          const { changed, record } = zoneCall(() => this.zone.set(command.record));
          return { type: 'set', recordId: record.id, name: record.name + '.', changed, serial: this.zone.serial };
        }
        case 'dns.remove': {
          if (typeof command.recordId !== 'string' || command.recordId === '') throw new DeviceError('invalid', 'dns.remove needs recordId, the id the record was set with');
          const existed = this.zone.remove(command.recordId);
          return { type: 'removed', recordId: command.recordId, existed, serial: this.zone.serial };
        }
        default:
          throw new DeviceError('invalid', `the dns device takes dns.set and dns.remove, not ${JSON.stringify((command as { type?: unknown })?.type)}`);
      }
    });
  }

  snapshot(): DnsSnapshot {
    return {
      zone: 'os0.',
      host: this.server.host,
      port: this.server.port,
      serial: this.zone.serial,
      recordsCount: this.zone.size,
      recordsMax: this.zone.limit,
      records: this.zone.records().map((r) => ({ ...r, name: r.name + '.' })),
      counters: structuredClone(this.server.counters),
    };
  }

  /** Stops answering: the records live in memory only, and the agent sets them again on start. */
  async close(): Promise<void> {
    this.commands.close();
    await this.server.close();
  }
}

function zoneCall<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ZoneError) throw new DeviceError(e.code, e.message);
    throw e;
  }
}
