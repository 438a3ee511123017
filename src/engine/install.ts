/**
 * Staged install: the service reads DIR/NAME/current/…, a symlink to a release directory, so
 * that the key and the chain switch together in one rename. The previous release is kept as
 * DIR/NAME/previous for rollback; older ones are removed.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, fsyncDir } from '../util/atomic-write.js';

export interface InstallPaths {
  root: string;
  current: string;
  fullchain: string;
  key: string;
}

export function installPaths(dir: string, name: string): InstallPaths {
  const root = join(dir, name);
  const current = join(root, 'current');
  return { root, current, fullchain: join(current, 'fullchain.pem'), key: join(current, 'privkey.pem') };
}

function swapLink(root: string, link: string, target: string): void {
  const tmp = join(root, `.${link}.${process.pid}.tmp`);
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, join(root, link));
}

/** Install a chain and its key as a new release and point `current` at it atomically. */
export function installRelease(dir: string, name: string, fullchainPem: string, keyPem: string, now: Date): string {
  const { root } = installPaths(dir, name);
  const releases = join(root, 'releases');
  mkdirSync(releases, { recursive: true, mode: 0o755 });
  const id = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let release = join(releases, id);
  for (let n = 1; existsSync(release); n++) release = join(releases, `${id}-${n}`);
  mkdirSync(release, { mode: 0o755 });
  const leafEnd = fullchainPem.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length;
  writeFileAtomic(join(release, 'fullchain.pem'), fullchainPem, 0o644);
  writeFileAtomic(join(release, 'cert.pem'), fullchainPem.slice(0, leafEnd), 0o644);
  writeFileAtomic(join(release, 'chain.pem'), fullchainPem.slice(leafEnd), 0o644);
  writeFileAtomic(join(release, 'privkey.pem'), keyPem, 0o600);
  // Postfix's smtpd_tls_chain_files takes key and chain from one file: one file, one read.
  writeFileAtomic(join(release, 'combined.pem'), `${keyPem.trimEnd()}\n${fullchainPem}`, 0o600);
  fsyncDir(release);
  let previous: string | undefined;
  try {
    previous = readlinkSync(join(root, 'current'));
  } catch { /* first install */ }
  const releaseName = release.slice(releases.length + 1);
  swapLink(root, 'current', join('releases', releaseName));
  if (previous) swapLink(root, 'previous', previous);
  fsyncDir(root);
  // Keep current and previous; the rest are history nobody reads.
  const keep = new Set([releaseName, previous?.replace(/^releases\//, '')]);
  for (const r of readdirSync(releases)) if (!keep.has(r)) rmSync(join(releases, r), { recursive: true, force: true });
  return release;
}

export function readInstalled(dir: string, name: string): { fullchain: string; key: string } | undefined {
  const p = installPaths(dir, name);
  if (!existsSync(p.fullchain)) return undefined;
  return { fullchain: readFileSync(p.fullchain, 'utf8'), key: readFileSync(p.key, 'utf8') };
}

const RELOAD_PENDING = '.reload-pending';

export function markReloadPending(dir: string, name: string): void {
  const { root } = installPaths(dir, name);
  mkdirSync(root, { recursive: true, mode: 0o755 });
  writeFileAtomic(join(root, RELOAD_PENDING), `${new Date().toISOString()}\n`, 0o644);
}

export function clearReloadPending(dir: string, name: string): void {
  rmSync(join(installPaths(dir, name).root, RELOAD_PENDING), { force: true });
}

/** Source names under `dir` whose install was not followed by a finished reload. */
export function pendingReloads(dir: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => existsSync(join(dir, n, RELOAD_PENDING))).sort();
}
