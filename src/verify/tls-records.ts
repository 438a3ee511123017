/**
 * The server's side of a TLS handshake, read from the bytes it sent: records, handshake
 * messages, the Certificate message (plaintext in TLS <= 1.2; in TLS 1.3 decrypted with the
 * server handshake traffic secret, RFC 8446 §7.1, §7.3, §5.2). Pure: bytes in, certificates out,
 * so every path can be tested from recorded or constructed bytes.
 */
import { createDecipheriv, createHmac } from 'node:crypto';

export interface TlsRecord {
  type: number;
  /** The 5-byte record header (TLS 1.3 AEAD additional data). */
  header: Buffer;
  fragment: Buffer;
}

export const REC_CHANGE_CIPHER_SPEC = 20;
export const REC_ALERT = 21;
export const REC_HANDSHAKE = 22;
export const REC_APPLICATION_DATA = 23;
export const HS_SERVER_HELLO = 2;
export const HS_CERTIFICATE = 11;

/** Complete records at the start of `bytes` (a trailing partial record is ignored). */
export function splitRecords(bytes: Buffer): TlsRecord[] {
  const out: TlsRecord[] = [];
  let off = 0;
  while (off + 5 <= bytes.length) {
    const len = bytes.readUInt16BE(off + 3);
    if (off + 5 + len > bytes.length) break;
    out.push({
      type: bytes[off]!,
      header: bytes.subarray(off, off + 5),
      fragment: bytes.subarray(off + 5, off + 5 + len),
    });
    off += 5 + len;
  }
  return out;
}

/** Handshake messages in a byte stream (message boundaries ignore record boundaries). */
export function* handshakeMessages(stream: Buffer): Generator<{ type: number; body: Buffer }> {
  let off = 0;
  while (off + 4 <= stream.length) {
    const len = stream.readUIntBE(off + 1, 3);
    if (off + 4 + len > stream.length) return;
    yield { type: stream[off]!, body: stream.subarray(off + 4, off + 4 + len) };
    off += 4 + len;
  }
}

class Reader {
  off = 0;
  constructor(private readonly b: Buffer) {}
  need(n: number): void {
    if (this.off + n > this.b.length) throw new Error('truncated');
  }
  u8(): number {
    this.need(1);
    return this.b[this.off++]!;
  }
  u16(): number {
    this.need(2);
    const v = this.b.readUInt16BE(this.off);
    this.off += 2;
    return v;
  }
  u24(): number {
    this.need(3);
    const v = this.b.readUIntBE(this.off, 3);
    this.off += 3;
    return v;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  get done(): boolean {
    return this.off === this.b.length;
  }
}

/** certificate_list of a Certificate message body (TLS 1.3 has a request context and
 *  per-entry extensions, TLS ≤ 1.2 has neither). Copies the DER out of the capture buffer. */
export function parseCertificateMessage(body: Buffer, tls13: boolean): Buffer[] {
  const r = new Reader(body);
  if (tls13) r.bytes(r.u8());
  const list = new Reader(r.bytes(r.u24()));
  if (!r.done) throw new Error('trailing bytes after certificate_list');
  const certs: Buffer[] = [];
  while (!list.done) {
    certs.push(Buffer.from(list.bytes(list.u24())));
    if (tls13) list.bytes(list.u16());
  }
  return certs;
}

export interface Tls13Suite {
  cipher: string;
  keyLen: number;
  tagLen: number;
  hash: 'sha256' | 'sha384';
}

export const TLS13_CIPHERS: Record<number, Tls13Suite> = {
  4865: { cipher: 'aes-128-gcm', keyLen: 16, tagLen: 16, hash: 'sha256' },
  4866: { cipher: 'aes-256-gcm', keyLen: 32, tagLen: 16, hash: 'sha384' },
  4867: { cipher: 'chacha20-poly1305', keyLen: 32, tagLen: 16, hash: 'sha256' },
  4868: { cipher: 'aes-128-ccm', keyLen: 16, tagLen: 16, hash: 'sha256' },
  4869: { cipher: 'aes-128-ccm', keyLen: 16, tagLen: 8, hash: 'sha256' },
};

/** HKDF-Expand-Label (RFC 8446 §7.1) with an empty context. */
export function hkdfExpandLabel(
  hash: string,
  secret: Buffer,
  label: string,
  length: number,
): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([
    Buffer.from([length >> 8, length & 0xff, full.length]),
    full,
    Buffer.from([0]),
  ]);
  const blocks: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    prev = createHmac(hash, secret)
      .update(Buffer.concat([prev, info, Buffer.from([i])]))
      .digest();
    blocks.push(prev);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

function decryptTls13Record(
  suite: Tls13Suite,
  key: Buffer,
  iv: Buffer,
  seq: bigint,
  rec: TlsRecord,
): Buffer {
  const nonce = Buffer.from(iv);
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(seq);
  for (let i = 0; i < 8; i++) nonce[4 + i]! ^= seqBytes[i]!;
  const ct = rec.fragment.subarray(0, rec.fragment.length - suite.tagLen);
  const tag = rec.fragment.subarray(rec.fragment.length - suite.tagLen);
  // The GCM/CCM/ChaCha20-Poly1305 ciphers are AEADs; node's typings want the CCM overload.
  const d = createDecipheriv(suite.cipher as 'aes-128-ccm', key, nonce, {
    authTagLength: suite.tagLen,
  });
  if (suite.cipher.endsWith('-ccm')) {
    d.setAuthTag(tag);
    d.setAAD(rec.header, { plaintextLength: ct.length });
  } else {
    d.setAAD(rec.header, { plaintextLength: ct.length });
    d.setAuthTag(tag);
  }
  const inner = Buffer.concat([d.update(ct), d.final()]);
  let end = inner.length;
  while (end > 0 && inner[end - 1] === 0) end--;
  if (end === 0) throw new Error('TLSInnerPlaintext without a content type');
  return inner.subarray(0, end); // content + content type byte
}

/**
 * The server's certificate chain from the bytes the server sent (from its first TLS record on):
 * TLS ≤ 1.2 from the plaintext Certificate message; TLS 1.3 by decrypting the server's
 * handshake records with `serverHandshakeSecret` (hex, from the keylog line
 * SERVER_HANDSHAKE_TRAFFIC_SECRET). Returns undefined when the chain cannot be read.
 */
export function chainFromServerBytes(
  bytes: Buffer,
  tlsVersion: string,
  serverHandshakeSecret?: string,
): Buffer[] | undefined {
  try {
    const records = splitRecords(bytes);
    const plainHs: Buffer[] = [];
    let firstEncrypted = records.length;
    for (let i = 0; i < records.length; i++) {
      const rec = records[i]!;
      if (rec.type === REC_CHANGE_CIPHER_SPEC && tlsVersion !== 'TLSv1.3') {
        firstEncrypted = i;
        break;
      }
      if (rec.type === REC_APPLICATION_DATA) {
        firstEncrypted = i;
        break;
      }
      if (rec.type === REC_HANDSHAKE) plainHs.push(rec.fragment);
      else if (rec.type === REC_ALERT) return undefined;
    }
    const plain = Buffer.concat(plainHs);
    if (tlsVersion !== 'TLSv1.3') {
      for (const m of handshakeMessages(plain)) {
        if (m.type === HS_CERTIFICATE) return parseCertificateMessage(m.body, false);
      }
      return undefined;
    }
    if (!serverHandshakeSecret) return undefined;
    let suiteId: number | undefined;
    for (const m of handshakeMessages(plain)) {
      if (m.type !== HS_SERVER_HELLO) continue;
      const r = new Reader(m.body);
      r.bytes(2 + 32);
      r.bytes(r.u8());
      suiteId = r.u16(); // the last ServerHello wins (after a HelloRetryRequest)
    }
    const suite = suiteId === undefined ? undefined : TLS13_CIPHERS[suiteId];
    if (!suite) return undefined;
    const secret = Buffer.from(serverHandshakeSecret, 'hex');
    const key = hkdfExpandLabel(suite.hash, secret, 'key', suite.keyLen);
    const iv = hkdfExpandLabel(suite.hash, secret, 'iv', 12);
    let seq = 0n;
    let hs = Buffer.alloc(0);
    for (const rec of records.slice(firstEncrypted)) {
      if (rec.type === REC_CHANGE_CIPHER_SPEC) continue;
      if (rec.type !== REC_APPLICATION_DATA) return undefined;
      const inner = decryptTls13Record(suite, key, iv, seq++, rec);
      const contentType = inner[inner.length - 1]!;
      if (contentType !== REC_HANDSHAKE) return undefined;
      hs = Buffer.concat([hs, inner.subarray(0, inner.length - 1)]);
      for (const m of handshakeMessages(hs)) {
        if (m.type === HS_CERTIFICATE) return parseCertificateMessage(m.body, true);
      }
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/** The server handshake traffic secret (hex) among the lines Node's `keylog` event gave. */
export function serverHandshakeSecret(keylog: readonly string[]): string | undefined {
  return keylog
    .map((l) => /^SERVER_HANDSHAKE_TRAFFIC_SECRET [0-9a-f]+ ([0-9a-f]+)\s*$/i.exec(l)?.[1])
    .find((s): s is string => s !== undefined);
}
