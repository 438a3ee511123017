/** The TLSA record model (RFC 6698 §2.1) with RFC 7218 mnemonics. Pure: no I/O. */

export type Usage = 0 | 1 | 2 | 3;
export type Selector = 0 | 1;
export type MatchingType = 0 | 1 | 2;

export interface TlsaRecord {
  /** Absolute owner name with trailing dot, lower case: `_25._tcp.mx.example.org.` */
  owner: string;
  usage: Usage;
  selector: Selector;
  matching: MatchingType;
  /** Association data, lower-case hex. */
  data: string;
}

export const USAGE_NAMES: Record<Usage, string> = {
  0: 'PKIX-TA',
  1: 'PKIX-EE',
  2: 'DANE-TA',
  3: 'DANE-EE',
};
export const SELECTOR_NAMES: Record<Selector, string> = { 0: 'Cert', 1: 'SPKI' };
export const MATCHING_NAMES: Record<MatchingType, string> = {
  0: 'Full',
  1: 'SHA2-256',
  2: 'SHA2-512',
};

/** Identity of a record inside an RRset: the TTL is a property of the RRset, not of the record.
 *  Two records have the same key exactly when their fields are equal: the owner goes first with
 *  its length, so that a name holding blanks (a hand-edited state) cannot run into the fields
 *  after it, and usage, selector and matching are numbers. Only compared, never shown or kept. */
export function recordKey(r: TlsaRecord): string {
  return `${r.owner.length}:${r.owner} ${r.usage} ${r.selector} ${r.matching} ${r.data}`;
}

export function sameRecord(a: TlsaRecord, b: TlsaRecord): boolean {
  return recordKey(a) === recordKey(b);
}

export function rdataText(r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): string {
  return `${r.usage} ${r.selector} ${r.matching} ${r.data}`;
}

/** Owner name for a service: `_PORT._PROTO.HOST.` (RFC 6698 §3). */
export function ownerName(
  host: string,
  port: number,
  transport: 'tcp' | 'udp' | 'sctp' = 'tcp',
): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port ${port} is not a TCP/UDP port (1-65535)`);
  }
  const h = normaliseName(host);
  return `_${port}._${transport}.${h}`;
}

/** Lower-case, absolute (trailing dot) DNS name; rejects what cannot be a host name. */
export function normaliseName(name: string): string {
  // A zone file or a listing names the same owner on several lines in a row: the last answer
  // is kept (only a valid name's: an invalid one throws each time).
  if (name === lastName) return lastNormalised;
  const n = checkedName(name);
  lastName = name;
  lastNormalised = n;
  return n;
}
let lastName: string | undefined;
let lastNormalised = '';

// A name already in the form checkedName gives (lower case, LDH-and-underscore labels of 1-63
// characters), with or without its trailing dot: one regular expression instead of a split and
// a test per label (owner names are normalised again at every step of a fleet's run).
const NORMAL_FORM =
  /^(?:[a-z0-9_*](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)*[a-z0-9_*](?:[a-z0-9_-]{0,61}[a-z0-9])?\.?$/;

function checkedName(name: string): string {
  if (name.length <= 253 && NORMAL_FORM.test(name)) return name.endsWith('.') ? name : `${name}.`;
  let n = name.trim().toLowerCase();
  if (!n.endsWith('.')) n += '.';
  if (n === '.' || n.length > 254) throw new RangeError(`"${name}" is not a valid DNS name`);
  for (const label of n.slice(0, -1).split('.')) {
    if (
      label.length === 0 ||
      label.length > 63 ||
      !/^[a-z0-9_*]([a-z0-9_-]*[a-z0-9])?$/.test(label)
    ) {
      throw new RangeError(`"${name}" is not a valid DNS name (label "${label}")`);
    }
  }
  return n;
}

/** In the order of the records' text (owner, then rdata). */
export function sortRecords(records: TlsaRecord[]): TlsaRecord[] {
  const text = (r: TlsaRecord) => `${r.owner} ${rdataText(r)}`;
  return [...records].sort((a, b) => text(a).localeCompare(text(b)));
}
