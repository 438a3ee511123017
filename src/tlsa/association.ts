/** Association data (RFC 6698 §2.1.3) from DER: pure computation, no I/O. */
import { createHash, type X509Certificate } from 'node:crypto';
import type { MatchingType, Selector } from './record.js';

// Exporting a key is the costliest step of a plan (the catalog's intermediates are hashed again
// for every service); a certificate object never changes, so its SPKI is kept with it.
const spkiOf = new WeakMap<X509Certificate, Buffer>();

/** DER of the certificate (selector 0) or of its SubjectPublicKeyInfo (selector 1). */
export function selectedDer(cert: X509Certificate, selector: Selector): Buffer {
  if (selector === 0) return cert.raw;
  let der = spkiOf.get(cert);
  if (!der) {
    der = cert.publicKey.export({ type: 'spki', format: 'der' });
    spkiOf.set(cert, der);
  }
  return der;
}

export function matchData(der: Uint8Array, matching: MatchingType): string {
  switch (matching) {
    case 0:
      return Buffer.from(der).toString('hex');
    case 1:
      return createHash('sha256').update(der).digest('hex');
    case 2:
      return createHash('sha512').update(der).digest('hex');
  }
}

// The same certificates (a shared lineage, the catalog's intermediates) are matched for every
// service of a fleet: each certificate's data is computed once per selector and matching type.
const dataOf = new WeakMap<X509Certificate, Map<number, string>>();

export function associationData(
  cert: X509Certificate,
  selector: Selector,
  matching: MatchingType,
): string {
  let known = dataOf.get(cert);
  if (!known) {
    known = new Map<number, string>();
    dataOf.set(cert, known);
  }
  const slot = selector * 3 + matching;
  const cached = known.get(slot);
  if (cached !== undefined) return cached;
  const data = matchData(selectedDer(cert, selector), matching);
  known.set(slot, data);
  return data;
}

/** SHA2-256 and SHA2-512 of no bytes, written out: hashing them when this module loads made
 *  every command load node:crypto at start, even one that never hashes (status, a hook). */
const EMPTY_DIGEST: Record<1 | 2, string> = {
  1: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  2: 'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
};
const DIGEST_HEX_LENGTH: Record<1 | 2, number> = { 1: 64, 2: 128 };

/** Why this association data can never match a real certificate, or undefined when it can.
 *  Catches the classic script bug of hashing an empty pipe (Virtualmin published that). */
export function degenerateDataReason(matching: MatchingType, data: string): string | undefined {
  if (data.length % 2 !== 0 || !/^[0-9a-f]*$/.test(data))
    return 'the data is not an even number of lower-case hex digits';
  if (matching === 0) {
    // Full data is DER: a SEQUENCE (0x30) of at least a few bytes.
    if (data.length < 20 || !data.startsWith('30'))
      return 'full (matching type 0) data is not a DER certificate or key';
    return undefined;
  }
  const want = DIGEST_HEX_LENGTH[matching];
  if (data.length !== want) {
    return `${matching === 1 ? 'SHA2-256' : 'SHA2-512'} data must be ${want / 2} bytes (${want} hex digits), got ${data.length / 2}`;
  }
  if (data === EMPTY_DIGEST[matching])
    return 'the data is the digest of empty input (a script hashed nothing)';
  return undefined;
}
