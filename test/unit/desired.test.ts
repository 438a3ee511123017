/**
 * desiredRecords (src/engine/desired.ts): which TLSA records a service should have. Chains are
 * made with the openssl CLI (test/helpers/pki.ts) and loaded with loadChain; every expected
 * association value is computed with the openssl CLI, never with the code under test.
 */
import * as fs from 'node:fs';
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChain, type LoadedChain } from '../../src/certs/chain.js';
import {
  desiredRecords,
  type DesiredRecord,
  type RecordSpec,
  type ServiceInput,
} from '../../src/engine/desired.js';
import { builtinCatalogPath, loadCatalog, type IssuerCatalog } from '../../src/issuers/catalog.js';
import { PolicyError } from '../../src/tlsa/policy.js';
import {
  type CaHandle,
  type LeafHandle,
  makeCa,
  makeLeaf,
  makeTempDir,
  openssl,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
} from '../helpers/pki.js';

const HOST = 'mx.example.org';
const OWNER25 = `_25._tcp.${HOST}.`;
const NOW = new Date('2026-11-24T12:00:00Z');
const LE_DIR = path.dirname(builtinCatalogPath('letsencrypt'));
const LE_FILES: Record<string, string> = {
  YR1: 'gen-y-int-yr1.pem',
  YR2: 'gen-y-int-yr2.pem',
  YR3: 'gen-y-int-yr3.pem',
  YE1: 'gen-y-int-ye1.pem',
  YE2: 'gen-y-int-ye2.pem',
  YE3: 'gen-y-int-ye3.pem',
  R10: '2024-r10.pem',
  E5: '2024-e5.pem',
};
const LE_BACKUP = ['YR3', 'YE3'];
const LE_ACTIVE = ['YR1', 'YR2', 'YE1', 'YE2'];

let dir: string;
let rsaRoot: CaHandle;
let rsaInt: CaHandle;
let ecInt: CaHandle;
let rsaLeaf: LeafHandle;
let ecLeaf: LeafHandle;
let edLeaf: LeafHandle;
let rsaChain: LoadedChain;
let ecChain: LoadedChain;
let edChain: LoadedChain;
let le: IssuerCatalog;

/** openssl ground truth, cached per file. */
const sha256 = new Map<string, string>();
function spki256(file: string): string {
  let h = sha256.get(file);
  if (h === undefined) {
    h = opensslSpkiSha256(file);
    sha256.set(file, h);
  }
  return h;
}
const leData = (name: string): string => spki256(path.join(LE_DIR, LE_FILES[name]!));

function fullchain(name: string, leaf: LeafHandle, ...cas: CaHandle[]): string {
  const file = path.join(dir, 'chains', `${name}.pem`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    [leaf.certPem, ...cas.map((c) => c.certPem)]
      .map((p) => (p.endsWith('\n') ? p : `${p}\n`))
      .join(''),
  );
  return file;
}

function svc(over: Partial<ServiceInput>): ServiceInput {
  return {
    name: 'mail',
    host: HOST,
    ports: [25],
    records: [
      { usage: 3, selector: 1, matching: 1 },
      { usage: 2, selector: 1, matching: 1 },
    ],
    chains: [rsaChain, ecChain],
    catalog: le,
    cap: 12,
    ...over,
  };
}

/** "U S M data" per record, sorted: easy to compare with expectations. */
function rdatas(recs: DesiredRecord[]): string[] {
  return recs.map((r) => `${r.usage} ${r.selector} ${r.matching} ${r.data}`).sort();
}
const rd = (u: number, s: number, m: number, data: string): string => `${u} ${s} ${m} ${data}`;

beforeAll(() => {
  dir = makeTempDir('tlsa-desired-');
  rsaRoot = makeCa(dir, { name: 'Desired RSA Root', key: 'rsa2048' });
  rsaInt = makeCa(dir, { name: 'Desired RSA Int', key: 'rsa2048', issuer: rsaRoot });
  const ecRoot = makeCa(dir, { name: 'Desired EC Root', key: 'p256' });
  ecInt = makeCa(dir, { name: 'Desired EC Int', key: 'p256', issuer: ecRoot });
  rsaLeaf = makeLeaf(dir, { ca: rsaInt, cn: HOST, key: 'rsa2048' });
  ecLeaf = makeLeaf(dir, { ca: ecInt, cn: HOST, key: 'p256' });
  edLeaf = makeLeaf(dir, { ca: ecInt, cn: HOST, key: 'ed25519' });
  rsaChain = loadChain({
    kind: 'files',
    fullchain: fullchain('rsa', rsaLeaf, rsaInt),
    key: rsaLeaf.keyPath,
  });
  ecChain = loadChain({
    kind: 'files',
    fullchain: fullchain('ecdsa', ecLeaf, ecInt),
    key: ecLeaf.keyPath,
  });
  edChain = loadChain({
    kind: 'files',
    fullchain: fullchain('ed25519', edLeaf, ecInt),
    key: edLeaf.keyPath,
  });
  expect([rsaChain.keyType.family, ecChain.keyType.family, edChain.keyType.family]).toEqual([
    'rsa',
    'ecdsa',
    'ed25519',
  ]);
  le = leWith(dir, [rsaInt, ecInt]);
}, 60_000);

/** The catalog applies only to chains from its own intermediates (test chains are not Let's
 *  Encrypt's): a copy of the built-in catalog that also lists the test intermediates, retired
 *  (so they add nothing themselves), makes the test chains members of it. */
function leWith(base: string, ints: CaHandle[]): IssuerCatalog {
  const cdir = path.join(base, 'le-plus-test');
  fs.mkdirSync(cdir, { recursive: true });
  const json = JSON.parse(fs.readFileSync(builtinCatalogPath('letsencrypt'), 'utf8')) as {
    intermediates: { file: string }[];
  };
  for (const e of json.intermediates)
    fs.copyFileSync(path.join(LE_DIR, e.file), path.join(cdir, e.file));
  for (const ca of ints) {
    const file = `${path.basename(ca.certPath)}.pem`;
    fs.copyFileSync(ca.certPath, path.join(cdir, file));
    const end = openssl(['x509', '-in', ca.certPath, '-noout', '-enddate'])
      .trim()
      .replace(/^notAfter=/, '');
    const key = openssl(['x509', '-in', ca.certPath, '-noout', '-text']).includes('rsaEncryption')
      ? 'rsa'
      : 'ecdsa';
    json.intermediates.push({
      name: ca.name,
      key,
      status: 'retired',
      notAfter: new Date(end).toISOString(),
      file,
    } as { file: string });
  }
  fs.writeFileSync(path.join(cdir, 'catalog.json'), JSON.stringify(json, null, 2));
  return loadCatalog(path.join(cdir, 'catalog.json'));
}

afterAll(() => {
  if (dir) removeTempDir(dir);
});

/** The 4 records the served RSA + ECDSA chains match. */
function served(): string[] {
  return [
    rd(3, 1, 1, spki256(rsaLeaf.certPath)),
    rd(3, 1, 1, spki256(ecLeaf.certPath)),
    rd(2, 1, 1, spki256(rsaInt.certPath)),
    rd(2, 1, 1, spki256(ecInt.certPath)),
  ];
}

describe('the default set', () => {
  it('RSA + ECDSA on port 25: 3 1 1 per leaf, 2 1 1 per issuer, LE YR1-3 and YE1-3 = 10 records', () => {
    const { records, warnings } = desiredRecords(svc({}), NOW);
    expect(records).toHaveLength(10);
    expect(records.every((r) => r.owner === OWNER25)).toBe(true);
    const family = ['YR1', 'YR2', 'YR3', 'YE1', 'YE2', 'YE3'].map((n) => rd(2, 1, 1, leData(n)));
    expect(rdatas(records)).toEqual([...served(), ...family].sort());
    expect(warnings).toEqual([]);
    // Served records say so; family records are not served and name no chain.
    for (const r of records) {
      const isServed = served().includes(rd(r.usage, r.selector, r.matching, r.data));
      expect(r.matchesServed).toBe(isServed);
      expect(r.chains.length > 0).toBe(isServed);
    }
    // Retired Gen X intermediates are not in the default set when no chain uses them.
    expect(rdatas(records)).not.toContain(rd(2, 1, 1, leData('R10')));
    expect(rdatas(records)).not.toContain(rd(2, 1, 1, leData('E5')));
  });

  it('an RSA-only service gets only the RSA family', () => {
    const { records } = desiredRecords(svc({ chains: [rsaChain] }), NOW);
    expect(rdatas(records)).toEqual(
      [
        rd(3, 1, 1, spki256(rsaLeaf.certPath)),
        rd(2, 1, 1, spki256(rsaInt.certPath)),
        ...['YR1', 'YR2', 'YR3'].map((n) => rd(2, 1, 1, leData(n))),
      ].sort(),
    );
  });

  it("an Ed25519-only service gets no Let's Encrypt family", () => {
    const { records, warnings } = desiredRecords(svc({ chains: [edChain] }), NOW);
    expect(rdatas(records)).toEqual(
      [rd(3, 1, 1, spki256(edLeaf.certPath)), rd(2, 1, 1, spki256(ecInt.certPath))].sort(),
    );
    expect(warnings).toEqual([]);
  });

  it('without a catalog only the served records', () => {
    const { records } = desiredRecords(svc({ catalog: undefined }), NOW);
    expect(rdatas(records)).toEqual(served().sort());
  });

  it('after the Gen Y intermediates expire (2028-10-01) the family is empty', () => {
    const { records } = desiredRecords(svc({}), new Date('2028-10-01T00:00:00Z'));
    expect(rdatas(records)).toEqual(served().sort());
  });

  it('two chains from the same issuer share one 2 1 1 record that names both', () => {
    const rsaLeaf2 = makeLeaf(dir, { ca: rsaInt, cn: HOST, key: 'rsa2048' });
    const rsaChain2 = loadChain({ kind: 'files', fullchain: fullchain('rsa-2', rsaLeaf2, rsaInt) });
    const { records } = desiredRecords(
      svc({ chains: [rsaChain, rsaChain2], catalog: undefined }),
      NOW,
    );
    expect(records).toHaveLength(3);
    const ta = records.find((r) => r.usage === 2)!;
    expect(ta.data).toBe(spki256(rsaInt.certPath));
    expect(ta.chains.sort()).toEqual([rsaChain.label, rsaChain2.label].sort());
  });
});

describe('SMTP policy (RFC 7672)', () => {
  const bad: [string, RecordSpec][] = [
    ['0 1 1', { usage: 0, selector: 1, matching: 1 }],
    ['1 1 1', { usage: 1, selector: 1, matching: 1 }],
  ];
  for (const [name, spec] of bad) {
    it(`${name} on port 25 throws a PolicyError citing RFC 7672`, () => {
      expect(() => desiredRecords(svc({ records: [spec] }), NOW)).toThrow(PolicyError);
      expect(() => desiredRecords(svc({ records: [spec] }), NOW)).toThrow(/RFC 7672/);
    });
    it(`${name} with protocol smtp on another port (2525) throws a PolicyError citing RFC 7672`, () => {
      expect(() =>
        desiredRecords(svc({ ports: [2525], protocol: 'smtp', records: [spec] }), NOW),
      ).toThrow(/RFC 7672/);
    });
    it(`${name} next to allowed records on port 25 still throws`, () => {
      expect(() =>
        desiredRecords(svc({ records: [{ usage: 3, selector: 1, matching: 1 }, spec] }), NOW),
      ).toThrow(PolicyError);
    });
  }

  it('port 25 among several ports makes the whole service throw', () => {
    expect(() =>
      desiredRecords(
        svc({
          ports: [443, 25],
          protocol: 'https',
          records: [{ usage: 1, selector: 1, matching: 1 }],
        }),
        NOW,
      ),
    ).toThrow(/RFC 7672/);
  });

  it('port 443 with protocol https allows 1 1 1', () => {
    const { records } = desiredRecords(
      svc({ ports: [443], protocol: 'https', records: [{ usage: 1, selector: 1, matching: 1 }] }),
      NOW,
    );
    expect(records.every((r) => r.owner === `_443._tcp.${HOST}.`)).toBe(true);
    expect(rdatas(records)).toEqual(
      [rd(1, 1, 1, spki256(rsaLeaf.certPath)), rd(1, 1, 1, spki256(ecLeaf.certPath))].sort(),
    );
  });
});

describe('record specs', () => {
  it('asking 3 1 2 adds 3 1 1 too (digest agility, RFC 7671 §9)', () => {
    const { records } = desiredRecords(
      svc({ records: [{ usage: 3, selector: 1, matching: 2 }] }),
      NOW,
    );
    expect(rdatas(records)).toEqual(
      [
        rd(3, 1, 2, opensslSpkiSha512(rsaLeaf.certPath)),
        rd(3, 1, 2, opensslSpkiSha512(ecLeaf.certPath)),
        rd(3, 1, 1, spki256(rsaLeaf.certPath)),
        rd(3, 1, 1, spki256(ecLeaf.certPath)),
      ].sort(),
    );
  });

  it('asking 3 1 2 and 3 1 1 does not duplicate 3 1 1', () => {
    const { records } = desiredRecords(
      svc({
        records: [
          { usage: 3, selector: 1, matching: 2 },
          { usage: 3, selector: 1, matching: 1 },
        ],
        chains: [ecChain],
      }),
      NOW,
    );
    expect(rdatas(records)).toEqual(
      [
        rd(3, 1, 2, opensslSpkiSha512(ecLeaf.certPath)),
        rd(3, 1, 1, spki256(ecLeaf.certPath)),
      ].sort(),
    );
  });

  it('two ports make two owner names with the same records', () => {
    const { records } = desiredRecords(svc({ ports: [25, 465] }), NOW);
    expect(records).toHaveLength(20);
    const owners = [...new Set(records.map((r) => r.owner))].sort();
    expect(owners).toEqual([`_25._tcp.${HOST}.`, `_465._tcp.${HOST}.`].sort());
    const at = (o: string) => rdatas(records.filter((r) => r.owner === o));
    expect(at(`_25._tcp.${HOST}.`)).toEqual(at(`_465._tcp.${HOST}.`));
    expect(at(`_25._tcp.${HOST}.`)).toHaveLength(10);
  });

  it('the owner name is lower-cased and absolute', () => {
    const { records } = desiredRecords(svc({ host: 'MX.Example.ORG', catalog: undefined }), NOW);
    expect(new Set(records.map((r) => r.owner))).toEqual(new Set([OWNER25]));
  });
});

describe('the per-name cap', () => {
  it('cap 8: only the backup entries (YR3, YE3) are dropped, with a warning naming them', () => {
    const { records, warnings } = desiredRecords(svc({ cap: 8 }), NOW);
    expect(records).toHaveLength(8);
    expect(rdatas(records)).toEqual(
      [...served(), ...LE_ACTIVE.map((n) => rd(2, 1, 1, leData(n)))].sort(),
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(OWNER25);
    expect(warnings[0]).toMatch(/cap of 8/);
    for (const n of LE_BACKUP) expect(warnings[0]).toMatch(new RegExp(`\\b${n}\\b`));
    for (const n of LE_ACTIVE) expect(warnings[0]).not.toMatch(new RegExp(`\\b${n}\\b`));
  });

  it('cap 5: the 4 served records are kept, backups dropped before actives, the warning names what was dropped', () => {
    const { records, warnings } = desiredRecords(svc({ cap: 5 }), NOW);
    expect(records).toHaveLength(5);
    const got = rdatas(records);
    for (const s of served()) expect(got).toContain(s);
    // No backup kept while an active one was dropped: the one family record left is active.
    for (const n of LE_BACKUP) expect(got).not.toContain(rd(2, 1, 1, leData(n)));
    const keptFamily = LE_ACTIVE.filter((n) => got.includes(rd(2, 1, 1, leData(n))));
    expect(keptFamily).toHaveLength(1);
    const dropped = [...LE_BACKUP, ...LE_ACTIVE.filter((n) => !keptFamily.includes(n))];
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/cap of 5/);
    for (const n of dropped) expect(warnings[0]).toMatch(new RegExp(`\\b${n}\\b`));
    expect(warnings[0]).not.toMatch(new RegExp(`\\b${keptFamily[0]}\\b`));
  });

  it('cap 3: all 4 served records are kept and a warning says they exceed the cap', () => {
    const { records, warnings } = desiredRecords(svc({ cap: 3 }), NOW);
    expect(rdatas(records)).toEqual(served().sort());
    expect(records.every((r) => r.matchesServed)).toBe(true);
    expect(
      warnings.some(
        (w) => /4 records match served chains, over the cap of 3/.test(w) && w.includes(OWNER25),
      ),
    ).toBe(true);
    // The family that had to go is named too.
    const all = warnings.join('\n');
    for (const n of [...LE_BACKUP, ...LE_ACTIVE]) expect(all).toMatch(new RegExp(`\\b${n}\\b`));
  });

  it('the cap applies per owner name (two ports, cap 8: each name keeps 8)', () => {
    const { records, warnings } = desiredRecords(svc({ ports: [25, 465], cap: 8 }), NOW);
    expect(records).toHaveLength(16);
    expect(warnings).toHaveLength(2);
  });
});

describe('the catalog applies only to chains from its own intermediates (issue 14, point 6)', () => {
  it("chains from another CA get no Let's Encrypt family, and a note says why", () => {
    const { records, warnings, notes } = desiredRecords(
      svc({ catalog: loadCatalog(builtinCatalogPath('letsencrypt')) }),
      NOW,
    );
    expect(rdatas(records)).toEqual(served().sort());
    expect(warnings).toEqual([]);
    expect(notes).toHaveLength(2);
    for (const c of [rsaChain, ecChain])
      expect(notes.join('\n')).toContain(
        `${c.label} (${c.keyType.label}) is issued by ${c === rsaChain ? 'Desired RSA Int' : 'Desired EC Int'}, not a letsencrypt intermediate`,
      );
  });

  it("a member chain gets its key type's family, the other chain none", () => {
    const onlyRsa = leWith(path.join(dir, 'only-rsa'), [rsaInt]);
    const { records, notes } = desiredRecords(svc({ catalog: onlyRsa }), NOW);
    expect(rdatas(records)).toEqual(
      [...served(), ...['YR1', 'YR2', 'YR3'].map((n) => rd(2, 1, 1, leData(n)))].sort(),
    );
    expect(notes).toHaveLength(1);
    expect(notes[0]).toContain(ecChain.label);
  });

  it('a fleet shares chain objects: each catalog answers for them on its own, run after run', () => {
    // The answer is remembered per certificate object and catalog (thousands of services share
    // one loaded chain): another catalog, or the same one again, must not get a stale answer.
    const onlyRsa = leWith(path.join(dir, 'fleet-rsa'), [rsaInt]);
    const onlyEc = leWith(path.join(dir, 'fleet-ec'), [ecInt]);
    const builtin = loadCatalog(builtinCatalogPath('letsencrypt'));
    const families = (catalog: IssuerCatalog) =>
      desiredRecords(svc({ catalog }), NOW).records.filter((r) => r.why.includes('intermediate'));
    for (let run = 0; run < 2; run++) {
      expect(families(onlyRsa).map((r) => r.data)).toEqual(
        ['YR1', 'YR2', 'YR3'].map((n) => leData(n)),
      );
      expect(families(onlyEc).map((r) => r.data)).toEqual(
        ['YE1', 'YE2', 'YE3'].map((n) => leData(n)),
      );
      expect(families(builtin)).toEqual([]);
    }
  });
});

describe('the cap keeps digest pairs together (issue 14, point 5)', () => {
  it('2 1 1 + 2 1 2: a catalog intermediate keeps both or neither, and the warning names each once', () => {
    const specs: RecordSpec[] = [
      { usage: 3, selector: 1, matching: 1 },
      { usage: 2, selector: 1, matching: 1 },
      { usage: 2, selector: 1, matching: 2 },
    ];
    // 3 served (3 1 1, 2 1 1 and 2 1 2 of the issuer) + 3 RSA intermediates x 2 digests = 9.
    const { records, warnings } = desiredRecords(
      svc({ chains: [rsaChain], records: specs, cap: 6 }),
      NOW,
    );
    const got = rdatas(records);
    expect(got.length).toBeLessThanOrEqual(6);
    const kept: string[] = [];
    for (const n of ['YR1', 'YR2', 'YR3']) {
      const file = path.join(LE_DIR, LE_FILES[n]!);
      const has256 = got.includes(rd(2, 1, 1, leData(n)));
      const has512 = got.includes(rd(2, 1, 2, opensslSpkiSha512(file)));
      expect(has256, `${n}: 2 1 1 and 2 1 2 together`).toBe(has512);
      if (has256) kept.push(n);
    }
    expect(kept).toHaveLength(1);
    expect(kept[0]).not.toBe('YR3'); // the backup goes first
    expect(warnings).toHaveLength(1);
    for (const n of ['YR1', 'YR2', 'YR3'].filter((x) => !kept.includes(x)))
      expect(warnings[0]!.match(new RegExp(`\\b${n}\\b`, 'g'))).toHaveLength(1);
    expect(warnings[0]).not.toMatch(new RegExp(`\\b${kept[0]}\\b`));
  });
});

describe('a served issuer that is also a catalog entry', () => {
  let cat: IssuerCatalog;
  let spareA: CaHandle;
  let spareB: CaHandle;

  beforeAll(() => {
    const cdir = path.join(dir, 'own-catalog');
    fs.mkdirSync(cdir, { recursive: true });
    spareA = makeCa(dir, { name: 'Desired Spare A', key: 'rsa2048', issuer: rsaRoot });
    spareB = makeCa(dir, { name: 'Desired Spare B', key: 'rsa2048', issuer: rsaRoot });
    const entry = (ca: CaHandle, status: string, file: string) => {
      fs.copyFileSync(ca.certPath, path.join(cdir, file));
      // notAfter from openssl, in the ISO form catalog.json uses.
      const end = openssl(['x509', '-in', ca.certPath, '-noout', '-enddate'])
        .trim()
        .replace(/^notAfter=/, '');
      return { name: ca.name, key: 'rsa', status, notAfter: new Date(end).toISOString(), file };
    };
    fs.writeFileSync(
      path.join(cdir, 'catalog.json'),
      JSON.stringify(
        {
          ca: 'testca',
          asOf: '2026-11-24',
          intermediates: [
            entry(rsaInt, 'active', 'int.pem'),
            entry(spareA, 'active', 'spare-a.pem'),
            entry(spareB, 'backup', 'spare-b.pem'),
          ],
        },
        null,
        2,
      ),
    );
    cat = loadCatalog(path.join(cdir, 'catalog.json'));
    expect(cat.intermediates.map((i) => i.name)).toEqual([
      'Desired RSA Int',
      'Desired Spare A',
      'Desired Spare B',
    ]);
  }, 30_000);

  it('is not duplicated', () => {
    const { records, warnings } = desiredRecords(svc({ chains: [rsaChain], catalog: cat }), NOW);
    expect(rdatas(records)).toEqual(
      [
        rd(3, 1, 1, spki256(rsaLeaf.certPath)),
        rd(2, 1, 1, spki256(rsaInt.certPath)),
        rd(2, 1, 1, spki256(spareA.certPath)),
        rd(2, 1, 1, spki256(spareB.certPath)),
      ].sort(),
    );
    const ta = records.filter((r) => r.data === spki256(rsaInt.certPath));
    expect(ta).toHaveLength(1);
    expect(ta[0]!.matchesServed).toBe(true);
    expect(ta[0]!.chains).toEqual([rsaChain.label]);
    expect(warnings).toEqual([]);
  });

  it('cap 3: the backup spare is dropped, the served issuer kept', () => {
    const { records, warnings } = desiredRecords(
      svc({ chains: [rsaChain], catalog: cat, cap: 3 }),
      NOW,
    );
    expect(rdatas(records)).toEqual(
      [
        rd(3, 1, 1, spki256(rsaLeaf.certPath)),
        rd(2, 1, 1, spki256(rsaInt.certPath)),
        rd(2, 1, 1, spki256(spareA.certPath)),
      ].sort(),
    );
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/Desired Spare B/);
    expect(warnings[0]).not.toMatch(/Desired Spare A|Desired RSA Int/);
  });

  it('cap 2 and cap 1: never dropped by the cap', () => {
    const two = desiredRecords(svc({ chains: [rsaChain], catalog: cat, cap: 2 }), NOW);
    expect(rdatas(two.records)).toEqual(
      [rd(3, 1, 1, spki256(rsaLeaf.certPath)), rd(2, 1, 1, spki256(rsaInt.certPath))].sort(),
    );
    expect(two.warnings.join('\n')).not.toMatch(/Desired RSA Int/);
    const one = desiredRecords(svc({ chains: [rsaChain], catalog: cat, cap: 1 }), NOW);
    expect(rdatas(one.records)).toEqual(
      [rd(3, 1, 1, spki256(rsaLeaf.certPath)), rd(2, 1, 1, spki256(rsaInt.certPath))].sort(),
    );
    expect(
      one.warnings.some((w) => /2 records match served chains, over the cap of 1/.test(w)),
    ).toBe(true);
  });

  it('a retired catalog entry still counts while a served chain uses it', () => {
    const cdir = path.join(dir, 'retired-catalog');
    fs.mkdirSync(cdir, { recursive: true });
    const json = JSON.parse(fs.readFileSync(cat.file, 'utf8'));
    json.intermediates[0].status = 'retired';
    for (const e of json.intermediates)
      fs.copyFileSync(path.join(path.dirname(cat.file), e.file), path.join(cdir, e.file));
    fs.writeFileSync(path.join(cdir, 'catalog.json'), JSON.stringify(json));
    const retired = loadCatalog(path.join(cdir, 'catalog.json'));
    const { records } = desiredRecords(svc({ chains: [rsaChain], catalog: retired, cap: 2 }), NOW);
    expect(rdatas(records)).toContain(rd(2, 1, 1, spki256(rsaInt.certPath)));
  });
});

describe('next keys (built-in ACME)', () => {
  it('adds the 3 1 x records of a next key, not served, beside the served chains', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const spki = createPublicKey(privateKey).export({ type: 'spki', format: 'der' });
    const { records } = desiredRecords(
      svc({
        records: [
          { usage: 3, selector: 1, matching: 1 },
          { usage: 3, selector: 1, matching: 2 },
        ],
        catalog: undefined,
        nextKeys: [{ label: 'next ecdsa-p256 key of mail', spki }],
      }),
      NOW,
    );
    const next = records.filter((r) => r.why.startsWith('next ecdsa-p256 key'));
    expect(next.map((r) => `${r.matching} ${r.data}`).sort()).toEqual(
      [
        `1 ${createHash('sha256').update(spki).digest('hex')}`,
        `2 ${createHash('sha512').update(spki).digest('hex')}`,
      ].sort(),
    );
    expect(next.every((r) => !r.matchesServed && r.chains.length === 0)).toBe(true);
    expect(records).toHaveLength(6);
  });
});

describe('why each record is wanted, for chains that share their certificates', () => {
  it('names the chain it comes from, also after another label of the same certificates', () => {
    // Two lineages with the same certificates (a copy of certbot's live/ dir): the why of
    // each record names the service's own chain, whatever another service loaded before.
    const whys = (chain: LoadedChain) =>
      desiredRecords(svc({ chains: [chain], catalog: undefined }), NOW).records.map((r) => r.why);
    const copy: LoadedChain = { ...rsaChain, label: `${rsaChain.label}-copy` };
    const ownFirst = whys(rsaChain);
    const copied = whys(copy);
    expect(ownFirst).toEqual([
      `leaf key of ${rsaChain.label} (${rsaChain.keyType.label})`,
      `issuer ${rsaChain.issuer!.name} of ${rsaChain.label}`,
    ]);
    expect(copied).toEqual([
      `leaf key of ${copy.label} (${copy.keyType.label})`,
      `issuer ${copy.issuer!.name} of ${copy.label}`,
    ]);
    expect(whys(rsaChain)).toEqual(ownFirst);
  });

  it("a record two chains match names both, and other services' records keep their one", () => {
    // The 2 1 1 record of rsaChain is named by rsaChain alone, then by rsaChain and a second
    // chain of the same issuer: the first service's list stays as it was.
    const rsaLeaf3 = makeLeaf(dir, { ca: rsaInt, cn: HOST, key: 'rsa2048' });
    const rsaChain3 = loadChain({ kind: 'files', fullchain: fullchain('rsa-3', rsaLeaf3, rsaInt) });
    const taOf = (chains: LoadedChain[]) =>
      desiredRecords(svc({ chains, catalog: undefined }), NOW).records.find((r) => r.usage === 2)!;
    const alone = taOf([rsaChain]);
    const both = taOf([rsaChain, rsaChain3]);
    const againAlone = taOf([rsaChain]);
    expect(both.chains).toEqual([rsaChain.label, rsaChain3.label]);
    expect(alone.chains).toEqual([rsaChain.label]);
    expect(againAlone.chains).toEqual([rsaChain.label]);
  });
});
