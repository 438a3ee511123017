/**
 * Staged install: the service reads DIR/NAME/current/…, a symlink to a release directory, so
 * that the key and the chain switch together in one rename. The previous release is kept as
 * DIR/NAME/previous for rollback; older ones are removed. Nothing below DIR/NAME is touched
 * before checkInstallLayout has recognised all of it as tlsa's (install-layout.ts).
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { errnoCode, InputError } from '../errors.js';
import type { KeyAccess } from '../config/installs.js';
import { writeFileAtomic, fsyncDir } from '../util/atomic-write.js';
import { checkInstallLayout, RELEASE_MARKER } from './install-layout.js';

export interface InstallPaths {
  root: string;
  current: string;
  fullchain: string;
  key: string;
}

/** Who may read the installed key copies (privkey.pem, combined.pem). Certificates are public:
 *  0644, owned by the user tlsa runs as. */
// Declared with the config that sets it; exported here too for the engine's callers.
export type { KeyAccess };

export const DEFAULT_KEY_ACCESS: KeyAccess = { mode: 0o600 };

export function installPaths(dir: string, name: string): InstallPaths {
  const root = join(dir, name);
  const current = join(root, 'current');
  return {
    root,
    current,
    fullchain: join(current, 'fullchain.pem'),
    key: join(current, 'privkey.pem'),
  };
}

function swapLink(root: string, link: string, target: string): void {
  const tmp = join(root, `.${link}.${process.pid}.tmp`);
  rmSync(tmp, { force: true }); // a link of a killed run: rm unlinks it, never what it points to
  symlinkSync(target, tmp);
  renameSync(tmp, join(root, link));
}

/** Create a file in a fresh release: O_EXCL (never follows or reuses anything), owner and mode
 *  set on the open descriptor before the release becomes visible. */
function writeReleaseFile(path: string, content: string, mode: number, access?: KeyAccess): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    const buf = Buffer.from(content, 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    if (access && (access.uid !== undefined || access.gid !== undefined)) {
      try {
        fchownSync(fd, access.uid ?? -1, access.gid ?? -1);
      } catch (e) {
        throw new InputError(
          `cannot give the installed key to ${access.describe ?? 'the configured owner'}: ${errnoCode(e)} (install.owner and install.group need tlsa to run as root)`,
          path,
        );
      }
    }
    fchmodSync(fd, mode); // exact bits, whatever the umask
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function releaseId(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** Remove a release tlsa made: unlink its files (unlink never follows a link), then rmdir.
 *  Housekeeping after the switch: anything unexpected since the check is left where it is. */
function removeRelease(releases: string, name: string): void {
  const path = join(releases, name);
  try {
    if (!lstatSync(path).isDirectory()) return;
    for (const f of readdirSync(path))
      if (lstatSync(join(path, f)).isFile()) unlinkSync(join(path, f));
    rmdirSync(path);
  } catch {
    /* not empty or gone: kept, and refused by the next layout check if not tlsa's */
  }
}

/** Install a chain and its key as a new release and point `current` at it atomically. */
export function installRelease(
  dir: string,
  name: string,
  fullchainPem: string,
  keyPem: string,
  now: Date,
  access: KeyAccess = DEFAULT_KEY_ACCESS,
): string {
  const layout = checkInstallLayout(dir, name);
  const { root, releases } = layout;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const d of [root, releases]) {
    try {
      mkdirSync(d, { mode: 0o755 });
    } catch (e) {
      if (errnoCode(e) !== 'EEXIST') throw e;
    }
  }
  checkInstallLayout(dir, name); // what was created is what was checked
  const id = releaseId(now);
  let releaseName = id;
  for (
    let n = 1;
    layout.found.includes(releaseName) || lstatExists(join(releases, releaseName));
    n++
  )
    releaseName = `${id}-${n}`;
  const release = join(releases, releaseName);
  mkdirSync(release, { mode: 0o755 });
  writeReleaseFile(join(release, RELEASE_MARKER), `tlsa release ${releaseName}\n`, 0o644);
  const leafEnd =
    fullchainPem.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----\n'.length;
  writeReleaseFile(join(release, 'fullchain.pem'), fullchainPem, 0o644);
  writeReleaseFile(join(release, 'cert.pem'), fullchainPem.slice(0, leafEnd), 0o644);
  writeReleaseFile(join(release, 'chain.pem'), fullchainPem.slice(leafEnd), 0o644);
  writeReleaseFile(join(release, 'privkey.pem'), keyPem, access.mode, access);
  // Postfix's smtpd_tls_chain_files takes key and chain from one file: one file, one read.
  writeReleaseFile(
    join(release, 'combined.pem'),
    `${keyPem.trimEnd()}\n${fullchainPem}`,
    access.mode,
    access,
  );
  fsyncDir(release);
  fsyncDir(releases);
  const previous = layout.current;
  swapLink(root, 'current', join('releases', releaseName));
  if (previous) swapLink(root, 'previous', join('releases', previous));
  fsyncDir(root);
  // Keep current and previous; the rest are history nobody reads (all recognised as tlsa's).
  const keep = new Set([releaseName, previous]);
  for (const r of layout.found) if (!keep.has(r)) removeRelease(releases, r);
  return release;
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function readInstalled(
  dir: string,
  name: string,
): { fullchain: string; key: string } | undefined {
  const layout = checkInstallLayout(dir, name);
  if (!layout.current) return undefined;
  const p = installPaths(dir, name);
  return { fullchain: readFileSync(p.fullchain, 'utf8'), key: readFileSync(p.key, 'utf8') };
}

const RELOAD_PENDING = '.reload-pending';

/** Written before an install switches `current`: a run killed before the reload finished leaves
 *  it, and the next run reloads (nothing would be staged any more to tell it). */
export function markReloadPending(dir: string, name: string): void {
  const { root } = checkInstallLayout(dir, name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  try {
    mkdirSync(root, { mode: 0o755 });
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw e;
  }
  checkInstallLayout(dir, name);
  writeFileAtomic(join(root, RELOAD_PENDING), `${new Date().toISOString()}\n`, 0o644);
}

export function clearReloadPending(dir: string, name: string): void {
  rmSync(join(installPaths(dir, name).root, RELOAD_PENDING), { force: true });
}

/** Whether DIR/NAME's install was not followed by a finished reload. */
export function reloadPending(dir: string, name: string): boolean {
  try {
    return lstatSync(join(dir, name, RELOAD_PENDING)).isFile();
  } catch {
    return false;
  }
}
