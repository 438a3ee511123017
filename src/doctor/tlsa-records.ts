/**
 * The TLSA records published for a service, and whether they fit what it serves: every served
 * chain (RSA and ECDSA) matched by a usable record (RFC 7672: usages 2 and 3 only), a `2 x x`
 * record's trust anchor present in the chain the server sends.
 *
 * Records come from a zone-file fragment (`--tlsa-file`, offline) or from DNS through a
 * validating resolver (`_PORT._tcp.HOST`, the AD bit decides whether DANE is in effect).
 */
import type { X509Certificate } from 'node:crypto';
import { certName } from '../certs/chain.js';
import { InputError, errnoCode } from '../errors.js';
import type { IssuerCatalog } from '../issuers/catalog.js';
import { associationData } from '../tlsa/association.js';
import { parseRecordLine, stripComment } from '../tlsa/presentation.js';
import { USAGE_NAMES, rdataText, type TlsaRecord } from '../tlsa/record.js';
import { InputFileError, MAX_PEM_BYTES, readInputText } from '../util/read-input.js';
import { daneMatch } from '../verify/dane.js';
import type { DnsServer } from '../verify/dns.js';
import { validatedLookup, type LookupStatus } from '../verify/dnssec.js';
import type { ServedChain } from './certificates.js';
import type { FindingLevel } from './findings.js';
import type { SmtpdService } from './services.js';

export interface PublishedRecords {
  owner: string;
  source: 'file' | 'dns';
  records: TlsaRecord[];
  /** The names walked through CNAMEs, the owner first and the name holding the records last
   *  (RFC 7672 §2.2); empty when the owner is not an alias. */
  cnameChain?: string[];
  /** DNS only: the DNSSEC verdict of the lookup. */
  status?: LookupStatus;
  message?: string;
}

/** Every TLSA record of a zone file (or fragment): `$ORIGIN`, relative owners, blank-owner
 *  continuation and parenthesised multi-line records are understood. */
export function readTlsaFile(file: string): TlsaRecord[] {
  return readTlsaZone(file).records;
}

export interface TlsaZone {
  records: TlsaRecord[];
  /** CNAME owner → target (absolute, lower case), as `dig` prints an aliased TLSA name. */
  cnames: Map<string, string>;
}

/** The TLSA records and the CNAMEs of a zone file (or fragment). */
export function readTlsaZone(file: string): TlsaZone {
  let text: string;
  try {
    text = readInputText(file, { what: 'the TLSA file', maxBytes: MAX_PEM_BYTES });
  } catch (e) {
    throw e instanceof InputFileError
      ? e
      : new InputError(`cannot read the TLSA file: ${errnoCode(e)}`, file);
  }
  const records: TlsaRecord[] = [];
  const cnames = new Map<string, string>();
  let origin: string | undefined;
  let previousOwner: string | undefined;
  let pending = '';
  let pendingLine = 0;
  let depth = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const body = stripComment(raw);
    if (!pending) pendingLine = i + 1;
    pending += pending ? ` ${body.trim()}` : body;
    depth += (body.match(/\(/g) ?? []).length - (body.match(/\)/g) ?? []).length;
    if (depth > 0) return;
    const line = pending;
    pending = '';
    depth = 0;
    const directive = /^\$ORIGIN\s+(\S+)/i.exec(line.trim());
    if (directive) {
      origin = directive[1]!.toLowerCase().endsWith('.')
        ? directive[1]!.toLowerCase()
        : `${directive[1]!.toLowerCase()}.`;
      return;
    }
    if (/^\$/.test(line.trim())) return;
    let parsed;
    try {
      parsed = parseRecordLine(line, origin, previousOwner);
    } catch (e) {
      throw new InputError((e as Error).message, file, pendingLine);
    }
    const absolute = (n: string): string | undefined => {
      const name = n.toLowerCase();
      if (name === '@') return origin;
      if (name.endsWith('.')) return name;
      return origin ? `${name}.${origin}` : undefined;
    };
    if (parsed) previousOwner = parsed.owner;
    else if (/^\S/.test(line)) previousOwner = absolute(line.trim().split(/\s+/)[0]!);
    if (parsed) records.push(parsed.record);
    else {
      const tokens = line.trim().split(/\s+/);
      const at = tokens.findIndex((t) => t.toUpperCase() === 'CNAME');
      const target =
        at > 0 || (at === 0 && /^\s/.test(line)) ? absolute(tokens[at + 1] ?? '') : undefined;
      if (at >= 0 && target && previousOwner) cnames.set(previousOwner, target);
    }
  });
  return { records, cnames };
}

/** The records at `owner`, through the file's CNAMEs (RFC 7672 §2.2: an aliased TLSA name
 *  takes the target's records). */
export function fromFile(
  all: readonly TlsaRecord[],
  owner: string,
  cnames: ReadonlyMap<string, string> = new Map(),
): PublishedRecords {
  const chain = [owner];
  let current = owner;
  while (cnames.has(current) && chain.length <= 8) {
    current = cnames.get(current)!;
    if (chain.includes(current)) break; // a loop: no records
    chain.push(current);
  }
  return {
    owner,
    source: 'file',
    records: all.filter((r) => r.owner === current),
    ...(chain.length > 1 ? { cnameChain: chain } : {}),
  };
}

export async function fromDns(
  resolver: DnsServer,
  owner: string,
  timeoutMs: number,
): Promise<PublishedRecords> {
  try {
    const r = await validatedLookup(resolver, owner, 'TLSA', { timeoutMs, retries: 1 });
    return {
      owner,
      source: 'dns',
      records: r.records,
      status: r.status,
      message: r.message,
      ...(r.cnameChain.length ? { cnameChain: r.cnameChain } : {}),
    };
  } catch (e) {
    return {
      owner,
      source: 'dns',
      records: [],
      status: 'error',
      message: `${owner} TLSA: ${(e as Error).message}`,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Checks

export interface TlsaFinding {
  id: string;
  level: FindingLevel;
  parameter: string;
  message: string;
  fix: string;
  /** About a main.cf setting shared by listeners (reported once, for main.cf). */
  global?: boolean;
}

export interface ChainVerdict {
  chain: ServedChain;
  verified: boolean;
  /** `3 1 1 … at depth 0`. */
  matched?: string;
  reasons: string[];
}

const short = (r: TlsaRecord): string => `${rdataText(r).slice(0, 22)}…`;

function catalogName(
  r: TlsaRecord,
  catalog: IssuerCatalog | undefined,
): { name: string; cert: X509Certificate } | undefined {
  if (!catalog) return undefined;
  for (const i of catalog.intermediates) {
    if (associationData(i.cert, r.selector, r.matching) === r.data)
      return { name: i.name, cert: i.cert };
  }
  return undefined;
}

export interface TlsaCheckInput {
  service: SmtpdService;
  host: string;
  published: PublishedRecords;
  chains: ServedChain[];
  /** `smtpd_tls_chain_files` or `smtpd_tls_cert_file`: where the fix goes. */
  certParameter: string;
  catalog?: IssuerCatalog;
  now: Date;
  /** Other owners the TLSA file has records for (to say so when this one has none). */
  otherOwners?: string[];
}

export function checkTlsa(input: TlsaCheckInput): {
  findings: TlsaFinding[];
  verdicts: ChainVerdict[];
} {
  const { service: s, published, chains, now } = input;
  const out: TlsaFinding[] = [];
  const records = published.records;
  const owner = published.owner;
  const certParam = input.certParameter;
  const regenerate = `Publish records for what is served: \`tlsa generate --chain FULLCHAIN --host ${input.host.replace(/\.$/, '')} --port ${s.port ?? 25}\` prints them (3 1 1 for each key, 2 1 1 for each issuer), or let \`tlsa publish\` keep them in step.`;

  // DNS verdicts first: what DNSSEC says decides whether DANE applies at all.
  if (published.source === 'dns') {
    switch (published.status) {
      case 'bogus':
        out.push({
          id: 'tlsa-bogus',
          level: 'error',
          parameter: 'DNS',
          message: `${published.message}: DANE senders cannot validate ${owner} and defer all mail to this host.`,
          fix: 'Repair the DNSSEC chain of the zone (DS at the parent matching a DNSKEY, signatures not expired); `tlsa check` shows the details.',
        });
        return { findings: out, verdicts: [] };
      case 'insecure':
        if (records.length)
          out.push({
            id: 'tlsa-not-secure',
            level: 'warning',
            parameter: 'DNS',
            message: `${published.message}. Without DNSSEC, senders ignore TLSA records: DANE is not in effect.`,
            fix: 'Sign the zone and publish its DS at the parent (registrar).',
          });
        break;
      case 'unvalidated':
        out.push({
          id: 'tlsa-not-secure',
          level: 'warning',
          parameter: 'DNS',
          message: `${published.message}. The doctor cannot tell whether DANE senders validate ${owner}.`,
          fix: 'Run the doctor with --resolver pointing at a validating resolver (e.g. a local unbound).',
        });
        break;
      case 'timeout':
      case 'servfail':
      case 'error':
        out.push({
          id: 'tlsa-lookup-failed',
          level: 'warning',
          parameter: 'DNS',
          message: `${published.message ?? `${owner}: lookup failed`}; the TLSA records were not checked.`,
          fix: "Check the resolver (--resolver IP[:PORT]) and the zone's name servers.",
        });
        return { findings: out, verdicts: [] };
      default:
        break;
    }
  }

  if (!records.length) {
    if (s.role === 'mx' && s.tls) {
      const others = input.otherOwners?.length
        ? ` (the TLSA file has records for ${input.otherOwners.slice(0, 4).join(', ')}${input.otherOwners.length > 4 ? ', …' : ''})`
        : '';
      out.push({
        id: 'tlsa-none',
        level: 'info',
        parameter: 'DNS',
        message: `No TLSA records at ${owner}${others}: DANE senders treat this MX as unauthenticated TLS.`,
        fix: `${regenerate} Use --host when the MX name differs from myhostname.`,
      });
    }
    return { findings: out, verdicts: [] };
  }

  // Usages 0 and 1 (PKIX) are unusable for SMTP.
  const pkix = records.filter((r) => r.usage === 0 || r.usage === 1);
  const usable = records.filter((r) => r.usage === 2 || r.usage === 3);
  if (pkix.length) {
    out.push({
      id: 'tlsa-pkix-usage',
      level: usable.length ? 'warning' : 'error',
      parameter: 'DNS',
      message:
        `${owner} has ${pkix.length} record(s) with usage ${[...new Set(pkix.map((r) => `${r.usage} (${USAGE_NAMES[r.usage]})`))].join(', ')}: RFC 7672 §3.1.3 makes them unusable for SMTP` +
        (usable.length
          ? "; senders skip them, but some receivers' checks flag the domain."
          : ', and no 2 x x or 3 x x record is left. What happens is up to the sending MTA: Postfix senders treat an RRset with only unusable records as "encrypt" (TLS without authentication) and deliver; others, such as web.de and GMX, refuse — their MTA aborts the handshake with TLS alert 71 "insufficient security", so the alert in your log comes from the sender, not from your server.'),
      fix: `Replace them with 3 1 1 (DANE-EE) and 2 1 1 (DANE-TA) records. ${regenerate}`,
    });
  }

  if (!s.tls) return { findings: out, verdicts: [] };

  // Each served chain must be matched.
  const verdicts: ChainVerdict[] = chains.map((chain) => {
    const r = daneMatch({ records, chain: chain.certs, names: [input.host], now, smtp: true });
    return {
      chain,
      verified: r.verified,
      ...(r.match
        ? { matched: `${rdataText(r.match.record).slice(0, 22)}… at depth ${r.match.depth}` }
        : {}),
      reasons: r.reasons,
    };
  });
  // One cause, one finding: a chain that fails because the 2 x x records' anchor is not
  // served (cert.pem instead of fullchain.pem) is reported as that, below, and nothing else.
  const twos = usable.filter((r) => r.usage === 2);
  const anchorMissing = (v: ChainVerdict): boolean =>
    twos.length > 0 && !v.chain.issuerServed && !v.chain.selfSigned;
  const failed = verdicts.filter((v) => !v.verified && !anchorMissing(v));
  if (usable.length && failed.length) {
    const detail = failed
      .map(
        (v) =>
          `${v.chain.keyType.label} (${v.chain.leafName}, ${v.chain.files.join(', ')}): ${v.reasons.join('; ')}`,
      )
      .join(' | ');
    if (failed.length === verdicts.length) {
      out.push({
        id: 'tlsa-mismatch',
        level: 'error',
        parameter: certParam,
        message: `No record at ${owner} (${usable.map(short).join(', ')}) matches what ${s.label} serves: ${detail}. DANE senders defer all mail to this host.`,
        fix: regenerate,
      });
    } else {
      for (const v of failed) {
        const verified = verdicts.filter((x) => x.verified);
        const ok = verified.map((x) => x.chain.keyType.label).join(', ');
        out.push({
          id: 'tlsa-key-type-missing',
          level: 'error',
          parameter: certParam,
          message: `${ok ? `${ok} ${verified.length > 1 ? 'are' : 'is'} covered, but no` : 'No'} record at ${owner} matches the ${v.chain.keyType.label} chain (${v.chain.leafName}, ${v.chain.files.join(', ')}): ${v.reasons.join('; ')}. A DANE sender that negotiates ${v.chain.keyType.family.toUpperCase()} fails and defers the mail.`,
          fix: `Publish a 3 1 1 record for the ${v.chain.keyType.label} key and a 2 1 1 record for its issuer next to the others, or stop serving that key. ${regenerate}`,
        });
      }
    }
  }

  // 2 x x: the trust anchor must be in what the server sends.
  if (twos.length) {
    for (const v of verdicts) {
      const c = v.chain;
      if (c.issuerServed || c.selfSigned) continue;
      const issuerRecord = twos
        .map((r) => ({ r, cat: catalogName(r, input.catalog) }))
        .find((x) => x.cat && x.cat.cert.subject === c.certs[0]!.issuer);
      const which = issuerRecord
        ? `${short(issuerRecord.r)} is the record of ${issuerRecord.cat!.name}, the issuer of this leaf, but`
        : `${twos.length} 2 x x record(s) are published, but`;
      out.push({
        id: 'tlsa-ta-not-served',
        level: v.verified ? 'warning' : 'error',
        parameter: c.parameter,
        global: s.origin(c.parameter) !== 'service',
        message:
          `${which} ${c.files.join(', ')} holds ${c.certs.length === 1 ? 'only the leaf' : `certificates that did not issue the leaf (${c.certs.slice(1).map(certName).join(', ')})`} (${c.keyType.label}, ${c.leafName}): a 2 x x record can match only a certificate the server sends. ` +
          (v.verified
            ? 'The 3 x x record covers it today; at the next key change nothing will.'
            : 'No other record matches this key type, so DANE senders fail for it.'),
        fix: `Serve the full chain: point ${c.parameter} at fullchain.pem (leaf + intermediates), not cert.pem${c.parameter === 'smtpd_tls_chain_files' ? ' (key file, then fullchain.pem)' : ''}.`,
      });
    }
  }
  return { findings: out, verdicts };
}
