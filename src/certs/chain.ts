/** Load and validate the chain a server presents: leaf first, each certificate issued by the
 *  next, the private key (when known) matching the leaf. I/O is only the file reads here;
 *  the checks themselves are on parsed certificates. */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { InputError } from '../errors.js';
import { MAX_PEM_BYTES, readInputText } from '../util/read-input.js';
import { keyTypeOf, type KeyType } from './key-type.js';
import { splitPem } from './pem.js';

export type CertSource =
  | { kind: 'lineage'; dir: string }
  | { kind: 'files'; fullchain?: string; cert?: string; chain?: string; key?: string };

export interface ChainCert {
  x509: X509Certificate;
  file: string;
  line: number;
  /** Subject CN, or the whole subject when it has no CN. */
  name: string;
}

export interface LoadedChain {
  /** Where it came from, for messages: the lineage dir or the fullchain/cert file. */
  label: string;
  /** Leaf first, as the server sends it. */
  certs: ChainCert[];
  leaf: ChainCert;
  /** The certificate that issued the leaf (absent only for a self-signed leaf). */
  issuer?: ChainCert;
  keyType: KeyType;
  keyFile?: string;
  /** Non-fatal findings (expiry soon, self-signed leaf). */
  warnings: string[];
  /** Expired or not-yet-valid certificates: a warning for generate/plan, an error for publish. */
  validityProblems: string[];
}

export function readPemFile(file: string, what = 'certificate file'): string {
  return readInputText(file, { what, maxBytes: MAX_PEM_BYTES });
}

export function certName(x: X509Certificate): string {
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x.subject);
  return cn ? cn[1]! : x.subject.replace(/\n/g, ', ');
}

export function parseCertificates(text: string, file: string): ChainCert[] {
  const blocks = splitPem(text, file);
  const certs: ChainCert[] = [];
  for (const b of blocks) {
    if (b.label !== 'CERTIFICATE' && b.label !== 'TRUSTED CERTIFICATE') continue;
    let x509: X509Certificate;
    try {
      x509 = new X509Certificate(b.der);
    } catch (e) {
      throw new InputError(
        `the certificate starting here cannot be parsed (${(e as Error).message})`,
        file,
        b.line,
      );
    }
    certs.push({ x509, file, line: b.line, name: certName(x509) });
  }
  if (certs.length === 0)
    throw new InputError('no PEM certificate found (expected "-----BEGIN CERTIFICATE-----")', file);
  return certs;
}

export function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/** RFC 5280: subject equals issuer and its own key verifies the signature. (checkIssued would
 *  also demand keyCertSign, which a self-signed server certificate rarely has.) */
function isSelfSigned(c: X509Certificate): boolean {
  try {
    return c.subject === c.issuer && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

function where(c: ChainCert, inFile?: string): string {
  return c.file === inFile
    ? `the certificate at line ${c.line} (CN=${c.name})`
    : `${displayPath(c.file)}:${c.line} (CN=${c.name})`;
}

/** Check that the certificates, in the order given (the order a server sends them), form a
 *  chain. Throws InputError naming the first problem and, when a reordering would work, says so. */
export function checkChainOrder(certs: ChainCert[]): void {
  for (let i = 0; i + 1 < certs.length; i++) {
    const child = certs[i]!;
    const parent = certs[i + 1]!;
    if (issuedBy(child.x509, parent.x509)) continue;
    const realIssuer = certs.find((c) => c !== child && issuedBy(child.x509, c.x509));
    const issuesChild = certs.some((c) => c !== child && issuedBy(c.x509, child.x509));
    if (realIssuer || (i === 0 && issuesChild)) {
      throw new InputError(
        `the chain is in the wrong order: ${where(child, child.file)} is not issued by the next one, ${where(parent, child.file)}; ` +
          `a server sends certificates in file order, so put the leaf first and each issuer right after the certificate it signed (certbot's fullchain.pem is in the right order)`,
        child.file,
        child.line,
      );
    }
    throw new InputError(
      `${where(parent, parent.file)} did not issue ${where(child, parent.file)} (issuer "${child.x509.issuer.replace(/\n/g, ', ')}"): the chain has a certificate that does not belong to it, or its issuer is missing`,
      parent.file,
      parent.line,
    );
  }
  const last = certs.at(-1)!;
  if (certs.length === 1 && !isSelfSigned(last.x509)) {
    throw new InputError(
      `the chain has only the leaf (CN=${last.name}); its issuer "${last.x509.issuer.replace(/\n/g, ', ')}" is missing: use fullchain.pem (leaf + intermediates), which DANE-TA (2 1 1) needs in what the server sends`,
      last.file,
      last.line,
    );
  }
}

function checkValidity(certs: ChainCert[], now: Date): { problems: string[]; warnings: string[] } {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const c of certs) {
    const notAfter = new Date(c.x509.validTo);
    const notBefore = new Date(c.x509.validFrom);
    if (notAfter.getTime() < now.getTime())
      problems.push(`${where(c)} expired on ${notAfter.toISOString()}`);
    else if (notBefore.getTime() > now.getTime())
      problems.push(`${where(c)} is not valid before ${notBefore.toISOString()}`);
    else if (c === certs[0] && notAfter.getTime() - now.getTime() < 7 * 86400_000) {
      warnings.push(`${where(c)} expires in less than 7 days (${notAfter.toISOString()})`);
    }
  }
  return { problems, warnings };
}

function checkKey(leaf: ChainCert, keyFile: string): void {
  const text = readPemFile(keyFile, 'private key file');
  let key;
  try {
    key = createPrivateKey(text);
  } catch (e) {
    const msg = (e as Error).message;
    const hint =
      /passphrase|encrypted/i.test(msg) || text.includes('ENCRYPTED')
        ? ' (it is encrypted; give an unencrypted key)'
        : '';
    throw new InputError(`not a readable private key${hint}: ${msg}`, keyFile);
  }
  if (!leaf.x509.checkPrivateKey(key)) {
    throw new InputError(
      `the private key does not match the leaf certificate ${where(leaf)}: the server could not use this pair`,
      keyFile,
    );
  }
}

/** Present at all: a FIFO or directory in the lineage's place is then refused by name when it
 *  is read, instead of being skipped as absent (a skipped privkey.pem would go unchecked). */
function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Paths in messages: relative to the working directory when that is shorter. */
export function displayPath(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) && rel.length < p.length ? rel : p;
}

export function resolveSource(source: CertSource): {
  label: string;
  files: string[];
  key?: string;
} {
  if (source.kind === 'lineage') {
    let isDir = false;
    try {
      isDir = statSync(source.dir).isDirectory();
    } catch {
      /* reported below */
    }
    if (!isDir)
      throw new InputError(
        'certbot lineage directory not found (expected a directory like /etc/letsencrypt/live/NAME)',
        source.dir,
      );
    const full = join(source.dir, 'fullchain.pem');
    const key = join(source.dir, 'privkey.pem');
    if (!exists(full)) {
      throw new InputError(
        'the lineage has no fullchain.pem (certbot writes cert.pem, chain.pem, fullchain.pem and privkey.pem)',
        source.dir,
      );
    }
    return { label: source.dir, files: [full], ...(exists(key) ? { key } : {}) };
  }
  if (source.fullchain)
    return {
      label: source.fullchain,
      files: [source.fullchain],
      ...(source.key ? { key: source.key } : {}),
    };
  if (source.cert) {
    return {
      label: source.cert,
      files: [source.cert, ...(source.chain ? [source.chain] : [])],
      ...(source.key ? { key: source.key } : {}),
    };
  }
  throw new InputError('a certificate source needs "lineage", "fullchain" or "cert"');
}

export function loadChain(source: CertSource, now: Date = new Date()): LoadedChain {
  const { label, files, key } = resolveSource(source);
  const certs = files.flatMap((f) => parseCertificates(readPemFile(f), f));
  checkChainOrder(certs);
  const leaf = certs[0]!;
  if (key) checkKey(leaf, key);
  const { problems, warnings } = checkValidity(certs, now);
  const issuer = certs[1] ?? undefined;
  if (!issuer)
    warnings.push(`${where(leaf)} is self-signed: only DANE-EE (3 x x) records can match it`);
  return {
    label: displayPath(label),
    certs,
    leaf,
    ...(issuer ? { issuer } : {}),
    keyType: keyTypeOf(leaf.x509.publicKey),
    ...(key ? { keyFile: key } : {}),
    warnings,
    validityProblems: problems,
  };
}
