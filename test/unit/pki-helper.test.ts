import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KEY_SPECS,
  type CaHandle,
  type KeySpec,
  type LeafHandle,
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  openssl,
  opensslCertFullHex,
  opensslCertSha256,
  opensslCertSha512,
  opensslSpkiFullHex,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
} from '../helpers/pki.js';

function run(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, {
    encoding: 'utf8',
    env: { ...process.env, OPENSSL_CONF: '/dev/null' },
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const KEY_TEXT: Record<KeySpec, RegExp> = {
  rsa2048: /rsaEncryption[\s\S]*Public-Key: \(2048 bit\)/,
  rsa4096: /rsaEncryption[\s\S]*Public-Key: \(4096 bit\)/,
  p256: /id-ecPublicKey[\s\S]*NIST CURVE: P-256/,
  p384: /id-ecPublicKey[\s\S]*NIST CURVE: P-384/,
  ed25519: /Public Key Algorithm: ED25519/,
};

const countCerts = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;

describe.each(KEY_SPECS)('pki helper with %s keys', (spec) => {
  let dir: string;
  let root: CaHandle;
  let int: CaHandle;
  let leaf: LeafHandle;

  beforeAll(() => {
    dir = makeTempDir();
    root = makeCa(dir, { name: `Test Root ${spec} (not trusted)`, key: spec });
    int = makeCa(dir, { name: `Test Intermediate ${spec}`, key: spec, issuer: root });
    leaf = makeLeaf(dir, {
      ca: int,
      cn: 'mx.example.test',
      sans: ['mx.example.test', 'mail.example.test'],
      key: spec,
    });
  });
  afterAll(() => removeTempDir(dir));

  it('builds a root -> intermediate -> leaf chain that openssl verifies', () => {
    const v = run(['verify', '-CAfile', root.certPath, '-untrusted', int.certPath, leaf.certPath]);
    expect(v.out.trim()).toBe(`${leaf.certPath}: OK`);
    expect(v.status).toBe(0);

    for (const f of [root.certPath, int.certPath, leaf.certPath]) {
      expect(openssl(['x509', '-in', f, '-noout', '-text'])).toMatch(KEY_TEXT[spec]);
    }
    const caExt = openssl([
      'x509',
      '-in',
      int.certPath,
      '-noout',
      '-ext',
      'basicConstraints,keyUsage',
    ]);
    expect(caExt).toContain('CA:TRUE');
    expect(caExt).toContain('Certificate Sign, CRL Sign');
    const leafExt = openssl([
      'x509',
      '-in',
      leaf.certPath,
      '-noout',
      '-ext',
      'subjectAltName,extendedKeyUsage,basicConstraints',
    ]);
    expect(leafExt).toContain('DNS:mx.example.test, DNS:mail.example.test');
    expect(leafExt).toContain('TLS Web Server Authentication');
    expect(leafExt).toContain('CA:FALSE');
    expect(fs.statSync(leaf.keyPath).mode & 0o777).toBe(0o600);
  });

  it('makes an expired leaf that really is expired', () => {
    const expired = makeLeaf(dir, { ca: int, cn: 'old.example.test', key: spec, expired: true });
    expect(run(['x509', '-in', expired.certPath, '-noout', '-checkend', '0']).status).toBe(1);
    expect(run(['x509', '-in', leaf.certPath, '-noout', '-checkend', '0']).status).toBe(0);
    const v = run([
      'verify',
      '-CAfile',
      root.certPath,
      '-untrusted',
      int.certPath,
      expired.certPath,
    ]);
    expect(v.status).not.toBe(0);
    expect(v.out).toMatch(/certificate has expired/);
  });

  it('computes ground-truth digests consistent with the DER and the private key', () => {
    const spkiHex = opensslSpkiFullHex(leaf.certPath);
    const certHex = opensslCertFullHex(leaf.certPath);
    const sha = (alg: string, hex: string) =>
      createHash(alg).update(Buffer.from(hex, 'hex')).digest('hex');
    expect(opensslSpkiSha256(leaf.certPath)).toBe(sha('sha256', spkiHex));
    expect(opensslSpkiSha512(leaf.certPath)).toBe(sha('sha512', spkiHex));
    expect(opensslCertSha256(leaf.certPath)).toBe(sha('sha256', certHex));
    expect(opensslCertSha512(leaf.certPath)).toBe(sha('sha512', certHex));
    expect(opensslSpkiSha256(leaf.certPath)).toMatch(/^[0-9a-f]{64}$/);
    // The SPKI in the certificate is the public half of the key file.
    const pub = spawnSync('sh', [
      '-c',
      'openssl pkey -in "$1" -pubout -outform DER',
      'sh',
      leaf.keyPath,
    ]).stdout;
    expect(pub.toString('hex')).toBe(spkiHex);
    expect(opensslSpkiSha256(int.certPath)).not.toBe(opensslSpkiSha256(leaf.certPath));
    expect(() => opensslSpkiSha256(path.join(dir, 'missing.pem'))).toThrow();
  });

  it('writes a certbot-style lineage and renews it', () => {
    const cb = path.join(dir, 'letsencrypt');
    const live = makeLineage(cb, 'mx.example.test', leaf, [int]);
    expect(live).toBe(path.join(cb, 'live', 'mx.example.test'));
    const read = (f: string) => fs.readFileSync(path.join(live, f), 'utf8');
    for (const f of ['cert', 'chain', 'fullchain', 'privkey']) {
      expect(fs.lstatSync(path.join(live, `${f}.pem`)).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(path.join(live, `${f}.pem`))).toBe(
        `../../archive/mx.example.test/${f}1.pem`,
      );
    }
    expect(read('cert.pem')).toBe(leaf.certPem);
    expect(read('chain.pem')).toBe(int.certPem);
    expect(read('fullchain.pem')).toBe(leaf.certPem + int.certPem);
    expect(read('privkey.pem')).toBe(leaf.keyPem);
    expect(countCerts(read('chain.pem'))).toBe(1);
    expect(fs.statSync(path.join(live, 'privkey.pem')).mode & 0o777).toBe(0o600);

    // Renewal with the same key (certbot --reuse-key): cert2.pem etc., symlinks re-pointed.
    const renewed = makeLeaf(dir, {
      ca: int,
      cn: 'mx.example.test',
      key: spec,
      reuseKeyPath: leaf.keyPath,
    });
    expect(renewed.keyPem).toBe(leaf.keyPem);
    expect(makeLineage(cb, 'mx.example.test', renewed, [int], { version: 2 })).toBe(live);
    for (const f of ['cert', 'chain', 'fullchain', 'privkey']) {
      expect(fs.readlinkSync(path.join(live, `${f}.pem`))).toBe(
        `../../archive/mx.example.test/${f}2.pem`,
      );
      expect(fs.existsSync(path.join(cb, 'archive', 'mx.example.test', `${f}1.pem`))).toBe(true);
    }
    expect(read('cert.pem')).toBe(renewed.certPem);
    expect(read('cert.pem')).not.toBe(leaf.certPem);
    expect(opensslSpkiSha256(path.join(live, 'cert.pem'))).toBe(opensslSpkiSha256(leaf.certPath));
    expect(opensslCertSha256(path.join(live, 'cert.pem'))).not.toBe(
      opensslCertSha256(leaf.certPath),
    );
    // Default version is the next one.
    makeLineage(cb, 'mx.example.test', renewed, [int]);
    expect(fs.readlinkSync(path.join(live, 'cert.pem'))).toBe(
      '../../archive/mx.example.test/cert3.pem',
    );
  });
});

describe('reuseKeyPath key cache', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir();
  });
  afterAll(() => removeTempDir(dir));

  it('hands out one key per KeySpec per process for new reuseKeyPath files', () => {
    const root = makeCa(dir, { name: 'Cache Root', key: 'p256' });
    const a = makeLeaf(dir, {
      ca: root,
      cn: 'a.example.test',
      key: 'p256',
      reuseKeyPath: path.join(dir, 'a.key'),
    });
    const b = makeLeaf(dir, {
      ca: root,
      cn: 'b.example.test',
      key: 'p256',
      reuseKeyPath: path.join(dir, 'b.key'),
    });
    const c = makeLeaf(dir, { ca: root, cn: 'c.example.test', key: 'p256' });
    expect(a.keyPath).toBe(path.join(dir, 'a.key'));
    expect(b.keyPem).toBe(a.keyPem);
    expect(c.keyPem).not.toBe(a.keyPem);
    expect(fs.statSync(b.keyPath).mode & 0o777).toBe(0o600);
  });
});
