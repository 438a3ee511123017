/**
 * probe() against a real Postfix serving an RSA and an ECDSA chain at once (certbot-style
 * lineages), on its STARTTLS port and on its implicit-TLS (wrappermode) port; posttls-finger
 * checks each case independently of the code under test.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { probe, type ProbeResult, type ProbeTarget } from '../../src/verify/probe.js';
import { labDescribe, makeTempDir, sleep, stopAll, toolPath } from '../lab/lab.js';
import {
  instancePids,
  POSTFIX_TOOLS,
  postTlsFinger,
  startPostfix,
  type PostfixServer,
} from '../lab/postfix.js';
import { makeCa, makeLeaf, makeLineage, type CaHandle } from '../helpers/pki.js';

/** The certificates of a PEM file as DER, in file order. */
function pemFileDers(path: string): Buffer[] {
  const blocks =
    readFileSync(path, 'utf8').match(
      /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g,
    ) ?? [];
  return blocks.map((b) => new X509Certificate(b).raw);
}
const hexes = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString('hex'));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function ok(r: ProbeResult): Extract<ProbeResult, { ok: true }> {
  if (!r.ok) throw new Error(`probe failed: ${r.error.code}: ${r.error.message}`);
  return r;
}

/** Names and mtimes under /etc/postfix: the system instance's config must stay untouched. */
function snapshotEtcPostfix(): string {
  try {
    return readdirSync('/etc/postfix')
      .sort()
      .map((f) => `${f}:${statSync(join('/etc/postfix', f)).mtimeMs}`)
      .join('\n');
  } catch {
    return '(none)';
  }
}

labDescribe('probe() against a real Postfix with an RSA and an ECDSA chain', POSTFIX_TOOLS, () => {
  let pf: PostfixServer;
  let letsencrypt: string;
  let rsaInt: CaHandle;
  let etcBefore: string;
  const live = { rsa: '', ecdsa: '' };

  beforeAll(async () => {
    etcBefore = snapshotEtcPostfix();
    const dir = makeTempDir('probe-postfix-pki');
    letsencrypt = join(dir, 'letsencrypt');
    const rsaRoot = makeCa(dir, { name: 'Lab Root X1', key: 'rsa2048' });
    rsaInt = makeCa(dir, { name: 'Lab R1', key: 'rsa2048', issuer: rsaRoot });
    const ecRoot = makeCa(dir, { name: 'Lab Root X2', key: 'p384' });
    const ecInt = makeCa(dir, { name: 'Lab E1', key: 'p384', issuer: ecRoot });
    const rsaLeaf = makeLeaf(dir, { ca: rsaInt, cn: 'mx.example.test', key: 'rsa2048' });
    const ecLeaf = makeLeaf(dir, { ca: ecInt, cn: 'mx.example.test', key: 'p256' });
    live.rsa = makeLineage(letsencrypt, 'mx.example.test-rsa', rsaLeaf, [rsaInt]);
    live.ecdsa = makeLineage(letsencrypt, 'mx.example.test-ecdsa', ecLeaf, [ecInt]);
    pf = await startPostfix({
      chains: [
        { keyPath: join(live.rsa, 'privkey.pem'), fullchainPath: join(live.rsa, 'fullchain.pem') },
        {
          keyPath: join(live.ecdsa, 'privkey.pem'),
          fullchainPath: join(live.ecdsa, 'fullchain.pem'),
        },
      ],
    });
  });

  afterAll(async () => {
    await pf?.stop();
    await stopAll();
  });

  const target = (
    port: number,
    protocol: ProbeTarget['protocol'],
    keyType: 'rsa' | 'ecdsa',
  ): ProbeTarget => ({
    host: 'mx.example.test',
    address: '127.0.0.1',
    port,
    protocol,
    keyType,
    timeoutMs: 10_000,
  });

  const cases = [
    { name: 'STARTTLS', port: () => pf.smtpPort, protocol: 'smtp' as const, wrapper: false },
    { name: 'wrappermode', port: () => pf.smtpsPort, protocol: 'tls' as const, wrapper: true },
  ];

  for (const c of cases) {
    for (const keyType of ['rsa', 'ecdsa'] as const) {
      it(`${c.name} port, keyType ${keyType}: exactly the ${keyType.toUpperCase()} fullchain; posttls-finger agrees`, async () => {
        const expected = pemFileDers(join(live[keyType], 'fullchain.pem'));
        expect(expected).toHaveLength(2);
        const r = ok(await probe(target(c.port(), c.protocol, keyType)));
        expect(r.keyType).toBe(keyType);
        expect(r.chainSource).toBe('wire');
        expect(hexes(r.chain)).toEqual(hexes(expected));
        expect(r.tlsVersion).toBe('TLSv1.3');
        // STARTTLS: the plaintext greeting; wrappermode: the greeting smtpd sends inside TLS.
        expect(r.banner).toBe('220 mx.example.test ESMTP tlsa-lab');

        const f = await postTlsFinger({
          configDir: pf.configDir,
          port: c.port(),
          wrapper: c.wrapper,
          keyType,
        });
        expect(f.established, f.output).toMatch(
          new RegExp(
            `TLS connection established to 127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${c.port()}: TLSv1\\.3`,
          ),
        );
        expect(f.established).toMatch(
          keyType === 'rsa' ? /server-signature RSA-PSS/ : /server-signature ECDSA/,
        );
        expect(f.certSha256, f.output).toBe(sha256(expected[0]!));
      });
    }
  }

  it('probing without keyType gets one of the two chains', async () => {
    const r = ok(
      await probe({
        host: 'mx.example.test',
        address: '127.0.0.1',
        port: pf.smtpPort,
        protocol: 'smtp',
      }),
    );
    const leaves = [
      pemFileDers(join(live.rsa, 'cert.pem'))[0]!,
      pemFileDers(join(live.ecdsa, 'cert.pem'))[0]!,
    ].map((d) => d.toString('hex'));
    expect(leaves).toContain(r.chain[0]!.toString('hex'));
  });

  it('posttls-finger at level fingerprint verifies the leaf the probe saw (and rejects another)', async () => {
    const colons = (hex: string): string => hex.toUpperCase().replace(/(..)(?!$)/g, '$1:');
    for (const keyType of ['rsa', 'ecdsa'] as const) {
      const r = ok(await probe(target(pf.smtpPort, 'smtp', keyType)));
      const good = await postTlsFinger({
        configDir: pf.configDir,
        port: pf.smtpPort,
        keyType,
        level: 'fingerprint',
        logopts: 'summary',
        match: [colons(sha256(r.chain[0]!))],
      });
      expect(good.established, good.output).toMatch(
        /^.*Verified TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]/,
      );
      const bad = await postTlsFinger({
        configDir: pf.configDir,
        port: pf.smtpPort,
        keyType,
        level: 'fingerprint',
        logopts: 'summary',
        match: [colons(sha256(r.chain[1]!))],
      });
      expect(bad.trust, bad.output).not.toBe('Verified');
    }
  });

  it('reload(): a renewed RSA certificate is served after SIGHUP, the ECDSA one is unchanged', async () => {
    const ecBefore = ok(await probe(target(pf.smtpsPort, 'tls', 'ecdsa'))).chain[0]!;
    const dir = makeTempDir('probe-postfix-renew');
    const renewed = makeLeaf(dir, { ca: rsaInt, cn: 'mx.example.test', key: 'rsa2048' });
    makeLineage(letsencrypt, 'mx.example.test-rsa', renewed, [rsaInt]); // version 2, live/ re-pointed
    await pf.reload();
    const want = new X509Certificate(renewed.certPem).raw.toString('hex');
    for (const c of cases) {
      const r = ok(await probe(target(c.port(), c.protocol, 'rsa')));
      expect(r.chain[0]!.toString('hex')).toBe(want);
    }
    expect(ok(await probe(target(pf.smtpsPort, 'tls', 'ecdsa'))).chain[0]!.equals(ecBefore)).toBe(
      true,
    );
    expect(pf.maillog()).toMatch(/postfix\/master\[\d+\]: reload -- version/);
  });

  it('`postfix -c DIR reload` (postfix-script) reaches this instance too', async () => {
    const reloads = (): number =>
      (pf.maillog().match(/postfix\/master\[\d+\]: reload -- /g) ?? []).length;
    const before = reloads();
    const out = execFileSync(toolPath('postfix', 'postfix'), ['-c', pf.configDir, 'reload'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    expect(out).toBe('');
    for (let i = 0; i < 100 && reloads() === before; i++) await sleep(50);
    expect(reloads()).toBe(before + 1);
    ok(await probe(target(pf.smtpPort, 'smtp', 'rsa')));
  });

  it('the instance is private: own pid file, own log, /etc/postfix untouched; stop() ends master and children', async () => {
    expect(readFileSync(join(pf.queueDir, 'pid', 'master.pid'), 'utf8').trim()).toBe(
      String(pf.daemon.pid),
    );
    expect(pf.maillog()).toMatch(
      /postfix\/master\[\d+\]: daemon started -- version [\d.]+, configuration /,
    );
    const log = pf.maillog();
    expect(log).toMatch(
      /postfix\/smtpd\[\d+\]: Anonymous TLS connection established from localhost\[127\.0\.0\.1\]/,
    );
    // The probes end their sessions politely (QUIT over TLS), on both ports.
    expect(log).not.toMatch(/lost connection|SSL_accept error/);
    expect(log).toMatch(
      /disconnect from localhost\[127\.0\.0\.1\] ehlo=1 starttls=1 quit=1 commands=3/,
    );
    expect(log).toMatch(/disconnect from localhost\[127\.0\.0\.1\] quit=1 commands=1/);
    expect(instancePids(pf.configDir).length).toBeGreaterThan(0);
    await pf.stop();
    expect(pf.daemon.exited).toBe(true);
    expect(instancePids(pf.configDir)).toEqual([]);
    expect(snapshotEtcPostfix()).toBe(etcBefore);
    const r = await probe(target(pf.smtpPort, 'smtp', 'rsa'));
    expect(r.ok ? 'ok' : r.error.code).toBe('refused');
  });
});
