/**
 * The issuer catalog (src/issuers/catalog.ts): the builtin Let's Encrypt file loads, the dated
 * families come out right, a wrong entry fails loudly, and every entry agrees with what the
 * openssl CLI reads from its PEM (CN, notAfter, key algorithm).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import {
  builtinCatalogPath,
  catalogIssuerOf,
  issuerFamily,
  loadCatalog,
  pemFacts,
  type IssuerCatalog,
} from '../../src/issuers/catalog.js';
import { type PemFacts, pemHash } from '../../src/issuers/pem-digest.js';
import { associationData } from '../../src/tlsa/association.js';
import { InputError } from '../../src/errors.js';
import { makeCa, makeTempDir, openssl, removeTempDir } from '../helpers/pki.js';

const BUILTIN = builtinCatalogPath('letsencrypt');
const LE_DIR = path.dirname(BUILTIN);

interface Entry {
  name: string;
  key: string;
  status: string;
  notAfter: string;
  file: string;
}
const rawJson = (): { ca: string; asOf: string; intermediates: Entry[] } =>
  JSON.parse(fs.readFileSync(BUILTIN, 'utf8'));

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `openssl x509 -subject -enddate -text` once per file: CN, notAfter and key family. */
interface OpensslView {
  cn: string;
  notAfter: Date;
  keyFamily: string;
}
const views = new Map<string, OpensslView>();
function opensslView(file: string): OpensslView {
  const cached = views.get(file);
  if (cached) return cached;
  const out = openssl([
    'x509',
    '-in',
    file,
    '-noout',
    '-subject',
    '-nameopt',
    'multiline',
    '-enddate',
    '-text',
  ]);
  // The -subject block comes first: its commonName is the first one in the output.
  const cn = /^subject=\n(?:\s+\S.*\n)*?\s+commonName\s*=\s*(.+)$/m.exec(out);
  const end = /^notAfter=([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/m.exec(
    out,
  );
  const alg = /Public Key Algorithm: (\S+)/.exec(out);
  if (!cn || !end || !alg) throw new Error(`unexpected openssl x509 output for ${file}:\n${out}`);
  const month = MONTHS.indexOf(end[1]!);
  if (month < 0) throw new Error(`bad month in ${end[0]}`);
  const view = {
    cn: cn[1]!.trim(),
    notAfter: new Date(
      Date.UTC(
        Number(end[6]),
        month,
        Number(end[2]),
        Number(end[3]),
        Number(end[4]),
        Number(end[5]),
      ),
    ),
    keyFamily:
      (
        { rsaEncryption: 'rsa', 'id-ecPublicKey': 'ecdsa', ED25519: 'ed25519' } as Record<
          string,
          string
        >
      )[alg[1]!] ?? `? ${alg[1]}`,
  };
  views.set(file, view);
  return view;
}

let catalog: IssuerCatalog;
let tmp: string;

beforeAll(() => {
  catalog = loadCatalog(BUILTIN);
  tmp = makeTempDir('tlsa-catalog-');
});

afterAll(() => {
  if (tmp) removeTempDir(tmp);
});

/** A copy of the builtin catalog in its own directory, with entries changed by edit. */
function copyCatalog(name: string, edit: (entries: Entry[]) => Entry[]): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  const json = rawJson();
  for (const e of json.intermediates)
    fs.copyFileSync(path.join(LE_DIR, e.file), path.join(d, e.file));
  json.intermediates = edit(json.intermediates);
  const file = path.join(d, 'catalog.json');
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
  return file;
}

function loadError(file: string): InputError {
  let thrown: unknown;
  try {
    loadCatalog(file);
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected loadCatalog to throw an InputError').toBeInstanceOf(InputError);
  return thrown as InputError;
}

describe("the builtin Let's Encrypt catalog", () => {
  it('loads 16 entries', () => {
    expect(catalog.ca).toBe('letsencrypt');
    expect(catalog.file).toBe(BUILTIN);
    expect(catalog.intermediates).toHaveLength(16);
    expect(catalog.intermediates.map((i) => i.name).sort()).toEqual([
      'E5',
      'E6',
      'E7',
      'E8',
      'E9',
      'R10',
      'R11',
      'R12',
      'R13',
      'R14',
      'YE1',
      'YE2',
      'YE3',
      'YR1',
      'YR2',
      'YR3',
    ]);
    for (const i of catalog.intermediates)
      expect(i.file).toBe(
        path.join(LE_DIR, rawJson().intermediates.find((e) => e.name === i.name)!.file),
      );
  });

  it('rsa family at 2026-11-24: YR1, YR2, YR3', () => {
    const fam = issuerFamily(catalog, 'rsa', new Date('2026-11-24T00:00:00Z'));
    expect(fam.map((i) => i.name)).toEqual(['YR1', 'YR2', 'YR3']);
    expect(fam.map((i) => i.status)).toEqual(['active', 'active', 'backup']);
  });

  it('ecdsa family at 2026-11-24: YE1, YE2, YE3', () => {
    const fam = issuerFamily(catalog, 'ecdsa', new Date('2026-11-24T00:00:00Z'));
    expect(fam.map((i) => i.name)).toEqual(['YE1', 'YE2', 'YE3']);
    expect(fam.map((i) => i.status)).toEqual(['active', 'active', 'backup']);
  });

  it('retired Gen X intermediates (R1x, E5-E9) are never in a family', () => {
    for (const when of ['2025-01-01T00:00:00Z', '2026-11-24T00:00:00Z']) {
      for (const fam of ['rsa', 'ecdsa'] as const) {
        expect(
          issuerFamily(catalog, fam, new Date(when))
            .map((i) => i.name)
            .filter((n) => !n.startsWith('Y')),
        ).toEqual([]);
      }
    }
  });

  it("no family for Ed25519 keys (Let's Encrypt has no Ed25519 intermediates)", () => {
    expect(issuerFamily(catalog, 'ed25519', new Date('2026-11-24T00:00:00Z'))).toEqual([]);
  });

  it('at 2028-10-01 both families are empty (all expired)', () => {
    const when = new Date('2028-10-01T00:00:00Z');
    expect(issuerFamily(catalog, 'rsa', when)).toEqual([]);
    expect(issuerFamily(catalog, 'ecdsa', when)).toEqual([]);
  });

  it('an entry drops out once its notAfter has passed', () => {
    expect(issuerFamily(catalog, 'rsa', new Date('2028-09-02T23:59:58Z'))).toHaveLength(3);
    expect(issuerFamily(catalog, 'rsa', new Date('2028-09-03T00:00:00Z'))).toHaveLength(0);
  });

  describe('every entry agrees with openssl', () => {
    for (const e of rawJson().intermediates) {
      it(`${e.name}: notAfter equals openssl -enddate, name equals the CN, key equals the algorithm`, () => {
        const pem = path.join(LE_DIR, e.file);
        const view = opensslView(pem);
        expect(new Date(e.notAfter).getTime()).toBe(view.notAfter.getTime());
        const loaded = catalog.intermediates.find((i) => i.name === e.name)!;
        expect(loaded.notAfter.getTime()).toBe(view.notAfter.getTime());
        expect(view.cn).toBe(e.name);
        expect(view.keyFamily).toBe(e.key);
        expect(loaded.key).toBe(e.key);
      });
    }
  });
});

describe('catalog files that do not match their PEMs', () => {
  it('an entry whose name does not match its PEM throws, naming the entry', () => {
    const file = copyCatalog('wrong-name', (es) =>
      es.map((e) => (e.name === 'YR2' ? { ...e, name: 'YR9' } : e)),
    );
    const err = loadError(file);
    expect(err.file).toBe(file);
    expect(err.message).toMatch(/catalog entry YR9 does not match gen-y-int-yr2\.pem/);
    expect(err.message).toContain('CN=YR2');
  });

  it('an entry pointing at the wrong PEM (YE1 -> the YR1 file) throws, naming the entry', () => {
    const file = copyCatalog('wrong-file', (es) =>
      es.map((e) => (e.name === 'YE1' ? { ...e, file: 'gen-y-int-yr1.pem' } : e)),
    );
    const err = loadError(file);
    expect(err.message).toMatch(/catalog entry YE1 does not match gen-y-int-yr1\.pem \(CN=YR1/);
  });

  it('an entry whose notAfter does not match its PEM throws, naming the entry', () => {
    const file = copyCatalog('wrong-date', (es) =>
      es.map((e) => (e.name === 'E7' ? { ...e, notAfter: '2027-03-13T23:59:59Z' } : e)),
    );
    expect(loadError(file).message).toMatch(/catalog entry E7 does not match 2024-e7\.pem/);
  });

  it('an entry whose PEM is missing throws, naming the entry and the file', () => {
    const file = copyCatalog('missing-pem', (es) => es);
    fs.unlinkSync(path.join(path.dirname(file), 'gen-y-int-ye3.pem'));
    const err = loadError(file);
    expect(err.message).toMatch(/catalog entry YE3: cannot load gen-y-int-ye3\.pem/);
  });

  it('an entry whose file is not a certificate throws, naming the entry', () => {
    const file = copyCatalog('garbage-pem', (es) => es);
    fs.writeFileSync(path.join(path.dirname(file), 'gen-y-int-yr3.pem'), 'not a certificate\n');
    expect(loadError(file).message).toMatch(/catalog entry YR3: cannot load gen-y-int-yr3\.pem/);
  });

  it('a catalog.json that is not JSON throws naming the file', () => {
    const d = path.join(tmp, 'bad-json');
    fs.mkdirSync(d, { recursive: true });
    const file = path.join(d, 'catalog.json');
    fs.writeFileSync(file, '{ "ca": "x", ');
    const err = loadError(file);
    expect(err.file).toBe(file);
    expect(err.message).toMatch(/cannot read the issuer catalog/);
  });

  it('a catalog of your own intermediate loads when the entry matches', () => {
    const d = path.join(tmp, 'own');
    const root = makeCa(d, { name: 'Own Root', key: 'p256' });
    const int = makeCa(d, { name: 'Own Int E1', key: 'p256', issuer: root, days: 400 });
    const file = path.join(d, 'catalog.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        ca: 'own',
        asOf: '2026-11-24',
        intermediates: [
          {
            name: 'Own Int E1',
            key: 'ecdsa',
            status: 'active',
            notAfter: opensslView(int.certPath).notAfter.toISOString(),
            file: path.basename(int.certPath),
          },
        ],
      }),
    );
    const cat = loadCatalog(file);
    expect(cat.intermediates.map((i) => i.name)).toEqual(['Own Int E1']);
    expect(issuerFamily(cat, 'ecdsa', new Date()).map((i) => i.name)).toEqual(['Own Int E1']);
    expect(issuerFamily(cat, 'rsa', new Date())).toEqual([]);
  });

  it('catalogIssuerOf: the entry itself, or another certificate of its key; never another key', () => {
    const { int, again, other, file } = sameKeyCatalog(path.join(tmp, 'same-key'), 'Key');
    const cat = loadCatalog(file);
    const x509 = (pem: string) => new X509Certificate(pem);
    expect(catalogIssuerOf(cat, x509(int.certPem))?.name).toBe('Key Int E1');
    expect(x509(again.certPem).fingerprint256).not.toBe(x509(int.certPem).fingerprint256);
    expect(catalogIssuerOf(cat, x509(again.certPem))?.name).toBe('Key Int E1');
    expect(catalogIssuerOf(cat, x509(other.certPem))).toBeUndefined();
    expect(catalogIssuerOf(loadCatalog(BUILTIN), x509(int.certPem))).toBeUndefined();
  });
});

/** A digest (as the build writes) of these PEM files, each entry changed by edit. */
function digestOf(
  files: string[],
  edit: (f: PemFacts) => PemFacts = (f) => f,
): Map<string, PemFacts> {
  const digest = new Map<string, PemFacts>();
  for (const f of files) {
    const pem = fs.readFileSync(f);
    digest.set(pemHash(pem), edit(pemFacts(new X509Certificate(pem))));
  }
  return digest;
}

/** What a loaded catalog says, its certificates by fingerprint. */
const summary = (cat: IssuerCatalog) =>
  cat.intermediates.map((i) => ({
    name: i.name,
    key: i.key,
    status: i.status,
    notAfter: i.notAfter.toISOString(),
    file: i.file,
    cert: i.cert.fingerprint256,
    spki: associationData(i.cert, 1, 1),
  }));

describe('a digest of the PEMs (the build writes one for the shipped catalog)', () => {
  const lePems = () => rawJson().intermediates.map((e) => path.join(LE_DIR, e.file));

  it('the catalog loaded with it is the catalog parsed without it, and matches alike', () => {
    const parsed = loadCatalog(BUILTIN, new Map());
    const vouched = loadCatalog(BUILTIN, digestOf(lePems()));
    const own = makeCa(path.join(tmp, 'digest-stranger'), { name: 'Stranger', key: 'p256' });
    const certs = [
      ...lePems().map((f) => new X509Certificate(fs.readFileSync(f))),
      new X509Certificate(own.certPem),
    ];
    for (const c of certs)
      expect(catalogIssuerOf(vouched, c)?.name).toBe(catalogIssuerOf(parsed, c)?.name);
    expect(summary(vouched)).toEqual(summary(parsed));
  });

  it('is used when a PEM has the hash it records: its name is what the entry is checked against', () => {
    const file = copyCatalog('digest-used', (es) => es);
    const e5 = path.join(path.dirname(file), '2024-e5.pem');
    let thrown: unknown;
    try {
      loadCatalog(
        file,
        digestOf([e5], (f) => ({ ...f, name: 'NOT-E5' })),
      );
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(InputError);
    expect((thrown as Error).message).toMatch(
      /catalog entry E5 does not match 2024-e5\.pem \(CN=NOT-E5,/,
    );
  });

  it('is ignored for a PEM whose bytes differ (edited by the user): that file is parsed', () => {
    const file = copyCatalog('digest-edited', (es) => es);
    const e5 = path.join(path.dirname(file), '2024-e5.pem');
    const digest = digestOf([e5], (f) => ({ ...f, name: 'NOT-E5' }));
    // The same certificate, written with CRLF line ends: other bytes, other hash.
    fs.writeFileSync(e5, fs.readFileSync(e5, 'utf8').replace(/\n/g, '\r\n'));
    expect(summary(loadCatalog(file, digest))).toEqual(summary(loadCatalog(file, new Map())));
  });

  it('a PEM the user replaced by another certificate gives that certificate and its records', () => {
    const d = path.join(tmp, 'digest-replaced');
    const root = makeCa(d, { name: 'Swap Root', key: 'p256' });
    const first = makeCa(d, { name: 'Swap Int E1', key: 'p256', issuer: root, days: 400 });
    const second = makeCa(d, { name: 'Swap Int E1', key: 'p256', issuer: root, days: 300 });
    const digest = digestOf([first.certPath]);
    const pemFile = path.join(d, 'int.pem');
    const file = path.join(d, 'catalog.json');
    const writeCatalog = (ca: { certPath: string }) => {
      fs.copyFileSync(ca.certPath, pemFile);
      fs.writeFileSync(
        file,
        JSON.stringify({
          ca: 'own',
          asOf: '2026-11-24',
          intermediates: [
            {
              name: 'Swap Int E1',
              key: 'ecdsa',
              status: 'active',
              notAfter: opensslView(ca.certPath).notAfter.toISOString(),
              file: 'int.pem',
            },
          ],
        }),
      );
    };
    writeCatalog(first);
    const x509 = (pem: string) => new X509Certificate(pem);
    expect(loadCatalog(file, digest).intermediates[0]!.cert.fingerprint256).toBe(
      x509(first.certPem).fingerprint256,
    );
    writeCatalog(second);
    const cat = loadCatalog(file, digest);
    const entry = cat.intermediates[0]!;
    expect(entry.cert.fingerprint256).toBe(x509(second.certPem).fingerprint256);
    expect(associationData(entry.cert, 1, 1)).toBe(associationData(x509(second.certPem), 1, 1));
    expect(catalogIssuerOf(cat, x509(second.certPem))?.name).toBe('Swap Int E1');
    expect(catalogIssuerOf(cat, x509(first.certPem))).toBeUndefined();
  });

  it('an entry it vouches for still matches another certificate of its key (a cross-sign)', () => {
    const { int, again, other, file } = sameKeyCatalog(path.join(tmp, 'digest-same-key'), 'Digest');
    const cat = loadCatalog(file, digestOf([int.certPath]));
    const x509 = (pem: string) => new X509Certificate(pem);
    expect(catalogIssuerOf(cat, x509(int.certPem))?.name).toBe('Digest Int E1');
    expect(catalogIssuerOf(cat, x509(again.certPem))?.name).toBe('Digest Int E1');
    expect(catalogIssuerOf(cat, x509(other.certPem))).toBeUndefined();
  });
});

/** A catalog of one intermediate (`<prefix> Int E1`) and two more certificates of that name: one
 *  re-issued with its key (as a cross-sign is), one with another key. */
function sameKeyCatalog(d: string, prefix: string) {
  const root = makeCa(d, { name: `${prefix} Root`, key: 'p256' });
  const int = makeCa(d, { name: `${prefix} Int E1`, key: 'p256', issuer: root, days: 400 });
  const again = makeCa(d, {
    name: `${prefix} Int E1`,
    key: 'p256',
    issuer: root,
    days: 300,
    reuseKeyPath: int.keyPath,
  });
  const other = makeCa(d, { name: `${prefix} Int E1`, key: 'p256', issuer: root, days: 400 });
  const file = path.join(d, 'catalog.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      ca: 'own',
      asOf: '2026-11-24',
      intermediates: [
        {
          name: `${prefix} Int E1`,
          key: 'ecdsa',
          status: 'active',
          notAfter: opensslView(int.certPath).notAfter.toISOString(),
          file: path.basename(int.certPath),
        },
      ],
    }),
  );
  return { int, again, other, file };
}
