/** Built-in ACME lineages made by hand for tests: a certificate whose validity the test chooses
 *  (pebble's last five years), in the layout `renew` leaves (src/acme/lineage.ts). */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CaHandle, makeLeaf } from './pki.js';

/** A built-in ACME lineage as `renew` leaves it (a symlink to a release), made by hand with a
 *  certificate valid from `notBefore` to `notAfter`. */
export function handMadeLineage(
  stateDir: string,
  ca: CaHandle,
  notBefore: Date,
  notAfter: Date,
): X509Certificate {
  const release = join(stateDir, 'acme/mx/releases/ecdsa-p256-1');
  mkdirSync(release, { recursive: true });
  const leaf = makeLeaf(release, { ca, cn: 'mx.example.org', key: 'p256', notBefore, notAfter });
  writeFileSync(join(release, 'cert.pem'), leaf.certPem);
  writeFileSync(join(release, 'chain.pem'), ca.certPem);
  writeFileSync(join(release, 'fullchain.pem'), leaf.certPem + ca.certPem);
  writeFileSync(join(release, 'privkey.pem'), leaf.keyPem, { mode: 0o600 });
  symlinkSync('releases/ecdsa-p256-1', join(stateDir, 'acme/mx/ecdsa-p256'));
  return new X509Certificate(leaf.certPem);
}
