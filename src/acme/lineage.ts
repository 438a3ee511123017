/** Writing a renewed lineage: the files go into a new release directory, then the lineage path
 *  (a symlink) is swapped to it in one rename, so a reader sees the old set or the new set,
 *  never a certificate with another key. */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { lstatSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { InputError, ProviderError, errnoCode } from '../errors.js';
import { fsyncDir, writeFileAtomic } from '../util/atomic-write.js';
import { writeKeyFile } from './key-file.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export interface IssuedFiles {
  fullchain: string;
  cert: string;
  chain: string;
}

/** Splits the CA's PEM chain, and refuses one whose leaf is not for `keyPem` (a CA bug or a
 *  mix-up would otherwise be installed). */
export function splitIssued(chainPem: string, keyPem: string, ca: string): IssuedFiles {
  const certs = chainPem.match(PEM_CERT) ?? [];
  if (!certs.length) throw new ProviderError(ca, 'the CA returned no certificate');
  const leaf = new X509Certificate(certs[0]!);
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(ours))
    throw new ProviderError(
      ca,
      'the CA returned a certificate for another key; nothing was installed',
    );
  const text = (list: string[]) => list.map((c) => `${c}\n`).join('');
  return { fullchain: text(certs), cert: text(certs.slice(0, 1)), chain: text(certs.slice(1)) };
}

/** Releases no lineage points at any more are removed, keeping the one before the current. */
const KEEP_RELEASES = 2;

export function writeLineage(
  lineage: string,
  releases: string,
  files: IssuedFiles,
  keyPem: string,
  now: Date,
): void {
  try {
    const st = lstatSync(lineage);
    if (!st.isSymbolicLink())
      throw new InputError(
        'the ACME lineage path must be the symlink tlsa makes; something else is in its place',
        lineage,
      );
  } catch (e) {
    if (e instanceof InputError) throw e;
    if (errnoCode(e) !== 'ENOENT') throw e;
  }
  const release = join(releases, `${basename(lineage)}-${now.getTime()}`);
  mkdirSync(release, { recursive: true, mode: 0o700 });
  writeKeyFile(join(release, 'privkey.pem'), keyPem);
  writeFileAtomic(join(release, 'cert.pem'), files.cert, 0o644);
  writeFileAtomic(join(release, 'chain.pem'), files.chain, 0o644);
  writeFileAtomic(join(release, 'fullchain.pem'), files.fullchain, 0o644);
  const tmp = `${lineage}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(relative(dirname(lineage), release), tmp);
  renameSync(tmp, lineage);
  fsyncDir(dirname(lineage));
  const prefix = `${basename(lineage)}-`;
  const old = readdirSync(releases)
    .filter((n) => n.startsWith(prefix))
    .sort((a, b) => Number(a.slice(prefix.length)) - Number(b.slice(prefix.length)));
  for (const n of old.slice(0, -KEEP_RELEASES)) rmSync(join(releases, n), { recursive: true });
}
