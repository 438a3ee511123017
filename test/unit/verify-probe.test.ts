/**
 * probe() against tiny fake servers on 127.0.0.1 (node:net for the plaintext dialogue,
 * node:tls for the handshake), with test chains made by test/helpers/pki.ts.
 */
import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import {
  connect as tlsConnect,
  createSecureContext,
  createServer as createTlsServer,
  TLSSocket,
  type TlsOptions,
} from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  keyTypeTlsOptions,
  probe,
  probeAll,
  type ProbeResult,
  type ProbeTarget,
} from '../../src/verify/probe.js';
import { alertByNumber, alertFromError } from '../../src/verify/tls-alerts.js';
import { freePort, makeTempDir, stopAll } from '../lab/lab.js';
import { makeCa, makeLeaf, type CaHandle, type LeafHandle } from '../helpers/pki.js';

// ---------------------------------------------------------------------------------------------
// PKI

let ecRoot: CaHandle;
let ecInt: CaHandle;
let ecLeaf: LeafHandle;
let rsaRoot: CaHandle;
let rsaInt: CaHandle;
let rsaLeaf: LeafHandle;
let stray: CaHandle;

const der = (pem: string): Buffer => new X509Certificate(pem).raw;
const hexes = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('hex'));

/** TLS options for a server sending exactly `chain` (PEMs, leaf first). */
const serving = (leaf: LeafHandle, chain: string[], extra: TlsOptions = {}): TlsOptions => ({
  key: leaf.keyPem,
  cert: [leaf.certPem, ...chain].join(''),
  ...extra,
});

// ---------------------------------------------------------------------------------------------
// Fake servers

const servers: Server[] = [];
const sockets = new Set<Socket>();

async function listen(server: Server): Promise<number> {
  servers.push(server);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const addr = server.address();
  if (!addr || typeof addr !== 'object') throw new Error('no address');
  return addr.port;
}

/** Lines received on a socket (CRLF stripped), one at a time; null at EOF. */
function lineQueue(sock: Socket | TLSSocket): {
  next(): Promise<string | null>;
  detach(): void;
  seen: string[];
} {
  let buf = '';
  const ready: (string | null)[] = [];
  const waiting: ((l: string | null) => void)[] = [];
  const seen: string[] = [];
  const push = (l: string | null): void => {
    if (l !== null) seen.push(l);
    const w = waiting.shift();
    if (w) w(l);
    else ready.push(l);
  };
  const onData = (d: Buffer): void => {
    buf += d.toString('latin1');
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      push(buf.slice(0, i).replace(/\r$/, ''));
      buf = buf.slice(i + 1);
    }
  };
  const onEnd = (): void => push(null);
  sock.on('data', onData);
  sock.on('end', onEnd);
  sock.on('close', onEnd);
  return {
    seen,
    next: () =>
      ready.length > 0 ? Promise.resolve(ready.shift()!) : new Promise((r) => waiting.push(r)),
    detach: () => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
    },
  };
}

/** Server side of STARTTLS: hand the plain socket to a TLS server socket (same tick as the go-ahead). */
function upgrade(sock: Socket, opts: TlsOptions): TLSSocket {
  const t = new TLSSocket(sock, {
    isServer: true,
    secureContext: createSecureContext(opts),
    ...(opts.requestCert ? { requestCert: true } : {}),
  });
  t.on('error', () => undefined);
  sockets.add(t as unknown as Socket);
  return t;
}

/**
 * An implicit-TLS server that greets like SMTPS once the handshake is done and answers QUIT
 * (so that probe() does not wait for a greeting); `seen` collects the lines it received.
 */
function smtpsServer(opts: TlsOptions, seen: string[] = []): Server {
  return createTlsServer(opts, (s) => {
    s.on('error', () => undefined);
    s.write('220 smtps.example.test ESMTP\r\n');
    const q = lineQueue(s);
    void q.next().then((l) => {
      if (l !== null) seen.push(l);
      if (l === 'QUIT') s.end('221 2.0.0 Bye\r\n');
    });
  });
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Writes pieces with small gaps, so a reply arrives split over several TCP segments. */
async function dribble(sock: Socket, pieces: string[]): Promise<void> {
  for (const p of pieces) {
    sock.write(p);
    await pause(15);
  }
}

interface SmtpFakeLog {
  lines: string[];
  afterTls: string[];
}

/** A scripted SMTP/LMTP server; `onStarttls` decides what happens after STARTTLS. */
async function smtpFake(opts: {
  greeting: string[];
  ehlo: string[];
  onStarttls?: (sock: Socket, log: SmtpFakeLog) => void;
  tls?: TlsOptions;
  greetingAndEhloTogether?: boolean;
}): Promise<{ port: number; logs: SmtpFakeLog[] }> {
  const logs: SmtpFakeLog[] = [];
  const server = createServer((sock) => {
    const log: SmtpFakeLog = { lines: [], afterTls: [] };
    logs.push(log);
    const q = lineQueue(sock);
    void (async () => {
      if (opts.greetingAndEhloTogether) sock.write(opts.greeting.join('') + opts.ehlo.join(''));
      else await dribble(sock, opts.greeting);
      for (;;) {
        const line = await q.next();
        if (line === null) return;
        log.lines.push(line);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO' || verb === 'LHLO') {
          if (!opts.greetingAndEhloTogether) await dribble(sock, opts.ehlo);
        } else if (verb === 'STARTTLS') {
          if (opts.onStarttls) {
            q.detach();
            opts.onStarttls(sock, log);
            return;
          }
          sock.write('220 2.0.0 Ready to start TLS\r\n');
          q.detach();
          const t = upgrade(sock, opts.tls!);
          const tq = lineQueue(t);
          for (;;) {
            const l = await tq.next();
            if (l === null) return;
            log.afterTls.push(l);
            if (l.toUpperCase() === 'QUIT') {
              t.end('221 2.0.0 Bye\r\n');
              return;
            }
          }
        } else if (verb === 'QUIT') {
          sock.end('221 2.0.0 Bye\r\n');
          return;
        } else {
          sock.write('502 5.5.2 Error: command not recognized\r\n');
        }
      }
    })();
  });
  return { port: await listen(server), logs };
}

const target = (
  port: number,
  protocol: ProbeTarget['protocol'],
  extra: Partial<ProbeTarget> = {},
): ProbeTarget => ({
  host: 'mx.example.test',
  address: '127.0.0.1',
  port,
  protocol,
  timeoutMs: 5000,
  ...extra,
});

function expectOk(r: ProbeResult): Extract<ProbeResult, { ok: true }> {
  if (!r.ok) throw new Error(`probe failed: ${r.error.code}: ${r.error.message}`);
  return r;
}

function expectError(
  r: ProbeResult,
  code: string,
): { code: string; message: string; alert?: { number: number; name: string } } {
  if (r.ok) throw new Error(`probe unexpectedly succeeded (${r.tlsVersion})`);
  expect(r.error.code, r.error.message).toBe(code);
  return r.error;
}

beforeAll(() => {
  const dir = makeTempDir('probe-unit');
  ecRoot = makeCa(dir, { name: 'Probe Test Root E', key: 'p256' });
  ecInt = makeCa(dir, { name: 'Probe Test Int E', key: 'p256', issuer: ecRoot });
  ecLeaf = makeLeaf(dir, { ca: ecInt, cn: 'mx.example.test', key: 'p256' });
  rsaRoot = makeCa(dir, { name: 'Probe Test Root R', key: 'rsa2048' });
  rsaInt = makeCa(dir, { name: 'Probe Test Int R', key: 'rsa2048', issuer: rsaRoot });
  rsaLeaf = makeLeaf(dir, { ca: rsaInt, cn: 'mx.example.test', key: 'rsa2048' });
  stray = makeCa(dir, { name: 'Unrelated CA', key: 'p256' });
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await stopAll();
});

// ---------------------------------------------------------------------------------------------

describe('SMTP and LMTP STARTTLS', () => {
  it('multi-line greeting and EHLO reply split across writes; QUIT after the handshake', async () => {
    const fake = await smtpFake({
      greeting: ['220-mx.exam', 'ple.test ESMTP\r\n220-second', ' line\r', '\n220 last line\r\n'],
      ehlo: [
        '250-mx.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STAR',
        'TTLS\r\n250 8BITMIME\r\n',
      ],
      tls: serving(ecLeaf, [ecInt.certPem]),
    });
    const r = expectOk(await probe(target(fake.port, 'smtp')));
    expect(r.banner).toBe('220-mx.example.test ESMTP\n220-second line\n220 last line');
    expect(hexes(r.chain)).toEqual(hexes([der(ecLeaf.certPem), der(ecInt.certPem)]));
    expect(r.chainSource).toBe('wire');
    expect(r.keyType).toBe('ecdsa');
    expect(r.tlsVersion).toBe('TLSv1.3');
    expect(r.cipher).toMatch(/^TLS_/);
    const log = fake.logs[0]!;
    expect(log.lines).toEqual(['EHLO [127.0.0.1]', 'STARTTLS']);
    await pause(50);
    expect(log.afterTls).toEqual(['QUIT']);
  });

  it('greeting and EHLO reply arriving in one segment; LMTP uses LHLO; ehloName is sent', async () => {
    const fake = await smtpFake({
      greeting: ['220 lmtp.example.test LMTP\r\n'],
      ehlo: ['250-lmtp.example.test\r\n250-starttls\r\n250 ENHANCEDSTATUSCODES\r\n'],
      greetingAndEhloTogether: true,
      tls: serving(rsaLeaf, [rsaInt.certPem]),
    });
    const r = expectOk(await probe(target(fake.port, 'lmtp', { ehloName: 'probe.example.test' })));
    expect(r.keyType).toBe('rsa');
    expect(r.chain).toHaveLength(2);
    expect(fake.logs[0]!.lines.slice(0, 2)).toEqual(['LHLO probe.example.test', 'STARTTLS']);
  });

  it('EHLO without STARTTLS: no-starttls, and the probe says QUIT', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n'],
    });
    const e = expectError(await probe(target(fake.port, 'smtp')), 'no-starttls');
    expect(e.message).toMatch(/does not offer STARTTLS.*PIPELINING, 8BITMIME/);
    await pause(50);
    expect(fake.logs[0]!.lines).toEqual(['EHLO [127.0.0.1]', 'QUIT']);
  });

  it('STARTTLS answered with 454: starttls-rejected with the reply', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250 STARTTLS\r\n'],
      onStarttls: (sock) => sock.write('454 4.7.0 TLS not available due to local problem\r\n'),
    });
    const e = expectError(await probe(target(fake.port, 'smtp')), 'starttls-rejected');
    expect(e.message).toContain('454 4.7.0 TLS not available due to local problem');
  });

  it('connection dropped right after the 220 to STARTTLS: closed', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250 STARTTLS\r\n'],
      onStarttls: (sock) => sock.end('220 2.0.0 Ready to start TLS\r\n'),
    });
    const e = expectError(await probe(target(fake.port, 'smtp')), 'closed');
    expect(e.message).toMatch(/closed the connection after accepting STARTTLS/);
  });

  it('connection dropped instead of answering STARTTLS: closed, naming the STARTTLS reply', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250 STARTTLS\r\n'],
      onStarttls: (sock) => sock.destroy(),
    });
    const e = expectError(await probe(target(fake.port, 'smtp')), 'closed');
    expect(e.message).toMatch(/STARTTLS reply/);
  });

  it('plaintext after the STARTTLS go-ahead is a protocol error', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250 STARTTLS\r\n'],
      onStarttls: (sock) => sock.write('220 go ahead\r\n250 injected\r\n'),
    });
    const e = expectError(await probe(target(fake.port, 'smtp')), 'protocol');
    expect(e.message).toMatch(/plaintext after its STARTTLS reply/);
  });

  it('malformed and inconsistent replies are protocol errors; a 554 greeting too', async () => {
    const bad = await smtpFake({ greeting: ['hello there\r\n'], ehlo: [] });
    expect(expectError(await probe(target(bad.port, 'smtp')), 'protocol').message).toMatch(
      /malformed greeting reply line/,
    );
    const mixed = await smtpFake({ greeting: ['220-mx\r\n250 mx\r\n'], ehlo: [] });
    expect(expectError(await probe(target(mixed.port, 'smtp')), 'protocol').message).toMatch(
      /inconsistent codes/,
    );
    const refused = await smtpFake({ greeting: ['554 5.3.2 go away\r\n'], ehlo: [] });
    expect(expectError(await probe(target(refused.port, 'smtp')), 'protocol').message).toMatch(
      /refused the session.*554 5\.3\.2 go away/,
    );
  });

  it('EHLO rejected: protocol error naming EHLO', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['550 5.7.1 no thanks\r\n'],
    });
    expect(expectError(await probe(target(fake.port, 'smtp')), 'protocol').message).toMatch(
      /rejected EHLO: "550 5\.7\.1 no thanks"/,
    );
  });
});

describe('connection failures and timeouts', () => {
  it('a closed port: refused', async () => {
    const port = await freePort();
    const e = expectError(await probe(target(port, 'smtp')), 'refused');
    expect(e.message).toMatch(
      new RegExp(`connection refused by mx\\.example\\.test\\[127\\.0\\.0\\.1\\]:${port}`),
    );
  });

  it('a server that never greets: timeout in the greeting phase, on time', async () => {
    const port = await listen(createServer(() => undefined));
    const t0 = Date.now();
    const e = expectError(await probe(target(port, 'smtp', { timeoutMs: 300 })), 'timeout');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e.message).toMatch(/timed out after 300 ms waiting for the greeting/);
  });

  it('a server that never answers EHLO: timeout naming EHLO', async () => {
    const port = await listen(createServer((s) => s.write('220 mx ESMTP\r\n')));
    const e = expectError(await probe(target(port, 'smtp', { timeoutMs: 300 })), 'timeout');
    expect(e.message).toMatch(/waiting for the EHLO reply/);
  });

  it('a server that accepts STARTTLS but never speaks TLS: timeout in the handshake', async () => {
    const fake = await smtpFake({
      greeting: ['220 mx ESMTP\r\n'],
      ehlo: ['250-mx\r\n250 STARTTLS\r\n'],
      onStarttls: (s) => s.write('220 go ahead\r\n'),
    });
    const e = expectError(await probe(target(fake.port, 'smtp', { timeoutMs: 400 })), 'timeout');
    expect(e.message).toMatch(/during the TLS handshake/);
  });

  it('a server that closes at once: closed during the greeting', async () => {
    const port = await listen(createServer((s) => s.end()));
    expect(expectError(await probe(target(port, 'smtp')), 'closed').message).toMatch(
      /closed the connection during the greeting/,
    );
  });

  it('bad input never throws', async () => {
    expect(
      expectError(await probe(target(25, 'smtp', { address: 'mx.example.test' })), 'unreachable')
        .message,
    ).toMatch(/not an IP address/);
    expect(expectError(await probe(target(0, 'smtp')), 'unreachable').message).toMatch(/bad port/);
    expect(
      expectError(await probe(target(25, 'smtp', { ehloName: 'a b' })), 'protocol').message,
    ).toMatch(/bad ehloName/);
    expect(expectError(await probe(target(25, 'gopher' as 'smtp')), 'protocol').message).toMatch(
      /unknown protocol/,
    );
  });
});

describe('TLS alerts and handshake failures', () => {
  /** A raw server that answers the ClientHello with one fatal alert record. */
  async function alertServer(n: number, recordVersion = 0x0303): Promise<number> {
    return listen(
      createServer((s) => {
        s.once('data', () =>
          s.end(Buffer.from([0x15, recordVersion >> 8, recordVersion & 0xff, 0x00, 0x02, 0x02, n])),
        );
      }),
    );
  }

  it.each([
    [70, 'protocol_version'],
    [71, 'insufficient_security'],
    [112, 'unrecognized_name'],
    [40, 'handshake_failure'],
  ])('alert %i is reported as {number: %i, name: %s}', async (n, name) => {
    const port = await alertServer(n);
    const e = expectError(await probe(target(port, 'tls')), 'alert');
    expect(e.alert).toEqual({ number: n, name });
    expect(e.message).toContain(`TLS alert ${n} (${name})`);
  });

  it('a real handshake_failure: keyType ecdsa against an RSA-only server', async () => {
    const port = await listen(createTlsServer(serving(rsaLeaf, [rsaInt.certPem])));
    const e = expectError(await probe(target(port, 'tls', { keyType: 'ecdsa' })), 'alert');
    expect(e.alert).toEqual({ number: 40, name: 'handshake_failure' });
  });

  it('a real protocol_version alert: a TLS 1.3-only server and a client limited to TLS 1.2', async () => {
    // probe() has no version option; this checks the error mapping on the error Node produces.
    const port = await listen(createTlsServer(serving(ecLeaf, [], { minVersion: 'TLSv1.3' })));
    const err = await new Promise<Error>((resolve) => {
      const s = tlsConnect({
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        maxVersion: 'TLSv1.2',
      });
      s.on('error', resolve);
      s.on('secureConnect', () => resolve(new Error('connected')));
    });
    expect(alertFromError(err)).toEqual({ number: 70, name: 'protocol_version' });
  });

  it('plaintext on an implicit-TLS port: handshake error', async () => {
    const port = await listen(
      createServer((s) => s.once('data', () => s.end('220 mx ESMTP not TLS\r\n'))),
    );
    expect(expectError(await probe(target(port, 'tls')), 'handshake').message).toMatch(
      /TLS handshake with .* failed: .*(wrong version number|packet length)/,
    );
  });

  it('alertFromError: codes and messages', () => {
    expect(
      alertFromError({ code: 'ERR_SSL_TLSV1_ALERT_INSUFFICIENT_SECURITY', message: 'x' }),
    ).toEqual({ number: 71, name: 'insufficient_security' });
    expect(alertFromError({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', message: 'x' })).toEqual(
      { number: 40, name: 'handshake_failure' },
    );
    expect(alertFromError({ code: 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME', message: 'x' })).toEqual({
      number: 112,
      name: 'unrecognized_name',
    });
    expect(
      alertFromError({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', message: 'x' }),
    ).toEqual({ number: 116, name: 'certificate_required' });
    expect(
      alertFromError({
        message:
          '...:tlsv1 alert protocol version:../ssl/record/rec_layer_s3.c:1605:SSL alert number 70',
      }),
    ).toEqual({ number: 70, name: 'protocol_version' });
    expect(
      alertFromError({ code: 'ERR_SSL_WRONG_VERSION_NUMBER', message: 'wrong version number' }),
    ).toBeUndefined();
    expect(alertByNumber(200)).toEqual({ number: 200, name: 'alert_200' });
  });
});

describe('IMAP and POP3 STARTTLS', () => {
  async function imapFake(
    greeting: string,
    opts: { capability?: string; starttls?: string } = {},
  ): Promise<{ port: number; lines: string[][] }> {
    const all: string[][] = [];
    const port = await listen(
      createServer((sock) => {
        const q = lineQueue(sock);
        all.push(q.seen);
        sock.write(`${greeting}\r\n`);
        void (async () => {
          for (;;) {
            const line = await q.next();
            if (line === null) return;
            const [tag, cmd] = line.split(' ');
            if (cmd === 'CAPABILITY')
              sock.write(
                `* CAPABILITY ${opts.capability ?? 'IMAP4rev1 STARTTLS'}\r\n${tag} OK done\r\n`,
              );
            else if (cmd === 'STARTTLS') {
              if (opts.starttls) {
                sock.write(`${tag} ${opts.starttls}\r\n`);
                continue;
              }
              sock.write(`${tag} OK Begin TLS negotiation now\r\n`);
              q.detach();
              const t = upgrade(sock, serving(ecLeaf, [ecInt.certPem]));
              const tq = lineQueue(t);
              all.push(tq.seen);
              const l = await tq.next();
              if (l?.endsWith('LOGOUT')) t.end(`* BYE\r\n${l.split(' ')[0]} OK bye\r\n`);
              return;
            } else if (cmd === 'LOGOUT') {
              sock.end(`* BYE\r\n${tag} OK\r\n`);
              return;
            } else sock.write(`${tag} BAD unknown\r\n`);
          }
        })();
      }),
    );
    return { port, lines: all };
  }

  it('capabilities in the greeting, a1 STARTTLS, LOGOUT over TLS', async () => {
    const fake = await imapFake(
      '* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED] Dovecot ready.',
    );
    const r = expectOk(await probe(target(fake.port, 'imap')));
    expect(r.banner).toBe(
      '* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED] Dovecot ready.',
    );
    expect(hexes(r.chain)).toEqual(hexes([der(ecLeaf.certPem), der(ecInt.certPem)]));
    await pause(50);
    expect(fake.lines).toEqual([['a1 STARTTLS'], ['a2 LOGOUT']]);
  });

  it('no capabilities in the greeting: asks CAPABILITY first', async () => {
    const fake = await imapFake('* OK IMAP ready');
    expectOk(await probe(target(fake.port, 'imap')));
    expect(fake.lines[0]).toEqual(['a0 CAPABILITY', 'a1 STARTTLS']);
  });

  it('no STARTTLS capability, and STARTTLS answered NO', async () => {
    const none = await imapFake('* OK IMAP ready', { capability: 'IMAP4rev1 AUTH=PLAIN' });
    expect(expectError(await probe(target(none.port, 'imap')), 'no-starttls').message).toMatch(
      /CAPABILITY: IMAP4REV1 AUTH=PLAIN/,
    );
    const no = await imapFake('* OK [CAPABILITY IMAP4rev1 STARTTLS] ready', {
      starttls: 'NO TLS unavailable',
    });
    expect(
      expectError(await probe(target(no.port, 'imap')), 'starttls-rejected').message,
    ).toContain('a1 NO TLS unavailable');
  });

  async function pop3Fake(
    capa: string | null,
    stls = '+OK Begin TLS',
  ): Promise<{ port: number; lines: string[][] }> {
    const all: string[][] = [];
    const port = await listen(
      createServer((sock) => {
        const q = lineQueue(sock);
        all.push(q.seen);
        sock.write('+OK POP3 ready\r\n');
        void (async () => {
          for (;;) {
            const line = await q.next();
            if (line === null) return;
            if (line === 'CAPA')
              sock.write(
                capa === null
                  ? '-ERR unknown command\r\n'
                  : `+OK Capability list follows\r\n${capa}.\r\n`,
              );
            else if (line === 'STLS') {
              sock.write(`${stls}\r\n`);
              if (!stls.startsWith('+OK')) continue;
              q.detach();
              const t = upgrade(sock, serving(rsaLeaf, []));
              const tq = lineQueue(t);
              all.push(tq.seen);
              if ((await tq.next()) === 'QUIT') t.end('+OK bye\r\n');
              return;
            } else if (line === 'QUIT') {
              sock.end('+OK bye\r\n');
              return;
            } else sock.write('-ERR what\r\n');
          }
        })();
      }),
    );
    return { port, lines: all };
  }

  it('POP3: CAPA lists STLS, STLS, QUIT over TLS; leaf-only chain', async () => {
    const fake = await pop3Fake('USER\r\nSTLS\r\nUIDL\r\n');
    const r = expectOk(await probe(target(fake.port, 'pop3')));
    expect(r.banner).toBe('+OK POP3 ready');
    expect(hexes(r.chain)).toEqual(hexes([der(rsaLeaf.certPem)]));
    await pause(50);
    expect(fake.lines).toEqual([['CAPA', 'STLS'], ['QUIT']]);
  });

  it('POP3: CAPA unsupported → STLS tried anyway; CAPA without STLS → no-starttls; -ERR → rejected', async () => {
    expectOk(await probe(target((await pop3Fake(null)).port, 'pop3')));
    expectError(await probe(target((await pop3Fake('USER\r\n')).port, 'pop3')), 'no-starttls');
    expect(
      expectError(
        await probe(target((await pop3Fake('STLS\r\n', '-ERR not now')).port, 'pop3')),
        'starttls-rejected',
      ).message,
    ).toContain('-ERR not now');
  });
});

describe('the chain as sent', () => {
  async function tlsServer(opts: TlsOptions): Promise<number> {
    return listen(smtpsServer(opts));
  }

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: leaf + intermediate gives exactly 2 certificates, leaf only gives 1`, async () => {
      const two = await tlsServer(serving(ecLeaf, [ecInt.certPem], { maxVersion: version }));
      const r2 = expectOk(await probe(target(two, 'tls')));
      expect(r2.tlsVersion).toBe(version);
      expect(r2.chainSource).toBe('wire');
      expect(hexes(r2.chain)).toEqual(hexes([der(ecLeaf.certPem), der(ecInt.certPem)]));

      const one = await tlsServer(serving(rsaLeaf, [], { maxVersion: version }));
      const r1 = expectOk(await probe(target(one, 'tls')));
      expect(r1.chainSource).toBe('wire');
      expect(hexes(r1.chain)).toEqual(hexes([der(rsaLeaf.certPem)]));
      expect(r1.keyType).toBe('rsa');
    });

    it(`${version}: order and extra certificates are kept exactly as sent`, async () => {
      const sent = [ecLeaf.certPem, stray.certPem, ecRoot.certPem, ecInt.certPem];
      const port = await tlsServer({
        key: ecLeaf.keyPem,
        cert: sent.join(''),
        maxVersion: version,
      });
      const r = expectOk(await probe(target(port, 'tls')));
      expect(hexes(r.chain)).toEqual(hexes(sent.map(der)));
    });
  }

  it.each(['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'])(
    'TLS 1.3 with %s (decrypted from the wire)',
    async (suite) => {
      const port = await tlsServer(
        serving(ecLeaf, [ecInt.certPem], { ciphers: suite, minVersion: 'TLSv1.3' }),
      );
      const r = expectOk(await probe(target(port, 'tls')));
      expect(r.cipher).toBe(suite);
      expect(r.chainSource).toBe('wire');
      expect(r.chain).toHaveLength(2);
    },
  );

  it('TLS 1.3 after a HelloRetryRequest (server only accepts P-384 key shares)', async () => {
    const port = await tlsServer(
      serving(ecLeaf, [ecInt.certPem], { ecdhCurve: 'secp384r1', minVersion: 'TLSv1.3' }),
    );
    const r = expectOk(await probe(target(port, 'tls')));
    expect(r.chainSource).toBe('wire');
    expect(hexes(r.chain)).toEqual(hexes([der(ecLeaf.certPem), der(ecInt.certPem)]));
  });

  it('TLS 1.3 with a CertificateRequest before the Certificate', async () => {
    const port = await tlsServer(
      serving(ecLeaf, [ecInt.certPem], { requestCert: true, rejectUnauthorized: false }),
    );
    const r = expectOk(await probe(target(port, 'tls')));
    expect(r.chainSource).toBe('wire');
    expect(r.chain).toHaveLength(2);
  });

  it('why not getPeerCertificate(true): Node adds certificates from the local trust store and drops others', async () => {
    const two = await tlsServer(serving(ecLeaf, [ecInt.certPem]));
    const one = await tlsServer(serving(ecLeaf, []));
    const messy = await tlsServer({
      key: ecLeaf.keyPem,
      cert: [ecLeaf.certPem, stray.certPem, ecInt.certPem].join(''),
    });
    const walk = (port: number, ca: string[]): Promise<string[]> =>
      new Promise((resolve, reject) => {
        const s = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ca }, () => {
          const names: string[] = [];
          const seen = new Set<string>();
          for (
            let c = s.getPeerCertificate(true);
            c?.raw && !seen.has(c.fingerprint256);
            c = c.issuerCertificate
          ) {
            seen.add(c.fingerprint256);
            names.push(String(c.subject.CN));
            if (c.issuerCertificate === c) break;
          }
          s.end();
          resolve(names);
        });
        s.on('error', reject);
      });
    // Node's walk: the root is appended from `ca` although the server never sent it ...
    expect(await walk(two, [ecRoot.certPem])).toEqual([
      'mx.example.test',
      'Probe Test Int E',
      'Probe Test Root E',
    ]);
    expect(await walk(one, [ecInt.certPem])).toEqual(['mx.example.test', 'Probe Test Int E']);
    // ... and a sent certificate off the issuer path disappears.
    expect(await walk(messy, [])).toEqual(['mx.example.test', 'Probe Test Int E']);
    // probe(): what was sent, nothing else.
    expect(expectOk(await probe(target(two, 'tls'))).chain).toHaveLength(2);
    expect(expectOk(await probe(target(one, 'tls'))).chain).toHaveLength(1);
    expect(expectOk(await probe(target(messy, 'tls'))).chain).toHaveLength(3);
  });

  it('implicit TLS: the SMTPS greeting is read after the handshake and answered with QUIT', async () => {
    const seen: string[] = [];
    const port = await listen(smtpsServer(serving(ecLeaf, [ecInt.certPem]), seen));
    const r = expectOk(await probe(target(port, 'tls')));
    expect(r.banner).toBe('220 smtps.example.test ESMTP');
    await pause(50);
    expect(seen).toEqual(['QUIT']);
  });

  it('implicit TLS with a client-first server (no greeting): ok, no banner, closed after a short wait', async () => {
    const port = await listen(createTlsServer(serving(ecLeaf, [])));
    const t0 = Date.now();
    const r = expectOk(await probe(target(port, 'tls')));
    expect(r.banner).toBeUndefined();
    expect(r.chain).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe('keyType selects the chain of a dual-certificate server', () => {
  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: rsa → the RSA chain, ecdsa → the ECDSA chain`, async () => {
      const port = await listen(
        smtpsServer({
          key: [rsaLeaf.keyPem, ecLeaf.keyPem],
          cert: [rsaLeaf.certPem + rsaInt.certPem, ecLeaf.certPem + ecInt.certPem],
          maxVersion: version,
        }),
      );
      const rsa = expectOk(await probe(target(port, 'tls', { keyType: 'rsa' })));
      expect(rsa.keyType).toBe('rsa');
      expect(hexes(rsa.chain)).toEqual(hexes([der(rsaLeaf.certPem), der(rsaInt.certPem)]));
      const ec = expectOk(await probe(target(port, 'tls', { keyType: 'ecdsa' })));
      expect(ec.keyType).toBe('ecdsa');
      expect(hexes(ec.chain)).toEqual(hexes([der(ecLeaf.certPem), der(ecInt.certPem)]));
      if (version === 'TLSv1.2') {
        expect(rsa.cipher).toMatch(/_RSA_/);
        expect(ec.cipher).toMatch(/_ECDSA_/);
      }
    });
  }

  it('keyTypeTlsOptions keeps TLS 1.3 suites and restricts sigalgs', () => {
    expect(keyTypeTlsOptions(undefined)).toEqual({});
    const rsa = keyTypeTlsOptions('rsa');
    expect(rsa.ciphers).toMatch(/^TLS_AES_256_GCM_SHA384:.*:aRSA:/);
    expect(rsa.sigalgs).not.toMatch(/ecdsa/);
    expect(keyTypeTlsOptions('ecdsa').sigalgs).toBe(
      'ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:ecdsa_secp521r1_sha512',
    );
  });
});

describe('probeAll', () => {
  it('runs probes in parallel up to the bound, results in input order', async () => {
    let open = 0;
    let maxOpen = 0;
    const server = smtpsServer(serving(ecLeaf, [ecInt.certPem]));
    server.on('connection', (s: Socket) => {
      open++;
      maxOpen = Math.max(maxOpen, open);
      s.on('close', () => {
        open--;
      });
    });
    const port = await listen(server);
    const closed = await freePort();
    const targets: ProbeTarget[] = [
      target(port, 'tls'),
      target(closed, 'tls'),
      target(port, 'tls'),
      target(port, 'tls', { keyType: 'rsa' }),
      target(port, 'tls'),
      target(port, 'tls'),
      target(port, 'tls'),
    ];
    const results = await probeAll(targets, { concurrency: 2 });
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual([
      'ok',
      'refused',
      'ok',
      'alert',
      'ok',
      'ok',
      'ok',
    ]);
    expect(maxOpen).toBeGreaterThanOrEqual(1);
    expect(maxOpen).toBeLessThanOrEqual(2);
    expect(await probeAll([])).toEqual([]);
  });
});
