/**
 * The records of the zone `os0.` and the answer to one question. Knows nothing of sockets or of
 * the wire: the server (server.ts) decodes queries and encodes answers with dns-packet.
 *
 * Records are keyed by an id chosen by whoever sets them (the `dns-record` resource, a service's
 * name…): setting an id again replaces its record, removing an absent id is no error. Several
 * records (several ids) may share a name and type: they form one RRset.
 */
import * as net from 'node:net';
import type { Answer, SoaAnswer } from 'dns-packet';
import { ancestorsInZone, canonicalName, inZone, nameError, ZONE } from './names.ts';

import type { DnsRecordInput, DnsRecordType, SrvValue } from '../../../../core/bus/messages.ts';
export type { DnsRecordInput, DnsRecordType, SrvValue } from '../../../../core/bus/messages.ts';
export const RECORD_TYPES: readonly DnsRecordType[] = ['A', 'AAAA', 'CNAME', 'SRV', 'TXT'];

/** A record as the zone holds it: name canonical (lowercase, no trailing dot), value checked. */
export interface DnsRecord {
  id: string;
  name: string;
  type: DnsRecordType;
  value: string | string[] | SrvValue;
  ttl: number;
}

export const TTL_DEFAULT_S = 30;
export const TTL_MAX_S = 7 * 24 * 3600;
export const RECORDS_MAX_DEFAULT = 10_000;
const RECORD_ID_CHARS_MAX = 256;
const TXT_BYTES_MAX = 4000;
/** How long resolvers may cache "no such name" and "no such type" (the SOA's minimum). */
export const NEGATIVE_TTL_S = 5;
/** CNAME hops followed inside the zone before the answer stops (loops end here too). */
const CNAME_HOPS_MAX = 8;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export class ZoneError extends Error {
  readonly code: 'invalid' | 'limit' | 'conflict';
  constructor(code: 'invalid' | 'limit' | 'conflict', message: string) {
    super(message);
    this.name = 'ZoneError';
    this.code = code;
  }
}

export interface Resolution {
  rcode: number;
  answers: Answer[];
  authorities: Answer[];
}

export class Zone {
  private readonly byId = new Map<string, DnsRecord>();
  /** name -> the records at it, by id. */
  private readonly byName = new Map<string, Map<string, DnsRecord>>();
  /** Every name that exists (holds records or lies above one), with how many records keep it. */
  private readonly nodes = new Map<string, number>();
  private readonly recordsMax: number;
  private readonly onChange: () => void;
  /** The SOA serial: moves forward on every change, and across restarts (it starts at the clock). */
  serial: number;

  constructor(opts: { recordsMax?: number; onChange?: () => void } = {}) {
    this.recordsMax = opts.recordsMax ?? RECORDS_MAX_DEFAULT;
    if (!Number.isInteger(this.recordsMax) || this.recordsMax < 1) throw new TypeError('recordsMax must be a positive integer');
    this.onChange = opts.onChange ?? (() => {});
    this.serial = Math.floor(Date.now() / 1000) >>> 0;
  }

  get size(): number {
    return this.byId.size;
  }

  get limit(): number {
    return this.recordsMax;
  }

  records(): DnsRecord[] {
    return [...this.byId.values()].map((r) => ({ ...r }));
  }

  get(id: string): DnsRecord | undefined {
    const r = this.byId.get(id);
    return r && { ...r };
  }

  /** Sets (or replaces) the record with this id. Returns whether anything changed. */
  set(input: DnsRecordInput): { changed: boolean; record: DnsRecord } {
    const record = checkRecord(input);
    const old = this.byId.get(record.id);
    if (old && sameRecord(old, record)) return { changed: false, record: { ...old } };
    if (!old && this.byId.size >= this.recordsMax) {
      throw new ZoneError('limit', `the zone ${ZONE}. holds ${this.recordsMax} records, the most it may; remove some first`);
    }
    const atName = this.byName.get(record.name);
    for (const other of atName?.values() ?? []) {
      if (other.id === record.id) continue;
      if (record.type === 'CNAME' || other.type === 'CNAME') {
        throw new ZoneError(
          'conflict',
          `${record.name}. already has a ${other.type} record (id ${other.id}); a name with a CNAME holds nothing else, so remove one first`,
        );
      }
    }
    if (old) this.unlink(old);
    this.link(record);
    this.changed();
    return { changed: true, record: { ...record } };
  }

  /** Removes the record with this id; returns whether it was there. */
  remove(id: string): boolean {
    const old = this.byId.get(id);
    if (!old) return false;
    this.unlink(old);
    this.changed();
    return true;
  }

  soa(ownerName: string = ZONE): SoaAnswer {
    return {
      type: 'SOA',
      name: ownerName,
      ttl: NEGATIVE_TTL_S,
      class: 'IN',
      data: {
        mname: `ns.${ZONE}`,
        rname: `hostmaster.${ZONE}`,
        serial: this.serial,
        refresh: 3600,
        retry: 600,
        expire: 86400,
        minimum: NEGATIVE_TTL_S,
      },
    };
  }

  /**
   * The answer to one question about a name in the zone (`qname` as asked, any case, no
   * trailing dot needed). CNAMEs are followed inside the zone; a name that does not exist is
   * NXDOMAIN and a name without the type asked is NODATA, both with the SOA in authority.
   */
  resolve(qname: string, qtype: string): Resolution {
    const answers: Answer[] = [];
    let owner = qname.endsWith('.') ? qname.slice(0, -1) : qname;
    let name = canonicalName(owner);
    const seen = new Set<string>();
    for (let hop = 0; ; hop++) {
      if (!inZone(name)) return { rcode: RCODE.NOERROR, answers, authorities: [] };
      seen.add(name);
      const here = this.byName.get(name);
      if (here && qtype !== 'CNAME' && qtype !== 'ANY') {
        const cname = firstOfType(here, 'CNAME');
        if (cname) {
          answers.push(toAnswer(owner, cname));
          const target = canonicalName(cname.value as string);
          if (hop + 1 >= CNAME_HOPS_MAX || seen.has(target)) return { rcode: RCODE.NOERROR, answers, authorities: [] };
          owner = target;
          name = target;
          continue;
        }
      }
      let matched = 0;
      if (name === ZONE && (qtype === 'SOA' || qtype === 'ANY')) {
        answers.push({ ...this.soa(owner), ttl: TTL_DEFAULT_S });
        matched++;
      }
      for (const r of here?.values() ?? []) {
        if (qtype === 'ANY' || r.type === qtype) {
          answers.push(toAnswer(owner, r));
          matched++;
        }
      }
      if (matched > 0) return { rcode: RCODE.NOERROR, answers, authorities: [] };
      const exists = name === ZONE || this.nodes.has(name);
      return { rcode: exists ? RCODE.NOERROR : RCODE.NXDOMAIN, answers, authorities: [this.soa()] };
    }
  }

  private link(r: DnsRecord): void {
    this.byId.set(r.id, r);
    let atName = this.byName.get(r.name);
    if (!atName) this.byName.set(r.name, (atName = new Map()));
    atName.set(r.id, r);
    for (const n of [r.name, ...ancestorsInZone(r.name)]) this.nodes.set(n, (this.nodes.get(n) ?? 0) + 1);
  }

  private unlink(r: DnsRecord): void {
    this.byId.delete(r.id);
    const atName = this.byName.get(r.name);
    atName?.delete(r.id);
    if (atName && atName.size === 0) this.byName.delete(r.name);
    for (const n of [r.name, ...ancestorsInZone(r.name)]) {
      const left = (this.nodes.get(n) ?? 1) - 1;
      if (left <= 0) this.nodes.delete(n);
      else this.nodes.set(n, left);
    }
  }

  private changed(): void {
    this.serial = (this.serial + 1) >>> 0;
    this.onChange();
  }
}

function firstOfType(records: Map<string, DnsRecord>, type: DnsRecordType): DnsRecord | undefined {
  for (const r of records.values()) if (r.type === type) return r;
  return undefined;
}

function toAnswer(owner: string, r: DnsRecord): Answer {
  const base = { name: owner, ttl: r.ttl, class: 'IN' as const };
  switch (r.type) {
    case 'A':
    case 'AAAA':
    case 'CNAME':
      return { ...base, type: r.type, data: r.value as string };
    case 'SRV':
      return { ...base, type: 'SRV', data: { ...(r.value as SrvValue) } };
    case 'TXT':
      return { ...base, type: 'TXT', data: txtPieces(r.value as string[]) };
  }
}

/** TXT strings on the wire are at most 255 bytes each: longer ones go out in several pieces. */
function txtPieces(strings: string[]): Buffer[] {
  const out: Buffer[] = [];
  for (const s of strings) {
    const b = Buffer.from(s, 'utf8');
    if (b.length === 0) out.push(b);
    for (let at = 0; at < b.length; at += 255) out.push(b.subarray(at, at + 255));
  }
  return out;
}

function sameRecord(a: DnsRecord, b: DnsRecord): boolean {
  return a.name === b.name && a.type === b.type && a.ttl === b.ttl && JSON.stringify(a.value) === JSON.stringify(b.value);
}

const invalid = (message: string) => new ZoneError('invalid', message);

/** Checks a record as given and returns it in the zone's form; throws ZoneError('invalid'). */
export function checkRecord(input: DnsRecordInput): DnsRecord {
  if (input === null || typeof input !== 'object') throw invalid('a record is an object {id, name, type, value, ttl?}');
  const { id, name, type, value } = input;
  if (typeof id !== 'string' || id === '' || id.length > RECORD_ID_CHARS_MAX) throw invalid(`record id must be a string of 1-${RECORD_ID_CHARS_MAX} characters`);
  const nameProblem = nameError(name);
  if (nameProblem) throw invalid(nameProblem);
  if (!RECORD_TYPES.includes(type)) throw invalid(`record type "${String(type)}" is not served; use one of ${RECORD_TYPES.join(', ')}`);
  const ttl = input.ttl ?? TTL_DEFAULT_S;
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > TTL_MAX_S) throw invalid(`ttl must be a whole number of seconds from 0 to ${TTL_MAX_S}`);
  return { id, name: canonicalName(name), type, ttl, value: checkValue(type, value, canonicalName(name)) };
}

function checkValue(type: DnsRecordType, value: unknown, name: string): string | string[] | SrvValue {
  switch (type) {
    case 'A':
      if (typeof value !== 'string' || !net.isIPv4(value)) throw invalid(`an A record's value is an IPv4 address such as 10.1.2.3, not ${JSON.stringify(value)}`);
      return value;
    case 'AAAA':
      if (typeof value !== 'string' || !net.isIPv6(value)) throw invalid(`an AAAA record's value is an IPv6 address such as fd00::1, not ${JSON.stringify(value)}`);
      return value;
    case 'CNAME': {
      if (typeof value !== 'string') throw invalid('a CNAME record\'s value is a name such as web.demo.os0.');
      const problem = targetError(value);
      if (problem) throw invalid(`CNAME target: ${problem}`);
      const target = canonicalName(value);
      if (target === name) throw invalid(`${name}. cannot be a CNAME to itself`);
      return target + '.';
    }
    case 'SRV':
      return checkSrv(value);
    case 'TXT': {
      const strings = typeof value === 'string' ? [value] : value;
      if (!Array.isArray(strings) || strings.length === 0 || !strings.every((s) => typeof s === 'string')) {
        throw invalid('a TXT record\'s value is a string or a non-empty list of strings');
      }
      const bytes = strings.reduce((n, s) => n + Buffer.byteLength(s, 'utf8'), 0);
      if (bytes > TXT_BYTES_MAX) throw invalid(`a TXT record holds at most ${TXT_BYTES_MAX} bytes of text, this one ${bytes}`);
      return [...strings];
    }
  }
}

function checkSrv(value: unknown): SrvValue {
  const usage = 'an SRV record\'s value is {priority, weight, port, target} or "priority weight port target", e.g. "10 5 8080 web.demo.os0."';
  let v: Partial<SrvValue>;
  if (typeof value === 'string') {
    const parts = value.trim().split(/\s+/);
    if (parts.length !== 4) throw invalid(usage);
    v = { priority: Number(parts[0]), weight: Number(parts[1]), port: Number(parts[2]), target: parts[3] };
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    v = value as Partial<SrvValue>;
  } else throw invalid(usage);
  for (const k of ['priority', 'weight', 'port'] as const) {
    const n = v[k];
    if (!Number.isInteger(n) || (n as number) < 0 || (n as number) > 65535) throw invalid(`SRV ${k} must be a whole number from 0 to 65535; ${usage}`);
  }
  if (typeof v.target !== 'string') throw invalid(usage);
  const problem = targetError(v.target);
  if (problem) throw invalid(`SRV target: ${problem}`);
  return { priority: v.priority!, weight: v.weight!, port: v.port!, target: canonicalName(v.target) + '.' };
}

/** A CNAME or SRV target may point anywhere (it need not be in the zone), but must be a name. */
function targetError(target: string): string | null {
  const c = canonicalName(target);
  if (c === '' || c.length > 253) return `"${target}" is not a DNS name`;
  for (const label of c.split('.')) {
    if (!/^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label)) return `"${target}" is not a DNS name`;
  }
  return null;
}
