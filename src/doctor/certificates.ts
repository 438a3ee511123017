/**
 * The certificate chains an smtpd service serves, read from the files its configuration
 * names: `smtpd_tls_chain_files` (Postfix ≥ 3.4: each private key directly followed by its
 * chain, RSA and ECDSA side by side) when set, else `smtpd_tls_cert_file` (RSA, or any one
 * key) and `smtpd_tls_eccert_file` (ECDSA), each the leaf followed by its intermediates.
 */
import { X509Certificate } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { certName, issuedBy, readPemFile } from '../certs/chain.js';
import { keyTypeOf, type KeyType } from '../certs/key-type.js';
import { splitPem } from '../certs/pem.js';
import { errnoCode } from '../errors.js';
import { InputFileError } from '../util/read-input.js';
import { splitList } from './postconf.js';
import type { SmtpdService } from './services.js';

export interface ServedChain {
  /** The parameter it comes from. */
  parameter: 'smtpd_tls_chain_files' | 'smtpd_tls_cert_file' | 'smtpd_tls_eccert_file';
  /** The file(s) holding it. */
  files: string[];
  /** Leaf first, as the server sends it. */
  certs: X509Certificate[];
  keyType: KeyType;
  leafName: string;
  /** The certificate after the leaf issued it. */
  issuerServed: boolean;
  /** A self-signed leaf needs no issuer (only 3 x x records can match it). */
  selfSigned: boolean;
}

export interface CertProblem {
  parameter: string;
  file: string;
  message: string;
}

export interface ServedCertificates {
  /** Which parameter decides (chain files win over the cert/key file pairs). */
  parameter: 'smtpd_tls_chain_files' | 'smtpd_tls_cert_file' | 'none';
  chains: ServedChain[];
  problems: CertProblem[];
}

function readPem(
  file: string,
  parameter: string,
  problems: CertProblem[],
): ReturnType<typeof splitPem> | undefined {
  let text: string;
  try {
    text = readPemFile(file);
  } catch (e) {
    const why = e instanceof InputFileError ? e.reason : errnoCode(e);
    problems.push({ parameter, file, message: `cannot read ${file}: ${why}` });
    return undefined;
  }
  try {
    return splitPem(text, file);
  } catch (e) {
    problems.push({
      parameter,
      file,
      message: `${file} is not valid PEM: ${(e as Error).message}`,
    });
    return undefined;
  }
}

function makeChain(
  parameter: ServedChain['parameter'],
  files: string[],
  certs: X509Certificate[],
): ServedChain {
  const leaf = certs[0]!;
  let selfSigned = false;
  try {
    selfSigned = leaf.subject === leaf.issuer && leaf.verify(leaf.publicKey);
  } catch {
    /* no */
  }
  return {
    parameter,
    files,
    certs,
    keyType: keyTypeOf(leaf.publicKey),
    leafName: certName(leaf),
    issuerServed: certs.length > 1 && issuedBy(leaf, certs[1]!),
    selfSigned,
  };
}

function toX509(
  der: Buffer,
  file: string,
  line: number,
  parameter: string,
  problems: CertProblem[],
): X509Certificate | undefined {
  try {
    return new X509Certificate(der);
  } catch (e) {
    problems.push({
      parameter,
      file,
      message: `${file}:${line}: the certificate cannot be parsed (${(e as Error).message})`,
    });
    return undefined;
  }
}

export function servedCertificates(s: SmtpdService, baseDir: string): ServedCertificates {
  const abs = (f: string): string => (isAbsolute(f) ? f : resolve(baseDir, f));
  const problems: CertProblem[] = [];
  const chains: ServedChain[] = [];
  const chainFiles = splitList(s.get('smtpd_tls_chain_files')).map(abs);
  if (chainFiles.length) {
    const parameter = 'smtpd_tls_chain_files';
    let current: { keyFile: string; files: string[]; certs: X509Certificate[] } | undefined;
    const flush = (): void => {
      if (current?.certs.length)
        chains.push(makeChain(parameter, [...new Set(current.files)], current.certs));
      else if (current)
        problems.push({
          parameter,
          file: current.keyFile,
          message: `a private key in ${current.keyFile} is not followed by its certificate chain`,
        });
      current = undefined;
    };
    for (const file of chainFiles) {
      const blocks = readPem(file, parameter, problems);
      if (!blocks) continue;
      for (const b of blocks) {
        if (/PRIVATE KEY/.test(b.label)) {
          flush();
          current = { keyFile: file, files: [], certs: [] };
        } else if (b.label === 'CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE') {
          if (!current) {
            problems.push({
              parameter,
              file,
              message: `${file}:${b.line}: a certificate comes before its private key; smtpd_tls_chain_files wants each key directly followed by its chain (key, leaf, intermediates)`,
            });
            current = { keyFile: file, files: [], certs: [] };
            continue;
          }
          const x = toX509(b.der, file, b.line, parameter, problems);
          if (x) {
            current.certs.push(x);
            current.files.push(file);
          }
        }
      }
    }
    flush();
    return { parameter, chains, problems };
  }
  const pairs: [ServedChain['parameter'], string][] = [
    ['smtpd_tls_cert_file', s.get('smtpd_tls_cert_file')],
    ['smtpd_tls_eccert_file', s.get('smtpd_tls_eccert_file')],
  ];
  let any = false;
  for (const [parameter, value] of pairs) {
    const file = value.trim();
    if (!file) continue;
    any = true;
    const blocks = readPem(abs(file), parameter, problems);
    if (!blocks) continue;
    const certs = blocks
      .filter((b) => b.label === 'CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE')
      .map((b) => toX509(b.der, abs(file), b.line, parameter, problems))
      .filter((x): x is X509Certificate => !!x);
    if (!certs.length)
      problems.push({ parameter, file: abs(file), message: `${abs(file)} holds no certificate` });
    else chains.push(makeChain(parameter, [abs(file)], certs));
  }
  return { parameter: any ? 'smtpd_tls_cert_file' : 'none', chains, problems };
}

export function chainSummary(c: ServedChain): string {
  const issuer = c.certs[1]
    ? certName(c.certs[1])
    : c.selfSigned
      ? 'self-signed'
      : 'no issuer in the file';
  return `${c.keyType.label} ${c.leafName} ← ${issuer} (${c.files.join(', ')})`;
}
