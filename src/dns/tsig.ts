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
import { CLASS, encodeName, type RRSpan, readName, skipName, TYPE, walkRecords } from './wire.js';

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
export function parseTsig(msg: Buffer, records?: RRSpan[]): TsigRecord | undefined {
  const spans = records ?? walkRecords(msg);
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

interface Variables {
  timeSigned: number;
  fudge: number;
  error: number;
  otherData: Buffer;
}

/** What a key contributes to every message, worked out once per key: a run signs and checks
 *  thousands of messages with one key. Kept with the name, algorithm and secret it was made
 *  from, so a key object changed in place is worked out again. */
interface KeyForm {
  name: string;
  algorithm: TsigAlgorithm;
  secret: Buffer;
  /** Canonical wire forms (lower case, uncompressed), as the MAC covers them. */
  nameWire: Buffer;
  algorithmWire: Buffer;
  /** The names as parseTsig reads them from a message (lower case, trailing dot). */
  nameText: string;
  algorithmText: string;
  /** The TSIG variables up to the time signed: key name, class ANY, TTL 0, algorithm name. */
  variablesHead: Buffer;
}

const keyForms = new WeakMap<TsigKey, KeyForm>();

function keyForm(key: TsigKey): KeyForm {
  const f = keyForms.get(key);
  if (f && f.name === key.name && f.algorithm === key.algorithm && f.secret === key.secret)
    return f;
  const nameWire = encodeName(key.name, true);
  const algorithmWire = encodeName(key.algorithm, true);
  const variablesHead = Buffer.alloc(nameWire.length + 6 + algorithmWire.length);
  nameWire.copy(variablesHead, 0);
  variablesHead.writeUInt16BE(CLASS.ANY, nameWire.length); // then TTL 0
  algorithmWire.copy(variablesHead, nameWire.length + 6);
  const made: KeyForm = {
    name: key.name,
    algorithm: key.algorithm,
    secret: key.secret,
    nameWire,
    algorithmWire,
    nameText: encodeNameText(key.name),
    algorithmText: encodeNameText(key.algorithm),
    variablesHead,
  };
  keyForms.set(key, made);
  return made;
}

function writeU48(b: Buffer, n: number, at: number): void {
  b.writeUInt16BE(Math.floor(n / 2 ** 32) & 0xffff, at);
  b.writeUInt32BE(n % 2 ** 32, at + 2);
}

/** The TSIG variables (RFC 8945 §4.3.3) after the key's `variablesHead`: time signed, fudge,
 *  error, other len and other data. */
function variablesTail(v: Variables): Buffer {
  const b = Buffer.allocUnsafe(12 + v.otherData.length);
  writeU48(b, v.timeSigned, 0);
  b.writeUInt16BE(v.fudge, 6);
  b.writeUInt16BE(v.error, 8);
  b.writeUInt16BE(v.otherData.length, 10);
  v.otherData.copy(b, 12);
  return b;
}

/** The MAC over the request MAC (responses), the message as it was before its TSIG record
 *  (`head`, the first 12 bytes, is its header, given apart so that a received message's header
 *  can be restored without copying the message), and the variables. */
function computeMac(
  k: KeyForm,
  head: Buffer,
  rest: Buffer,
  v: Variables,
  requestMac?: Buffer,
): Buffer {
  const h = createHmac(DIGESTS[k.algorithm].hash, k.secret);
  if (requestMac) {
    const len = Buffer.allocUnsafe(2);
    len.writeUInt16BE(requestMac.length, 0);
    h.update(len);
    h.update(requestMac);
  }
  h.update(head);
  h.update(rest);
  h.update(k.variablesHead);
  h.update(variablesTail(v));
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

const NO_DATA = Buffer.alloc(0);

/** Appends a TSIG record to `msg` (which must not have one). Returns the signed message and its MAC. */
export function signMessage(
  msg: Buffer,
  key: TsigKey,
  opts: SignOptions = {},
): { message: Buffer; mac: Buffer } {
  const k = keyForm(key);
  const v: Variables = {
    timeSigned: Math.floor(opts.now ?? Date.now() / 1000),
    fudge: opts.fudge ?? 300,
    error: opts.error ?? 0,
    otherData: opts.otherData ?? NO_DATA,
  };
  const mac = computeMac(k, msg.subarray(0, 12), msg.subarray(12), v, opts.requestMac);
  // The message, then the TSIG RR: key name, type, class ANY, TTL 0, RDLENGTH, and RDATA:
  // algorithm, time signed, fudge, MAC size, MAC, original ID, error, other len, other data.
  const a = k.algorithmWire.length;
  const rdlen = a + 10 + mac.length + 6 + v.otherData.length;
  const out = Buffer.allocUnsafe(msg.length + k.nameWire.length + 10 + rdlen);
  msg.copy(out, 0);
  let o = msg.length;
  o += k.nameWire.copy(out, o);
  out.writeUInt16BE(TYPE.TSIG, o);
  out.writeUInt16BE(CLASS.ANY, o + 2);
  out.writeUInt32BE(0, o + 4);
  out.writeUInt16BE(rdlen, o + 8);
  o += 10;
  o += k.algorithmWire.copy(out, o);
  writeU48(out, v.timeSigned, o);
  out.writeUInt16BE(v.fudge, o + 6);
  out.writeUInt16BE(mac.length, o + 8);
  o += 10;
  o += mac.copy(out, o);
  out.writeUInt16BE(msg.readUInt16BE(0), o);
  out.writeUInt16BE(v.error, o + 2);
  out.writeUInt16BE(v.otherData.length, o + 4);
  o += 6;
  v.otherData.copy(out, o);
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

/** Checks the TSIG of a received message against `key`. `records`: the message's
 *  walkRecords, when the caller has walked it already. */
export function verifyMessage(
  msg: Buffer,
  key: TsigKey,
  opts: VerifyOptions = {},
  records?: RRSpan[],
): TsigVerdict {
  const tsig = parseTsig(msg, records);
  if (!tsig) return { ok: false, reason: 'unsigned' };
  let k: KeyForm;
  try {
    k = keyForm(key);
  } catch {
    // A key name with no wire form (an empty or over-long label) names no key a message has.
    return { ok: false, reason: 'key-mismatch', tsig };
  }
  if (tsig.keyName !== k.nameText || tsig.algorithm !== k.algorithmText) {
    return { ok: false, reason: 'key-mismatch', tsig };
  }
  // A BADSIG/BADKEY answer carries no MAC; a BADTIME answer is signed but is still a failure.
  if (tsig.error !== 0) return { ok: false, reason: 'error', tsig };
  // The header as it was signed: the original ID, ARCOUNT without the TSIG record.
  const head = Buffer.from(msg.subarray(0, 12));
  head.writeUInt16BE(tsig.originalId, 0);
  head.writeUInt16BE(msg.readUInt16BE(10) - 1, 10);
  const expected = computeMac(k, head, msg.subarray(12, tsig.start), tsig, opts.requestMac);
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
