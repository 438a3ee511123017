/**
 * The TLS handshake of a probe over an already connected socket (after STARTTLS, or right
 * away for implicit TLS), keeping a copy of the bytes the server sent so the chain can be read
 * off the wire (see tls-records.ts); Node's issuer walk is only the fallback (see probe.ts).
 */
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ProbeFailure, socketFailure } from './starttls.js';
import { alertFromError, opensslReason } from './tls-alerts.js';
import { chainFromServerBytes, serverHandshakeSecret } from './tls-records.js';

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

function closedDuringHandshake(where: string, afterStarttls: boolean): ProbeFailure {
  return new ProbeFailure(
    'closed',
    afterStarttls
      ? `${where} closed the connection after accepting STARTTLS, before the TLS handshake completed`
      : `${where} closed the connection during the TLS handshake`,
  );
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
    return closedDuringHandshake(where, afterStarttls);
  }
  if (code.startsWith('ERR_SSL_') || /SSL routines/.test(message)) {
    return new ProbeFailure(
      'handshake',
      `TLS handshake with ${where} failed: ${opensslReason(err)}`,
    );
  }
  return socketFailure(err, 'TLS handshake', where);
}

export interface Handshake {
  sock: TLSSocket;
  chain: Buffer[];
  chainSource: 'wire' | 'peer-certificate';
}

export interface HandshakeOptions {
  /** The name sent as SNI; none for an IP address or an empty name. */
  servername?: string;
  /** Cipher and signature algorithm limits (a key type restriction). */
  tls: Pick<ConnectionOptions, 'ciphers' | 'sigalgs'>;
  /** The server accepted STARTTLS first (changes how an early close is described). */
  afterStarttls: boolean;
  deadline: number;
  timeoutMs: number;
  /** The server, for messages. */
  where: string;
}

export function handshake(raw: Socket, o: HandshakeOptions): Promise<Handshake> {
  const { deadline, timeoutMs, where, afterStarttls } = o;
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
      ...o.tls,
    };
    if (o.servername) opts.servername = o.servername;
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
    sock.on('close', () => fail(closedDuringHandshake(where, afterStarttls)));
    sock.once('secureConnect', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const bytes = capture.stopCapture();
      const version = sock.getProtocol() ?? '';
      const wire = chainFromServerBytes(bytes, version, serverHandshakeSecret(keylog));
      if (wire && wire.length > 0) resolve({ sock, chain: wire, chainSource: 'wire' });
      else
        resolve({ sock, chain: chainFromPeerCertificate(sock), chainSource: 'peer-certificate' });
    });
  });
}
