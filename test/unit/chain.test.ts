/**
 * loadChain (src/certs/chain.ts): certbot lineages and separate files load leaf-first with the
 * right key type, and every kind of bad input is one InputError naming the file (and the PEM
 * line where there is one). Certificates are made with the openssl CLI (test/helpers/pki.ts);
 * which certificate is which is checked against openssl's DER, never node:crypto's view alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChain, type CertSource, type LoadedChain } from '../../src/certs/chain.js';
import { InputError } from '../../src/errors.js';
import {
  type CaHandle,
  type KeySpec,
  type LeafHandle,
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  openssl,
  opensslCertFullHex,
  removeTempDir,
} from '../helpers/pki.js';

const HOST = 'mx.example.org';
const DAY = 86_400_000;

let dir: string;
let root: CaHandle;
let int: CaHandle;
/** A CA hierarchy that has nothing to do with root/int. */
let otherRoot: CaHandle;
let otherInt: CaHandle;
const leaves = new Map<KeySpec, LeafHandle>();

function write(name: string, text: string): string {
  const f = path.join(dir, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, text);
  return f;
}

function nl(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

function lineCount(pem: string): number {
  return nl(pem).split('\n').length - 1;
}

/** DER hex of the certificate at file, per openssl. */
const derHex = new Map<string, string>();
function opensslDer(file: string): string {
  let h = derHex.get(file);
  if (h === undefined) {
    h = opensslCertFullHex(file);
    derHex.set(file, h);
  }
  return h;
}

function expectCerts(chain: LoadedChain, files: string[]): void {
  expect(chain.certs.map((c) => c.x509.raw.toString('hex'))).toEqual(files.map(opensslDer));
}

/** Run fn, which must throw an InputError; return it. */
function inputError(fn: () => unknown): InputError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'expected an InputError to be thrown').toBeInstanceOf(InputError);
  return thrown as InputError;
}

function expectLocated(e: InputError, file: string, line: number | undefined, what: RegExp): void {
  expect(e.file).toBe(file);
  expect(e.line).toBe(line);
  const prefix = line === undefined ? `${file}: ` : `${file}:${line}: `;
  expect(e.located.startsWith(prefix), `located = ${JSON.stringify(e.located)}`).toBe(true);
  expect(e.message).toMatch(what);
}

beforeAll(() => {
  dir = makeTempDir('tlsa-chain-');
  root = makeCa(dir, { name: 'Chain Test Root', key: 'p256' });
  int = makeCa(dir, { name: 'Chain Test Int', key: 'p256', issuer: root });
  otherRoot = makeCa(dir, { name: 'Other Root', key: 'p256' });
  otherInt = makeCa(dir, { name: 'Other Int', key: 'p256', issuer: otherRoot });
  for (const key of ['rsa2048', 'p256', 'p384', 'ed25519'] as const) {
    leaves.set(key, makeLeaf(dir, { ca: int, cn: HOST, key }));
  }
}, 60_000);

afterAll(() => {
  if (dir) removeTempDir(dir);
});

describe('chains that load', () => {
  const LABELS: [KeySpec, string, string][] = [
    ['rsa2048', 'RSA 2048', 'rsa'],
    ['p256', 'ECDSA P-256', 'ecdsa'],
    ['p384', 'ECDSA P-384', 'ecdsa'],
    ['ed25519', 'Ed25519', 'ed25519'],
  ];
  for (const [key, label, family] of LABELS) {
    it(`a certbot lineage (symlinks) with a ${label} leaf loads leaf-first`, () => {
      const leaf = leaves.get(key)!;
      const live = makeLineage(path.join(dir, 'le'), `lin-${key}`, leaf, [int]);
      expect(fs.lstatSync(path.join(live, 'fullchain.pem')).isSymbolicLink()).toBe(true);
      const chain = loadChain({ kind: 'lineage', dir: live });
      expectCerts(chain, [leaf.certPath, int.certPath]);
      expect(chain.leaf).toBe(chain.certs[0]);
      expect(chain.issuer).toBe(chain.certs[1]);
      expect(chain.leaf.name).toBe(HOST);
      expect(chain.issuer!.name).toBe('Chain Test Int');
      expect(chain.keyType.label).toBe(label);
      expect(chain.keyType.family).toBe(family);
      expect(chain.keyFile).toBe(path.join(live, 'privkey.pem'));
      expect(chain.certs.map((c) => [c.file, c.line])).toEqual([
        [path.join(live, 'fullchain.pem'), 1],
        [path.join(live, 'fullchain.pem'), lineCount(leaf.certPem) + 1],
      ]);
      expect(chain.warnings).toEqual([]);
      expect(chain.validityProblems).toEqual([]);
    });
  }

  it('a renewed lineage (live symlinks re-pointed) loads the new certificate', () => {
    const first = makeLeaf(dir, { ca: int, cn: HOST, key: 'p256' });
    const second = makeLeaf(dir, { ca: int, cn: HOST, key: 'p256' });
    const le = path.join(dir, 'le-renew');
    makeLineage(le, 'mx', first, [int]);
    const live = makeLineage(le, 'mx', second, [int]);
    expectCerts(loadChain({ kind: 'lineage', dir: live }), [second.certPath, int.certPath]);
  });

  it('a lineage without privkey.pem loads, with no key file', () => {
    const live = makeLineage(path.join(dir, 'le-nokey'), 'mx', leaves.get('p256')!, [int]);
    fs.unlinkSync(path.join(live, 'privkey.pem'));
    const chain = loadChain({ kind: 'lineage', dir: live });
    expect(chain.keyFile).toBeUndefined();
    expectCerts(chain, [leaves.get('p256')!.certPath, int.certPath]);
  });

  it('cert and chain in separate files, with the key', () => {
    const leaf = leaves.get('p384')!;
    const chainFile = write('sep/chain.pem', int.certPem);
    const chain = loadChain({
      kind: 'files',
      cert: leaf.certPath,
      chain: chainFile,
      key: leaf.keyPath,
    });
    expectCerts(chain, [leaf.certPath, int.certPath]);
    expect(chain.certs.map((c) => [c.file, c.line])).toEqual([
      [leaf.certPath, 1],
      [chainFile, 1],
    ]);
    expect(chain.keyType.label).toBe('ECDSA P-384');
    expect(chain.keyFile).toBe(leaf.keyPath);
    expect(chain.label).toBe(leaf.certPath);
  });

  it('a 3-level chain (leaf, intermediate, root) loads in order', () => {
    const leaf = leaves.get('rsa2048')!;
    const file = write(
      'three/fullchain.pem',
      nl(leaf.certPem) + nl(int.certPem) + nl(root.certPem),
    );
    const chain = loadChain({ kind: 'files', fullchain: file, key: leaf.keyPath });
    expectCerts(chain, [leaf.certPath, int.certPath, root.certPath]);
    expect(chain.issuer!.name).toBe('Chain Test Int');
    expect(chain.certs.map((c) => c.line)).toEqual([
      1,
      lineCount(leaf.certPem) + 1,
      lineCount(leaf.certPem) + lineCount(int.certPem) + 1,
    ]);
    expect(chain.keyType.label).toBe('RSA 2048');
  });
});

describe('bad input: one InputError naming file and line', () => {
  it('chain in the wrong order (intermediate first)', () => {
    const leaf = leaves.get('p256')!;
    const file = write('bad/wrong-order.pem', nl(int.certPem) + nl(leaf.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, 1, /wrong order/);
    expect(e.message).toMatch(/put the leaf first/);
  });

  it('wrong order is located at the BEGIN line when text precedes the PEM blocks', () => {
    const leaf = leaves.get('p256')!;
    const preamble = 'subject=CN = Chain Test Int\nissuer=CN = Chain Test Root\n\n';
    const file = write('bad/wrong-order-text.pem', preamble + nl(int.certPem) + nl(leaf.certPem));
    expectLocated(
      inputError(() => loadChain({ kind: 'files', fullchain: file })),
      file,
      4,
      /wrong order/,
    );
  });

  it('leaf then root then intermediate (issuer not next) is the wrong order too', () => {
    const leaf = leaves.get('p256')!;
    const file = write(
      'bad/wrong-order-3.pem',
      nl(leaf.certPem) + nl(root.certPem) + nl(int.certPem),
    );
    expectLocated(
      inputError(() => loadChain({ kind: 'files', fullchain: file })),
      file,
      1,
      /wrong order/,
    );
  });

  it('missing issuer: the leaf alone, not self-signed', () => {
    const leaf = leaves.get('p256')!;
    const e = inputError(() =>
      loadChain({ kind: 'files', fullchain: leaf.certPath, key: leaf.keyPath }),
    );
    expectLocated(e, leaf.certPath, 1, /issuer "CN=Chain Test Int" is missing/);
  });

  it('an unrelated certificate in the chain', () => {
    const leaf = leaves.get('p256')!;
    const file = write('bad/unrelated.pem', nl(leaf.certPem) + nl(otherInt.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, lineCount(leaf.certPem) + 1, /does not belong|issuer is missing/);
    expect(e.message).toMatch(/Other Int/);
  });

  it('an unrelated certificate after a correct intermediate', () => {
    const leaf = leaves.get('p256')!;
    const file = write(
      'bad/unrelated-3.pem',
      nl(leaf.certPem) + nl(int.certPem) + nl(otherRoot.certPem),
    );
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, lineCount(leaf.certPem) + lineCount(int.certPem) + 1, /does not belong/);
    expect(e.message).toMatch(/Other Root/);
  });

  it('a key that does not match the leaf', () => {
    const leaf = leaves.get('p256')!;
    const otherKey = leaves.get('p384')!.keyPath;
    const file = write('bad/keymismatch.pem', nl(leaf.certPem) + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file, key: otherKey }));
    // A key file has no meaningful line: the file is named.
    expectLocated(e, otherKey, undefined, /private key does not match the leaf/);
  });

  it('a key of the same type but another leaf does not match either (lineage)', () => {
    const a = leaves.get('rsa2048')!;
    const b = makeLeaf(dir, { ca: int, cn: HOST, key: 'rsa2048' });
    const live = makeLineage(
      path.join(dir, 'le-badkey'),
      'mx',
      { certPem: a.certPem, keyPem: b.keyPem },
      [int],
    );
    const e = inputError(() => loadChain({ kind: 'lineage', dir: live }));
    expectLocated(e, path.join(live, 'privkey.pem'), undefined, /does not match/);
  });

  it('truncated PEM: the file ends in the middle of the base64', () => {
    const leaf = leaves.get('p256')!;
    const full = nl(leaf.certPem) + nl(int.certPem);
    const intStart = full.indexOf('-----BEGIN', 10);
    const intEnd = full.indexOf('-----END', intStart);
    const cut = full.slice(0, intStart + Math.floor((intEnd - intStart) / 2)); // mid-line, mid-base64
    const file = write('bad/truncated.pem', cut);
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, lineCount(leaf.certPem) + 1, /truncated/);
  });

  it('truncated PEM: lines lost from the middle of the base64, END line kept', () => {
    const leaf = leaves.get('p256')!;
    const lines = nl(leaf.certPem).split('\n');
    const cut = [...lines.slice(0, 3), ...lines.slice(6)].join('\n'); // drop 3 full 64-char lines
    const file = write('bad/truncated-middle.pem', cut + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, 1, /cannot be parsed|broken base64/);
  });

  it('truncated PEM: missing END line before the next BEGIN', () => {
    const leaf = leaves.get('p256')!;
    const noEnd = nl(leaf.certPem).replace(/-----END CERTIFICATE-----\n/, '');
    const file = write('bad/no-end.pem', noEnd + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, 1, /no END line.*truncated/);
  });

  it('truncated PEM: missing END line at the end of the file', () => {
    const leaf = leaves.get('p256')!;
    const file = write(
      'bad/no-end-last.pem',
      nl(leaf.certPem) + nl(int.certPem).replace(/-----END CERTIFICATE-----\n/, ''),
    );
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, lineCount(leaf.certPem) + 1, /never ends.*truncated/);
  });

  it('garbage in the base64', () => {
    const leaf = leaves.get('p256')!;
    const lines = nl(leaf.certPem).split('\n');
    lines[2] = '%%%% this is not base64 %%%%';
    const file = write('bad/garbage.pem', lines.join('\n') + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, 1, /broken base64/);
  });

  it('valid base64 that is not a certificate', () => {
    const leaf = leaves.get('p256')!;
    const junk = `-----BEGIN CERTIFICATE-----\n${Buffer.alloc(300, 0x41)
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
    const file = write('bad/junk-der.pem', nl(leaf.certPem) + junk);
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, lineCount(leaf.certPem) + 1, /cannot be parsed/);
  });

  it('an empty file', () => {
    const file = write('bad/empty.pem', '');
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, undefined, /no PEM certificate found/);
  });

  it('a file with only a private key in it', () => {
    const leaf = leaves.get('p256')!;
    const e = inputError(() => loadChain({ kind: 'files', fullchain: leaf.keyPath }));
    expectLocated(e, leaf.keyPath, undefined, /no PEM certificate found/);
  });

  it('a missing file', () => {
    const file = path.join(dir, 'bad', 'does-not-exist.pem');
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file }));
    expectLocated(e, file, undefined, /file not found/);
  });

  it('a missing chain file next to an existing cert file', () => {
    const leaf = leaves.get('p256')!;
    const file = path.join(dir, 'bad', 'no-chain.pem');
    const e = inputError(() => loadChain({ kind: 'files', cert: leaf.certPath, chain: file }));
    expectLocated(e, file, undefined, /file not found/);
  });

  it('a lineage directory without fullchain.pem', () => {
    const live = makeLineage(path.join(dir, 'le-nofull'), 'mx', leaves.get('p256')!, [int]);
    fs.unlinkSync(path.join(live, 'fullchain.pem'));
    const e = inputError(() => loadChain({ kind: 'lineage', dir: live }));
    expectLocated(e, live, undefined, /no fullchain\.pem/);
  });

  it('a lineage directory that does not exist', () => {
    const live = path.join(dir, 'le-none', 'live', 'mx');
    const e = inputError(() => loadChain({ kind: 'lineage', dir: live }));
    expectLocated(e, live, undefined, /lineage directory not found/);
  });

  it('an encrypted private key (PKCS#8)', () => {
    const leaf = leaves.get('p256')!;
    const enc = path.join(dir, 'bad', 'enc-pkcs8.key');
    openssl(['pkey', '-in', leaf.keyPath, '-aes256', '-passout', 'pass:secret', '-out', enc]);
    expect(fs.readFileSync(enc, 'utf8')).toMatch(/BEGIN ENCRYPTED PRIVATE KEY/);
    const file = write('bad/enc-fullchain.pem', nl(leaf.certPem) + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file, key: enc }));
    expectLocated(e, enc, undefined, /encrypted; give an unencrypted key/);
    expect(e.message).not.toMatch(/secret/);
  });

  it('an encrypted private key (traditional, Proc-Type header)', () => {
    const leaf = leaves.get('rsa2048')!;
    const enc = path.join(dir, 'bad', 'enc-trad.key');
    openssl([
      'rsa',
      '-in',
      leaf.keyPath,
      '-traditional',
      '-aes256',
      '-passout',
      'pass:secret',
      '-out',
      enc,
    ]);
    expect(fs.readFileSync(enc, 'utf8')).toMatch(/Proc-Type: 4,ENCRYPTED/);
    const file = write('bad/enc-trad-fullchain.pem', nl(leaf.certPem) + nl(int.certPem));
    const e = inputError(() => loadChain({ kind: 'files', fullchain: file, key: enc }));
    expectLocated(e, enc, undefined, /encrypted/);
  });
});

describe('validity and self-signed leaves', () => {
  it('an expired leaf is reported in validityProblems, not thrown', () => {
    const leaf = makeLeaf(dir, { ca: int, cn: HOST, key: 'p256', expired: true });
    const file = write('validity/expired.pem', nl(leaf.certPem) + nl(int.certPem));
    const chain = loadChain({ kind: 'files', fullchain: file, key: leaf.keyPath });
    expectCerts(chain, [leaf.certPath, int.certPath]);
    expect(chain.validityProblems).toHaveLength(1);
    expect(chain.validityProblems[0]).toMatch(/expired on/);
    expect(chain.validityProblems[0]).toContain(`${file}:1`);
  });

  it('a not-yet-valid leaf is reported in validityProblems, not thrown', () => {
    const notBefore = new Date(Date.now() + 10 * DAY);
    const leaf = makeLeaf(dir, { ca: int, cn: HOST, key: 'p256', notBefore });
    const file = write('validity/future.pem', nl(leaf.certPem) + nl(int.certPem));
    const chain = loadChain({ kind: 'files', fullchain: file });
    expect(chain.validityProblems).toHaveLength(1);
    expect(chain.validityProblems[0]).toMatch(/not valid before/);
    expect(chain.validityProblems[0]).toContain(`${file}:1`);
  });

  it('the `now` argument decides validity: a leaf checked before its notBefore', () => {
    const leaf = leaves.get('p256')!;
    const file = write('validity/now.pem', nl(leaf.certPem) + nl(int.certPem));
    expect(
      loadChain({ kind: 'files', fullchain: file }, new Date(Date.now() - 30 * DAY))
        .validityProblems[0],
    ).toMatch(/not valid before/);
    expect(
      loadChain({ kind: 'files', fullchain: file }, new Date(Date.now() + 200 * DAY))
        .validityProblems[0],
    ).toMatch(/expired on/);
  });

  it('a leaf expiring within 7 days loads with a warning', () => {
    const leaf = makeLeaf(dir, { ca: int, cn: HOST, key: 'p256', days: 3 });
    const file = write('validity/soon.pem', nl(leaf.certPem) + nl(int.certPem));
    const chain = loadChain({ kind: 'files', fullchain: file });
    expect(chain.validityProblems).toEqual([]);
    expect(chain.warnings.join('\n')).toMatch(/expires in less than 7 days/);
  });

  function selfSigned(name: string, extraArgs: string[]): { cert: string; key: string } {
    const key = path.join(dir, 'ss', `${name}.key`);
    const cert = path.join(dir, 'ss', `${name}.pem`);
    fs.mkdirSync(path.dirname(key), { recursive: true });
    openssl([
      'req',
      '-x509',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      `/CN=${HOST}`,
      '-days',
      '30',
      ...extraArgs,
    ]);
    // Ground truth that it is self-issued: openssl's subject and issuer are the same.
    const [subject, issuer] = openssl(['x509', '-in', cert, '-noout', '-subject', '-issuer'])
      .trim()
      .split('\n');
    expect(subject!.replace(/^subject=/, '')).toBe(issuer!.replace(/^issuer=/, ''));
    return { cert, key };
  }

  it('a self-signed single leaf (no extensions) loads with a warning', () => {
    const ss = selfSigned('plain', []);
    const chain = loadChain({ kind: 'files', fullchain: ss.cert, key: ss.key });
    expectCerts(chain, [ss.cert]);
    expect(chain.issuer).toBeUndefined();
    expect(chain.keyType.label).toBe('ECDSA P-256');
    expect(chain.warnings.join('\n')).toMatch(/self-signed/);
    expect(chain.validityProblems).toEqual([]);
  });

  it('a self-signed CA-style certificate served alone loads with a warning', () => {
    const chain = loadChain({ kind: 'files', fullchain: root.certPath, key: root.keyPath });
    expect(chain.issuer).toBeUndefined();
    expect(chain.warnings.join('\n')).toMatch(/self-signed/);
  });

  // Regression: checkIssued also demands keyCertSign, so a self-signed leaf with only
  // digitalSignature was once refused; RFC 5280 §3.2 self-signed = subject equals issuer and
  // its own key verifies the signature.
  it('a self-signed leaf with keyUsage=digitalSignature (CA:FALSE) loads with a warning', () => {
    const ss = selfSigned('ku', [
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      'extendedKeyUsage=serverAuth',
      '-addext',
      `subjectAltName=DNS:${HOST}`,
    ]);
    const chain = loadChain({
      kind: 'files',
      fullchain: ss.cert,
      key: ss.key,
    } satisfies CertSource);
    expect(chain.issuer).toBeUndefined();
    expect(chain.warnings.join('\n')).toMatch(/self-signed/);
  });
});
