/**
 * Association data (src/tlsa/association.ts) against independent ground truth: the openssl CLI
 * (test/helpers/pki.ts) for every selector x matching type, and hash-slinger's `tlsa --create`
 * for the records people actually publish (3 1 1, 3 0 1).
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { associationData, degenerateDataReason } from '../../src/tlsa/association.js';
import type { MatchingType, Selector } from '../../src/tlsa/record.js';
import {
  type KeySpec,
  type LeafHandle,
  makeCa,
  makeLeaf,
  makeTempDir,
  opensslCertFullHex,
  opensslCertSha256,
  opensslCertSha512,
  opensslSpkiFullHex,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
} from '../helpers/pki.js';

const HOST = 'mx.example.org';
const LE_DIR = fileURLToPath(new URL('../../src/issuers/letsencrypt', import.meta.url));

/** openssl ground truth per (selector, matching). */
const OPENSSL: Record<`${Selector}${MatchingType}`, (file: string) => string> = {
  '00': opensslCertFullHex,
  '01': opensslCertSha256,
  '02': opensslCertSha512,
  '10': opensslSpkiFullHex,
  '11': opensslSpkiSha256,
  '12': opensslSpkiSha512,
};

/* ------------------------------------------------------------------------------------------ */
/* hash-slinger                                                                               */
/* ------------------------------------------------------------------------------------------ */

/** Debian's hash-slinger installs /usr/bin/tlsa. Only that path is used: under `npm test`, PATH
 *  starts with node_modules/.bin, where `tlsa` is this project's own CLI (not ground truth). */
const HASH_SLINGER = '/usr/bin/tlsa';

function findHashSlinger(): string | undefined {
  if (!fs.existsSync(HASH_SLINGER)) return undefined;
  // hash-slinger's tlsa is a python script; refuse anything else that took the name.
  const head = fs.readFileSync(HASH_SLINGER).subarray(0, 200).toString('latin1');
  return /^#!.*python/.test(head) ? HASH_SLINGER : undefined;
}

const hashSlinger = findHashSlinger();
if (!hashSlinger) {
  const msg =
    'hash-slinger\'s "tlsa" not found; install the Debian package "hash-slinger" (apt-get install hash-slinger)';
  if (process.env.TLSA_LAB === 'require')
    throw new Error(`${msg}. TLSA_LAB=require is set, so this is an error.`);
  console.warn(`SKIPPED association.test.ts hash-slinger comparisons: ${msg}`);
}

/** `tlsa --create --certificate FILE -u U -s S -m M --output rfc HOST`; returns the rdata. */
function slingerCreate(
  file: string,
  u: number,
  s: number,
  m: number,
): Promise<{ usage: number; selector: number; matching: number; data: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      hashSlinger!,
      [
        '--create',
        '--certificate',
        file,
        '-u',
        String(u),
        '-s',
        String(s),
        '-m',
        String(m),
        '--output',
        'rfc',
        HOST,
      ],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err)
          return reject(
            new Error(`tlsa --create failed for ${file}: ${err.message}\n${stdout}${stderr}`),
          );
        // Output: an informational line, then `_443._tcp.mx.example.org. IN TLSA 3 1 1 <hex>`.
        const line = stdout.split('\n').find((l) => /\sIN\s+TLSA\s/.test(l));
        const m1 =
          line &&
          /^_\d+\._tcp\.mx\.example\.org\.\s+IN\s+TLSA\s+(\d)\s+(\d)\s+(\d)\s+([0-9a-fA-F]+)\s*$/.exec(
            line,
          );
        if (!m1)
          return reject(new Error(`unexpected tlsa --create output: ${JSON.stringify(stdout)}`));
        resolve({
          usage: Number(m1[1]),
          selector: Number(m1[2]),
          matching: Number(m1[3]),
          data: m1[4]!.toLowerCase(),
        });
      },
    );
  });
}

/* ------------------------------------------------------------------------------------------ */
/* leaves of every key type                                                                    */
/* ------------------------------------------------------------------------------------------ */

const LEAF_KEYS: readonly KeySpec[] = ['rsa2048', 'rsa4096', 'p256', 'p384', 'ed25519'];
let dir: string;
const leaves = new Map<KeySpec, LeafHandle>();
const slinger = new Map<
  string,
  { usage: number; selector: number; matching: number; data: string }
>();

function x509Of(file: string): X509Certificate {
  return new X509Certificate(fs.readFileSync(file));
}

beforeAll(async () => {
  dir = makeTempDir('tlsa-assoc-');
  // One chain per key type: a shared (fast) P-256 root and an intermediate per leaf. Only the
  // leaf's key type matters for the association data; RSA 4096 is generated once (the leaf).
  const root = makeCa(dir, { name: 'Assoc Root', key: 'p256' });
  for (const key of LEAF_KEYS) {
    const int = makeCa(dir, { name: `Assoc Int ${key}`, key: 'p256', issuer: root });
    leaves.set(key, makeLeaf(dir, { ca: int, cn: HOST, key }));
  }
  if (hashSlinger) {
    // ~0.7 s per python start: run them side by side.
    const jobs: Promise<void>[] = [];
    for (const key of LEAF_KEYS) {
      for (const sel of [1, 0]) {
        jobs.push(
          slingerCreate(leaves.get(key)!.certPath, 3, sel, 1).then(
            (r) => void slinger.set(`${key} 3 ${sel} 1`, r),
          ),
        );
      }
    }
    await Promise.all(jobs);
  }
}, 60_000);

afterAll(() => {
  if (dir) removeTempDir(dir);
});

describe('associationData equals openssl for leaves of every key type', () => {
  for (const key of LEAF_KEYS) {
    for (const selector of [0, 1] as const) {
      for (const matching of [0, 1, 2] as const) {
        it(`${key}: selector ${selector} matching ${matching}`, () => {
          const leaf = leaves.get(key)!;
          const want = OPENSSL[`${selector}${matching}`](leaf.certPath);
          const got = associationData(x509Of(leaf.certPath), selector, matching);
          expect(got).toBe(want);
          expect(got).toMatch(/^[0-9a-f]+$/);
          if (matching === 1) expect(got).toHaveLength(64);
          if (matching === 2) expect(got).toHaveLength(128);
        });
      }
    }
  }

  it('the key types are really what the test asked for (openssl text)', () => {
    const expectText: Record<KeySpec, RegExp> = {
      rsa2048: /Public-Key: \(2048 bit\)/,
      rsa4096: /Public-Key: \(4096 bit\)/,
      p256: /NIST CURVE: P-256/,
      p384: /NIST CURVE: P-384/,
      ed25519: /ED25519/,
    };
    for (const key of LEAF_KEYS) {
      const r = spawnSync(
        'openssl',
        ['x509', '-in', leaves.get(key)!.certPath, '-noout', '-text'],
        { encoding: 'utf8' },
      );
      expect(r.stdout, key).toMatch(expectText[key]);
    }
  });
});

describe.skipIf(!hashSlinger)("associationData equals hash-slinger's tlsa --create", () => {
  for (const key of LEAF_KEYS) {
    for (const selector of [1, 0] as const) {
      it(`${key}: 3 ${selector} 1`, () => {
        const leaf = leaves.get(key)!;
        const r = slinger.get(`${key} 3 ${selector} 1`)!;
        expect(r).toMatchObject({ usage: 3, selector, matching: 1 });
        expect(associationData(x509Of(leaf.certPath), selector, 1)).toBe(r.data);
      });
    }
  }
});

describe("2 1 1 of every Let's Encrypt intermediate in the catalog equals openssl", () => {
  const catalog = JSON.parse(fs.readFileSync(path.join(LE_DIR, 'catalog.json'), 'utf8')) as {
    intermediates: { name: string; file: string }[];
  };
  it('the catalog lists 16 intermediates, each file beside it', () => {
    expect(catalog.intermediates).toHaveLength(16);
    for (const e of catalog.intermediates)
      expect(fs.existsSync(path.join(LE_DIR, e.file)), e.file).toBe(true);
  });
  const truth = new Map<string, string>();
  for (const e of catalog.intermediates) {
    it(`${e.name} (${e.file})`, () => {
      const file = path.join(LE_DIR, e.file);
      const want = opensslSpkiSha256(file);
      truth.set(e.name, want);
      expect(associationData(x509Of(file), 1, 1)).toBe(want);
    });
  }
  it('all 16 intermediates have distinct 2 1 1 data', () => {
    expect(truth.size).toBe(16);
    expect(new Set(truth.values()).size).toBe(16);
  });
});

describe('degenerateDataReason', () => {
  const sha256Empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const sha512Empty =
    'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e';
  const someSha256 = createHash('sha256').update('a real key').digest('hex');
  const someSha512 = createHash('sha512').update('a real key').digest('hex');

  it('accepts real digests and real DER', () => {
    expect(degenerateDataReason(1, someSha256)).toBeUndefined();
    expect(degenerateDataReason(2, someSha512)).toBeUndefined();
    const leaf = leaves.get('p256')!;
    expect(degenerateDataReason(0, opensslSpkiFullHex(leaf.certPath))).toBeUndefined();
    expect(degenerateDataReason(0, opensslCertFullHex(leaf.certPath))).toBeUndefined();
    expect(degenerateDataReason(1, opensslSpkiSha256(leaf.certPath))).toBeUndefined();
    expect(degenerateDataReason(2, opensslSpkiSha512(leaf.certPath))).toBeUndefined();
  });

  it('flags the digest of empty input (a script hashed an empty pipe)', () => {
    expect(degenerateDataReason(1, sha256Empty)).toMatch(/digest of empty input/);
    expect(degenerateDataReason(2, sha512Empty)).toMatch(/digest of empty input/);
  });

  it('flags digests of the wrong length, naming the expected size', () => {
    expect(degenerateDataReason(1, someSha256.slice(0, 62))).toMatch(
      /SHA2-256 data must be 32 bytes \(64 hex digits\), got 31/,
    );
    expect(degenerateDataReason(1, someSha512)).toMatch(/SHA2-256 data must be 32 bytes.*got 64/);
    expect(degenerateDataReason(2, someSha256)).toMatch(
      /SHA2-512 data must be 64 bytes \(128 hex digits\), got 32/,
    );
    expect(degenerateDataReason(1, '')).toMatch(/must be 32 bytes/);
    expect(degenerateDataReason(2, '')).toMatch(/must be 64 bytes/);
  });

  it('flags full (matching 0) data that is not DER', () => {
    expect(degenerateDataReason(0, '')).toMatch(/not a DER certificate or key/);
    expect(degenerateDataReason(0, '3059')).toMatch(/not a DER/); // too short
    expect(degenerateDataReason(0, someSha256)).toMatch(/not a DER/); // a digest in a Full record
  });
});
