/** Desired records: what should be published for a service, from its chains and the issuer
 *  catalog. Pure: the chains and catalog come in already loaded. */
import type { LoadedChain } from '../certs/chain.js';
import { servicePorts, type PortEntry } from '../config/ports.js';
import type { KeyFamily } from '../certs/key-type.js';
import { catalogIssuerOf, issuerFamily, type IssuerCatalog } from '../issuers/catalog.js';
import { associationData, matchData } from '../tlsa/association.js';
import {
  countedNames,
  coverageWarnings,
  nameCoverageGaps,
  type CoverageGap,
} from '../tlsa/host.js';
import { checkRecordData, checkUsageAllowed, type Protocol } from '../tlsa/policy.js';
import {
  ownerName,
  type MatchingType,
  type Selector,
  type TlsaRecord,
  type Usage,
} from '../tlsa/record.js';
import type { X509Certificate } from 'node:crypto';
import { sameKey } from './record-index.js';

export interface RecordSpec {
  usage: Usage;
  selector: Selector;
  matching: MatchingType;
}

export interface ServiceInput {
  name: string;
  host: string;
  /** Numbers or {port, protocol}, as in the configuration. */
  ports: readonly PortEntry[];
  /** Default protocol of the ports without their own. */
  protocol?: Protocol;
  /** Default: 3 1 1 and 2 1 1. */
  records: RecordSpec[];
  chains: LoadedChain[];
  /** Issuer catalog for the `2 x x` family, or none. */
  catalog?: IssuerCatalog;
  /** Most records per owner name (Microsoft's servers handled about 12). */
  cap: number;
  /** Keys a renewal will use next (built-in ACME): their `3 1 x` records are published before
   *  any certificate for them exists, so the renewed chain can be served at once. */
  nextKeys?: { label: string; spki: Buffer }[];
  /** The caller summarises across services what thousands of services on one lineage would
   *  each say alike: name-coverage gaps (coverageWarnings) come back in `coverageGaps` only, not
   *  as warnings, and chains the catalog does not speak for (catalogMissNotes) in
   *  `catalogMisses` only, not as notes. */
  summarise?: boolean;
}

export interface DesiredRecord extends TlsaRecord {
  /** Why this record is wanted, for plan output. */
  why: string;
  /** True when a chain this service serves matches it (never dropped by the cap). */
  matchesServed: boolean;
  /** Which served chains (labels) it matches. Records of one chain share the list: never
   *  changed in place. */
  chains: readonly string[];
}

export interface DesiredResult {
  records: DesiredRecord[];
  warnings: string[];
  /** What the plan should say without it being a problem (e.g. the catalog does not apply). */
  notes: string[];
  /** Leaves whose names do not cover the host (when 2 x x records are published). */
  coverageGaps: CoverageGap[];
  /** Chains of this service that get no catalog records (another CA, or no issuer). */
  catalogMisses: CatalogMiss[];
}

/** A served chain the issuer catalog does not speak for, the note's words without the service. */
export interface CatalogMiss {
  service: string;
  /** "LABEL (KEY TYPE) is issued by …" up to the end of the note. */
  what: string;
}

export const DEFAULT_SPECS: RecordSpec[] = [
  { usage: 3, selector: 1, matching: 1 },
  { usage: 2, selector: 1, matching: 1 },
];

/** RFC 7671 §9: a client uses the strongest digest published for a usage/selector, so a key
 *  with only SHA2-256 while others have SHA2-512 would not match: publish both when 512 is asked. */
export function withDigestAgility(specs: RecordSpec[]): RecordSpec[] {
  const out = [...specs];
  for (const s of specs) {
    if (
      s.matching === 2 &&
      !specs.some((t) => t.usage === s.usage && t.selector === s.selector && t.matching === 1)
    ) {
      out.push({ ...s, matching: 1 });
    }
  }
  // The first of each usage, selector and matching type; a handful of specs per service, so
  // compared in place rather than through a key string per spec and service.
  return out.filter(
    (s, i) =>
      out.findIndex(
        (t) => t.usage === s.usage && t.selector === s.selector && t.matching === s.matching,
      ) === i,
  );
}

const STATUS_RANK = { active: 0, backup: 1, retired: 2 } as const;

// A fleet's services share a few issuers (one lineage serves thousands of names): whether each
// is one of the catalog's intermediates is found once per certificate object and catalog,
// not once per service (comparing keys with every catalog entry dominated a plan of 10,000).
const catalogMatches = new WeakMap<IssuerCatalog, WeakMap<X509Certificate, boolean>>();

function fromThisCatalog(catalog: IssuerCatalog, issuer: X509Certificate): boolean {
  let known = catalogMatches.get(catalog);
  if (!known) {
    known = new WeakMap();
    catalogMatches.set(catalog, known);
  }
  let hit = known.get(issuer);
  if (hit === undefined) {
    hit = catalogIssuerOf(catalog, issuer) !== undefined;
    known.set(issuer, hit);
  }
  return hit;
}

/** Why a chain's own records are wanted, in the words of plan's output, and the `chains` of
 *  a record only that chain matches. */
interface ChainWhys {
  label: string;
  leaf: string;
  issuer?: string;
  top: string;
  chains: string[];
}

// Thousands of services serve one loaded chain (each through its own copy of the chain's
// fields, sharing the certificates): its texts and its one-label list are made once, not once
// per record (40,000 strings of four parts each and 40,000 lists at 10,000 services, held
// through the whole run). Found by the leaf certificate, and made again when the chain's words
// differ from those they were made of.
const whysByLeaf = new WeakMap<object, { chain: LoadedChain; top: string; whys: ChainWhys }>();

function chainWhys(chain: LoadedChain): ChainWhys {
  const top = chain.certs.at(-1)!.name;
  const known = whysByLeaf.get(chain.leaf);
  if (
    known &&
    known.chain.label === chain.label &&
    known.chain.keyType.label === chain.keyType.label &&
    known.chain.issuer?.name === chain.issuer?.name &&
    known.top === top
  )
    return known.whys;
  const whys: ChainWhys = {
    label: chain.label,
    leaf: `leaf key of ${chain.label} (${chain.keyType.label})`,
    ...(chain.issuer ? { issuer: `issuer ${chain.issuer.name} of ${chain.label}` } : {}),
    top: `top of chain ${top} of ${chain.label}`,
    chains: [chain.label],
  };
  whysByLeaf.set(chain.leaf, { chain, top, whys });
  return whys;
}

export function desiredRecords(svc: ServiceInput, now: Date): DesiredResult {
  const specs = withDigestAgility(svc.records);
  const warnings: string[] = [];
  const notes: string[] = [];
  const records: DesiredRecord[] = [];
  // The catalog speaks for its own CA only: its family is added for the key types of chains
  // issued by one of its intermediates, never for a chain from another CA.
  const catalog = svc.catalog;
  const fromCatalog = catalog
    ? svc.chains.filter((c) => c.issuer && fromThisCatalog(catalog, c.issuer.x509))
    : [];
  const catalogMisses: CatalogMiss[] = [];
  if (catalog) {
    for (const c of svc.chains.filter((x) => !fromCatalog.includes(x))) {
      catalogMisses.push({
        service: svc.name,
        what: `${c.label} (${c.keyType.label}) ${c.issuer ? `is issued by ${c.issuer.name}, not a ${catalog.ca} intermediate of the issuer catalog` : 'has no issuer'}: no catalog records for it, only its own`,
      });
    }
    if (!svc.summarise) notes.push(...catalogMissNotes(catalogMisses));
  }
  for (const { port, protocol } of servicePorts(svc)) {
    for (const s of specs) checkUsageAllowed(s.usage, port, protocol);
    const owner = ownerName(svc.host, port);
    // The owner's records, found by their fields (the owner is the same for all: equal fields
    // are equal keys); a handful per owner, so no key string per record.
    const atOwner: DesiredRecord[] = [];
    const sameAs = (r: TlsaRecord) => atOwner.find((x) => sameKey(x, r));
    /** One catalog intermediate's records (every 2 x x spec): dropped together or not at all,
     *  so that a 2 1 2 never stays without the 2 1 1 of the same certificate. */
    const familyCandidates: {
      recs: DesiredRecord[];
      name: string;
      rank: number;
      family: KeyFamily;
    }[] = [];
    const add = (
      cert: X509Certificate,
      s: RecordSpec,
      why: string,
      /** The served chain it matches (its words, made once per chain: chainWhys). */
      chain?: ChainWhys,
    ): DesiredRecord => {
      const rec: DesiredRecord = {
        owner,
        usage: s.usage,
        selector: s.selector,
        matching: s.matching,
        data: associationData(cert, s.selector, s.matching),
        why,
        matchesServed: !!chain,
        chains: chain ? chain.chains : [],
      };
      checkRecordData(rec);
      const existing = sameAs(rec);
      if (existing) {
        // A new list: the one it had may be its chain's, which other services' records share.
        if (chain && !existing.chains.includes(chain.label))
          existing.chains = [...existing.chains, chain.label];
        existing.matchesServed ||= !!chain;
        return existing;
      }
      atOwner.push(rec);
      return rec;
    };
    for (const chain of svc.chains) {
      const why = chainWhys(chain);
      for (const s of specs) {
        if (s.usage === 3 || s.usage === 1) add(chain.leaf.x509, s, why.leaf, why);
        else if (s.usage === 2) {
          if (chain.issuer) add(chain.issuer.x509, s, why.issuer!, why);
        } else {
          add(chain.certs.at(-1)!.x509, s, why.top, why);
        }
      }
    }
    for (const next of svc.nextKeys ?? []) {
      for (const s of specs.filter((x) => x.usage === 3 && x.selector === 1)) {
        const rec: DesiredRecord = {
          owner,
          usage: s.usage,
          selector: s.selector,
          matching: s.matching,
          data: matchData(next.spki, s.matching),
          why: `${next.label}, for the next renewal`,
          matchesServed: false,
          chains: [],
        };
        if (!sameAs(rec)) atOwner.push(rec);
      }
    }
    if (catalog) {
      const families = [...new Set(fromCatalog.map((c) => c.keyType.family))] as KeyFamily[];
      for (const family of families) {
        for (const issuer of issuerFamily(catalog, family, now)) {
          const recs: DesiredRecord[] = [];
          for (const s of specs.filter((x) => x.usage === 2)) {
            const before = atOwner.length;
            const rec = add(
              issuer.cert,
              s,
              `${catalog.ca} ${issuer.status} intermediate ${issuer.name} (${family}), for the next renewal`,
            );
            if (atOwner.length > before) recs.push(rec);
          }
          if (recs.length)
            familyCandidates.push({
              recs,
              name: issuer.name,
              rank: STATUS_RANK[issuer.status],
              family,
            });
        }
      }
    }
    let list: DesiredRecord[] = atOwner;
    if (list.length > svc.cap) {
      // Drop backup before active, never a record a served chain matches, and keep the key
      // families balanced: each served key type keeps next-issuer records as long as possible.
      const droppable = familyCandidates.filter((f) => f.recs.every((r) => !r.matchesServed));
      const dropped: typeof familyCandidates = [];
      while (list.length > svc.cap && droppable.length) {
        const left = (fam: KeyFamily) => droppable.filter((f) => f.family === fam).length;
        droppable.sort((a, b) => b.rank - a.rank || left(b.family) - left(a.family));
        const d = droppable.shift()!;
        dropped.push(d);
        list = list.filter((r) => !d.recs.includes(r));
      }
      if (dropped.length) {
        const count = dropped.reduce((n, d) => n + d.recs.length, 0);
        const what = dropped.map(
          (d) =>
            `${d.name} (${d.recs.map((r) => `${r.usage} ${r.selector} ${r.matching}`).join(' and ')})`,
        );
        warnings.push(
          `${owner}: ${list.length + count} records exceed the cap of ${svc.cap}; not publishing the ${catalog!.ca} intermediates ${what.join(', ')}`,
        );
      }
      if (list.length > svc.cap) {
        warnings.push(
          `${owner}: ${list.length} records match served chains, over the cap of ${svc.cap} (some receivers, e.g. Microsoft's, handle about 12)`,
        );
      }
    }
    records.push(...list);
  }
  const coverageGaps = specs.some((s) => s.usage === 2)
    ? nameCoverageGaps(svc.host, svc.chains)
    : [];
  if (!svc.summarise) warnings.push(...coverageWarnings(coverageGaps));
  return { records, warnings, notes, coverageGaps, catalogMisses };
}

/** One note per distinct chain: a chain one service serves keeps the service's own note
 *  ("NAME: LABEL … only its own"); a lineage thousands of services share gets one note that
 *  counts them and names the first few, not a line each. */
export function catalogMissNotes(misses: readonly CatalogMiss[]): string[] {
  const byWhat = new Map<string, string[]>();
  for (const m of misses) {
    const services = byWhat.get(m.what);
    if (services) services.push(m.service);
    else byWhat.set(m.what, [m.service]);
  }
  const out: string[] = [];
  for (const [what, services] of byWhat) {
    if (services.length === 1) {
      out.push(`${services[0]}: ${what}`);
      continue;
    }
    out.push(`${what} (${countedNames(services, 'services')})`);
  }
  return out;
}
