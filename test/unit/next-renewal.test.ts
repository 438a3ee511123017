/**
 * The next-renewal forecast of `tlsa check` (src/verify/next-renewal.ts) and its record texts
 * (src/verify/check.ts): issue 14, points 1, 2 and 5. Chains are made with the openssl CLI
 * (test/helpers/pki.ts); record data is computed with the openssl CLI, never the code under test.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinCatalogPath, loadCatalog, type IssuerCatalog } from '../../src/issuers/catalog.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { leftOver, plaintextHint } from '../../src/verify/check.js';
import { forecastChain, type RenewalSetup } from '../../src/verify/next-renewal.js';
import {
  makeCa,
  makeLeaf,
  makeTempDir,
  openssl,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
  type CaHandle,
  type LeafHandle,
} from '../helpers/pki.js';

const NOW = new Date('2026-12-01T12:00:00Z');
const OWNER = '_25._tcp.mx.example.org.';
let dir: string;
let int: CaHandle;
let spare: CaHandle;
let leaf: LeafHandle;
let chain: X509Certificate[];
let catalog: IssuerCatalog;

const rec = (usage: 2 | 3, matching: 1 | 2, data: string): TlsaRecord => ({
  owner: OWNER,
  usage,
  selector: 1,
  matching,
  data,
});
const ee = (): TlsaRecord => rec(3, 1, opensslSpkiSha256(leaf.certPath));
const ta = (ca: CaHandle): TlsaRecord => rec(2, 1, opensslSpkiSha256(ca.certPath));
const service = (
  o: Partial<NonNullable<RenewalSetup['service']>> = {},
): NonNullable<RenewalSetup['service']> => ({
  name: 'mx',
  staged: false,
  reload: false,
  issuers: 'none',
  publishesKey: false,
  ttl: 300,
  ...o,
});

beforeAll(() => {
  dir = makeTempDir('tlsa-next-renewal-');
  const root = makeCa(dir, { name: 'Forecast Root', key: 'p256' });
  int = makeCa(dir, { name: 'Forecast Int', key: 'p256', issuer: root });
  spare = makeCa(dir, { name: 'Forecast Spare', key: 'p256', issuer: root });
  leaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
  chain = [leaf.certPem, int.certPem].map((p) => new X509Certificate(p));
  // A catalog of this test CA: the served intermediate and a spare one, both active.
  const cdir = path.join(dir, 'catalog');
  fs.mkdirSync(cdir);
  const entry = (ca: CaHandle, file: string) => {
    fs.copyFileSync(ca.certPath, path.join(cdir, file));
    const end = openssl(['x509', '-in', ca.certPath, '-noout', '-enddate'])
      .trim()
      .replace(/^notAfter=/, '');
    return {
      name: ca.name,
      key: 'ecdsa',
      status: 'active',
      notAfter: new Date(end).toISOString(),
      file,
    };
  };
  fs.writeFileSync(
    path.join(cdir, 'catalog.json'),
    JSON.stringify({
      ca: 'testca',
      asOf: '2026-12-01',
      intermediates: [entry(int, 'int.pem'), entry(spare, 'spare.pem')],
    }),
  );
  catalog = loadCatalog(path.join(cdir, 'catalog.json'));
}, 60_000);

afterAll(() => {
  if (dir) removeTempDir(dir);
});

describe('point 1: the CA rotation is predicted', () => {
  it('2 1 1 only, issuers: none, no staged install: breaks DANE on a rotation; no --reuse-key advice', () => {
    const f = forecastChain(chain, [ta(int)], { service: service(), catalogs: [] }, NOW);
    expect(f.verdict).toBe('breaks');
    expect(f.text).toMatch(
      /^next renewal \(ECDSA P-256\): breaks DANE: a new key from an intermediate other than Forecast Int \(a CA rotation; "issuers: none" names none\) matches no live record/,
    );
    expect(f.text).toMatch(/the hook publishes its records and exits 1/);
    expect(f.fixes.join('\n')).toMatch(/install:/);
    expect(f.fixes.join('\n')).toMatch(/issuer catalog/);
    expect(f.fixes.join('\n')).not.toMatch(/reuse-key/);
  });

  it('3 1 1 and 2 1 1, no catalog: breaks on a rotation with a new key; --reuse-key is a fix (the 3 1 1 keeps matching)', () => {
    const f = forecastChain(
      chain,
      [ee(), ta(int)],
      { service: service({ publishesKey: true }), catalogs: [] },
      NOW,
    );
    expect(f.verdict).toBe('breaks');
    expect(f.fixes.join('\n')).toMatch(/--reuse-key/);
    // A live 3 1 1 that the service no longer publishes (records: ["2 1 1"]) is retired: no advice.
    const g = forecastChain(chain, [ee(), ta(int)], { service: service(), catalogs: [] }, NOW);
    expect(g.fixes.join('\n')).not.toMatch(/reuse-key/);
    // Plain check HOST:PORT knows only what is live.
    expect(forecastChain(chain, [ee(), ta(int)], { catalogs: [] }, NOW).fixes.join('\n')).toMatch(
      /--reuse-key/,
    );
  });

  it("the service's catalog with the spare intermediate's 2 1 1 live: safe", () => {
    const f = forecastChain(
      chain,
      [ta(int), ta(spare)],
      { service: service({ issuers: 'catalog.json' }), catalogs: [catalog] },
      NOW,
    );
    expect(f.verdict).toBe('safe');
    expect(f.text).toMatch(
      /safe: a new key from Forecast Int \(the current issuer\) or Forecast Spare \(testca, active\) matches a live 2 x x record/,
    );
  });

  it('the catalog names an intermediate without a live record: breaks, naming it', () => {
    const f = forecastChain(
      chain,
      [ta(int)],
      { service: service({ issuers: 'catalog.json' }), catalogs: [catalog] },
      NOW,
    );
    expect(f.verdict).toBe('breaks');
    expect(f.uncovered).toEqual(['a new key from Forecast Spare (testca, active)']);
  });

  it('plain check HOST:PORT: a chain from a CA the built-in catalog does not know is a rotation risk', () => {
    const f = forecastChain(
      chain,
      [ta(int)],
      { catalogs: [loadCatalog(builtinCatalogPath('letsencrypt'))] },
      NOW,
    );
    expect(f.verdict).toBe('breaks');
    expect(f.text).toMatch(/no issuer catalog knows Forecast Int/);
  });
});

describe("point 2: the service's setup", () => {
  it('3 1 1 only with staged install: safe (staged), nothing to fix', () => {
    const f = forecastChain(
      chain,
      [ee()],
      { service: service({ staged: true }), catalogs: [] },
      NOW,
    );
    expect(f.verdict).toBe('staged');
    expect(f.text).toMatch(/safe \(staged\)/);
    expect(f.fixes).toEqual([]);
  });

  it('with reload: the hook does not run it', () => {
    const f = forecastChain(
      chain,
      [ee()],
      { service: service({ reload: true }), catalogs: [] },
      NOW,
    );
    expect(f.text).toMatch(/exits 1 without running "reload:"/);
  });
});

describe('point 5: texts', () => {
  it('a catalog intermediate\'s 2 1 2 is not "left over" (nor its 2 1 1); a stranger\'s is', () => {
    const stranger = makeCa(dir, { name: 'Forecast Stranger', key: 'p256' });
    const records = [
      ta(int),
      ta(spare),
      rec(2, 2, opensslSpkiSha512(spare.certPath)),
      ta(stranger),
    ];
    expect(leftOver(records, [chain], [catalog])).toEqual([ta(stranger)]);
  });

  it('"wrong version number" on an implicit-TLS port suggests --protocol smtp; not on a STARTTLS port', () => {
    const hint = plaintextHint('TLS handshake with 127.0.0.1:2525 failed: wrong version number', {
      host: 'mx.example.org',
      port: 2525,
    });
    expect(hint).toMatch(/tlsa check --protocol smtp mx\.example\.org:2525/);
    expect(
      plaintextHint('TLS handshake with 127.0.0.1:25 failed: wrong version number', {
        host: 'mx.example.org',
        port: 25,
      }),
    ).toBe('');
  });
});
