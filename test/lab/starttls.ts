/** The certificate an SMTP server presents after STARTTLS, read with Node's TLS client. */
import type { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface ServedLeafOptions {
  port: number;
  host?: string;
  /** SNI name. */
  servername: string;
  /** Offer only this key type's signature algorithms (picks the RSA or the ECDSA certificate
   *  of a dual-certificate server); default: Node's list. */
  keyType?: 'rsa' | 'ecdsa';
}

const SIGALGS = {
  rsa: 'rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pkcs1_sha256:rsa_pkcs1_sha384',
  ecdsa: 'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384',
} as const;

/** The leaf a STARTTLS handshake gets (not verified: the caller compares it). */
export function servedLeaf(opts: ServedLeafOptions): Promise<X509Certificate> {
  return new Promise((resolveLeaf, reject) => {
    const sock = netConnect({ host: opts.host ?? '127.0.0.1', port: opts.port });
    let buf = '';
    let step = 0;
    const fail = (e: Error): void => {
      sock.destroy();
      reject(e);
    };
    sock.setTimeout(5000, () => fail(new Error('STARTTLS probe: timeout')));
    sock.on('error', fail);
    const onData = (d: Buffer): void => {
      buf += d.toString('latin1');
      if (!/\r?\n$/.test(buf)) return;
      const last = buf.trimEnd().split('\n').at(-1)!;
      if (/^\d{3}-/.test(last)) return;
      buf = '';
      if (step === 0 && last.startsWith('220')) {
        step = 1;
        sock.write('EHLO lab.test\r\n');
      } else if (step === 1 && last.startsWith('250')) {
        step = 2;
        sock.write('STARTTLS\r\n');
      } else if (step === 2 && last.startsWith('220')) {
        sock.removeListener('data', onData);
        const t = tlsConnect(
          {
            socket: sock,
            servername: opts.servername,
            rejectUnauthorized: false,
            ...(opts.keyType ? { sigalgs: SIGALGS[opts.keyType] } : {}),
          },
          () => {
            const c = t.getPeerX509Certificate();
            t.end();
            if (c) resolveLeaf(c);
            else reject(new Error('no peer certificate'));
          },
        );
        t.on('error', fail);
      } else fail(new Error(`STARTTLS probe: unexpected "${last}"`));
    };
    sock.on('data', onData);
  });
}
