/**
 * DNS wire-format pieces that dns-packet does not give us: a message writer with name
 * compression and free choice of class (RFC 2136 needs NONE and ANY), and a walker that finds
 * where each resource record starts and ends (TSIG verification works on raw bytes).
 */

export const TYPE = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  TXT: 16,
  OPT: 41,
  RRSIG: 46,
  TLSA: 52,
  TSIG: 250,
} as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;

export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  11: 'DSOTYPENI',
  16: 'BADVERS',
};

export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

/** The labels of an absolute or relative name ('' and '.' are the root). Lower-cases nothing. */
function labels(name: string): string[] {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n ? n.split('.') : [];
}

/** Uncompressed wire form; `canonical` lower-cases (RFC 4034 §6.2, used for TSIG variables). */
export function encodeName(name: string, canonical = false): Buffer {
  const parts: Buffer[] = [];
  for (const label of labels(canonical ? name.toLowerCase() : name)) {
    const b = Buffer.from(label, 'ascii');
    if (b.length === 0 || b.length > 63) throw new RangeError(`bad DNS label in "${name}"`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new RangeError(`DNS name too long: "${name}"`);
  return out;
}

export interface RR {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
}

/** Builds a message section by section, in one buffer; names are compressed against earlier
 *  names. */
export class MessageWriter {
  private buf = Buffer.allocUnsafe(512);
  private length = 12;
  private readonly offsets = new Map<string, number>();
  private readonly counts = [0, 0, 0, 0];

  constructor(
    private readonly id: number,
    private readonly flags: number,
  ) {}

  /** Makes room for `n` more bytes and returns where they go. */
  private reserve(n: number): number {
    const at = this.length;
    if (at + n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * this.buf.length, at + n));
      this.buf.copy(grown, 0, 0, at);
      this.buf = grown;
    }
    this.length += n;
    return at;
  }

  name(name: string): void {
    const ls = labels(name);
    // The compression keys are the lower-cased suffixes. For a printable ASCII name they are
    // slices of the name lower-cased once; otherwise each is lower-cased on its own (the case
    // mapping of some letters depends on their neighbours).
    const ascii = /^[ -~]*$/.test(name);
    const lower = ascii ? (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase() : '';
    let from = 0;
    for (let i = 0; i < ls.length; i++) {
      const label = ls[i]!;
      const suffix = ascii ? lower.slice(from) : ls.slice(i).join('.').toLowerCase();
      from += label.length + 1;
      const at = this.offsets.get(suffix);
      if (at !== undefined) {
        const o = this.reserve(2); // before reading this.buf: it may grow
        this.buf.writeUInt16BE(0xc000 | at, o);
        return;
      }
      if (this.length < 0x3fff) this.offsets.set(suffix, this.length);
      // One byte per character, as Buffer's 'ascii' encoding writes them.
      if (label.length === 0 || label.length > 63)
        throw new RangeError(`bad DNS label in "${name}"`);
      const o = this.reserve(1 + label.length);
      this.buf[o] = label.length;
      this.buf.write(label, o + 1, 'ascii');
    }
    const end = this.reserve(1);
    this.buf[end] = 0;
  }

  /** Section 0 (question / zone). */
  question(name: string, type: number, cls: number): void {
    this.name(name);
    const o = this.reserve(4);
    this.buf.writeUInt16BE(type, o);
    this.buf.writeUInt16BE(cls, o + 2);
    this.counts[0]!++;
  }

  /** Sections 1-3 (answer / prerequisite, authority / update, additional). */
  rr(section: 1 | 2 | 3, r: RR): void {
    this.name(r.name);
    const o = this.reserve(10 + r.rdata.length);
    this.buf.writeUInt16BE(r.type, o);
    this.buf.writeUInt16BE(r.class, o + 2);
    this.buf.writeUInt32BE(r.ttl >>> 0, o + 4);
    this.buf.writeUInt16BE(r.rdata.length, o + 8);
    r.rdata.copy(this.buf, o + 10);
    this.counts[section]!++;
  }

  /** The message; the writer is done with it. */
  finish(): Buffer {
    const b = this.buf;
    b.writeUInt16BE(this.id, 0);
    b.writeUInt16BE(this.flags, 2);
    for (const [i, c] of this.counts.entries()) b.writeUInt16BE(c, 4 + 2 * i);
    return b.subarray(0, this.length);
  }
}

export interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  tc: boolean;
  aa: boolean;
  rcode: number;
  counts: [number, number, number, number];
}

export function readHeader(msg: Buffer): Header {
  if (msg.length < 12) throw new RangeError(`DNS message too short (${msg.length} bytes)`);
  const flags = msg.readUInt16BE(2);
  return {
    id: msg.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rcode: flags & 0xf,
    counts: [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)],
  };
}

/** Offset just after the (possibly compressed) name at `offset`. */
export function skipName(msg: Buffer, offset: number): number {
  let o = offset;
  for (;;) {
    if (o >= msg.length) throw new RangeError('DNS name runs past the end of the message');
    const len = msg[o]!;
    if ((len & 0xc0) === 0xc0) return o + 2;
    if (len & 0xc0) throw new RangeError('unsupported DNS label type');
    if (len === 0) return o + 1;
    o += 1 + len;
  }
}

/** Read a (possibly compressed) name as lower-case text with a trailing dot. */
export function readName(msg: Buffer, offset: number): string {
  let out = '';
  let o = offset;
  for (let hops = 0; hops < 64; ) {
    if (o >= msg.length) throw new RangeError('DNS name runs past the end of the message');
    const len = msg[o]!;
    if ((len & 0xc0) === 0xc0) {
      o = ((len & 0x3f) << 8) | msg[o + 1]!;
      hops++;
      continue;
    }
    if (len === 0) return `${out}.`.toLowerCase();
    // Labels joined with dots; the root alone is "."
    out += (out ? '.' : '') + msg.toString('latin1', o + 1, o + 1 + len);
    o += 1 + len;
  }
  throw new RangeError('DNS name compression loop');
}

export interface RRSpan {
  section: 1 | 2 | 3;
  /** Offset of the owner name, of the fixed part (type), of the RDATA, and one past the end. */
  start: number;
  typeAt: number;
  rdataAt: number;
  end: number;
  type: number;
  class: number;
}

/** Every resource record of the message with its byte span (questions are skipped). */
export function walkRecords(msg: Buffer): RRSpan[] {
  const h = readHeader(msg);
  let o = 12;
  for (let i = 0; i < h.counts[0]; i++) o = skipName(msg, o) + 4;
  const spans: RRSpan[] = [];
  for (const section of [1, 2, 3] as const) {
    for (let i = 0; i < h.counts[section]; i++) {
      const start = o;
      const typeAt = skipName(msg, o);
      if (typeAt + 10 > msg.length) throw new RangeError('truncated resource record');
      const rdlen = msg.readUInt16BE(typeAt + 8);
      const end = typeAt + 10 + rdlen;
      if (end > msg.length) throw new RangeError('truncated RDATA');
      spans.push({
        section,
        start,
        typeAt,
        rdataAt: typeAt + 10,
        end,
        type: msg.readUInt16BE(typeAt),
        class: msg.readUInt16BE(typeAt + 2),
      });
      o = end;
    }
  }
  return spans;
}

/** What an RRSIG (RFC 4034 §3.1) says of the RRset it signs: the type it covers and its
 *  Signer's Name, which MUST be the zone that holds the RRset (§3.1.7). */
export function readRrsig(msg: Buffer, span: RRSpan): { typeCovered: number; signer: string } {
  // type covered 2, algorithm 1, labels 1, original TTL 4, expiration 4, inception 4, key tag 2
  const signerAt = span.rdataAt + 18;
  if (signerAt >= span.end || skipName(msg, signerAt) > span.end)
    throw new RangeError('RRSIG RDATA too short for its signer name');
  return { typeCovered: msg.readUInt16BE(span.rdataAt), signer: readName(msg, signerAt) };
}
