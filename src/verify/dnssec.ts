/**
 * Lookups through a validating resolver, with a DNSSEC verdict (the rollover rule "DNSSEC or
 * it does not count"): the AD bit says the resolver validated the answer; without AD, RRSIGs in
 * the answer tell a signed zone from an unsigned one, and the DS of the signer tells a
 * resolver that does not validate from a zone whose parent has no DS (an insecure
 * delegation). SERVFAIL is re-asked with CD: an answer then means the data is bogus.
 *
 * CNAME chains are followed as the resolver returned them (RFC 7672 §2.2): the chain and the
 * final target are reported, and `resolveHostForDane` gives the TLSA base name (the target
 * when the whole chain validated, the original name otherwise).
 */
import type { Answer, RecordType } from 'dns-packet';
import type { TlsaRecord } from '../tlsa/record.js';
import {
  DnsTimeoutError,
  canonicalName,
  followCnames,
  query,
  rdataString,
  tlsaFromAnswers,
  type DnsResponse,
  type DnsServer,
  type ExtendedError,
} from './dns.js';

/**
 * - `secure`: data, AD set.
 * - `insecure`: data without AD from a zone that DNSSEC does not cover (not signed, or signed
 *   but its parent has no DS).
 * - `unvalidated`: data without AD although the zone is signed and delegated with a DS: the
 *   resolver does not validate (or has no trust anchor for it).
 * - `bogus`: SERVFAIL, but the same question with CD gets an answer: validation failed.
 * - `nxdomain`, `nodata`: negative answers; `security` says whether the denial validated.
 * - `servfail`: SERVFAIL also with CD. `timeout`: no response. `error`: another rcode
 *   (REFUSED, FORMERR, NOTIMP, ...).
 */
export type LookupStatus =
  | 'secure'
  | 'insecure'
  | 'unvalidated'
  | 'bogus'
  | 'nxdomain'
  | 'nodata'
  | 'servfail'
  | 'timeout'
  | 'error';

/** How far DNSSEC covers an answer (positive or negative). */
export type Security = 'secure' | 'insecure' | 'unvalidated';

/** What a lookup returns per type: TLSA in the record model, addresses and names as strings,
 *  anything else as dns-packet decoded it. */
export type RecordFor<T extends string> = T extends 'TLSA'
  ? TlsaRecord
  : T extends 'A' | 'AAAA' | 'CNAME' | 'DNAME' | 'NS' | 'PTR'
    ? string
    : Answer;

export interface LookupResult<R> {
  /** The name asked for (absolute, lower case) and the type. */
  name: string;
  type: string;
  status: LookupStatus;
  /** DNSSEC coverage of the answer (positive or negative); undefined when there was none. */
  security?: Security;
  /** AD bit of the response. */
  authenticated: boolean;
  /** The answer (or the denial) came with RRSIGs: the zone is signed. */
  signed: boolean;
  /** Signer (zone apex) named by the RRSIGs, when signed. */
  signer?: string;
  rcode?: string;
  /** The records of the asked type at the end of the CNAME chain; empty unless the status is
   *  secure, insecure or unvalidated (never bogus data). */
  records: R[];
  /** Smallest TTL of those records. */
  ttl?: number;
  /** TLSA RDATA the record model cannot hold (usage > 3, ...), presentation form. */
  unsupported: string[];
  /** The names walked through CNAMEs, the asked name first and the final target last; empty
   *  when the name is not an alias. */
  cnameChain: string[];
  /** Final target of the CNAME chain (the name itself when there is none). */
  target: string;
  /** One line for humans. */
  message: string;
  /** Extended DNS Errors (RFC 8914) the resolver gave, e.g. why validation failed. */
  ede: ExtendedError[];
}

export interface LookupOptions {
  timeoutMs?: number;
  retries?: number;
  signal?: AbortSignal;
}

export const UNVALIDATED_MESSAGE =
  'the resolver does not validate (no AD bit) although the zone is signed';

const TEXT_RDATA: ReadonlySet<string> = new Set(['A', 'AAAA', 'CNAME', 'DNAME', 'NS', 'PTR']);

function convert(type: string, answers: Answer[]): unknown[] {
  if (type === 'TLSA') return tlsaFromAnswers(answers).records;
  // Addresses and names as text (rdataString's forms); anything else as dns-packet decodes it.
  return answers.map((a) => (TEXT_RDATA.has(a.type) ? rdataString(a) : a));
}

function rrsigSigner(
  records: readonly Answer[],
  covered?: { owner: string; type: string },
): string | undefined {
  for (const a of records) {
    if (a.type !== 'RRSIG') continue;
    if (covered && (canonicalName(a.name) !== covered.owner || a.data.typeCovered !== covered.type))
      continue;
    return canonicalName(a.data.signersName);
  }
  return undefined;
}

/** Ask the resolver for the signer's DS to tell "resolver does not validate" from "signed,
 *  but the parent has no DS". */
async function classifyUnauthenticated(
  resolver: DnsServer,
  signer: string | undefined,
  opts: LookupOptions,
): Promise<{ security: Security; message: string }> {
  if (!signer || signer === '.') {
    return { security: 'unvalidated', message: UNVALIDATED_MESSAGE };
  }
  let ds: DnsResponse;
  try {
    ds = await query(resolver, signer, 'DS', {
      dnssec: true,
      timeoutMs: opts.timeoutMs,
      retries: opts.retries,
      signal: opts.signal,
    });
  } catch (e) {
    return {
      security: 'unvalidated',
      message: `${UNVALIDATED_MESSAGE} (the DS of ${signer} could not be asked for: ${(e as Error).message})`,
    };
  }
  const dsRecords = ds.answers.filter((a) => a.type === 'DS' && canonicalName(a.name) === signer);
  if (ds.rcode === 'NOERROR' && dsRecords.length > 0) {
    return {
      security: 'unvalidated',
      message: ds.flags.ad
        ? `${UNVALIDATED_MESSAGE}: the DS of ${signer} validated but its data did not (unsupported algorithm or a negative trust anchor?)`
        : `${UNVALIDATED_MESSAGE} (${signer} has a DS record at its parent; is this a validating resolver with a trust anchor?)`,
    };
  }
  if (ds.rcode === 'NOERROR' || ds.rcode === 'NXDOMAIN') {
    if (ds.flags.ad) {
      return {
        security: 'insecure',
        message: `${signer} is signed but its parent has no DS record for it (a provably insecure delegation): DNSSEC does not cover it, so DANE is not in effect; publish the DS at the parent (registrar)`,
      };
    }
    const parentSigned = ds.authorities.some(
      (a) => a.type === 'RRSIG' || a.type === 'NSEC' || a.type === 'NSEC3',
    );
    if (parentSigned)
      return {
        security: 'unvalidated',
        message: `${UNVALIDATED_MESSAGE} (the parent's denial of a DS for ${signer} is signed but not validated either)`,
      };
    return {
      security: 'insecure',
      message: `${signer} is signed but has no DS at its parent, which is not signed either: DNSSEC does not cover it, so DANE is not in effect`,
    };
  }
  return {
    security: 'unvalidated',
    message: `${UNVALIDATED_MESSAGE} (asking for the DS of ${signer} gave ${ds.rcode})`,
  };
}

function edeText(ede: ExtendedError[]): string {
  return ede.length
    ? ` (${ede.map((e) => `EDE ${e.code}${e.text ? `: ${e.text}` : ''}`).join('; ')})`
    : '';
}

/**
 * Look `name`/`type` up through a validating resolver with DO set and give a DNSSEC verdict.
 * A resolver that cannot be reached (refused) throws DnsNetworkError; a timeout is a status.
 */
export async function validatedLookup<T extends RecordType>(
  resolver: DnsServer,
  name: string,
  type: T,
  opts: LookupOptions = {},
): Promise<LookupResult<RecordFor<T>>> {
  const qname = canonicalName(name);
  const base = {
    name: qname,
    type,
    records: [] as RecordFor<T>[],
    unsupported: [] as string[],
    cnameChain: [] as string[],
    target: qname,
    ede: [] as ExtendedError[],
  };
  // CD asks a validating resolver for the data even when validation fails (to tell why).
  const ask = (checkingDisabled: boolean): Promise<DnsResponse> =>
    query(resolver, qname, type, {
      dnssec: true,
      checkingDisabled,
      timeoutMs: opts.timeoutMs,
      retries: opts.retries,
      signal: opts.signal,
    });
  let r: DnsResponse;
  try {
    r = await ask(false);
  } catch (e) {
    if (e instanceof DnsTimeoutError) {
      return {
        ...base,
        status: 'timeout',
        authenticated: false,
        signed: false,
        message: `${qname} ${type}: ${e.message}`,
      };
    }
    throw e;
  }
  const chain = type === 'CNAME' ? [qname] : followCnames(r.answers, qname);
  const target = chain[chain.length - 1]!;
  const cnameChain = chain.length > 1 ? chain : [];
  const via = cnameChain.length ? ` (via CNAME ${cnameChain.join(' -> ')})` : '';
  const common = {
    ...base,
    rcode: r.rcode,
    cnameChain,
    target,
    ede: r.ede,
    authenticated: r.flags.ad,
  };

  if (r.rcode === 'SERVFAIL') {
    let cd: DnsResponse | undefined;
    try {
      cd = await ask(true);
    } catch {
      cd = undefined;
    }
    if (cd && (cd.rcode === 'NOERROR' || cd.rcode === 'NXDOMAIN')) {
      const cdChain = followCnames(cd.answers, qname);
      return {
        ...common,
        cnameChain: cdChain.length > 1 ? cdChain : [],
        target: cdChain[cdChain.length - 1]!,
        status: 'bogus',
        signed:
          cd.answers.some((a) => a.type === 'RRSIG') ||
          cd.authorities.some((a) => a.type === 'RRSIG'),
        signer: rrsigSigner(cd.answers) ?? rrsigSigner(cd.authorities),
        message: `${qname} ${type}: bogus: the resolver fails validation (SERVFAIL) but answers ${cd.rcode} with checking disabled (CD)${edeText(r.ede)}`,
      };
    }
    return {
      ...common,
      status: 'servfail',
      signed: false,
      message: `${qname} ${type}: SERVFAIL, also with checking disabled${edeText(r.ede)}`,
    };
  }

  if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN') {
    return {
      ...common,
      status: 'error',
      signed: false,
      message: `${qname} ${type}: the resolver answered ${r.rcode}${edeText(r.ede)}`,
    };
  }

  const data = r.answers.filter((a) => a.type === type && canonicalName(a.name) === target);
  const negative = r.rcode === 'NXDOMAIN' || data.length === 0;
  const signer = negative
    ? (rrsigSigner(r.authorities) ?? rrsigSigner(r.answers))
    : rrsigSigner(r.answers, { owner: target, type });
  const signed = signer !== undefined;

  let security: Security;
  let why: string;
  if (r.flags.ad) {
    security = 'secure';
    why = 'secure (AD set)';
  } else if (!signed) {
    security = 'insecure';
    why =
      'insecure: no AD bit and no RRSIG, the zone is not signed (or the resolver strips DNSSEC records)';
  } else {
    const c = await classifyUnauthenticated(resolver, signer, opts);
    security = c.security;
    why = `${c.security}: ${c.message}`;
  }

  if (negative) {
    const status: LookupStatus = r.rcode === 'NXDOMAIN' ? 'nxdomain' : 'nodata';
    const what =
      status === 'nxdomain' ? `${target} does not exist` : `no ${type} record at ${target}`;
    return {
      ...common,
      status,
      security,
      signed,
      signer,
      message: `${qname} ${type}: ${what}${via}; the denial is ${why}`,
    };
  }

  const records = convert(type, data) as RecordFor<T>[];
  const unsupported = type === 'TLSA' ? tlsaFromAnswers(data).unsupported : [];
  const ttl = Math.min(...data.map((a) => ('ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0)));
  const shown =
    data.slice(0, 3).map(rdataString).join(', ') +
    (data.length > 3 ? `, ... (${data.length})` : '');
  return {
    ...common,
    status: security,
    security,
    signed,
    signer,
    records,
    ttl,
    unsupported,
    message: `${qname} ${type}${via}: ${shown}; ${why}`,
  };
}

// ---------------------------------------------------------------------------------------------
// The MX host for DANE

export interface DaneHostResult {
  host: string;
  /** secure only when A and AAAA both validated (data or denial) and there is an address. */
  status: LookupStatus;
  addresses: { v4: string[]; v6: string[] };
  /** Where to look for TLSA records first: the CNAME target when the whole chain validated,
   *  else the host name itself (RFC 7672 §2.2.2). */
  tlsaBase: string;
  /** Base names to try in order: the target, then the original name (when they differ). */
  tlsaBases: string[];
  cnameChain: string[];
  a: LookupResult<string>;
  aaaa: LookupResult<string>;
  message: string;
}

const FAILURE_ORDER: LookupStatus[] = ['bogus', 'servfail', 'timeout', 'error'];

/**
 * A and AAAA of an MX host through a validating resolver, for DANE: the addresses, whether
 * they are secure (both lookups AD, positive or negative), the CNAME chain and the TLSA base.
 */
export async function resolveHostForDane(
  resolver: DnsServer,
  host: string,
  opts: LookupOptions = {},
): Promise<DaneHostResult> {
  const h = canonicalName(host);
  const [a, aaaa] = await Promise.all([
    validatedLookup(resolver, h, 'A', opts),
    validatedLookup(resolver, h, 'AAAA', opts),
  ]);
  const both = [a, aaaa];
  const addresses = { v4: [...a.records].sort(), v6: [...aaaa.records].sort() };
  const count = addresses.v4.length + addresses.v6.length;

  let status: LookupStatus;
  const failed = FAILURE_ORDER.find((s) => both.some((l) => l.status === s));
  if (failed) status = failed;
  else if (count === 0) status = both.every((l) => l.status === 'nxdomain') ? 'nxdomain' : 'nodata';
  else if (both.every((l) => l.security === 'secure')) status = 'secure';
  else if (both.some((l) => l.security === 'unvalidated')) status = 'unvalidated';
  else status = 'insecure';

  const withChain = a.cnameChain.length ? a : aaaa.cnameChain.length ? aaaa : a;
  const cnameChain = withChain.cnameChain;
  const chainSecure =
    cnameChain.length > 0 && withChain.security === 'secure' && withChain.status !== 'bogus';
  const tlsaBase = chainSecure ? withChain.target : h;
  const tlsaBases = chainSecure && withChain.target !== h ? [withChain.target, h] : [h];

  const part = (l: LookupResult<string>): string =>
    l.records.length
      ? `${l.type} ${l.status} (${l.records.join(', ')})`
      : `${l.type} ${l.status}${l.security ? ` (${l.security} denial)` : ''}`;
  const chainText = cnameChain.length
    ? `; CNAME chain ${cnameChain.join(' -> ')} (${chainSecure ? 'secure: TLSA base is the target' : 'not secure: TLSA base is the original name'})`
    : '';
  const worst = both.find((l) => l.status === status) ?? both.find((l) => l.security !== 'secure');
  const detail = status === 'secure' || !worst ? '' : `; ${worst.message}`;
  return {
    host: h,
    status,
    addresses,
    tlsaBase,
    tlsaBases,
    cnameChain,
    a,
    aaaa,
    message: `${h}: ${status}: ${part(a)}, ${part(aaaa)}${chainText}${detail}`,
  };
}
