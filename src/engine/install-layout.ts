/**
 * What tlsa accepts to find in its install directory before it reads or changes anything there.
 * tlsa runs as root and deletes old releases, so a link it did not make (DIR/NAME/releases ->
 * /etc, say) must never be followed: every entry is looked at with lstat, and any layout tlsa
 * does not recognise is refused (exit 2) with the path and what is wrong, before any change.
 *
 * DIR itself is the admin's choice (install.dir) and may be a symlink; everything below
 * DIR/NAME is tlsa's own.
 */
import { lstatSync, readdirSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, InputError } from '../errors.js';

/** Files tlsa writes into a release. */
export const RELEASE_FILES = [
  'fullchain.pem',
  'cert.pem',
  'chain.pem',
  'privkey.pem',
  'combined.pem',
] as const;
/** Written first into every release tlsa makes: the ownership record pruning relies on. */
export const RELEASE_MARKER = '.tlsa-release';
/** A release name: the install time, with -N when two installs fall in one second. */
export const RELEASE_NAME = /^\d{8}T\d{6}Z(-\d+)?$/;
const LINK_TARGET = /^releases\/([^/]+)$/;

export interface InstallLayout {
  root: string;
  releases: string;
  /** Release names found (each recognised as tlsa's). */
  found: string[];
  /** Release names `current` and `previous` point to, when they exist. */
  current?: string;
  previous?: string;
}

function kind(st: Stats, path: string): string {
  if (st.isSymbolicLink()) {
    let to = '?';
    try {
      to = readlinkSync(path);
    } catch {
      /* raced away */
    }
    return `a symlink (to ${to})`;
  }
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a regular file';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device';
  return 'not a file or directory';
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw refuse(path, `cannot be read: ${errnoCode(e)}`);
  }
}

function refuse(path: string, what: string): InputError {
  return new InputError(
    `${what}; tlsa changes nothing in an install directory it does not recognise`,
    path,
    undefined,
    'tlsa follows no link below install.dir/NAME that it did not make, and deletes only releases it made; move the entry away (or install under another "name:")',
  );
}

/** Crash leftovers of writeFileAtomic-style temp files inside a release. */
const TEMP_FILE = /^\..+\.\d+(\.\d+)?\.tmp$/;

/** Whether `releases/NAME` is a release tlsa made, and what is in it. Legacy releases (made
 *  before the marker existed) are recognised by holding exactly the files tlsa writes. */
function checkRelease(releases: string, name: string): string[] {
  const path = join(releases, name);
  const st = lstatSync(path);
  if (!st.isDirectory())
    throw refuse(
      path,
      `is ${kind(st, path)}, but everything in releases/ must be a release directory tlsa made`,
    );
  if (!RELEASE_NAME.test(name))
    throw refuse(path, 'is not named like a release tlsa makes (YYYYMMDDTHHMMSSZ)');
  const entries = readdirSync(path);
  for (const e of entries) {
    const p = join(path, e);
    const est = lstatSync(p);
    const known =
      e === RELEASE_MARKER || (RELEASE_FILES as readonly string[]).includes(e) || TEMP_FILE.test(e);
    if (!known) throw refuse(p, 'is not a file tlsa writes into a release');
    if (!est.isFile()) throw refuse(p, `is ${kind(est, p)}, expected a regular file tlsa wrote`);
  }
  const legacy =
    RELEASE_FILES.every((f) => entries.includes(f)) && entries.length === RELEASE_FILES.length;
  // Empty: a run stopped between mkdir and the marker; rmdir removes only an empty directory.
  if (!entries.includes(RELEASE_MARKER) && !legacy && entries.length)
    throw refuse(path, `has no ${RELEASE_MARKER}: not a release tlsa made`);
  return entries;
}

function checkLink(
  root: string,
  link: 'current' | 'previous',
  releases: Set<string>,
): string | undefined {
  const path = join(root, link);
  const st = lstatOrUndefined(path);
  if (!st) return undefined;
  if (!st.isSymbolicLink())
    throw refuse(path, `is ${kind(st, path)}, expected a symlink tlsa made (to releases/RELEASE)`);
  const target = readlinkSync(path);
  const m = LINK_TARGET.exec(target);
  if (!m || !releases.has(m[1]!))
    throw refuse(path, `points to ${target}, which is not a release tlsa made in releases/`);
  return m[1]!;
}

/** Check DIR/NAME and everything below it; throws InputError (exit 2) naming the first path
 *  that is not what tlsa made. A missing DIR/NAME is fine: nothing installed yet. */
export function checkInstallLayout(dir: string, name: string): InstallLayout {
  const root = join(dir, name);
  const releases = join(root, 'releases');
  try {
    const d = statSync(dir);
    if (!d.isDirectory()) throw refuse(dir, 'install.dir is not a directory');
  } catch (e) {
    if (e instanceof InputError) throw e;
    if (errnoCode(e) !== 'ENOENT') throw refuse(dir, `install.dir cannot be read: ${errnoCode(e)}`);
    return { root, releases, found: [] };
  }
  const rst = lstatOrUndefined(root);
  if (!rst) return { root, releases, found: [] };
  if (!rst.isDirectory())
    throw refuse(root, `is ${kind(rst, root)}, expected a directory tlsa made`);
  const relst = lstatOrUndefined(releases);
  if (relst && !relst.isDirectory())
    throw refuse(releases, `is ${kind(relst, releases)}, expected a directory tlsa made`);
  const found = relst ? readdirSync(releases).sort() : [];
  for (const r of found) checkRelease(releases, r);
  const set = new Set(found);
  const current = checkLink(root, 'current', set);
  const previous = checkLink(root, 'previous', set);
  return {
    root,
    releases,
    found,
    ...(current ? { current } : {}),
    ...(previous ? { previous } : {}),
  };
}
