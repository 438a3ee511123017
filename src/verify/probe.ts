/**
 * Live probe of a TLS service: connect, do the STARTTLS dialogue (SMTP, LMTP, IMAP, POP3) or
 * go straight to TLS (implicit TLS: 465, 993, 995, 443), and report the certificate chain
 * exactly as the server sent it, with protocol version, cipher and the leaf's key type.
 *
 * The chain as sent. Node's `getPeerCertificate(true)` is NOT it: Node rebuilds an issuer chain
 * from the sent certificates (dropping certificates that are not on the path, reordering the
 * rest) and, when the last one is not self-signed, appends its issuer from the LOCAL trust
 * store (the Mozilla roots by default, or the `ca` option). A server that sends leaf +
 * intermediate is reported as leaf + intermediate + root when the root is trusted locally.
 * So the probe reads the Certificate handshake message off the wire instead: the TLS bytes go
 * through a small pass-through stream that keeps a copy of what the server sent; for TLS 1.2
 * the Certificate message is plaintext, for TLS 1.3 it is decrypted with the server handshake
 * traffic secret that Node hands out through the `keylog` event (RFC 8446 §7.1, §7.3, §5.2).
 * Only if that fails (an unknown cipher suite, compressed certificates) does the probe fall
 * back to walking `getPeerCertificate(true)` over a secure context with an EMPTY trust store
 * (so nothing local can be added); `chainSource` says which one was used.
 *
 * A probe never throws: every failure is a `{ ok: false, error }` with a code and a message
 * naming the phase (connect, greeting, EHLO, STARTTLS, handshake).
 */
import { createDecipheriv, createHmac, X509Certificate } from 'node:crypto';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import {
  imapStarttls,
  PlainConnection,
  pop3Starttls,
  ProbeFailure,
  quitCommand,
  smtpStarttls,
  socketFailure,
  type ProbeErrorCode,
} from './starttls.js';
import { alertFromError, opensslReason, type TlsAlert } from './tls-alerts.js';

export type { ProbeErrorCode } from './starttls.js';
export type { TlsAlert } from './tls-alerts.js';

export type ProbeProtocol = 'smtp' | 'lmtp' | 'imap' | 'pop3' | 'tls';
export type ProbeKeyType = 'rsa' | 'ecdsa';
export type LeafKeyType = 'rsa' | 'ecdsa' | 'ed25519' | 'other';

export interface ProbeTarget {
  /** Name for SNI and messages (an IP address here means: no SNI). */
  host: string;
  /** IP address to connect to. */
  address: string;
  port: number;
  /** STARTTLS dialogue to run first; 'tls' = implicit TLS (handshake at once). */
  protocol: ProbeProtocol;
  /** Offer only this key type's signature algorithms (and, for TLS 1.2, cipher suites), so that
   *  a server with an RSA and an ECDSA certificate presents that one. Default: no restriction. */
  keyType?: ProbeKeyType;
  /** Whole-probe deadline in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** EHLO/LHLO argument; default the address literal of the local end, e.g. "[127.0.0.1]". */
  ehloName?: string;
}

export interface ProbeError {
  code: ProbeErrorCode;
  message: string;
  /** The TLS alert received from the server (code 'alert'). */
  alert?: TlsAlert;
}

export type ProbeResult =
  | {
      ok: true;
      /** DER of each certificate as the server sent it, leaf first. */
      chain: Buffer[];
      /** e.g. 'TLSv1.3'. */
      tlsVersion: string;
      /** IANA/RFC name, e.g. 'TLS_AES_256_GCM_SHA384', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'. */
      cipher: string;
      /** Key type of the leaf certificate. */
      keyType: LeafKeyType;
      /** The greeting: the plaintext one before STARTTLS, or for implicit TLS the one sent
       *  inside TLS when the server speaks first (SMTPS, IMAPS, POP3S). */
      banner?: string;
      /** 'wire': read from the handshake bytes (exact); 'peer-certificate': fallback walk of
       *  Node's getPeerCertificate(true) (issuer order, certificates off the path dropped). */
      chainSource?: 'wire' | 'peer-certificate';
    }
  | { ok: false; error: ProbeError };

export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

// ---------------------------------------------------------------------------------------------
// Key type restriction

const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

const SIGALGS: Record<ProbeKeyType, string> = {
  rsa: [
    'rsa_pss_rsae_sha256',
    'rsa_pss_rsae_sha384',
    'rsa_pss_rsae_sha512',
    'rsa_pss_pss_sha256',
    'rsa_pss_pss_sha384',
    'rsa_pss_pss_sha512',
    'rsa_pkcs1_sha256',
    'rsa_pkcs1_sha384',
    'rsa_pkcs1_sha512',
  ].join(':'),
  ecdsa: 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512',
};

/** The tls.connect options that make a dual-certificate server present the `keyType` chain:
 *  TLS 1.3 picks the certificate by signature_algorithms, TLS 1.2 by the cipher suite's
 *  authentication (aRSA / aECDSA) as well. */
export function keyTypeTlsOptions(
  keyType: ProbeKeyType | undefined,
): Pick<ConnectionOptions, 'sigalgs' | 'ciphers'> {
  if (!keyType) return {};
  return {
    sigalgs: SIGALGS[keyType],
    ciphers: `${TLS13_SUITES}:${keyType === 'rsa' ? 'aRSA' : 'aECDSA'}:!aNULL:!eNULL`,
  };
}

// ---------------------------------------------------------------------------------------------
// Chain as sent: TLS records → Certificate handshake message

interface TlsRecord {
  type: number;
  /** The 5-byte record header (TLS 1.3 AEAD additional data). */
  header: Buffer;
  fragment: Buffer;
}

const REC_CHANGE_CIPHER_SPEC = 20;
const REC_ALERT = 21;
const REC_HANDSHAKE = 22;
const REC_APPLICATION_DATA = 23;
const HS_SERVER_HELLO = 2;
const HS_CERTIFICATE = 11;

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
function* handshakeMessages(stream: Buffer): Generator<{ type: number; body: Buffer }> {
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

interface Tls13Suite {
  cipher: string;
  keyLen: number;
  tagLen: number;
  hash: 'sha256' | 'sha384';
}

const TLS13_CIPHERS: Record<number, Tls13Suite> = {
  4865: { cipher: 'aes-128-gcm', keyLen: 16, tagLen: 16, hash: 'sha256' },
  4866: { cipher: 'aes-256-gcm', keyLen: 32, tagLen: 16, hash: 'sha384' },
  4867: { cipher: 'chacha20-poly1305', keyLen: 32, tagLen: 16, hash: 'sha256' },
  4868: { cipher: 'aes-128-ccm', keyLen: 16, tagLen: 16, hash: 'sha256' },
  4869: { cipher: 'aes-128-ccm', keyLen: 16, tagLen: 8, hash: 'sha256' },
};

/** HKDF-Expand-Label (RFC 8446 §7.1) with an empty context. */
function hkdfExpandLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
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

/** Fallback: Node's issuer walk. With the empty trust store used by the probe, nothing from the
 *  local store can be appended; stops at a self-reference (self-signed) or a repeat. */
function chainFromPeerCertificate(sock: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let c = sock.getPeerCertificate(true) as
    | (ReturnType<TLSSocket['getPeerCertificate']> & { issuerCertificate?: unknown })
    | undefined;
  while (c?.raw && !seen.has(c.fingerprint256)) {
    seen.add(c.fingerprint256);
    out.push(Buffer.from(c.raw));
    const next = c.issuerCertificate as typeof c | undefined;
    if (!next || next === c) break;
    c = next;
  }
  return out;
}

export function leafKeyType(der: Buffer | undefined): LeafKeyType {
  if (!der) return 'other';
  try {
    switch (new X509Certificate(der).publicKey.asymmetricKeyType) {
      case 'rsa':
      case 'rsa-pss':
        return 'rsa';
      case 'ec':
        return 'ecdsa';
      case 'ed25519':
        return 'ed25519';
      default:
        return 'other';
    }
  } catch {
    return 'other';
  }
}

// ---------------------------------------------------------------------------------------------
// Sockets

const CAPTURE_LIMIT = 4 * 1024 * 1024;

/** Pass-through between the TCP socket and the TLS engine that keeps a copy of the bytes the
 *  server sent until capture is stopped (after the handshake). */
class CaptureStream extends Duplex {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private capturing = true;

  constructor(private readonly raw: Socket) {
    super();
    raw.on('data', (d: Buffer) => {
      if (this.capturing && this.size < CAPTURE_LIMIT) {
        this.chunks.push(d);
        this.size += d.length;
      }
      if (!this.push(d)) raw.pause();
    });
    raw.on('end', () => this.push(null));
    raw.on('error', (e) => this.destroy(e));
    raw.on('close', () => {
      if (!this.destroyed) this.push(null);
    });
  }

  override _read(): void {
    this.raw.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.raw.destroyed) {
      cb();
      return;
    }
    this.raw.write(chunk, (err) => cb(err ?? null));
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.raw.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.raw.destroy();
    cb(err);
  }

  stopCapture(): Buffer {
    this.capturing = false;
    const all = Buffer.concat(this.chunks);
    this.chunks.length = 0;
    return all;
  }
}

function connectTcp(
  t: ProbeTarget,
  deadline: number,
  timeoutMs: number,
  where: string,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: t.address, port: t.port });
    socket.on('error', () => {
      /* handled below and by later listeners */
    });
    const timer = setTimeout(
      () => {
        cleanup();
        socket.destroy();
        reject(
          new ProbeFailure('timeout', `timed out after ${timeoutMs} ms connecting to ${where}`),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    const onConnect = (): void => {
      cleanup();
      socket.setNoDelay(true);
      resolve(socket);
    };
    const onError = (err: unknown): void => {
      cleanup();
      socket.destroy();
      reject(socketFailure(err, 'connect', where));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
    socket.once('connect', onConnect);
    socket.once('error', onError);
  });
}

function tlsFailure(err: unknown, where: string, afterStarttls: boolean): ProbeFailure {
  const alert = alertFromError(err);
  if (alert) {
    return new ProbeFailure(
      'alert',
      `${where} sent TLS alert ${alert.number} (${alert.name}) during the TLS handshake`,
      alert,
    );
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const message = (err as Error | undefined)?.message ?? String(err);
  if (
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /disconnected before secure TLS connection/i.test(message)
  ) {
    return new ProbeFailure(
      'closed',
      afterStarttls
        ? `${where} closed the connection after accepting STARTTLS, before the TLS handshake completed`
        : `${where} closed the connection during the TLS handshake`,
    );
  }
  if (code.startsWith('ERR_SSL_') || /SSL routines/.test(message)) {
    return new ProbeFailure(
      'handshake',
      `TLS handshake with ${where} failed: ${opensslReason(err)}`,
    );
  }
  return socketFailure(err, 'TLS handshake', where);
}

interface Handshake {
  sock: TLSSocket;
  chain: Buffer[];
  chainSource: 'wire' | 'peer-certificate';
}

function handshake(
  raw: Socket,
  t: ProbeTarget,
  deadline: number,
  timeoutMs: number,
  where: string,
): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const capture = new CaptureStream(raw);
    capture.on('error', () => {
      /* reported through the TLS socket */
    });
    const keylog: string[] = [];
    let settled = false;
    const opts: ConnectionOptions = {
      socket: capture,
      rejectUnauthorized: false,
      checkServerIdentity: () => undefined,
      // An empty trust store: the probe verifies nothing here, and Node cannot pad the peer
      // chain with local certificates (see the module comment).
      ca: [],
      ...keyTypeTlsOptions(t.keyType),
    };
    const sni = t.host.replace(/\.$/, '');
    if (sni && isIP(sni) === 0) opts.servername = sni;
    let sock: TLSSocket;
    try {
      sock = tlsConnect(opts);
    } catch (e) {
      reject(
        new ProbeFailure('handshake', `cannot start TLS with ${where}: ${(e as Error).message}`),
      );
      return;
    }
    sock.on('keylog', (line: Buffer) => {
      keylog.push(line.toString('latin1'));
    });
    const afterStarttls = t.protocol !== 'tls';
    const fail = (f: ProbeFailure): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(f);
    };
    const timer = setTimeout(
      () => {
        fail(
          new ProbeFailure(
            'timeout',
            `timed out after ${timeoutMs} ms during the TLS handshake with ${where}`,
          ),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    sock.on('error', (err) => fail(tlsFailure(err, where, afterStarttls)));
    sock.on('close', () =>
      fail(
        new ProbeFailure(
          'closed',
          afterStarttls
            ? `${where} closed the connection after accepting STARTTLS, before the TLS handshake completed`
            : `${where} closed the connection during the TLS handshake`,
        ),
      ),
    );
    sock.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const bytes = capture.stopCapture();
      const version = sock.getProtocol() ?? '';
      const secret = keylog
        .map((l) => /^SERVER_HANDSHAKE_TRAFFIC_SECRET [0-9a-f]+ ([0-9a-f]+)\s*$/i.exec(l)?.[1])
        .find((s): s is string => s !== undefined);
      const wire = chainFromServerBytes(bytes, version, secret);
      if (wire && wire.length > 0) resolve({ sock, chain: wire, chainSource: 'wire' });
      else
        resolve({ sock, chain: chainFromPeerCertificate(sock), chainSource: 'peer-certificate' });
    });
  });
}

/** How long an implicit-TLS probe waits for a server-first greeting (SMTPS, IMAPS, POP3S). */
const IMPLICIT_GREETING_WAIT_MS = 1500;

/**
 * After the handshake: for implicit TLS, read the greeting if the server speaks first (not on
 * 443, where the client speaks first) to learn the protocol; then QUIT/LOGOUT and wait briefly
 * for the answer; then close_notify. Returns the implicit-TLS greeting. Never fails the probe.
 */
async function closePolitely(
  sock: TLSSocket,
  t: ProbeTarget,
  deadline: number,
  where: string,
): Promise<string | undefined> {
  sock.removeAllListeners('close');
  sock.removeAllListeners('error');
  sock.on('error', () => {
    /* the result is already decided */
  });
  const budget = (): number => Math.min(1000, deadline - Date.now());
  let cmd = quitCommand(t.protocol);
  let banner: string | undefined;
  if (t.protocol === 'tls' && t.port !== 443 && deadline - Date.now() > 0) {
    const wait = Math.min(IMPLICIT_GREETING_WAIT_MS, deadline - Date.now());
    const conn = new PlainConnection(sock, Date.now() + wait, wait, where);
    try {
      const first = await conn.readLine('greeting');
      if (/^220[ -]/.test(first)) {
        const lines = [first];
        while (/^220-/.test(lines[lines.length - 1]!) && lines.length < 100)
          lines.push(await conn.readLine('greeting'));
        banner = lines.join('\n');
        cmd = 'QUIT';
      } else if (/^\* OK\b/i.test(first)) {
        banner = first;
        cmd = 'a2 LOGOUT';
      } else if (/^\+OK\b/.test(first)) {
        banner = first;
        cmd = 'QUIT';
      }
    } catch {
      // no greeting (HTTPS and other client-first protocols): just close
    } finally {
      conn.detach();
    }
  }
  const waitFor = (ms: number, ...events: string[]): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        for (const e of events) sock.off(e, done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      for (const e of events) sock.once(e, done);
    });
  if (cmd && !sock.destroyed && budget() > 0) {
    sock.write(`${cmd}\r\n`);
    await waitFor(budget(), 'data', 'end', 'close');
  }
  if (!sock.destroyed) {
    sock.end();
    await waitFor(Math.min(300, Math.max(0, budget())), 'close');
  }
  sock.destroy();
  return banner;
}

function validate(t: ProbeTarget): ProbeFailure | undefined {
  const where = `${t?.host}[${t?.address}]:${t?.port}`;
  if (!t || typeof t.address !== 'string' || isIP(t.address) === 0) {
    return new ProbeFailure(
      'unreachable',
      `${where}: the address to connect to is not an IP address`,
    );
  }
  if (typeof t.host !== 'string') {
    return new ProbeFailure(
      'protocol',
      `${where}: host must be a string (the name for SNI and messages)`,
    );
  }
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) {
    return new ProbeFailure('unreachable', `${where}: bad port ${String(t.port)}`);
  }
  if (!['smtp', 'lmtp', 'imap', 'pop3', 'tls'].includes(t.protocol)) {
    return new ProbeFailure('protocol', `${where}: unknown protocol ${JSON.stringify(t.protocol)}`);
  }
  if (t.keyType !== undefined && t.keyType !== 'rsa' && t.keyType !== 'ecdsa') {
    return new ProbeFailure('protocol', `${where}: unknown keyType ${JSON.stringify(t.keyType)}`);
  }
  if (t.ehloName !== undefined && !/^[\x21-\x7e]+$/.test(t.ehloName)) {
    return new ProbeFailure('protocol', `${where}: bad ehloName ${JSON.stringify(t.ehloName)}`);
  }
  return undefined;
}

function addressLiteral(ip: string | undefined): string {
  if (!ip) return '[127.0.0.1]';
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (v4mapped) return `[${v4mapped[1]}]`;
  return isIP(ip) === 6 ? `[IPv6:${ip}]` : `[${ip}]`;
}

async function runProbe(t: ProbeTarget): Promise<ProbeResult> {
  const invalid = validate(t);
  if (invalid) throw invalid;
  const timeoutMs =
    t.timeoutMs !== undefined && Number.isFinite(t.timeoutMs) && t.timeoutMs > 0
      ? t.timeoutMs
      : DEFAULT_PROBE_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  const host = isIP(t.address) === 6 ? `[${t.address}]` : t.address;
  const where =
    t.host && t.host !== t.address ? `${t.host}[${t.address}]:${t.port}` : `${host}:${t.port}`;

  const raw = await connectTcp(t, deadline, timeoutMs, where);
  raw.on('error', () => {
    /* each phase reports errors itself */
  });
  try {
    let banner: string | undefined;
    if (t.protocol !== 'tls') {
      const conn = new PlainConnection(raw, deadline, timeoutMs, where);
      let r: { banner: string };
      try {
        r =
          t.protocol === 'imap'
            ? await imapStarttls(conn)
            : t.protocol === 'pop3'
              ? await pop3Starttls(conn)
              : await smtpStarttls(conn, {
                  lmtp: t.protocol === 'lmtp',
                  ehloName: t.ehloName ?? addressLiteral(raw.localAddress),
                });
      } catch (e) {
        conn.detach();
        throw e;
      }
      banner = r.banner;
      const rest = conn.detach();
      if (rest.length > 0) {
        // RFC 3207 §4.2 / RFC 2595 §3.1: nothing may follow the go-ahead in plaintext.
        throw new ProbeFailure(
          'protocol',
          `${where} sent ${rest.length} byte(s) of plaintext after its STARTTLS reply`,
        );
      }
    }
    const hs = await handshake(raw, t, deadline, timeoutMs, where);
    const cipher = hs.sock.getCipher();
    const result: ProbeResult = {
      ok: true,
      chain: hs.chain,
      tlsVersion: hs.sock.getProtocol() ?? 'unknown',
      cipher: (cipher as { standardName?: string }).standardName ?? cipher.name,
      keyType: leafKeyType(hs.chain[0]),
      chainSource: hs.chainSource,
    };
    const implicitBanner = await closePolitely(hs.sock, t, deadline, where).catch(() => undefined);
    banner ??= implicitBanner;
    if (banner !== undefined) result.banner = banner;
    return result;
  } finally {
    raw.destroy();
  }
}

function toFailure(e: unknown): ProbeResult {
  if (e instanceof ProbeFailure) {
    const error: ProbeError = { code: e.code, message: e.message };
    if (e.alert) error.alert = e.alert;
    return { ok: false, error };
  }
  return {
    ok: false,
    error: { code: 'protocol', message: `internal error: ${(e as Error)?.message ?? String(e)}` },
  };
}

/** Probe one service. Never throws and never rejects. */
export function probe(target: ProbeTarget): Promise<ProbeResult> {
  try {
    return runProbe(target).catch(toFailure);
  } catch (e) {
    return Promise.resolve(toFailure(e));
  }
}

/** Probe many services, at most `concurrency` (default 8) at a time; results in input order. */
export async function probeAll(
  targets: readonly ProbeTarget[],
  opts: { concurrency?: number } = {},
): Promise<ProbeResult[]> {
  const requested = Math.floor(opts.concurrency ?? 8);
  const limit = Number.isFinite(requested) && requested >= 1 ? requested : 8;
  const results: ProbeResult[] = new Array<ProbeResult>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      results[i] = await probe(targets[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, targets.length) }, worker));
  return results;
}
