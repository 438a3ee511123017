/** The issuer catalog: which intermediates a CA may issue the next certificate from, per key
 *  family, shipped as a dated data file (src/issuers/<ca>/catalog.json + the PEMs). */
import { X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { certName } from '../certs/chain.js';
import type { KeyFamily } from '../certs/key-type.js';
import { InputError } from '../errors.js';
import { associationData } from '../tlsa/association.js';
import { packageRoot } from '../util/package-root.js';
import { MAX_CATALOG_BYTES, readInputFile, readInputText } from '../util/read-input.js';
import { builtinPemDigest, type PemDigest, type PemFacts, pemHash } from './pem-digest.js';

export type IssuerStatus = 'active' | 'backup' | 'retired';

export interface CatalogIssuer {
  name: string;
  key: KeyFamily;
  status: IssuerStatus;
  notAfter: Date;
  /** Parsed on first use when the build's digest vouched for the PEM. */
  readonly cert: X509Certificate;
  file: string;
}

export interface IssuerCatalog {
  ca: string;
  asOf: string;
  file: string;
  intermediates: CatalogIssuer[];
}

interface CatalogJson {
  ca: string;
  asOf: string;
  intermediates: {
    name: string;
    key: KeyFamily;
    status: IssuerStatus;
    notAfter: string;
    file: string;
  }[];
}

export const BUILTIN_CATALOGS = ['letsencrypt'] as const;

export function builtinCatalogPath(ca: string): string {
  return join(packageRoot(), 'src', 'issuers', ca, 'catalog.json');
}

/** What a catalog needs from an entry's certificate: written into the build's digest by the
 *  same code, so an entry the digest vouches for loads and matches exactly as when parsed. */
export function pemFacts(cert: X509Certificate): PemFacts {
  return {
    name: certName(cert),
    validTo: cert.validTo,
    fingerprint256: cert.fingerprint256,
    spki256: associationData(cert, 1, 1),
  };
}

// The facts each entry loaded from the digest stands for (entries parsed at load have none).
const factsOf = new WeakMap<CatalogIssuer, PemFacts>();

/** Load a catalog file; each entry's PEM must say what the entry says (name and notAfter), so a
 *  wrong file in an update fails loudly instead of publishing the wrong hash. A PEM whose bytes
 *  the digest knows is read but not parsed until a caller needs its certificate: a plan whose
 *  chains come from another CA parses none of the shipped intermediates. */
export function loadCatalog(file: string, digest: PemDigest = builtinPemDigest()): IssuerCatalog {
  const text = readInputText(file, { what: 'the issuer catalog', maxBytes: MAX_CATALOG_BYTES });
  let json: CatalogJson;
  try {
    json = JSON.parse(text) as CatalogJson;
  } catch (e) {
    throw new InputError(`cannot read the issuer catalog: ${(e as Error).message}`, file);
  }
  const dir = dirname(file);
  const intermediates = json.intermediates.map((e) => {
    const pemFile = join(dir, e.file);
    let pem: Buffer;
    let facts: PemFacts | undefined;
    let cert: X509Certificate | undefined;
    try {
      pem = readInputFile(pemFile, { what: e.file, maxBytes: MAX_CATALOG_BYTES });
      facts = digest.size ? digest.get(pemHash(pem)) : undefined;
      if (!facts) cert = new X509Certificate(pem);
    } catch (err) {
      throw new InputError(
        `catalog entry ${e.name}: cannot load ${e.file}: ${(err as Error).message}`,
        file,
      );
    }
    const notAfter = new Date(e.notAfter);
    // A parsed entry is checked as the digest's facts were made (pemFacts), without the key
    // export that only matching needs.
    const name = facts ? facts.name : certName(cert!);
    const validTo = facts ? facts.validTo : cert!.validTo;
    if (name !== e.name || new Date(validTo).getTime() !== notAfter.getTime()) {
      throw new InputError(
        `catalog entry ${e.name} does not match ${e.file} (CN=${name}, notAfter ${validTo})`,
        file,
      );
    }
    const entry: CatalogIssuer = {
      name: e.name,
      key: e.key,
      status: e.status,
      notAfter,
      get cert() {
        cert ??= new X509Certificate(pem);
        return cert;
      },
      file: pemFile,
    };
    if (facts) factsOf.set(entry, facts);
    return entry;
  });
  return { ca: json.ca, asOf: json.asOf, file, intermediates };
}

/** The intermediates the next certificate of this key family may come from: active and backup
 *  ones that have not expired. Retired ones matter only while a served chain still uses them,
 *  and the served chain's own issuer is always added by the caller. */
export function issuerFamily(
  catalog: IssuerCatalog,
  family: KeyFamily,
  now: Date,
): CatalogIssuer[] {
  return catalog.intermediates.filter(
    (i) => i.key === family && i.status !== 'retired' && i.notAfter.getTime() >= now.getTime(),
  );
}

/** The catalog entry that is this certificate (same key; any status), or undefined: a chain
 *  whose issuer is not in the catalog comes from another CA, about which the catalog says
 *  nothing. */
export function catalogIssuerOf(
  catalog: IssuerCatalog,
  cert: X509Certificate,
): CatalogIssuer | undefined {
  // Exporting a key (for its SPKI hash) costs more than parsing the certificate, and a chain
  // from another CA would export every entry's: keys that OpenSSL finds unequal cannot have
  // the same SPKI, so only an entry with an equal key is compared by its SPKI hash. An entry
  // the digest vouches for is compared by its recorded fingerprint and SPKI hash first (the
  // certificate's own SPKI is hashed once, and `2 1 1` records need it anyway), and parsed
  // only when both keys hash alike.
  return catalog.intermediates.find((i) => {
    const facts = factsOf.get(i);
    if (facts) {
      if (facts.fingerprint256 === cert.fingerprint256) return true;
      if (facts.spki256 !== associationData(cert, 1, 1)) return false;
    } else if (i.cert.fingerprint256 === cert.fingerprint256) return true;
    return (
      i.cert.publicKey.equals(cert.publicKey) &&
      associationData(i.cert, 1, 1) === associationData(cert, 1, 1)
    );
  });
}
