/**
 * RFC 2136 UPDATE messages for TLSA records (and TXT, for ACME DNS-01), and the plain queries
 * the rfc2136 provider needs.
 *
 *   zone section   ZONE SOA IN
 *   prerequisite   OWNER CNAME NONE, TTL 0, no RDATA: "RRset does not exist" (§2.4.3). A server
 *                  answers YXRRSET when a CNAME is there. (§2.4.5 "name is not in use" would
 *                  also fail beside foreign TLSA records, so it cannot be used.)
 *   update         OWNER TLSA NONE, TTL 0, exact RDATA: delete one RR (§2.5.4), then
 *                  OWNER TLSA IN, TTL, RDATA: add one RR (§2.5.1). Class ANY without RDATA
 *                  (§2.5.2, delete a whole RRset) is never used: other writers' records stay.
 */
import type { TlsaRecord } from '../tlsa/record.js';
import { CLASS, MessageWriter, OPCODE, TYPE } from './wire.js';

export function tlsaRdata(r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): Buffer {
  if (!/^([0-9a-fA-F]{2})+$/.test(r.data))
    throw new RangeError(`TLSA association data is not hex: "${r.data.slice(0, 20)}..."`);
  return Buffer.concat([
    Buffer.from([r.usage, r.selector, r.matching]),
    Buffer.from(r.data, 'hex'),
  ]);
}

export function parseTlsaRdata(owner: string, rdata: Buffer): TlsaRecord {
  if (rdata.length < 3) throw new RangeError(`TLSA RDATA of ${rdata.length} bytes at ${owner}`);
  return {
    owner,
    usage: rdata[0]! as TlsaRecord['usage'],
    selector: rdata[1]! as TlsaRecord['selector'],
    matching: rdata[2]! as TlsaRecord['matching'],
    data: rdata.subarray(3).toString('hex'),
  };
}

export interface TlsaUpdate {
  zone: string;
  owner: string;
  add: TlsaRecord[];
  remove: TlsaRecord[];
  ttl: number;
}

/** One UPDATE message (unsigned) for the TLSA changes at one owner name. */
export function buildTlsaUpdate(id: number, u: TlsaUpdate): Buffer {
  return buildTlsaUpdateMany(id, u.zone, [u]);
}

/** One UPDATE message for the TLSA changes at several owner names of one zone: a "no CNAME"
 *  prerequisite per owner, then every delete and add. The server applies it all or nothing. */
export function buildTlsaUpdateMany(
  id: number,
  zone: string,
  updates: Omit<TlsaUpdate, 'zone'>[],
): Buffer {
  const w = new MessageWriter(id, OPCODE.UPDATE << 11);
  w.question(zone, TYPE.SOA, CLASS.IN);
  for (const u of updates)
    w.rr(1, { name: u.owner, type: TYPE.CNAME, class: CLASS.NONE, ttl: 0, rdata: Buffer.alloc(0) });
  for (const u of updates) {
    for (const r of u.remove)
      w.rr(2, { name: u.owner, type: TYPE.TLSA, class: CLASS.NONE, ttl: 0, rdata: tlsaRdata(r) });
    for (const r of u.add)
      w.rr(2, { name: u.owner, type: TYPE.TLSA, class: CLASS.IN, ttl: u.ttl, rdata: tlsaRdata(r) });
  }
  return w.finish();
}

/** TXT RDATA holding one value: character-strings of at most 255 bytes each (RFC 1035
 *  §3.3.14); a DNS-01 digest (43 characters) is one. */
export function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length || parts.length === 0; at += 255) {
    const chunk = bytes.subarray(at, at + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

/** The value of a TXT record: its character-strings joined (as RFC 7208 §3.3 reads them). */
export function parseTxtRdata(rdata: Buffer): string {
  const parts: Buffer[] = [];
  for (let at = 0; at < rdata.length; ) {
    const len = rdata[at]!;
    parts.push(rdata.subarray(at + 1, at + 1 + len));
    at += 1 + len;
  }
  return Buffer.concat(parts).toString('utf8');
}

export interface TxtUpdate {
  owner: string;
  add: string[];
  remove: string[];
  ttl: number;
}

/** One UPDATE message for TXT values at one owner name: the same "no CNAME" prerequisite and
 *  single-RR deletes and adds as for TLSA, never an RRset delete (other values stay). */
export function buildTxtUpdate(id: number, zone: string, u: TxtUpdate): Buffer {
  const w = new MessageWriter(id, OPCODE.UPDATE << 11);
  w.question(zone, TYPE.SOA, CLASS.IN);
  w.rr(1, { name: u.owner, type: TYPE.CNAME, class: CLASS.NONE, ttl: 0, rdata: Buffer.alloc(0) });
  for (const v of u.remove)
    w.rr(2, { name: u.owner, type: TYPE.TXT, class: CLASS.NONE, ttl: 0, rdata: txtRdata(v) });
  for (const v of u.add)
    w.rr(2, { name: u.owner, type: TYPE.TXT, class: CLASS.IN, ttl: u.ttl, rdata: txtRdata(v) });
  return w.finish();
}

/** EDNS's DO bit ("DNSSEC OK", RFC 3225), in the OPT record's TTL field. */
const EDNS_DO = 0x8000;

/** A non-recursive query; with `udpSize`, an EDNS OPT record (it must precede a TSIG record,
 *  which signMessage appends last), and with `dnssecOk` its DO bit: a signed zone's answer
 *  then carries the RRSIGs of its RRsets. Written straight into one buffer of its final size
 *  (a run reads thousands of owners, one query each): one name needs no compression, so the
 *  bytes are what MessageWriter writes for the same question. */
export function buildQuery(
  id: number,
  name: string,
  type: number,
  udpSize?: number,
  dnssecOk = false,
): Buffer {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  // A length byte per label and the root's zero byte; one byte per character, as Buffer's
  // 'ascii' encoding writes them.
  const nameLength = n ? n.length + 2 : 1;
  const b = Buffer.allocUnsafe(12 + nameLength + 4 + (udpSize ? 11 : 0));
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(OPCODE.QUERY << 11, 2);
  b.writeUInt16BE(1, 4);
  b.writeUInt32BE(0, 6);
  b.writeUInt16BE(udpSize ? 1 : 0, 10);
  let o = 12;
  if (n) {
    for (let from = 0; ; ) {
      const dot = n.indexOf('.', from);
      const end = dot < 0 ? n.length : dot;
      const length = end - from;
      if (length === 0 || length > 63) throw new RangeError(`bad DNS label in "${name}"`);
      b[o] = length;
      b.write(n.slice(from, end), o + 1, 'ascii');
      o += 1 + length;
      if (dot < 0) break;
      from = dot + 1;
    }
  }
  b[o] = 0;
  b.writeUInt16BE(type, o + 1);
  b.writeUInt16BE(CLASS.IN, o + 3);
  o += 5;
  if (udpSize) {
    // OPT: root name, type, the UDP size in the class field, the DO bit in the TTL, no RDATA.
    b[o] = 0;
    b.writeUInt16BE(TYPE.OPT, o + 1);
    b.writeUInt16BE(udpSize, o + 3);
    b.writeUInt32BE(dnssecOk ? EDNS_DO : 0, o + 5);
    b.writeUInt16BE(0, o + 9);
  }
  return b;
}
