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
 * tls-handshake.ts keeps the copy, tls-records.ts reads the chain from it.
 * Only if that fails (an unknown cipher suite, compressed certificates) does the probe fall
 * back to walking `getPeerCertificate(true)` over a secure context with an EMPTY trust store
 * (so nothing local can be added); `chainSource` says which one was used.
 *
 * A probe never throws: every failure is a `{ ok: false, error }` with a code and a message
 * naming the phase (connect, greeting, EHLO, STARTTLS, handshake).
 */
import { X509Certificate } from 'node:crypto';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
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
import type { TlsAlert } from './tls-alerts.js';
import { handshake } from './tls-handshake.js';

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
    const sni = t.host.replace(/\.$/, '');
    const hs = await handshake(raw, {
      ...(sni && isIP(sni) === 0 ? { servername: sni } : {}),
      tls: keyTypeTlsOptions(t.keyType),
      afterStarttls: t.protocol !== 'tls',
      deadline,
      timeoutMs,
      where,
    });
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
