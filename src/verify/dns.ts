/**
 * A small DNS client on dns-packet over dns/transport.ts: one question to one server, UDP first
 * and TCP when the answer is truncated (TC) or when asked; a random message id per attempt, and
 * a reply counts only when its id, QR bit and question match (anything else on the socket is
 * ignored); retries on timeout; typed errors. TLSA answers are converted to the record model.
 *
 * EDNS0 is always sent (payload 1232, the DNS flag day 2020 size) unless `edns: false`;
 * `dnssec` sets the DO bit (and AD in the query, RFC 6840 §5.7), so a validating resolver
 * returns RRSIGs and sets AD on validated data.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, RecordType, TlsaAnswer } from 'dns-packet';
import { type Attempt, tcpAttempt, udpAttempt } from '../dns/transport.js';
import { rcodeName } from '../dns/wire.js';
import { NetworkError } from '../errors.js';
import type { MatchingType, Selector, TlsaRecord, Usage } from '../tlsa/record.js';

export type { Answer, RecordType } from 'dns-packet';

export interface DnsServer {
  /** IPv4 or IPv6 address (no host names: the client never resolves server names itself). */
  host: string;
  port: number;
}

export interface QueryOptions {
  /** Set the DO bit: ask for RRSIGs, and AD from a validating resolver. */
  dnssec?: boolean;
  /** Set CD: a validating resolver returns data even when validation fails. */
  checkingDisabled?: boolean;
  /** Set RD (default true). False for questions to authoritative servers. */
  recursionDesired?: boolean;
  /** Per attempt, in ms (default 2000). */
  timeoutMs?: number;
  /** Further attempts after a timeout (default 2), per transport. */
  retries?: number;
  /** Ask over TCP right away. */
  tcp?: boolean;
  /** Send an OPT record (default true); dnssec implies it. */
  edns?: boolean;
  /** Aborts the query. A signal from AbortSignal.timeout() is a deadline over all attempts:
   *  when it fires, the query ends with DnsTimeoutError (any other abort rejects with the
   *  signal's reason). */
  signal?: AbortSignal;
}

export interface DnsFlags {
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  ad: boolean;
  cd: boolean;
}

/** An Extended DNS Error (RFC 8914), e.g. unbound's reason for a validation failure. */
export interface ExtendedError {
  code: number;
  text: string;
}

export interface DnsResponse {
  server: DnsServer;
  /** The question, as asked: absolute lower-case name and type. */
  name: string;
  type: string;
  id: number;
  /** NOERROR, NXDOMAIN, SERVFAIL, REFUSED, ..., with the EDNS extended rcode folded in. */
  rcode: string;
  flags: DnsFlags;
  answers: Answer[];
  authorities: Answer[];
  /** Includes the OPT pseudo-record when the server sent one. */
  additionals: Answer[];
  /** The TLSA records of the answer section (any owner), converted to the record model. */
  tlsa: TlsaRecord[];
  /** TLSA RDATA in the answer section that the record model cannot hold (e.g. usage 255),
   *  in presentation form with the owner. */
  tlsaUnsupported: string[];
  ede: ExtendedError[];
  transport: 'udp' | 'tcp';
  /** Attempts it took on the transport that answered. */
  attempts: number;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** Base class: a DNS question got no usable response. Exit code 3 (network failure). */
export class DnsError extends NetworkError {
  constructor(
    message: string,
    readonly server: DnsServer,
    readonly qname: string,
    readonly qtype: string,
  ) {
    super(message);
    this.name = 'DnsError';
  }
}

/** No matching response within timeoutMs, on every attempt, or none before the caller's
 *  deadline (`deadline`: an AbortSignal.timeout() signal fired). */
export class DnsTimeoutError extends DnsError {
  constructor(
    server: DnsServer,
    qname: string,
    qtype: string,
    readonly attempts: number,
    readonly timeoutMs: number,
    readonly transport: 'udp' | 'tcp',
    readonly deadline = false,
  ) {
    const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`;
    super(
      `${qname} ${qtype}: no response from ${serverLabel(server)} over ${transport.toUpperCase()} ${deadline ? `in the time allowed (${tries})` : `(${tries} of ${timeoutMs} ms)`}`,
      server,
      qname,
      qtype,
    );
    this.name = 'DnsTimeoutError';
  }
}

/** The server could not be reached or broke the exchange: connection or port refused (ICMP
 *  port unreachable on UDP), reset, closed before a full response, unreachable network. */
export class DnsNetworkError extends DnsError {
  constructor(
    server: DnsServer,
    qname: string,
    qtype: string,
    readonly code: string,
    detail: string,
    readonly transport: 'udp' | 'tcp',
  ) {
    super(
      `${qname} ${qtype}: ${serverLabel(server)} over ${transport.toUpperCase()}: ${detail}`,
      server,
      qname,
      qtype,
    );
    this.name = 'DnsNetworkError';
  }
}

/** A response that dns-packet cannot decode (TCP), or a truncated response over TCP. */
export class DnsFormatError extends DnsError {
  constructor(server: DnsServer, qname: string, qtype: string, detail: string) {
    super(
      `${qname} ${qtype}: bad response from ${serverLabel(server)}: ${detail}`,
      server,
      qname,
      qtype,
    );
    this.name = 'DnsFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Names and records

/** `host:port`, with brackets for IPv6. */
export function serverLabel(s: DnsServer): string {
  return `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`;
}

/** Absolute, lower-case form of a name as it came off the wire or from a caller: `.` for the
 *  root, otherwise with exactly one trailing dot. Lenient (no host-name syntax check). */
export function canonicalName(name: string): string {
  const n = name.trim().toLowerCase().replace(/\.+$/, '');
  return n === '' ? '.' : `${n}.`;
}

/** True when `name` equals `ancestor` or lies below it. */
export function isSubdomain(name: string, ancestor: string): boolean {
  const n = canonicalName(name);
  const a = canonicalName(ancestor);
  return a === '.' || n === a || n.endsWith(`.${a}`);
}

/** The parent name (`mx.example.org.` -> `example.org.`, `org.` -> `.`); undefined for the root. */
export function parentName(name: string): string | undefined {
  const n = canonicalName(name);
  if (n === '.') return undefined;
  const i = n.indexOf('.');
  const rest = n.slice(i + 1);
  return rest === '' ? '.' : rest;
}

function checkQueryName(name: string): string {
  const n = canonicalName(name);
  if (n === '.') return n;
  if (Buffer.byteLength(n) > 254) throw new RangeError(`"${name}" is too long for a DNS name`);
  for (const label of n.slice(0, -1).split('.')) {
    if (label.length === 0) throw new RangeError(`"${name}" has an empty label`);
    if (Buffer.byteLength(label) > 63)
      throw new RangeError(`"${name}" has a label longer than 63 octets`);
  }
  return n;
}

/** Follow the CNAME records in an answer section from `name`; returns the names walked
 *  (first = name) and stops at a loop. */
export function followCnames(answers: readonly Answer[], name: string): string[] {
  const chain = [canonicalName(name)];
  const seen = new Set(chain);
  for (;;) {
    const current = chain[chain.length - 1]!;
    const c = answers.find((a) => a.type === 'CNAME' && canonicalName(a.name) === current);
    if (c?.type !== 'CNAME') return chain;
    const next = canonicalName(c.data);
    if (seen.has(next)) return chain;
    seen.add(next);
    chain.push(next);
  }
}

const hex = (b: Buffer): string => b.toString('hex');

function isUsage(n: number): n is Usage {
  return n === 0 || n === 1 || n === 2 || n === 3;
}
function isSelector(n: number): n is Selector {
  return n === 0 || n === 1;
}
function isMatching(n: number): n is MatchingType {
  return n === 0 || n === 1 || n === 2;
}

/** dns-packet decodes TLSA as `{usage, selector, matchingType, certificate: Buffer}`; this is
 *  the record model's form (owner absolute and lower case, data lower hex). Undefined when the
 *  parameters are outside what the model holds (usage > 3, selector > 1, matching > 2). */
export function toTlsaRecord(a: TlsaAnswer): TlsaRecord | undefined {
  const { usage, selector, matchingType, certificate } = a.data;
  if (!isUsage(usage) || !isSelector(selector) || !isMatching(matchingType)) return undefined;
  return {
    owner: canonicalName(a.name),
    usage,
    selector,
    matching: matchingType,
    data: hex(certificate),
  };
}

/** The TLSA records among `answers` (optionally only at `owner`), plus the ones the record
 *  model cannot hold, in presentation form. */
export function tlsaFromAnswers(
  answers: readonly Answer[],
  owner?: string,
): { records: TlsaRecord[]; unsupported: string[] } {
  const want = owner === undefined ? undefined : canonicalName(owner);
  const records: TlsaRecord[] = [];
  const unsupported: string[] = [];
  for (const a of answers) {
    if (a.type !== 'TLSA') continue;
    if (want !== undefined && canonicalName(a.name) !== want) continue;
    const r = toTlsaRecord(a);
    if (r) records.push(r);
    else
      unsupported.push(
        `${canonicalName(a.name)} TLSA ${a.data.usage} ${a.data.selector} ${a.data.matchingType} ${hex(a.data.certificate)}`,
      );
  }
  return { records, unsupported };
}

/** RDATA of a decoded record in (roughly) presentation form, for messages and comparisons. */
export function rdataString(a: Answer): string {
  switch (a.type) {
    case 'A':
    case 'AAAA':
      return a.data;
    case 'CNAME':
    case 'DNAME':
    case 'NS':
    case 'PTR':
      return canonicalName(a.data);
    case 'TLSA':
      return `${a.data.usage} ${a.data.selector} ${a.data.matchingType} ${hex(a.data.certificate)}`;
    case 'SOA': {
      const d = a.data;
      return `${canonicalName(d.mname)} ${canonicalName(d.rname)} ${d.serial ?? 0} ${d.refresh ?? 0} ${d.retry ?? 0} ${d.expire ?? 0} ${d.minimum ?? 0}`;
    }
    case 'MX':
      return `${a.data.preference ?? 0} ${canonicalName(a.data.exchange)}`;
    case 'DS':
      return `${a.data.keyTag} ${a.data.algorithm} ${a.data.digestType} ${hex(a.data.digest)}`;
    case 'RRSIG':
      return `${a.data.typeCovered} ${a.data.algorithm} ${a.data.labels} ${a.data.originalTTL} ${a.data.expiration} ${a.data.inception} ${a.data.keyTag} ${canonicalName(a.data.signersName)}`;
    case 'TXT': {
      const parts = Array.isArray(a.data) ? a.data : [a.data];
      return parts
        .map((p) => JSON.stringify(Buffer.isBuffer(p) ? p.toString('utf8') : p))
        .join(' ');
    }
    case 'OPT':
      return '';
    default: {
      const d: unknown = (a as { data?: unknown }).data;
      return Buffer.isBuffer(d)
        ? `\\# ${d.length} ${hex(d)}`
        : JSON.stringify(d, (_k, v: unknown) => (Buffer.isBuffer(v) ? hex(v) : v));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The query

const EDNS_PAYLOAD = 1232;
const EDE_OPTION = 15;

interface Exchange {
  name: string;
  type: RecordType;
  id: number;
  message: Buffer;
}

function buildQuery(name: string, type: RecordType, opts: QueryOptions): Exchange {
  const id = randomInt(0, 0x10000);
  let flags = 0;
  if (opts.recursionDesired ?? true) flags |= dnsPacket.RECURSION_DESIRED;
  if (opts.checkingDisabled) flags |= dnsPacket.CHECKING_DISABLED;
  if (opts.dnssec) flags |= dnsPacket.AUTHENTIC_DATA;
  const packet: Packet = {
    type: 'query',
    id,
    flags,
    questions: [{ type, name: name === '.' ? '.' : name.slice(0, -1), class: 'IN' }],
    additionals:
      opts.dnssec || (opts.edns ?? true)
        ? [
            {
              type: 'OPT',
              name: '.',
              udpPayloadSize: EDNS_PAYLOAD,
              extendedRcode: 0,
              ednsVersion: 0,
              flags: opts.dnssec ? dnsPacket.DNSSEC_OK : 0,
              flag_do: !!opts.dnssec,
              options: [],
            },
          ]
        : [],
  };
  return { name, type, id, message: dnsPacket.encode(packet) };
}

/** Decode and check that a datagram/message answers our question; undefined when it does
 *  not (wrong id, not a response, other question) or cannot be decoded. */
function matchResponse(buf: Buffer, ex: Exchange): DecodedPacket | undefined {
  let p: DecodedPacket;
  try {
    p = dnsPacket.decode(buf);
  } catch {
    return undefined;
  }
  if (p.id !== ex.id || !p.flag_qr) return undefined;
  const q = p.questions?.[0];
  if (q) {
    if (canonicalName(q.name) !== ex.name || q.type !== ex.type) return undefined;
  } else if ((p as unknown as { rcode?: string }).rcode === 'NOERROR') {
    return undefined; // a NOERROR response without the question is not an answer to it
  }
  return p;
}

function toResponse(
  p: DecodedPacket,
  server: DnsServer,
  ex: Exchange,
  transport: 'udp' | 'tcp',
  attempts: number,
): DnsResponse {
  const additionals = p.additionals ?? [];
  const answers = p.answers ?? [];
  const opt = additionals.find((a) => a.type === 'OPT');
  const headerRcode = (p.flags ?? 0) & 0xf;
  const ext = opt && opt.type === 'OPT' ? opt.extendedRcode : 0;
  const ede: ExtendedError[] = [];
  if (opt && opt.type === 'OPT') {
    for (const o of opt.options ?? []) {
      const data = o.data;
      if ((o.code as number) === EDE_OPTION && data && data.length >= 2) {
        ede.push({
          code: data.readUInt16BE(0),
          text: data.subarray(2).toString('utf8').replace(/\0+$/, ''),
        });
      }
    }
  }
  const { records, unsupported } = tlsaFromAnswers(answers);
  return {
    server,
    name: ex.name,
    type: ex.type,
    id: ex.id,
    rcode: rcodeName((ext << 4) | headerRcode),
    flags: {
      aa: p.flag_aa,
      tc: p.flag_tc,
      rd: p.flag_rd,
      ra: p.flag_ra,
      ad: p.flag_ad,
      cd: p.flag_cd,
    },
    answers,
    authorities: p.authorities ?? [],
    additionals,
    tlsa: records,
    tlsaUnsupported: unsupported,
    ede,
    transport,
    attempts,
  };
}

/** `attempt` over `transport`, with this module's errors: a socket failure is a
 *  DnsNetworkError, an undecodable TCP answer a DnsFormatError; over UDP anything that is not
 *  the answer is ignored. */
async function ask(
  server: DnsServer,
  ex: Exchange,
  transport: 'udp' | 'tcp',
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<DecodedPacket | undefined> {
  const a: Attempt<DecodedPacket> = {
    address: server.host,
    port: server.port,
    message: ex.message,
    timeoutMs,
    signal,
    accept: (msg) => {
      const p = matchResponse(msg, ex);
      if (p || transport === 'udp') return p;
      // Several messages may arrive on one TCP connection; skip any that are not ours.
      try {
        dnsPacket.decode(msg);
      } catch (e) {
        throw new DnsFormatError(
          server,
          ex.name,
          ex.type,
          `cannot decode the TCP response: ${(e as Error).message}`,
        );
      }
      return undefined;
    },
  };
  const o = transport === 'udp' ? await udpAttempt(a) : await tcpAttempt(a);
  switch (o.kind) {
    case 'answer':
      return o.value;
    case 'timeout':
      return undefined;
    case 'error':
      throw new DnsNetworkError(
        server,
        ex.name,
        ex.type,
        o.error.code ?? 'EIO',
        describeErrno(o.error),
        transport,
      );
    case 'closed':
      throw new DnsNetworkError(
        server,
        ex.name,
        ex.type,
        'ECONNRESET',
        'the server closed the TCP connection without a complete response',
        transport,
      );
  }
}

function describeErrno(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ECONNREFUSED':
      return 'connection refused (nothing listens on that port)';
    case 'ECONNRESET':
      return 'connection reset';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'EADDRNOTAVAIL':
      return 'address not available';
    default:
      return e.message;
  }
}

/** The signal fired because its time was up (AbortSignal.timeout), not because someone
 *  cancelled the work. */
function pastDeadline(signal: AbortSignal | undefined): boolean {
  return !!signal?.aborted && (signal.reason as Error | undefined)?.name === 'TimeoutError';
}

async function exchange(
  server: DnsServer,
  name: string,
  type: RecordType,
  opts: QueryOptions,
  transport: 'udp' | 'tcp',
): Promise<DnsResponse> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const attempts = 1 + Math.max(0, opts.retries ?? 2);
  const deadline = (tried: number) =>
    new DnsTimeoutError(server, name, type, tried, timeoutMs, transport, true);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    if (pastDeadline(opts.signal)) throw deadline(attempt - 1);
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
    const ex = buildQuery(name, type, opts); // a fresh id (and UDP source port) per attempt
    let packet: DecodedPacket | undefined;
    try {
      packet = await ask(server, ex, transport, timeoutMs, opts.signal);
    } catch (e) {
      if (pastDeadline(opts.signal) && e === opts.signal!.reason) throw deadline(attempt);
      throw e;
    }
    if (packet) return toResponse(packet, server, ex, transport, attempt);
  }
  throw new DnsTimeoutError(server, name, type, attempts, timeoutMs, transport);
}

/**
 * Ask `server` one question. UDP first; when the response has TC set (or `tcp` is asked for)
 * the question goes over TCP. Any rcode is a response (SERVFAIL, NXDOMAIN, REFUSED come back
 * as `rcode`); only the absence of a response throws: DnsTimeoutError after every attempt
 * timed out, DnsNetworkError when the server refused (no retry: that is not transient),
 * DnsFormatError for an undecodable or still truncated TCP response.
 */
export async function query(
  server: DnsServer,
  name: string,
  type: RecordType | string,
  opts: QueryOptions = {},
): Promise<DnsResponse> {
  if (!isIP(server.host)) throw new RangeError(`DNS server "${server.host}" is not an IP address`);
  if (!Number.isInteger(server.port) || server.port < 1 || server.port > 65535)
    throw new RangeError(`DNS server port ${server.port} is not a port`);
  const qname = checkQueryName(name);
  const qtype = type.toUpperCase() as RecordType;
  if (opts.tcp) return tcpOnly(server, qname, qtype, opts);
  const udp = await exchange(server, qname, qtype, opts, 'udp');
  if (!udp.flags.tc) return udp;
  return tcpOnly(server, qname, qtype, opts);
}

async function tcpOnly(
  server: DnsServer,
  qname: string,
  qtype: RecordType,
  opts: QueryOptions,
): Promise<DnsResponse> {
  const r = await exchange(server, qname, qtype, opts, 'tcp');
  if (r.flags.tc)
    throw new DnsFormatError(server, qname, qtype, 'the TCP response is truncated (TC) too');
  return r;
}
