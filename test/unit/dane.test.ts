import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyDigestAgility, daneMatch } from '../../src/verify/dane.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import {
  makeCa,
  makeLeaf,
  makeTempDir,
  opensslCertSha256,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
  type CaHandle,
  type LeafHandle,
} from '../helpers/pki.js';

const owner = '_25._tcp.mx.example.org.';
let dir: string;
let root: CaHandle;
let int: CaHandle;
let leaf: LeafHandle;
let other: LeafHandle;
let expiredLeaf: LeafHandle;
const x = (pem: string) => new X509Certificate(pem);
const r = (
  usage: 0 | 1 | 2 | 3,
  selector: 0 | 1,
  matching: 0 | 1 | 2,
  data: string,
): TlsaRecord => ({ owner, usage, selector, matching, data });

beforeAll(() => {
  dir = makeTempDir();
  root = makeCa(dir, { name: 'Root', key: 'p256' });
  int = makeCa(dir, { name: 'Int', key: 'p256', issuer: root });
  leaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
  other = makeLeaf(dir, { ca: int, cn: 'other.example.org', key: 'p256' });
  expiredLeaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256', expired: true });
});
afterAll(() => removeTempDir(dir));

// The clock is read at each use: certificates made in beforeAll start after module load.
const base = {
  names: ['mx.example.org'],
  get now() {
    return new Date();
  },
  smtp: true,
};

describe('DANE matching (RFC 7671/7672)', () => {
  it('3 1 1 matches the leaf key with no name or expiry checks', () => {
    const rec = r(3, 1, 1, opensslSpkiSha256(expiredLeaf.certPath));
    const res = daneMatch({
      ...base,
      names: ['somewhere.else'],
      records: [rec],
      chain: [x(expiredLeaf.certPem), x(int.certPem)],
    });
    expect(res.verified).toBe(true);
    expect(res.match).toEqual({ record: rec, depth: 0 });
  });

  it('2 1 1 matches an issuer the server sent, and checks the name and validity', () => {
    const ta = r(2, 1, 1, opensslSpkiSha256(int.certPath));
    const chain = [x(leaf.certPem), x(int.certPem)];
    expect(daneMatch({ ...base, records: [ta], chain }).match?.depth).toBe(1);
    const wrongName = daneMatch({
      ...base,
      records: [ta],
      chain: [x(other.certPem), x(int.certPem)],
    });
    expect(wrongName.verified).toBe(false);
    expect(wrongName.reasons[0]).toMatch(/not valid for mx\.example\.org/);
    const expired = daneMatch({
      ...base,
      records: [ta],
      chain: [x(expiredLeaf.certPem), x(int.certPem)],
    });
    expect(expired.reasons[0]).toMatch(/expired or not yet valid/);
    // The TA must be in what the server sends: cert.pem instead of fullchain.pem fails.
    expect(daneMatch({ ...base, records: [ta], chain: [x(leaf.certPem)] }).verified).toBe(false);
    // 2 0 1 of the root when the root is sent too.
    const rootCert = r(2, 0, 1, opensslCertSha256(root.certPath));
    expect(
      daneMatch({
        ...base,
        records: [rootCert],
        chain: [x(leaf.certPem), x(int.certPem), x(root.certPem)],
      }).match?.depth,
    ).toBe(2);
  });

  it('treats usages 0 and 1 as unusable for SMTP, usable elsewhere', () => {
    const pkix = r(1, 1, 1, opensslSpkiSha256(leaf.certPath));
    const smtp = daneMatch({ ...base, records: [pkix], chain: [x(leaf.certPem), x(int.certPem)] });
    expect(smtp.verified).toBe(false);
    expect(smtp.unusable[0]!.why).toMatch(/RFC 7672/);
    expect(smtp.reasons[0]).toMatch(/no usable TLSA record/);
    expect(
      daneMatch({ ...base, smtp: false, records: [pkix], chain: [x(leaf.certPem), x(int.certPem)] })
        .verified,
    ).toBe(true);
  });

  it('digest agility: with a SHA2-512 record published, a matching SHA2-256 one is ignored', () => {
    const s256 = r(3, 1, 1, opensslSpkiSha256(leaf.certPath));
    const s512other = r(3, 1, 2, opensslSpkiSha512(other.certPath));
    const res = daneMatch({ ...base, records: [s256, s512other], chain: [x(leaf.certPem)] });
    expect(res.verified).toBe(false);
    expect(res.unusable.map((u) => u.record)).toEqual([s256]);
    expect(
      applyDigestAgility([s256, r(3, 1, 2, opensslSpkiSha512(leaf.certPath))]).kept.map(
        (k) => k.matching,
      ),
    ).toEqual([2]);
    expect(
      applyDigestAgility([s256, r(2, 1, 2, opensslSpkiSha512(int.certPath))]).kept,
    ).toHaveLength(2);
  });

  it('says why nothing matched', () => {
    const res = daneMatch({
      ...base,
      records: [r(3, 1, 1, opensslSpkiSha256(other.certPath))],
      chain: [x(leaf.certPem), x(int.certPem)],
    });
    expect(res.verified).toBe(false);
    expect(res.reasons[0]).toMatch(/leaf key is not in any 3 x x record/);
    expect(daneMatch({ ...base, records: [], chain: [x(leaf.certPem)] }).reasons).toEqual([
      'no TLSA records',
    ]);
  });
});
