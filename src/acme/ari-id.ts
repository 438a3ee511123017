/** The ARI certificate identifier (RFC 9773 §4.1): the certificate's Authority Key Identifier
 *  keyIdentifier and its serial number's DER INTEGER content bytes, each base64url without
 *  padding, joined by ".". Pure. */
import { X509Certificate } from 'node:crypto';
import { InputError } from '../errors.js';

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** The serial's DER INTEGER content: a positive number keeps (or gains) a leading zero byte
 *  when its top bit is set, and loses redundant ones, exactly as the certificate encodes it. */
export function serialDerBytes(serialHex: string): Buffer {
  let hex = serialHex.replace(/[^0-9a-fA-F]/g, '').toLowerCase();
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  while (bytes.length > 1 && bytes[0] === 0 && bytes[1]! < 0x80) bytes = bytes.subarray(1);
  if (bytes.length === 0) return Buffer.from([0]);
  return bytes[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes;
}

export function ariCertId(akiKeyIdHex: string, serialHex: string): string {
  const aki = Buffer.from(akiKeyIdHex.replace(/[^0-9a-fA-F]/g, ''), 'hex');
  return `${b64url(aki)}.${b64url(serialDerBytes(serialHex))}`;
}

/** A DER length at `at`: [value, bytes it took]. */
function derLength(der: Buffer, at: number): [number, number] {
  const first = der[at]!;
  if (first < 0x80) return [first, 1];
  const n = first & 0x7f;
  let len = 0;
  for (let i = 1; i <= n; i++) len = len * 256 + der[at + i]!;
  return [len, 1 + n];
}

/** The keyIdentifier of the authorityKeyIdentifier extension (OID 2.5.29.35), if any. */
export function authorityKeyId(certDer: Buffer): Buffer | undefined {
  const oid = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x23]);
  let at = certDer.indexOf(oid);
  if (at < 0) return undefined;
  at += oid.length;
  if (certDer[at] === 0x01) at += 3; // critical BOOLEAN (never set for AKI, but allowed)
  if (certDer[at] !== 0x04) return undefined;
  at += 1 + derLength(certDer, at + 1)[1];
  if (certDer[at] !== 0x30) return undefined;
  at += 1 + derLength(certDer, at + 1)[1];
  if (certDer[at] !== 0x80) return undefined; // [0] keyIdentifier comes first when present
  const [len, took] = derLength(certDer, at + 1);
  const start = at + 1 + took;
  return certDer.subarray(start, start + len);
}

/** The ARI id of a PEM certificate; a certificate without an AKI keyIdentifier has none. */
export function ariCertIdOf(certPem: string): string {
  const cert = new X509Certificate(certPem);
  const aki = authorityKeyId(cert.raw);
  if (!aki) throw new InputError('the certificate has no Authority Key Identifier: no ARI id');
  return ariCertId(aki.toString('hex'), cert.serialNumber);
}
