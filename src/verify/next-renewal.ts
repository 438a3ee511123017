/** What the next renewal does to DANE, per served chain: the plausible next chains (a new key
 *  from the same intermediate; a new key from the catalog's active and backup intermediates of
 *  the key type, or from an intermediate nobody named when no catalog knows the CA), which of
 *  them match no live record, and what the engine will do about it with this service's setup.
 *  Pure: the records, chains and catalogs come in already fetched. */
import type { X509Certificate } from 'node:crypto';
import { certName } from '../certs/chain.js';
import { keyTypeOf } from '../certs/key-type.js';
import { catalogIssuerOf, issuerFamily, type IssuerCatalog } from '../issuers/catalog.js';
import type { TlsaRecord } from '../tlsa/record.js';
import { recordMatchesChain } from './dane.js';

export interface RenewalSetup {
  /** The configuration's service for this port, or undefined for a plain `check HOST:PORT`. */
  service?: {
    name: string;
    /** `install:`: tlsa serves a renewed chain only once its records are live. */
    staged: boolean;
    /** `reload:` (without install): run by the hook only when the new chain is safe. */
    reload: boolean;
    /** The service's `issuers:` value ("letsencrypt", "none", a file). */
    issuers: string;
    /** Its `records:` include a DANE-EE record of the key (3 x x, selector 1). */
    publishesKey: boolean;
    ttl: number;
  };
  /** The catalogs to consult: the service's (none for `issuers: none`), or the built-in ones. */
  catalogs: IssuerCatalog[];
}

export type RenewalVerdict = 'safe' | 'staged' | 'breaks';

export interface RenewalForecast {
  keyType: string;
  verdict: RenewalVerdict;
  /** The plausible next chains that match no live record, in words. */
  uncovered: string[];
  /** One line: the verdict, why, what the engine will do, and the fixes that apply. */
  text: string;
  /** Only the fixes that would help this setup. */
  fixes: string[];
}

const list = (xs: string[]): string =>
  xs.length < 2 ? xs.join('') : `${xs.slice(0, -1).join(', ')} or ${xs.at(-1)}`;

/** DANE-TA (usage 2) records that a chain from `intermediate` matches whatever its leaf. */
const taCovers = (
  records: TlsaRecord[],
  leaf: X509Certificate,
  intermediate: X509Certificate,
): boolean => records.some((r) => r.usage === 2 && recordMatchesChain(r, [leaf, intermediate]));

/** A DANE-EE record of the key (selector 1): it keeps matching a renewal with the same key. */
const eeKeyCovers = (records: TlsaRecord[], leaf: X509Certificate): boolean =>
  records.some((r) => r.usage === 3 && r.selector === 1 && recordMatchesChain(r, [leaf]));

export function forecastChain(
  chain: X509Certificate[],
  records: TlsaRecord[],
  setup: RenewalSetup,
  now: Date,
): RenewalForecast {
  const leaf = chain[0]!;
  const type = keyTypeOf(leaf.publicKey);
  const issuer = chain[1];
  const catalog = issuer ? setup.catalogs.find((c) => catalogIssuerOf(c, issuer)) : undefined;
  // The intermediates the next certificate may come from, named.
  const next = new Map<string, { name: string; cert: X509Certificate }>();
  if (issuer)
    next.set(issuer.fingerprint256, {
      name: `${certName(issuer)} (the current issuer)`,
      cert: issuer,
    });
  if (catalog) {
    for (const f of issuerFamily(catalog, type.family, now)) {
      if (!issuer || catalogIssuerOf(catalog, issuer) !== f)
        next.set(f.cert.fingerprint256, {
          name: `${f.name} (${catalog.ca}, ${f.status})`,
          cert: f.cert,
        });
    }
  }
  const uncovered = [...next.values()]
    .filter((n) => !taCovers(records, leaf, n.cert))
    .map((n) => `a new key from ${n.name}`);
  // Without a catalog that knows the CA, it may switch to an intermediate nobody listed (pebble
  // does on every start, CAs do at their rotations): only the key's own 3 1 1 survives that.
  const svc = setup.service;
  const unknownCa = !catalog;
  if (unknownCa) {
    const why = !issuer
      ? 'the chain has no intermediate'
      : svc?.issuers === 'none'
        ? `"issuers: none" names none`
        : `no issuer catalog knows ${certName(issuer)}`;
    uncovered.push(
      `a new key from an intermediate other than ${issuer ? certName(issuer) : 'none'} (a CA rotation; ${why})`,
    );
  }
  const label = `next renewal (${type.label})`;
  if (!uncovered.length) {
    return {
      keyType: type.label,
      verdict: 'safe',
      uncovered,
      fixes: [],
      text: `${label}: safe: a new key from ${list([...next.values()].map((n) => n.name))} matches a live 2 x x record`,
    };
  }
  if (svc?.staged) {
    return {
      keyType: type.label,
      verdict: 'staged',
      uncovered,
      fixes: [],
      text: `${label}: safe (staged): ${list(uncovered)} matches no live record, so tlsa's staged install (install:) publishes its records and serves the chain only once they are live`,
    };
  }
  const fixes: string[] = [];
  fixes.push(
    svc
      ? `configure "install:" for ${svc.name} (staged install: the server reads tlsa's copy, which changes only when its records are live)`
      : 'a staged install (tlsa\'s "install:") that serves a renewed chain only once its records are live',
  );
  // --reuse-key helps only where a 3 1 1 of the key stays: the service's own records say so
  // (a live 3 1 1 the service no longer wants is retired), else what is live.
  if (svc ? svc.publishesKey : eeKeyCovers(records, leaf))
    fixes.push('renew with --reuse-key (the 3 1 1 of the key keeps matching)');
  const missingKnown = [...next.values()].filter(
    (n) => !taCovers(records, leaf, n.cert) && n.cert !== issuer,
  );
  if (missingKnown.length)
    fixes.push(
      svc
        ? `publish the catalog's 2 1 1 records (tlsa publish; over max_records_per_name some are left out: raise it)`
        : `publish the 2 1 1 records of ${list(missingKnown.map((n) => n.name))}`,
    );
  if (unknownCa && issuer)
    fixes.push(
      svc
        ? `an issuer catalog that lists the intermediates the CA may issue from (issuers: FILE), whose 2 1 1 records tlsa then publishes`
        : `2 1 1 records of every intermediate the CA may issue from`,
    );
  const engine = svc
    ? `the server serves it once it reads the renewed files; the hook publishes its records and exits 1${svc.reload ? ' without running "reload:"' : ''}: DANE clients that cached the RRset fail for 2×TTL (${2 * svc.ttl} s) after every authoritative server has them`
    : 'a server that loads the renewed files at once fails DANE clients that cached the RRset until its records are 2×TTL old';
  return {
    keyType: type.label,
    verdict: 'breaks',
    uncovered,
    fixes,
    text: `${label}: breaks DANE: ${list(uncovered)} matches no live record; ${engine}. Fix: ${list(fixes)}`,
  };
}
