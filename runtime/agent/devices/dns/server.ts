/**
 * The DNS server: the zone (zone.ts) on UDP and TCP, one port for both, wire format by dns-packet.
 *
 * Hot path: an answer depends only on the query's bytes after its 2-byte id (flags, question,
 * EDNS options) and on the transport, so encoded answers are cached under exactly those bytes and
 * a repeated query costs a Map lookup, a copy and the id patched in. Any change to the zone
 * empties the cache. Over UDP an answer longer than the client's size (512 bytes without EDNS,
 * its EDNS size up to 1232 with) goes out with TC and no records; the client asks again over TCP,
 * which carries the whole answer.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet } from 'dns-packet';
import { canonicalName, inZone } from './names.ts';
import { RCODE, type Zone } from './zone.ts';

export type Transport = 'udp' | 'tcp';

/** Plain UDP answers stop at 512 bytes (RFC 1035); with EDNS at the client's size, at most this. */
const UDP_BYTES_PLAIN = 512;
export const EDNS_UDP_BYTES = 1232;
const TCP_MESSAGE_BYTES_MAX = 65535;
const HEADER_BYTES = 12;
const CACHE_ENTRIES_MAX_DEFAULT = 4096;
const TCP_CONNECTIONS_MAX_DEFAULT = 256;
const TCP_IDLE_MS_DEFAULT = 10_000;
/** A TCP client that reads no answers is cut off once this much waits to be written to it. */
const TCP_PENDING_BYTES_MAX = 1 << 20;
const BIND_TRIES_MAX = 8;

const RCODE_NAMES = ['noerror', 'formerr', 'servfail', 'nxdomain', 'notimp', 'refused'] as const;

export interface DnsCounters {
  queriesUdp: number;
  queriesTcp: number;
  /** By rcode: noerror (NODATA included), nxdomain, refused, formerr, notimp, servfail. */
  answers: Record<(typeof RCODE_NAMES)[number], number>;
  /** UDP answers sent with TC because the records did not fit. */
  truncated: number;
  cacheHits: number;
  /** Datagrams too short to answer, or answers (QR set) sent to us. */
  dropped: number;
  tcpConnections: number;
}

interface Encoded {
  bytes: Buffer;
  rcode: number;
  truncated: boolean;
}

/**
 * The answer to one query as bytes, or null when it deserves none (not a query, shorter than a
 * header). Pure: the cache and the sockets are the server's business.
 */
export function answerQuery(zone: Zone, query: Buffer, transport: Transport): Encoded | null {
  if (query.length < HEADER_BYTES) return null;
  const id = query.readUInt16BE(0);
  let q: DecodedPacket;
  try {
    q = dnsPacket.decode(query);
  } catch {
    if (query[2] & 0x80) return null;
    return encodeBare(id, query.readUInt16BE(2), RCODE.FORMERR);
  }
  if (q.flag_qr) return null;
  const opt = q.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
  const base = (query.readUInt16BE(2) & 0x0100) | dnsPacket.AUTHORITATIVE_ANSWER; // RD echoed
  const reply = (rcode: number, extra: Partial<Packet> = {}, authoritative = true): Encoded => {
    const packet: Packet = {
      type: 'response',
      id,
      flags: (authoritative ? base : base & ~dnsPacket.AUTHORITATIVE_ANSWER) | (query.readUInt16BE(2) & 0x7800) | rcode,
      questions: q.questions,
      answers: [],
      authorities: [],
      additionals: opt ? [ednsOpt(0)] : [],
      ...extra,
    };
    return encodeFitting(packet, rcode, transport === 'udp' ? udpLimit(opt) : TCP_MESSAGE_BYTES_MAX);
  };
  if (((query.readUInt16BE(2) >> 11) & 0xf) !== 0) return reply(RCODE.NOTIMP, { questions: [] }, false);
  if (opt && opt.ednsVersion > 0) return reply(0, { questions: [], additionals: [ednsOpt(1)] }, false); // BADVERS
  if (!q.questions || q.questions.length !== 1) return reply(RCODE.FORMERR, { questions: [] }, false);
  const question = q.questions[0];
  if ((question.class ?? 'IN') !== 'IN' && question.class !== 'ANY') return reply(RCODE.REFUSED, {}, false);
  if (!inZone(canonicalName(question.name))) return reply(RCODE.REFUSED, {}, false);
  try {
    const r = zone.resolve(question.name, question.type);
    return reply(r.rcode, { answers: r.answers, authorities: r.authorities });
  } catch {
    return reply(RCODE.SERVFAIL, {}, false);
  }
}

function ednsOpt(extendedRcode: number): OptAnswer {
  return { type: 'OPT', name: '.', udpPayloadSize: EDNS_UDP_BYTES, extendedRcode, ednsVersion: 0, flags: 0, flag_do: false, options: [] };
}

function udpLimit(opt: OptAnswer | undefined): number {
  if (!opt) return UDP_BYTES_PLAIN;
  return Math.min(Math.max(opt.udpPayloadSize || 0, UDP_BYTES_PLAIN), EDNS_UDP_BYTES);
}

function encodeFitting(packet: Packet, rcode: number, limit: number): Encoded {
  const full = dnsPacket.encode(packet);
  if (full.length <= limit) return { bytes: full, rcode, truncated: false };
  const opt = (packet.additionals ?? []).filter((a: Answer) => a.type === 'OPT');
  const cut = dnsPacket.encode({ ...packet, flags: (packet.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: opt });
  return { bytes: cut, rcode, truncated: true };
}

function encodeBare(id: number, queryFlags: number, rcode: number): Encoded {
  return { bytes: dnsPacket.encode({ type: 'response', id, flags: (queryFlags & 0x7900) | rcode }), rcode, truncated: false };
}

export interface DnsServerOptions {
  zone: Zone;
  /** Address to listen on; 127.0.0.1 by default. */
  host?: string;
  /** UDP and TCP port; 0 picks a free one (the same for both). */
  port?: number;
  cacheEntriesMax?: number;
  tcpConnectionsMax?: number;
  tcpIdleMs?: number;
}

export class DnsServer {
  readonly host: string;
  readonly port: number;
  readonly counters: DnsCounters = {
    queriesUdp: 0,
    queriesTcp: 0,
    answers: { noerror: 0, formerr: 0, servfail: 0, nxdomain: 0, notimp: 0, refused: 0 },
    truncated: 0,
    cacheHits: 0,
    dropped: 0,
    tcpConnections: 0,
  };
  private readonly zone: Zone;
  private readonly cache = new Map<string, Encoded>();
  private readonly cacheEntriesMax: number;
  private readonly udp: dgram.Socket;
  private readonly tcp: net.Server;
  private readonly tcpIdleMs: number;
  private readonly sockets = new Set<net.Socket>();

  private constructor(opts: DnsServerOptions, udp: dgram.Socket, tcp: net.Server, host: string, port: number) {
    this.zone = opts.zone;
    this.host = host;
    this.port = port;
    this.cacheEntriesMax = opts.cacheEntriesMax ?? CACHE_ENTRIES_MAX_DEFAULT;
    this.tcpIdleMs = opts.tcpIdleMs ?? TCP_IDLE_MS_DEFAULT;
    this.udp = udp;
    this.tcp = tcp;
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    udp.on('error', () => {}); // a send to a vanished client is not the server's failure
    tcp.maxConnections = opts.tcpConnectionsMax ?? TCP_CONNECTIONS_MAX_DEFAULT;
    tcp.on('connection', (s) => this.onConnection(s));
  }

  /** Binds UDP and TCP on one port; with port 0, retries until both get the same free port. */
  static async listen(opts: DnsServerOptions): Promise<DnsServer> {
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 7053;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`DNS port must be a whole number from 0 to 65535, not ${port}`);
    let lastError: unknown;
    for (let attempt = 0; attempt < (port === 0 ? BIND_TRIES_MAX : 1); attempt++) {
      const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind(port, host, () => (udp.off('error', reject), resolve()));
        });
      } catch (e) {
        udp.close();
        throw bindError(e, host, port, 'UDP');
      }
      const bound = udp.address().port;
      const tcp = net.createServer({ noDelay: true });
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ port: bound, host, exclusive: true }, () => (tcp.off('error', reject), resolve()));
        });
      } catch (e) {
        udp.close();
        lastError = e;
        if (port === 0 && (e as NodeJS.ErrnoException).code === 'EADDRINUSE') continue;
        throw bindError(e, host, bound, 'TCP');
      }
      try {
        udp.setRecvBufferSize(4 << 20);
        udp.setSendBufferSize(4 << 20);
      } catch {
        // The kernel caps these; the defaults still work, only bursts drop sooner.
      }
      return new DnsServer(opts, udp, tcp, host, bound);
    }
    throw bindError(lastError, host, port, 'TCP');
  }

  /** Forgets every cached answer: the zone calls this on any change. */
  clearCache(): void {
    this.cache.clear();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all([
      new Promise<void>((r) => this.udp.close(() => r())),
      new Promise<void>((r) => this.tcp.close(() => r())),
    ]);
  }

  /** The answer to `query`, from the cache when the same bytes were asked before. */
  private answer(query: Buffer, transport: Transport): Buffer | null {
    if (query.length < HEADER_BYTES) {
      this.counters.dropped++;
      return null;
    }
    const key = (transport === 'udp' ? 'u' : 't') + query.toString('latin1', 2);
    let hit = this.cache.get(key);
    if (hit) this.counters.cacheHits++;
    else {
      const fresh = answerQuery(this.zone, query, transport);
      if (!fresh) {
        this.counters.dropped++;
        return null;
      }
      hit = fresh;
      if (this.cache.size >= this.cacheEntriesMax) this.cache.delete(this.cache.keys().next().value as string);
      this.cache.set(key, fresh);
    }
    this.counters.answers[RCODE_NAMES[hit.rcode] ?? 'noerror']++;
    if (hit.truncated) this.counters.truncated++;
    const out = Buffer.allocUnsafe(hit.bytes.length);
    hit.bytes.copy(out);
    out[0] = query[0];
    out[1] = query[1];
    return out;
  }

  private onDatagram(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.counters.queriesUdp++;
    const out = this.answer(msg, 'udp');
    if (out) this.udp.send(out, rinfo.port, rinfo.address);
  }

  private onConnection(socket: net.Socket): void {
    this.counters.tcpConnections++;
    this.sockets.add(socket);
    socket.setTimeout(this.tcpIdleMs, () => socket.destroy());
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // Each message is a 2-byte length then the message (RFC 1035 4.2.2); several may arrive at once.
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (pending.length < 2 + length) break;
        const query = pending.subarray(2, 2 + length);
        pending = pending.subarray(2 + length);
        this.counters.queriesTcp++;
        const out = this.answer(query, 'tcp');
        if (!out) {
          socket.destroy();
          return;
        }
        const framed = Buffer.allocUnsafe(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        socket.write(framed);
        if (socket.writableLength > TCP_PENDING_BYTES_MAX) {
          socket.destroy();
          return;
        }
      }
      if (pending.length > 0) pending = Buffer.from(pending); // let go of the chunk it came in
    });
  }
}

function bindError(e: unknown, host: string, port: number, proto: string): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') return new Error(`DNS ${proto} port ${host}:${port} is already in use; stop what holds it or pick another port (--dns-port)`);
  if (code === 'EACCES') return new Error(`DNS ${proto} port ${host}:${port} needs privileges; pick a port above 1023 (--dns-port)`);
  return new Error(`DNS ${proto} cannot listen on ${host}:${port}: ${(e as Error)?.message ?? String(e)}`);
}
