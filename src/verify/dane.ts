/** DANE matching of a presented chain against a TLSA RRset (RFC 7671, RFC 7672). Pure. */
import type { X509Certificate } from 'node:crypto';
import { issuedBy } from '../certs/chain.js';
import { associationData, degenerateDataReason } from '../tlsa/association.js';
import { rdataText, type TlsaRecord } from '../tlsa/record.js';

export interface DaneMatchInput {
  /** The TLSA RRset at the owner name. */
  records: TlsaRecord[];
  /** The chain as the server sent it, leaf first. */
  chain: X509Certificate[];
  /** Reference identifiers for DANE-TA name checks: the TLSA base (after a secure CNAME) and
   *  the original host name (RFC 7672 §3.2.3). */
  names: string[];
  now: Date;
  /** SMTP treats usages 0 and 1 as unusable (RFC 7672 §3.1.3). */
  smtp: boolean;
}

export interface DaneMatch {
  record: TlsaRecord;
  /** Depth in the chain of the certificate that matched (0 = leaf). */
  depth: number;
}

export interface DaneResult {
  verified: boolean;
  match?: DaneMatch;
  /** Records the client would consider after the usability and digest-agility rules. */
  usable: TlsaRecord[];
  unusable: { record: TlsaRecord; why: string }[];
  /** Why no record matched (one line each), or why a matching 2 x x did not verify. */
  reasons: string[];
}

/** RFC 7671 §9: per usage and selector, a client uses only the strongest digest published;
 *  Full (matching type 0) is not a digest and always counts. */
export function applyDigestAgility(records: TlsaRecord[]): {
  kept: TlsaRecord[];
  dropped: TlsaRecord[];
} {
  const strongest = new Map<string, number>();
  for (const r of records) {
    if (r.matching === 0) continue;
    const k = `${r.usage} ${r.selector}`;
    strongest.set(k, Math.max(strongest.get(k) ?? 0, r.matching));
  }
  const kept: TlsaRecord[] = [];
  const dropped: TlsaRecord[] = [];
  for (const r of records) {
    if (r.matching !== 0 && r.matching < (strongest.get(`${r.usage} ${r.selector}`) ?? 0))
      dropped.push(r);
    else kept.push(r);
  }
  return { kept, dropped };
}

function matches(cert: X509Certificate, r: TlsaRecord): boolean {
  return associationData(cert, r.selector, r.matching) === r.data;
}

function nameMatches(leaf: X509Certificate, names: string[]): boolean {
  return names.some(
    (n) => leaf.checkHost(n.replace(/\.$/, ''), { subject: 'default' }) !== undefined,
  );
}

function validAt(c: X509Certificate, now: Date): boolean {
  return (
    new Date(c.validFrom).getTime() <= now.getTime() &&
    now.getTime() <= new Date(c.validTo).getTime()
  );
}

export function daneMatch(input: DaneMatchInput): DaneResult {
  const unusable: { record: TlsaRecord; why: string }[] = [];
  const candidates: TlsaRecord[] = [];
  for (const r of input.records) {
    if (input.smtp && (r.usage === 0 || r.usage === 1))
      unusable.push({
        record: r,
        why: `usage ${r.usage} (PKIX) is unusable for SMTP (RFC 7672 §3.1.3)`,
      });
    else {
      const bad = degenerateDataReason(r.matching, r.data);
      if (bad) unusable.push({ record: r, why: bad });
      else candidates.push(r);
    }
  }
  const { kept: usable, dropped } = applyDigestAgility(candidates);
  for (const r of dropped)
    unusable.push({
      record: r,
      why: 'a stronger digest is published for this usage and selector, so clients ignore this one (RFC 7671 §9)',
    });
  const reasons: string[] = [];
  const result = (match?: DaneMatch): DaneResult => ({
    verified: !!match,
    ...(match ? { match } : {}),
    usable,
    unusable,
    reasons,
  });
  const leaf = input.chain[0];
  if (!leaf) {
    reasons.push('the server sent no certificate');
    return result();
  }
  if (!usable.length) {
    reasons.push(
      input.records.length
        ? 'no usable TLSA record: SMTP clients fall back to unauthenticated TLS or refuse delivery'
        : 'no TLSA records',
    );
    return result();
  }
  // DANE-EE first: it needs no name or expiry checks.
  for (const r of usable.filter((x) => x.usage === 3))
    if (matches(leaf, r)) return result({ record: r, depth: 0 });
  for (const r of usable.filter((x) => x.usage === 2 || (!input.smtp && x.usage === 0))) {
    for (let depth = 1; depth < input.chain.length; depth++) {
      const ta = input.chain[depth]!;
      if (!matches(ta, r)) continue;
      // The chain from the leaf up to the trust anchor must hold together, be valid now, and
      // the leaf must carry the name (RFC 7672 §3.1.2, §3.2.3).
      let broken = '';
      for (let i = 0; i < depth; i++) {
        if (!issuedBy(input.chain[i]!, input.chain[i + 1]!))
          broken = `certificate at depth ${i} is not issued by the one at depth ${i + 1}`;
      }
      const expired = input.chain.slice(0, depth + 1).findIndex((c) => !validAt(c, input.now));
      if (broken)
        reasons.push(
          `${rdataText(r).slice(0, 24)}… matches the certificate at depth ${depth}, but ${broken}`,
        );
      else if (expired >= 0)
        reasons.push(
          `${rdataText(r).slice(0, 24)}… matches at depth ${depth}, but the certificate at depth ${expired} is expired or not yet valid`,
        );
      else if (!nameMatches(leaf, input.names))
        reasons.push(
          `${rdataText(r).slice(0, 24)}… matches at depth ${depth}, but the leaf is not valid for ${input.names.join(' or ')} (DANE-TA checks names)`,
        );
      else return result({ record: r, depth });
    }
  }
  for (const r of usable.filter((x) => x.usage === 1 && !input.smtp)) {
    if (matches(leaf, r)) return result({ record: r, depth: 0 });
  }
  if (!reasons.length) {
    const twos = usable.some((r) => r.usage === 2);
    reasons.push(
      `no usable record matches: the leaf key is not in any 3 x x record${twos ? ` and no 2 x x record matches a certificate the server sent above the leaf (${input.chain.length - 1} sent)` : ''}`,
    );
  }
  return result();
}

/** Does this one record match this chain, by data alone (no name or expiry checks)? Used to
 *  decide whether a record is still needed by what a server presents. */
export function recordMatchesChain(r: TlsaRecord, chain: X509Certificate[]): boolean {
  if (r.usage === 3 || r.usage === 1) return chain[0] !== undefined && matches(chain[0], r);
  return chain.slice(1).some((c) => matches(c, r));
}
