/**
 * The dns device against the real thing: a server on 127.0.0.1 and Debian's `dig` as the client,
 * over UDP and TCP, for every record type it serves.
 */
import { execFile } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeviceEvent } from '../../../../runtime/agent/devices/device.ts';
import { DnsDevice, serviceDnsName } from '../../../../runtime/agent/devices/dns/index.ts';

const DIG = '/usr/bin/dig';

interface Dig {
  status: string;
  flags: string[];
  answer: string[][];
  authority: string[][];
  retriedOverTcp: boolean;
  raw: string;
}

function section(raw: string, name: string): string[][] {
  const at = raw.indexOf(`;; ${name} SECTION:\n`);
  if (at < 0) return [];
  const rest = raw.slice(raw.indexOf('\n', at) + 1);
  const end = rest.indexOf('\n\n');
  return (end < 0 ? rest : rest.slice(0, end))
    .split('\n')
    .filter((l) => l && !l.startsWith(';'))
    .map((l) => l.split(/\s+/));
}

/** Runs dig against the device and reads its answer; `opts` are dig's own (+tcp, +noedns…). */
function dig(port: number, name: string, type: string, ...opts: string[]): Promise<Dig> {
  const args = ['@127.0.0.1', '-p', String(port), name, type, '+tries=1', '+time=3', ...opts];
  return new Promise((resolve, reject) => {
    execFile(DIG, args, { timeout: 15_000 }, (err, stdout) => {
      if (err && !stdout) return reject(err);
      const status = /status: ([A-Z]+)/.exec(stdout)?.[1] ?? '';
      const flags = (/;; flags: ([a-z ]*);/.exec(stdout)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
      resolve({
        status,
        flags,
        answer: section(stdout, 'ANSWER'),
        authority: section(stdout, 'AUTHORITY'),
        retriedOverTcp: stdout.includes('Truncated, retrying in TCP mode'),
        raw: stdout,
      });
    });
  });
}

/** The record data of the answer lines (name, ttl, class, type dropped). */
const data = (d: Dig, type: string) => d.answer.filter((l) => l[3] === type).map((l) => l.slice(4).join(' '));

let dev: DnsDevice;
const events: DeviceEvent[] = [];
let commandSeq = 0;
const set = (record: Record<string, unknown>) => dev.handle({ id: `c-${++commandSeq}`, type: 'dns.set', record: record as never });
const remove = (recordId: string) => dev.handle({ id: `c-${++commandSeq}`, type: 'dns.remove', recordId });

beforeAll(async () => {
  dev = await DnsDevice.start({ port: 0, emit: (e) => events.push(e) });
  const records = [
    { id: 'web-a', name: 'web.demo.os0.', type: 'A', value: '10.1.2.3', ttl: 30 },
    { id: 'web-a2', name: 'web.demo.os0.', type: 'A', value: '10.1.2.4', ttl: 30 },
    { id: 'web-aaaa', name: 'web.demo.os0.', type: 'AAAA', value: 'fd00::7' },
    { id: 'www', name: 'www.demo.os0', type: 'CNAME', value: 'web.demo.os0.' },
    { id: 'srv', name: '_http._tcp.web.demo.os0.', type: 'SRV', value: '10 5 8080 web.demo.os0.' },
    { id: 'srv2', name: '_http._tcp.web.demo.os0.', type: 'SRV', value: { priority: 20, weight: 1, port: 8081, target: 'web.demo.os0' } },
    { id: 'txt', name: 'web.demo.os0.', type: 'TXT', value: ['v=1 hello', 'second'] },
  ];
  for (const r of records) expect((await set(r)).type).toBe('set');
  // Enough A records that the answer fits neither 512 bytes nor 1232 (16 bytes each plus the name).
  for (let i = 0; i < 100; i++) await set({ id: `big-${i}`, name: 'big.demo.os0.', type: 'A', value: `10.9.0.${i}` });
});

afterAll(async () => {
  await dev?.close();
});

describe('dns device, asked by dig', () => {
  for (const transport of ['+notcp', '+tcp']) {
    describe(transport === '+tcp' ? 'over TCP' : 'over UDP', () => {
      it('serves A and AAAA, authoritatively', async () => {
        const a = await dig(dev.port, 'web.demo.os0.', 'A', transport);
        expect(a.status).toBe('NOERROR');
        expect(a.flags).toContain('aa');
        expect(data(a, 'A').sort()).toEqual(['10.1.2.3', '10.1.2.4']);
        expect(a.answer[0][1]).toBe('30');
        const aaaa = await dig(dev.port, 'web.demo.os0.', 'AAAA', transport);
        expect(data(aaaa, 'AAAA')).toEqual(['fd00::7']);
      });

      it('serves a CNAME and follows it inside the zone', async () => {
        const viaAlias = await dig(dev.port, 'www.demo.os0.', 'A', transport);
        expect(viaAlias.status).toBe('NOERROR');
        expect(data(viaAlias, 'CNAME')).toEqual(['web.demo.os0.']);
        expect(data(viaAlias, 'A').sort()).toEqual(['10.1.2.3', '10.1.2.4']);
        const cname = await dig(dev.port, 'www.demo.os0.', 'CNAME', transport);
        expect(data(cname, 'CNAME')).toEqual(['web.demo.os0.']);
        expect(data(cname, 'A')).toEqual([]);
      });

      it('serves SRV and TXT', async () => {
        const srv = await dig(dev.port, '_http._tcp.web.demo.os0.', 'SRV', transport);
        expect(data(srv, 'SRV').sort()).toEqual(['10 5 8080 web.demo.os0.', '20 1 8081 web.demo.os0.']);
        const txt = await dig(dev.port, 'web.demo.os0.', 'TXT', transport);
        expect(data(txt, 'TXT')).toEqual(['"v=1 hello" "second"']);
      });

      it('serves the SOA at the apex', async () => {
        const soa = await dig(dev.port, 'os0.', 'SOA', transport);
        expect(soa.status).toBe('NOERROR');
        const [line] = data(soa, 'SOA');
        expect(line).toMatch(/^ns\.os0\. hostmaster\.os0\. \d+ 3600 600 86400 5$/);
        expect(Number(line.split(' ')[2])).toBe(dev.snapshot().serial);
      });

      it('answers NXDOMAIN for a name that does not exist, with the SOA in authority', async () => {
        const nx = await dig(dev.port, 'nope.demo.os0.', 'A', transport);
        expect(nx.status).toBe('NXDOMAIN');
        expect(nx.flags).toContain('aa');
        expect(nx.answer).toEqual([]);
        expect(nx.authority.map((l) => l[3])).toEqual(['SOA']);
        expect(nx.authority[0][0]).toBe('os0.');
      });

      it('answers NODATA for a name without the type asked, and for a name that only has names below it', async () => {
        const nodata = await dig(dev.port, 'www.demo.os0.', 'TXT', transport);
        // www is a CNAME: the chain is followed to web, which has TXT; ask a type web lacks instead.
        expect(nodata.status).toBe('NOERROR');
        const noSrv = await dig(dev.port, 'web.demo.os0.', 'SRV', transport);
        expect(noSrv.status).toBe('NOERROR');
        expect(noSrv.answer).toEqual([]);
        expect(noSrv.authority.map((l) => l[3])).toEqual(['SOA']);
        const between = await dig(dev.port, 'demo.os0.', 'A', transport);
        expect(between.status).toBe('NOERROR');
        expect(between.answer).toEqual([]);
        expect(between.authority.map((l) => l[3])).toEqual(['SOA']);
      });

      it('refuses names outside the zone', async () => {
        const out = await dig(dev.port, 'example.com.', 'A', transport);
        expect(out.status).toBe('REFUSED');
        expect(out.flags).not.toContain('aa');
        expect(out.answer).toEqual([]);
      });

      it('matches names without regard to case', async () => {
        const a = await dig(dev.port, 'WEB.Demo.OS0.', 'A', transport);
        expect(data(a, 'A').sort()).toEqual(['10.1.2.3', '10.1.2.4']);
      });
    });
  }

  it('truncates over UDP with TC (512 bytes without EDNS), and dig gets the whole answer over TCP', async () => {
    const cut = await dig(dev.port, 'big.demo.os0.', 'A', '+noedns', '+ignore');
    expect(cut.flags).toContain('tc');
    expect(cut.answer).toEqual([]);
    const retried = await dig(dev.port, 'big.demo.os0.', 'A', '+noedns');
    expect(retried.retriedOverTcp).toBe(true);
    expect(data(retried, 'A')).toHaveLength(100);
    expect(retried.flags).not.toContain('tc');
  });

  it('truncates at the EDNS size the client gives (capped at 1232), and not below it', async () => {
    // 20 A records of 16 bytes each plus a short name fit 1232 bytes but not 512.
    for (let i = 0; i < 20; i++) await set({ id: `mid-${i}`, name: 'mid.demo.os0.', type: 'A', value: `10.8.0.${i}` });
    const fits = await dig(dev.port, 'mid.demo.os0.', 'A', '+bufsize=1232', '+ignore');
    expect(fits.flags).not.toContain('tc');
    expect(data(fits, 'A')).toHaveLength(20);
    const small = await dig(dev.port, 'mid.demo.os0.', 'A', '+bufsize=512', '+ignore');
    expect(small.flags).toContain('tc');
    const big = await dig(dev.port, 'big.demo.os0.', 'A', '+bufsize=4096', '+ignore');
    expect(big.flags).toContain('tc');
    const retried = await dig(dev.port, 'big.demo.os0.', 'A', '+bufsize=4096');
    expect(retried.retriedOverTcp).toBe(true);
    expect(data(retried, 'A')).toHaveLength(100);
    expect(dev.snapshot().counters.truncated).toBeGreaterThanOrEqual(4);
  });
});

describe('dns device on the wire', () => {
  const udpAsk = (bytes: Buffer) =>
    new Promise<Buffer | null>((resolve) => {
      const s = dgram.createSocket('udp4');
      const t = setTimeout(() => (s.close(), resolve(null)), 500);
      s.on('message', (m) => (clearTimeout(t), s.close(), resolve(m)));
      s.send(bytes, dev.port, '127.0.0.1');
    });

  it('answers garbage with FORMERR, ignores what is shorter than a header, and keeps serving', async () => {
    const garbage = Buffer.from([0x12, 0x34, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff]);
    const formerr = await udpAsk(garbage);
    expect(formerr).not.toBeNull();
    const decoded = dnsPacket.decode(formerr!);
    expect(decoded.id).toBe(0x1234);
    expect((decoded as unknown as { rcode: string }).rcode).toBe('FORMERR');
    expect(await udpAsk(Buffer.from([1, 2, 3]))).toBeNull();
    const notimp = await udpAsk(dnsPacket.encode({ type: 'query', id: 7, flags: 2 << 11, questions: [{ type: 'A', name: 'web.demo.os0' }] }));
    expect((dnsPacket.decode(notimp!) as unknown as { rcode: string }).rcode).toBe('NOTIMP');
    expect(data(await dig(dev.port, 'web.demo.os0.', 'A'), 'A')).toHaveLength(2);
  });

  it('answers several queries sent at once on one TCP connection, in order', async () => {
    const names = ['web.demo.os0', 'nope.demo.os0', 'example.com', 'os0'];
    const types = ['A', 'A', 'A', 'SOA'] as const;
    const wire = Buffer.concat(names.map((name, i) => dnsPacket.streamEncode({ type: 'query', id: 100 + i, questions: [{ type: types[i], name }] })));
    const replies = await new Promise<dnsPacket.Packet[]>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: dev.port });
      let buf = Buffer.alloc(0);
      const out: dnsPacket.Packet[] = [];
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          out.push(dnsPacket.streamDecode(buf));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (out.length === names.length) (s.destroy(), resolve(out));
      });
      s.on('error', reject);
      // Split mid-message: the server must put the pieces back together.
      s.write(wire.subarray(0, 5));
      setTimeout(() => s.write(wire.subarray(5)), 20);
    });
    expect(replies.map((r) => r.id)).toEqual([100, 101, 102, 103]);
    expect(replies.map((r) => (r as unknown as { rcode: string }).rcode)).toEqual(['NOERROR', 'NXDOMAIN', 'REFUSED', 'NOERROR']);
  });
});

describe('dns device commands', () => {
  it('a changed or removed record is served at once (no stale cached answer)', async () => {
    await set({ id: 'api', name: 'api.zone.os0.', type: 'A', value: '10.0.0.1' });
    expect(data(await dig(dev.port, 'api.zone.os0.', 'A'), 'A')).toEqual(['10.0.0.1']);
    expect(data(await dig(dev.port, 'api.zone.os0.', 'A'), 'A')).toEqual(['10.0.0.1']);
    const serial = dev.snapshot().serial;
    await set({ id: 'api', name: 'api.zone.os0.', type: 'A', value: '10.0.0.2' });
    expect(dev.snapshot().serial).toBeGreaterThan(serial);
    expect(data(await dig(dev.port, 'api.zone.os0.', 'A'), 'A')).toEqual(['10.0.0.2']);
    const removed = await remove('api');
    expect(removed).toMatchObject({ type: 'removed', recordId: 'api', existed: true });
    expect((await dig(dev.port, 'api.zone.os0.', 'A')).status).toBe('NXDOMAIN');
    expect(dev.snapshot().counters.cacheHits).toBeGreaterThan(0);
  });

  it('is idempotent by command id and by record id; every outcome is also an event', async () => {
    const before = events.length;
    const cmd = { id: 'same-id', type: 'dns.set' as const, record: { id: 'idem', name: 'idem.demo.os0.', type: 'A' as const, value: '10.0.0.9' } };
    const first = await dev.handle(cmd);
    expect(first).toMatchObject({ type: 'set', commandId: 'same-id', changed: true, name: 'idem.demo.os0.' });
    const serial = dev.snapshot().serial;
    const again = await dev.handle(cmd);
    expect(again).toEqual(first);
    expect(dev.snapshot().serial).toBe(serial);
    // A new command setting the same record as it is changes nothing.
    const same = await set(cmd.record);
    expect(same).toMatchObject({ type: 'set', changed: false });
    expect(dev.snapshot().records.filter((r) => r.id === 'idem')).toHaveLength(1);
    expect(await remove('never-set')).toMatchObject({ type: 'removed', existed: false });
    expect(events.slice(before).map((e) => e.type)).toEqual(['set', 'set', 'set', 'removed']);
    expect(events.slice(before).every((e) => e.device === 'dns' && typeof e.commandId === 'string')).toBe(true);
  });

  it('refuses bad records with a one-line error and serves nothing of them', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ id: 'x1', name: 'web.example.com.', type: 'A', value: '10.0.0.1' }, /outside the zone os0\./],
      [{ id: 'x2', name: 'bad.demo.os0.', type: 'A', value: 'not-an-ip' }, /IPv4 address/],
      [{ id: 'x3', name: 'bad.demo.os0.', type: 'AAAA', value: '10.0.0.1' }, /IPv6 address/],
      [{ id: 'x4', name: 'bad.demo.os0.', type: 'MX', value: 'mail' }, /use one of A, AAAA, CNAME, SRV, TXT/],
      [{ id: 'x5', name: 'bad.demo.os0.', type: 'SRV', value: '10 5 port web' }, /SRV port/],
      [{ id: 'x6', name: 'bad.demo.os0.', type: 'A', value: '10.0.0.1', ttl: -1 }, /ttl/],
      [{ id: 'x7', name: '-bad.demo.os0.', type: 'A', value: '10.0.0.1' }, /not a DNS name/],
      [{ id: 'x8', name: 'www.demo.os0.', type: 'A', value: '10.0.0.1' }, /CNAME holds nothing else/],
    ];
    for (const [record, message] of cases) {
      const out = await set(record);
      expect(out.type).toBe('failed');
      if (out.type !== 'failed') continue;
      expect(out.error).toMatch(message);
      expect(out.error).not.toContain('\n');
    }
    expect((await dig(dev.port, 'bad.demo.os0.', 'A')).status).toBe('NXDOMAIN');
    expect(data(await dig(dev.port, 'www.demo.os0.', 'A'), 'CNAME')).toEqual(['web.demo.os0.']);
    const unknown = await dev.handle({ id: 'c-unknown', type: 'dns.flush' } as never);
    expect(unknown).toMatchObject({ type: 'failed', code: 'invalid' });
  });

  it('bounds the records of the zone', async () => {
    const small = await DnsDevice.start({ port: 0, recordsMax: 2, emit: () => {} });
    try {
      const put = (id: string, value: string) => small.handle({ id: `s-${id}-${value}`, type: 'dns.set', record: { id, name: `${id}.demo.os0.`, type: 'A', value } });
      expect((await put('a', '10.0.0.1')).type).toBe('set');
      expect((await put('b', '10.0.0.2')).type).toBe('set');
      const third = await put('c', '10.0.0.3');
      expect(third).toMatchObject({ type: 'failed', code: 'limit' });
      // Replacing a record it holds is no new record.
      expect((await put('b', '10.0.0.4')).type).toBe('set');
      expect(small.snapshot().recordsCount).toBe(2);
      expect((await dig(small.port, 'c.demo.os0.', 'A')).status).toBe('NXDOMAIN');
    } finally {
      await small.close();
    }
  });

  it('has a plain-JSON snapshot, and refuses commands once closed', async () => {
    const d = await DnsDevice.start({ port: 0, emit: () => {} });
    await d.handle({ id: 'j-1', type: 'dns.set', record: { id: 'j', name: 'j.demo.os0.', type: 'SRV', value: '1 2 3 j.demo.os0.' } });
    const snap = d.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap.records).toEqual([{ id: 'j', name: 'j.demo.os0.', type: 'SRV', ttl: 30, value: { priority: 1, weight: 2, port: 3, target: 'j.demo.os0.' } }]);
    await d.close();
    expect(await d.handle({ id: 'j-2', type: 'dns.remove', recordId: 'j' })).toMatchObject({ type: 'failed', code: 'closed' });
  });

  it('says clearly when its port is taken', async () => {
    await expect(DnsDevice.start({ port: dev.port, emit: () => {} })).rejects.toThrow(/already in use.*--dns-port/);
  });
});

describe('serviceDnsName', () => {
  it('names a service by its namespace path read from the end', () => {
    expect(serviceDnsName('demo', 'web')).toBe('web.demo.os0.');
    expect(serviceDnsName('acme/prod', 'web')).toBe('web.prod.acme.os0.');
    expect(serviceDnsName('a/b/c', 'api')).toBe('api.c.b.a.os0.');
    expect(serviceDnsName('', 'top')).toBe('top.os0.');
  });

  it('refuses what makes no DNS name', () => {
    expect(() => serviceDnsName('demo', 'x'.repeat(64))).toThrow(/longer than 63/);
    expect(() => serviceDnsName('demo', 'a b')).toThrow(/not a DNS name/);
  });
});
