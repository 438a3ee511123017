/**
 * Throwaway PKIs for tests, built with the `openssl` CLI (OpenSSL >= 3.0) only.
 *
 * Everything here is synchronous. Files are written into a directory the caller owns
 * (usually one from `makeTempDir()`); nothing is kept in memory between calls except the
 * opt-in per-process key cache used by `reuseKeyPath`.
 *
 * The `openssl*Sha*` / `openssl*FullHex` functions are the tests' ground truth: they never
 * touch node:crypto or the project's own code, only an openssl pipeline run through `sh -c`
 * with the file name passed as the positional argument "$1".
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type KeySpec = 'rsa2048' | 'rsa4096' | 'p256' | 'p384' | 'ed25519';

export const KEY_SPECS: readonly KeySpec[] = ['rsa2048', 'rsa4096', 'p256', 'p384', 'ed25519'];

export interface CaHandle {
  certPath: string;
  keyPath: string;
  certPem: string;
  name: string;
  key: KeySpec;
}

export interface LeafHandle {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
}

export interface MakeCaOptions {
  /** Subject CN, e.g. "Test Root X1". */
  name: string;
  key: KeySpec;
  /** Validity from now, default 3650. */
  days?: number;
  /** Signing CA; omitted means a self-signed root. */
  issuer?: CaHandle;
  /** basicConstraints pathlen, default none. */
  pathLen?: number;
  /** Same semantics as MakeLeafOptions.reuseKeyPath (handy for slow rsa4096 CAs). */
  reuseKeyPath?: string;
}

export interface MakeLeafOptions {
  ca: CaHandle;
  cn: string;
  /** DNS subjectAltNames, default [cn]. */
  sans?: string[];
  key: KeySpec;
  /** Validity length, default 90. */
  days?: number;
  /** Explicit notBefore (uses `openssl ca`). notAfter then defaults to notBefore + days. */
  notBefore?: Date;
  /** Explicit notAfter (uses `openssl ca`). notBefore then defaults to notAfter - days. */
  notAfter?: Date;
  /** Make a certificate whose notAfter is one day in the past (notBefore = notAfter - days). */
  expired?: boolean;
  /**
   * Key file to use for the leaf. If the file exists it is used as is (the caller is
   * responsible for it matching `key`); like certbot's --reuse-key. If it does not exist, a
   * key of type `key` is taken from a per-process cache (generated once per KeySpec) and
   * written there with mode 0600. Either way the returned keyPath is this path.
   * Without reuseKeyPath a fresh key is generated every time.
   */
  reuseKeyPath?: string;
}

export interface LineageOptions {
  /**
   * Archive version: N writes archive/<name>/cert<N>.pem etc. and points the live/ symlinks
   * at them. Default: one more than the highest version already in the archive (1 if none).
   */
  version?: number;
}

/* ------------------------------------------------------------------------------------------ */
/* small utilities                                                                            */
/* ------------------------------------------------------------------------------------------ */

export function makeTempDir(prefix = 'tlsa-pki-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export function removeTempDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Run the openssl CLI; throws with openssl's stderr on failure. Returns stdout. */
export function openssl(args: string[], opts: { cwd?: string } = {}): string {
  try {
    return execFileSync('openssl', args, {
      cwd: opts.cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // Do not let a system-wide or user openssl.cnf change what we generate.
      env: { ...process.env, OPENSSL_CONF: '/dev/null' },
    });
  } catch (err) {
    const e = err as { stderr?: string | Buffer; message: string };
    const stderr = e.stderr ? e.stderr.toString().trim() : '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || e.message}`);
  }
}

function slug(s: string): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60);
  return out || 'x';
}

/** A path stem in dir that no file starts with yet. */
function uniqueBase(dir: string, stem: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; ; i++) {
    const base = path.join(dir, i === 0 ? stem : `${stem}-${i}`);
    if (
      !fs.existsSync(`${base}.crt`) &&
      !fs.existsSync(`${base}.key`) &&
      !fs.existsSync(`${base}.cnf`)
    ) {
      // Reserve it right away so nested calls cannot pick the same name.
      fs.writeFileSync(`${base}.cnf`, '', { flag: 'wx' });
      return base;
    }
  }
}

/** -subj value with a single CN; escapes the characters openssl's -subj parser treats specially. */
function subj(cn: string): string {
  if (!cn) throw new Error('empty CN');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (/[\x00-\x1f\x7f]/.test(cn)) throw new Error(`control character in CN ${JSON.stringify(cn)}`);
  return `/CN=${cn.replace(/[\\/+=]/g, (c) => `\\${c}`)}`;
}

function checkDnsName(name: string): void {
  if (!/^[A-Za-z0-9*_.-]+$/.test(name))
    throw new Error(`unsupported DNS SAN ${JSON.stringify(name)}`);
}

function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, 16 significant bytes
  return b.toString('hex');
}

/** Digest flag to sign with a key of this type (none for Ed25519, which has no separate digest). */
function digestArgs(signer: KeySpec): string[] {
  switch (signer) {
    case 'p384':
      return ['-sha384'];
    case 'ed25519':
      return [];
    default:
      return ['-sha256'];
  }
}

function genpkeyArgs(spec: KeySpec): string[] {
  switch (spec) {
    case 'rsa2048':
      return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
    case 'rsa4096':
      return ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:4096'];
    case 'p256':
      return [
        '-algorithm',
        'EC',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-pkeyopt',
        'ec_param_enc:named_curve',
      ];
    case 'p384':
      return [
        '-algorithm',
        'EC',
        '-pkeyopt',
        'ec_paramgen_curve:P-384',
        '-pkeyopt',
        'ec_param_enc:named_curve',
      ];
    case 'ed25519':
      return ['-algorithm', 'ED25519'];
  }
}

/** Generate a fresh PKCS#8 PEM private key at outPath (mode 0600); returns the PEM. */
export function generateKey(spec: KeySpec, outPath: string): string {
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  openssl(['genpkey', ...genpkeyArgs(spec), '-out', outPath]);
  fs.chmodSync(outPath, 0o600);
  return fs.readFileSync(outPath, 'utf8');
}

const keyCache = new Map<KeySpec, string>();

/** Fill keyPath with a key: reuse per reuseKeyPath semantics, or generate. Returns the key path. */
function obtainKey(spec: KeySpec, defaultPath: string, reuseKeyPath: string | undefined): string {
  if (reuseKeyPath === undefined) {
    generateKey(spec, defaultPath);
    return defaultPath;
  }
  if (fs.existsSync(reuseKeyPath)) return reuseKeyPath;
  let pem = keyCache.get(spec);
  if (pem === undefined) {
    pem = generateKey(spec, reuseKeyPath);
    keyCache.set(spec, pem);
  } else {
    fs.mkdirSync(path.dirname(reuseKeyPath), { recursive: true });
    fs.writeFileSync(reuseKeyPath, pem, { mode: 0o600 });
    fs.chmodSync(reuseKeyPath, 0o600);
  }
  return reuseKeyPath;
}

/** Config file for `openssl req` plus one extension section named `ext`. */
function writeConfig(cnfPath: string, extLines: string[]): void {
  const text = [
    '[req]',
    'distinguished_name = req_dn',
    '[req_dn]',
    '',
    '[ext]',
    ...extLines,
    '',
  ].join('\n');
  fs.writeFileSync(cnfPath, text);
}

function makeCsr(keyPath: string, cn: string, cnfPath: string, csrPath: string): void {
  openssl(['req', '-new', '-config', cnfPath, '-key', keyPath, '-subj', subj(cn), '-out', csrPath]);
}

/** ASN.1 time as `openssl ca -startdate/-enddate` wants it (UTCTime until 2049, RFC 5280). */
function asn1Time(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y >= 1950 && y <= 2049 ? `${p(y % 100)}${rest}` : `${String(y).padStart(4, '0')}${rest}`;
}

/**
 * Sign csr with `openssl ca`, which (unlike `x509 -req` in OpenSSL 3.0, which lacks
 * -not_before/-not_after and rejects -days <= 0) can set arbitrary validity dates.
 */
function signWithDates(
  ca: CaHandle,
  csrPath: string,
  cnfPath: string,
  outPath: string,
  notBefore: Date,
  notAfter: Date,
): void {
  const db = fs.mkdtempSync(path.join(path.dirname(outPath), '.openssl-ca-'));
  try {
    fs.writeFileSync(path.join(db, 'index.txt'), '');
    fs.writeFileSync(path.join(db, 'serial'), `${randomSerial()}\n`);
    // Run with cwd = db and relative paths in the config: no quoting or '$' interpolation issues.
    fs.writeFileSync(
      path.join(db, 'ca.cnf'),
      [
        '[ca]',
        'default_ca = tca',
        '[tca]',
        'database = index.txt',
        'new_certs_dir = .',
        'serial = serial',
        'default_md = default',
        'policy = pol',
        'unique_subject = no',
        'email_in_dn = no',
        'copy_extensions = none',
        '[pol]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    openssl(
      [
        'ca',
        '-batch',
        '-notext',
        '-config',
        'ca.cnf',
        '-cert',
        path.resolve(ca.certPath),
        '-keyfile',
        path.resolve(ca.keyPath),
        '-in',
        path.resolve(csrPath),
        '-out',
        path.resolve(outPath),
        '-startdate',
        asn1Time(notBefore),
        '-enddate',
        asn1Time(notAfter),
        '-extfile',
        path.resolve(cnfPath),
        '-extensions',
        'ext',
        ...digestArgs(ca.key).flatMap((d) => ['-md', d.slice(1)]),
      ],
      { cwd: db },
    );
  } finally {
    fs.rmSync(db, { recursive: true, force: true });
  }
}

function signWithDays(
  ca: CaHandle,
  csrPath: string,
  cnfPath: string,
  outPath: string,
  days: number,
): void {
  openssl([
    'x509',
    '-req',
    '-in',
    csrPath,
    '-CA',
    ca.certPath,
    '-CAkey',
    ca.keyPath,
    '-set_serial',
    `0x${randomSerial()}`,
    '-days',
    String(days),
    '-extfile',
    cnfPath,
    '-extensions',
    'ext',
    ...digestArgs(ca.key),
    '-out',
    outPath,
  ]);
}

/* ------------------------------------------------------------------------------------------ */
/* CAs and leaves                                                                             */
/* ------------------------------------------------------------------------------------------ */

/** A self-signed root (no issuer) or an intermediate signed by `issuer`. */
export function makeCa(dir: string, opts: MakeCaOptions): CaHandle {
  const days = opts.days ?? 3650;
  if (!Number.isInteger(days) || days <= 0) throw new Error(`bad days ${days}`);
  const base = uniqueBase(dir, slug(opts.name));
  const certPath = `${base}.crt`;
  const cnfPath = `${base}.cnf`;
  const keyPath = obtainKey(opts.key, `${base}.key`, opts.reuseKeyPath);
  const bc =
    opts.pathLen === undefined ? 'critical,CA:TRUE' : `critical,CA:TRUE,pathlen:${opts.pathLen}`;
  writeConfig(cnfPath, [
    `basicConstraints = ${bc}`,
    'keyUsage = critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid:always',
  ]);
  if (!opts.issuer) {
    openssl([
      'req',
      '-x509',
      '-new',
      '-config',
      cnfPath,
      '-extensions',
      'ext',
      '-key',
      keyPath,
      '-subj',
      subj(opts.name),
      '-set_serial',
      `0x${randomSerial()}`,
      '-days',
      String(days),
      ...digestArgs(opts.key),
      '-out',
      certPath,
    ]);
  } else {
    const csrPath = `${base}.csr`;
    makeCsr(keyPath, opts.name, cnfPath, csrPath);
    signWithDays(opts.issuer, csrPath, cnfPath, certPath, days);
  }
  return {
    certPath,
    keyPath,
    certPem: fs.readFileSync(certPath, 'utf8'),
    name: opts.name,
    key: opts.key,
  };
}

/** An end-entity (serverAuth) certificate with DNS SANs, issued by opts.ca. */
export function makeLeaf(dir: string, opts: MakeLeafOptions): LeafHandle {
  const days = opts.days ?? 90;
  if (!Number.isInteger(days) || days <= 0) throw new Error(`bad days ${days}`);
  const sans = opts.sans ?? [opts.cn];
  if (sans.length === 0) throw new Error('no SANs');
  sans.forEach(checkDnsName);
  const base = uniqueBase(dir, slug(opts.cn));
  const certPath = `${base}.crt`;
  const cnfPath = `${base}.cnf`;
  const csrPath = `${base}.csr`;
  const keyPath = obtainKey(opts.key, `${base}.key`, opts.reuseKeyPath);
  const isRsa = opts.key.startsWith('rsa');
  writeConfig(cnfPath, [
    'basicConstraints = critical,CA:FALSE',
    `keyUsage = critical,${isRsa ? 'digitalSignature,keyEncipherment' : 'digitalSignature'}`,
    'extendedKeyUsage = serverAuth',
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid:always',
    `subjectAltName = ${sans.map((s) => `DNS:${s}`).join(',')}`,
  ]);
  makeCsr(keyPath, opts.cn, cnfPath, csrPath);

  const dayMs = 86_400_000;
  if (opts.expired || opts.notBefore || opts.notAfter) {
    let { notBefore, notAfter } = opts;
    if (opts.expired && !notAfter) notAfter = new Date(Date.now() - dayMs);
    if (!notBefore) notBefore = new Date((notAfter ?? new Date()).getTime() - days * dayMs);
    if (!notAfter) notAfter = new Date(notBefore.getTime() + days * dayMs);
    if (opts.expired && notAfter.getTime() >= Date.now())
      throw new Error('expired: notAfter is not in the past');
    signWithDates(opts.ca, csrPath, cnfPath, certPath, notBefore, notAfter);
  } else {
    signWithDays(opts.ca, csrPath, cnfPath, certPath, days);
  }
  return {
    certPath,
    keyPath,
    certPem: fs.readFileSync(certPath, 'utf8'),
    keyPem: fs.readFileSync(keyPath, 'utf8'),
  };
}

/* ------------------------------------------------------------------------------------------ */
/* certbot lineages                                                                           */
/* ------------------------------------------------------------------------------------------ */

const LINEAGE_FILES = ['cert', 'chain', 'fullchain', 'privkey'] as const;

const CERTBOT_README = `This directory contains your keys and certificates.

\`privkey.pem\`  : the private key for your certificate.
\`fullchain.pem\`: the certificate file used in most server software.
\`chain.pem\`    : used for OCSP stapling in Nginx >=1.3.7.
\`cert.pem\`     : will break many server configurations, and should not be used
                 without reading further documentation (see link below).

WARNING: DO NOT MOVE OR RENAME THESE FILES!
         Certbot expects these files to remain in this location in order
         to function properly!

We recommend not moving these files. For more information, see the Certbot
User Guide at https://certbot.eff.org/docs/using.html#where-are-my-certificates.
`;

function withNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** Highest N among archive/<name>/cert<N>.pem, 0 if none. */
function latestArchiveVersion(archiveDir: string): number {
  if (!fs.existsSync(archiveDir)) return 0;
  let max = 0;
  for (const f of fs.readdirSync(archiveDir)) {
    const m = /^cert(\d+)\.pem$/.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/** Replace (or create) a symlink atomically: symlink to a temp name, then rename over. */
function pointSymlink(linkPath: string, target: string): void {
  const tmp = `${linkPath}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.symlinkSync(target, tmp);
  fs.renameSync(tmp, linkPath);
}

/**
 * A certbot-style lineage under dir (the "config dir", like /etc/letsencrypt):
 *   archive/<name>/{cert,chain,fullchain,privkey}<N>.pem   real files, privkey mode 0600
 *   live/<name>/{cert,chain,fullchain,privkey}.pem         symlinks ../../archive/<name>/…<N>.pem
 *   live/<name>/README, renewal/<name>.conf                 as certbot writes them
 * chain.pem = the given CAs in order (leaf's issuer first; pass intermediates only, no root),
 * fullchain.pem = cert + chain. Calling again with a higher version is a renewal: new archive
 * files, the live symlinks re-pointed. Returns the live/<name> directory.
 */
export function makeLineage(
  dir: string,
  name: string,
  leaf: Pick<LeafHandle, 'certPem' | 'keyPem'>,
  chain: Pick<CaHandle, 'certPem'>[],
  opts: LineageOptions = {},
): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new Error(`bad lineage name ${JSON.stringify(name)}`);
  }
  const archiveRoot = path.join(dir, 'archive');
  const liveRoot = path.join(dir, 'live');
  for (const d of [archiveRoot, liveRoot]) {
    if (!fs.existsSync(d)) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
  }
  const archiveDir = path.join(archiveRoot, name);
  const liveDir = path.join(liveRoot, name);
  fs.mkdirSync(archiveDir, { recursive: true });
  fs.mkdirSync(liveDir, { recursive: true });

  const version = opts.version ?? latestArchiveVersion(archiveDir) + 1;
  if (!Number.isInteger(version) || version < 1) throw new Error(`bad lineage version ${version}`);

  const cert = withNewline(leaf.certPem);
  const chainPem = chain.map((c) => withNewline(c.certPem)).join('');
  const contents: Record<(typeof LINEAGE_FILES)[number], string> = {
    cert,
    chain: chainPem,
    fullchain: cert + chainPem,
    privkey: withNewline(leaf.keyPem),
  };
  for (const kind of LINEAGE_FILES) {
    const file = path.join(archiveDir, `${kind}${version}.pem`);
    const mode = kind === 'privkey' ? 0o600 : 0o644;
    fs.writeFileSync(file, contents[kind], { mode });
    fs.chmodSync(file, mode); // writeFileSync's mode only applies to newly created files
  }
  for (const kind of LINEAGE_FILES) {
    pointSymlink(
      path.join(liveDir, `${kind}.pem`),
      path.join('..', '..', 'archive', name, `${kind}${version}.pem`),
    );
  }

  const readme = path.join(liveDir, 'README');
  if (!fs.existsSync(readme)) fs.writeFileSync(readme, CERTBOT_README);
  const renewalDir = path.join(dir, 'renewal');
  fs.mkdirSync(renewalDir, { recursive: true });
  const abs = (p: string) => path.resolve(p);
  fs.writeFileSync(
    path.join(renewalDir, `${name}.conf`),
    [
      '# renew_before_expiry = 30 days',
      `archive_dir = ${abs(archiveDir)}`,
      ...LINEAGE_FILES.map((k) => `${k} = ${abs(path.join(liveDir, `${k}.pem`))}`),
      '',
      '# Options used in the renewal process',
      '[renewalparams]',
      'authenticator = standalone',
      'server = https://acme-v02.api.letsencrypt.org/directory',
      '',
    ].join('\n'),
  );
  return liveDir;
}

/* ------------------------------------------------------------------------------------------ */
/* ground truth via the openssl CLI                                                           */
/* ------------------------------------------------------------------------------------------ */

const SPKI_DER = 'openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER';
const CERT_DER = 'openssl x509 -in "$1" -outform DER';

/**
 * Run a shell pipeline with file as "$1". dash has no pipefail, so failure of an earlier stage
 * is detected by requiring an empty stderr (openssl is silent on success) and a zero exit.
 */
function pipeline(script: string, file: string): Buffer {
  const r = spawnSync('sh', ['-c', script, 'sh', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, OPENSSL_CONF: '/dev/null' },
  });
  if (r.error) throw r.error;
  const stderr = r.stderr.toString().trim();
  if (r.status !== 0 || stderr !== '') {
    throw new Error(`pipeline failed for ${file} (exit ${r.status}): ${stderr}`);
  }
  return r.stdout;
}

const EMPTY_DIGEST: Record<'sha256' | 'sha512', string> = {
  sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  sha512:
    'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
};

function digest(derScript: string, alg: 'sha256' | 'sha512', file: string): string {
  const out = pipeline(`${derScript} | openssl dgst -${alg} -r`, file).toString();
  const len = alg === 'sha256' ? 64 : 128;
  const m = new RegExp(`^([0-9a-f]{${len}}) `).exec(out);
  if (!m) throw new Error(`unexpected openssl dgst output: ${JSON.stringify(out)}`);
  if (m[1] === EMPTY_DIGEST[alg]) throw new Error(`openssl produced no DER for ${file}`);
  return m[1]!;
}

function fullHex(derScript: string, file: string): string {
  const der = pipeline(derScript, file);
  if (der.length === 0) throw new Error(`openssl produced no DER for ${file}`);
  return der.toString('hex');
}

/** SHA-256 of the DER SubjectPublicKeyInfo (TLSA selector 1, matching type 1), lowercase hex. */
export function opensslSpkiSha256(certPath: string): string {
  return digest(SPKI_DER, 'sha256', certPath);
}
/** SHA-512 of the DER SubjectPublicKeyInfo (TLSA selector 1, matching type 2), lowercase hex. */
export function opensslSpkiSha512(certPath: string): string {
  return digest(SPKI_DER, 'sha512', certPath);
}
/** SHA-256 of the DER certificate (TLSA selector 0, matching type 1), lowercase hex. */
export function opensslCertSha256(certPath: string): string {
  return digest(CERT_DER, 'sha256', certPath);
}
/** SHA-512 of the DER certificate (TLSA selector 0, matching type 2), lowercase hex. */
export function opensslCertSha512(certPath: string): string {
  return digest(CERT_DER, 'sha512', certPath);
}
/** The DER SubjectPublicKeyInfo as lowercase hex (TLSA selector 1, matching type 0). */
export function opensslSpkiFullHex(certPath: string): string {
  return fullHex(SPKI_DER, certPath);
}
/** The DER certificate as lowercase hex (TLSA selector 0, matching type 0). */
export function opensslCertFullHex(certPath: string): string {
  return fullHex(CERT_DER, certPath);
}
