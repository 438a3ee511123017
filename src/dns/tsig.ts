/**
 * TSIG (RFC 8945): HMAC-SHA256 / HMAC-SHA512 signing and verification of whole DNS messages.
 *
 * The MAC covers, in order: (responses only) the request's MAC with its 2-byte length; the
 * message as it was before the TSIG record was added (ARCOUNT without it, the original ID);
 * then the "TSIG variables": key name and algorithm name in canonical (lower-case,
 * uncompressed) wire form, class ANY, TTL 0, time signed (48 bits), fudge, error, other len
 * and other data. The MAC size and original ID fields of the RDATA are not covered.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLASS, TYPE, encodeName, readHeader, readName, skipName, walkRecords } from './wire.js';

export type TsigAlgorithm = 'hmac-sha256' | 'hmac-sha512';

const DIGESTS: Record<TsigAlgorithm, { hash: string; size: number }> = {
  'hmac-sha256': { hash: 'sha256', size: 32 },
  'hmac-sha512': { hash: 'sha512', size: 64 },
};

export const TSIG_ALGORITHMS = Object.keys(DIGESTS) as TsigAlgorithm[];

/** TSIG error field values (RFC 8945 §5.3, RFC 8945 §6). */
export const TSIG_ERROR_NAMES: Record<number, string> = {
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};

export interface TsigKey {
  /** Key name as configured on the server, e.g. `tlsa-update.` */
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
}

export interface TsigRecord {
  keyName: string;
  algorithm: string;
  /** Seconds since the epoch. */
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  otherData: Buffer;
  /** Offset of the TSIG record in the message: everything before it is what was signed. */
  start: number;
}

export function tsigErrorName(code: number): string {
  return TSIG_ERROR_NAMES[code] ?? (code === 0 ? 'NOERROR' : `TSIG error ${code}`);
}

/** The TSIG record, which must be the last record of the additional section, or undefined. */
export function parseTsig(msg: Buffer): TsigRecord | undefined {
  const spans = walkRecords(msg);
  const tsigAt = spans.findIndex((s) => s.type === TYPE.TSIG);
  if (tsigAt < 0) return undefined;
  const s = spans[tsigAt]!;
  if (tsigAt !== spans.length - 1 || s.section !== 3)
    throw new RangeError('TSIG record is not the last additional record');
  let o = s.rdataAt;
  const algorithm = readName(msg, o);
  o = skipName(msg, o);
  const timeSigned = msg.readUInt16BE(o) * 2 ** 32 + msg.readUInt32BE(o + 2);
  const fudge = msg.readUInt16BE(o + 6);
  const macSize = msg.readUInt16BE(o + 8);
  const mac = Buffer.from(msg.subarray(o + 10, o + 10 + macSize));
  o += 10 + macSize;
  const originalId = msg.readUInt16BE(o);
  const error = msg.readUInt16BE(o + 2);
  const otherLen = msg.readUInt16BE(o + 4);
  const otherData = Buffer.from(msg.subarray(o + 6, o + 6 + otherLen));
  if (o + 6 + otherLen !== s.end) throw new RangeError('malformed TSIG RDATA');
  return {
    keyName: readName(msg, s.start),
    algorithm,
    timeSigned,
    fudge,
    mac,
    originalId,
    error,
    otherData,
    start: s.start,
  };
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(Math.floor(n / 2 ** 32) & 0xffff, 0);
  b.writeUInt32BE(n % 2 ** 32, 2);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

interface Variables {
  keyName: string;
  algorithm: string;
  timeSigned: number;
  fudge: number;
  error: number;
  otherData: Buffer;
}

function variables(v: Variables): Buffer {
  const fixed = Buffer.alloc(6);
  fixed.writeUInt16BE(CLASS.ANY, 0);
  fixed.writeUInt32BE(0, 2);
  return Buffer.concat([
    encodeName(v.keyName, true),
    fixed,
    encodeName(v.algorithm, true),
    u48(v.timeSigned),
    u16(v.fudge),
    u16(v.error),
    u16(v.otherData.length),
    v.otherData,
  ]);
}

function computeMac(key: TsigKey, unsigned: Buffer, v: Variables, requestMac?: Buffer): Buffer {
  const h = createHmac(DIGESTS[key.algorithm].hash, key.secret);
  if (requestMac) h.update(Buffer.concat([u16(requestMac.length), requestMac]));
  h.update(unsigned);
  h.update(variables(v));
  return h.digest();
}

export interface SignOptions {
  /** Seconds since the epoch (default: now). */
  now?: number;
  /** Allowed clock difference in seconds (default 300, as BIND and Knot use). */
  fudge?: number;
  /** For a response: the MAC of the request it answers. */
  requestMac?: Buffer;
  /** For a response: a TSIG error to report. */
  error?: number;
  otherData?: Buffer;
}

/** Appends a TSIG record to `msg` (which must not have one). Returns the signed message and its MAC. */
export function signMessage(
  msg: Buffer,
  key: TsigKey,
  opts: SignOptions = {},
): { message: Buffer; mac: Buffer } {
  const v: Variables = {
    keyName: key.name,
    algorithm: key.algorithm,
    timeSigned: Math.floor(opts.now ?? Date.now() / 1000),
    fudge: opts.fudge ?? 300,
    error: opts.error ?? 0,
    otherData: opts.otherData ?? Buffer.alloc(0),
  };
  const mac = computeMac(key, msg, v, opts.requestMac);
  const rdata = Buffer.concat([
    encodeName(v.algorithm, true),
    u48(v.timeSigned),
    u16(v.fudge),
    u16(mac.length),
    mac,
    msg.subarray(0, 2),
    u16(v.error),
    u16(v.otherData.length),
    v.otherData,
  ]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE.TSIG, 0);
  fixed.writeUInt16BE(CLASS.ANY, 2);
  fixed.writeUInt32BE(0, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  const out = Buffer.concat([msg, encodeName(key.name, true), fixed, rdata]);
  out.writeUInt16BE(msg.readUInt16BE(10) + 1, 10);
  return { message: out, mac };
}

export type TsigVerdict =
  | { ok: true; tsig: TsigRecord }
  | {
      ok: false;
      /** unsigned: no TSIG record; key-mismatch: another key name or algorithm; error: the
       *  signer reports a TSIG error (BADSIG, BADKEY, ...); bad-mac; bad-time. */
      reason: 'unsigned' | 'key-mismatch' | 'error' | 'bad-mac' | 'bad-time';
      tsig?: TsigRecord;
    };

export interface VerifyOptions {
  /** For a response: the MAC of our request. */
  requestMac?: Buffer;
  now?: number;
}

/** Checks the TSIG of a received message against `key`. */
export function verifyMessage(msg: Buffer, key: TsigKey, opts: VerifyOptions = {}): TsigVerdict {
  const tsig = parseTsig(msg);
  if (!tsig) return { ok: false, reason: 'unsigned' };
  if (
    tsig.keyName !== encodeNameText(key.name) ||
    tsig.algorithm !== encodeNameText(key.algorithm)
  ) {
    return { ok: false, reason: 'key-mismatch', tsig };
  }
  // A BADSIG/BADKEY answer carries no MAC; a BADTIME answer is signed but is still a failure.
  if (tsig.error !== 0) return { ok: false, reason: 'error', tsig };
  const unsigned = Buffer.from(msg.subarray(0, tsig.start));
  unsigned.writeUInt16BE(tsig.originalId, 0);
  unsigned.writeUInt16BE(readHeader(msg).counts[3] - 1, 10);
  const expected = computeMac(key, unsigned, tsig, opts.requestMac);
  const size = tsig.mac.length;
  // Truncated MACs (RFC 8945 §5.2.2.1) are accepted down to half the digest and 10 bytes.
  if (size > expected.length || size < Math.max(10, expected.length / 2))
    return { ok: false, reason: 'bad-mac', tsig };
  if (!timingSafeEqual(tsig.mac, expected.subarray(0, size)))
    return { ok: false, reason: 'bad-mac', tsig };
  const now = Math.floor(opts.now ?? Date.now() / 1000);
  if (Math.abs(now - tsig.timeSigned) > tsig.fudge) return { ok: false, reason: 'bad-time', tsig };
  return { ok: true, tsig };
}

function encodeNameText(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** Decodes a base64 TSIG secret; undefined when it is not base64 or is empty. */
export function decodeSecret(base64: string): Buffer | undefined {
  const s = base64.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || s.length % 4 === 1) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.length > 0 ? b : undefined;
}
