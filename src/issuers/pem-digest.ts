/** What the build recorded about each shipped catalog PEM (scripts/catalog-digest.mjs writes
 *  dist/issuers-digest.json), so that a plan need not parse intermediates it never uses. An
 *  entry is keyed by the SHA-256 of the PEM file's bytes: a PEM edited or added by the user has
 *  another hash and is parsed as before. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

/** What loading and matching a catalog entry reads from its certificate. */
export interface PemFacts {
  /** certName() of the certificate. */
  name: string;
  /** X509Certificate.validTo, as OpenSSL prints it. */
  validTo: string;
  fingerprint256: string;
  /** SHA-256 of the exported SubjectPublicKeyInfo: the `2 1 1` data. */
  spki256: string;
}

/** PEM file SHA-256 (hex) → facts. */
export type PemDigest = ReadonlyMap<string, PemFacts>;

export const DIGEST_FILE = 'issuers-digest.json';

export function pemHash(pem: Uint8Array): string {
  return createHash('sha256').update(pem).digest('hex');
}

let builtin: PemDigest | undefined;

/** The digest the build wrote, or an empty one (an unbuilt checkout, a damaged file): without
 *  it every PEM is parsed, which gives the same catalog, only slower. */
export function builtinPemDigest(): PemDigest {
  if (builtin) return builtin;
  const digest = new Map<string, PemFacts>();
  try {
    const json = JSON.parse(readFileSync(join(packageRoot(), 'dist', DIGEST_FILE), 'utf8')) as {
      pems: Record<string, PemFacts>;
    };
    for (const [hash, f] of Object.entries(json.pems)) {
      if (
        typeof f?.name === 'string' &&
        typeof f.validTo === 'string' &&
        typeof f.fingerprint256 === 'string' &&
        typeof f.spki256 === 'string'
      )
        digest.set(hash, f);
    }
  } catch {
    digest.clear();
  }
  builtin = digest;
  return digest;
}
