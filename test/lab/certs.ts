/** Certificates as DANE sees them: PEM bundles, SPKI digests, the records a chain needs. */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { toolPath } from './lab.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

export const spki = (c: X509Certificate): Buffer =>
  c.publicKey.export({ type: 'spki', format: 'der' }) as Buffer;

export const pemCerts = (text: string): X509Certificate[] =>
  (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );

/** `3 1 1` of a certificate (what an end-entity record holds). */
export const eeRecord = (c: X509Certificate): string => `3 1 1 ${sha256(spki(c))}`;
/** `2 1 1` of a certificate (what a trust-anchor record holds for an issuer). */
export const taRecord = (c: X509Certificate): string => `2 1 1 ${sha256(spki(c))}`;

/** The `3 1 1` of the leaf and the `2 1 1` of its issuer: what a chain needs published. */
export function chainRecords(fullchainPem: string): {
  ee: string;
  ta: string;
  leaf: X509Certificate;
} {
  const [leaf, issuer] = pemCerts(fullchainPem);
  if (!leaf || !issuer) throw new Error('chain without leaf and issuer');
  return { ee: eeRecord(leaf), ta: taRecord(issuer), leaf };
}

/** A self-signed P-256 key and certificate for `cn` in `dir` (for a server that needs some
 *  certificate to start before the real one exists), with `san` (`IP:127.0.0.1`) when given. */
export function throwawayCert(
  dir: string,
  cn: string,
  san?: string,
): { keyPath: string; fullchainPath: string } {
  const keyPath = join(dir, 'throwaway-key.pem');
  const fullchainPath = join(dir, 'throwaway-cert.pem');
  execFileSync(
    toolPath('openssl', 'openssl'),
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyPath,
      '-out',
      fullchainPath,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      ...(san ? ['-addext', `subjectAltName=${san}`] : []),
    ],
    { stdio: 'ignore' },
  );
  return { keyPath, fullchainPath };
}
