/**
 * File handling for the zonefile provider: which file is really written (symlinks), reading
 * only regular files of sane size (a FIFO or device must not hang a run that holds the lock),
 * following `$INCLUDE`s within bounds, a marker file that is never written through a link, and
 * the `reload` command run after a write, and the atomic replacement of the zone file.
 */
import {
  closeSync,
  constants,
  fstatSync,
  lchownSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { InputError, errnoCode } from '../src/errors.js';
import { writeFileAtomic } from '../src/util/atomic-write.js';
import { readRegularText } from '../src/util/regular-file.js';
import { runCommand } from '../src/util/run-command.js';
import { ProviderError } from './contract.js';
import { parseZone, type Entry, type ParseOptions } from './zonefile-parse.js';

/** Per file and for a zone with all its includes: far above any zone tlsa is meant for. */
export const MAX_ZONE_BYTES = 64 * 1024 * 1024;
export const MAX_INCLUDE_DEPTH = 8;
export const MAX_INCLUDED_FILES = 64;

/** Where the zone really lives: the target of a symlink (the rename must replace the target's
 *  directory entry, not the link), or the path itself; `exists` false when neither exists. */
export function resolveZonePath(path: string): { real: string; exists: boolean } {
  let isLink = false;
  try {
    isLink = lstatSync(path).isSymbolicLink();
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { real: path, exists: false };
    throw new InputError(`cannot read the zone file: ${errnoCode(e)}`, path);
  }
  try {
    return { real: realpathSync(path), exists: true };
  } catch (e) {
    const target = isLink
      ? (() => {
          try {
            return readlinkSync(path);
          } catch {
            return '?';
          }
        })()
      : '';
    throw new InputError(
      isLink
        ? `the zone file is a symlink to ${target}, which does not exist (${errnoCode(e)})`
        : `cannot resolve the zone file: ${errnoCode(e)}`,
      path,
    );
  }
}

/** The text of a regular file, or undefined when it does not exist. O_NONBLOCK: opening a FIFO
 *  must not wait for a writer; fstat on the open descriptor decides, so no swap in between.
 *  Read as latin1, one char per byte: a comment in another encoding (or invalid UTF-8) is
 *  written back byte for byte; everything tlsa parses or writes is ASCII. */
export function readRegularFile(path: string, what: string, noFollow = false): string | undefined {
  return readRegularText(path, {
    encoding: 'latin1',
    maxBytes: MAX_ZONE_BYTES,
    noFollow,
    allowMissing: true,
    refuse: (r) => {
      switch (r.kind) {
        case 'open': {
          const code = errnoCode(r.error);
          return new InputError(
            `cannot read ${what}: ${code === 'ELOOP' ? 'it was replaced by a symlink while tlsa read it' : code}`,
            path,
          );
        }
        case 'not-regular': {
          const st = r.stats;
          const kind = st.isDirectory()
            ? 'a directory'
            : st.isFIFO()
              ? 'a FIFO'
              : st.isCharacterDevice() || st.isBlockDevice()
                ? 'a device'
                : st.isSocket()
                  ? 'a socket'
                  : 'not a regular file';
          return new InputError(
            `${what} is ${kind}; tlsa reads and writes only regular files`,
            path,
          );
        }
        case 'too-big':
          return new InputError(
            `${what} is ${r.size} bytes, over tlsa's limit of ${MAX_ZONE_BYTES}`,
            path,
          );
        case 'read':
          return r.error as Error;
      }
    },
  });
}

export interface ZoneFile {
  /** The path as tlsa names it in messages. */
  file: string;
  entries: Entry[];
}

/** The files `$INCLUDE`d from `main`, recursively, in file order. Relative paths resolve
 *  against the directory of the file that includes them (as Knot does). A missing include, a
 *  loop or a chain too deep is refused: the server would refuse the zone too. */
export function loadIncludes(main: ZoneFile, parse: Omit<ParseOptions, 'origin'>): ZoneFile[] {
  const out: ZoneFile[] = [];
  let bytes = 0;
  const walk = (from: ZoneFile, chain: string[]) => {
    for (const e of from.entries) {
      if (!e.include) continue;
      const file = isAbsolute(e.include.path)
        ? e.include.path
        : resolve(dirname(from.file), e.include.path);
      const where = (message: string) => new InputError(message, from.file, e.line);
      let real: string;
      try {
        real = realpathSync(file);
      } catch (err) {
        throw where(
          `$INCLUDE ${file}: ${errnoCode(err) === 'ENOENT' ? 'the file does not exist' : errnoCode(err)}`,
        );
      }
      if (chain.includes(real))
        throw where(`$INCLUDE ${file} includes itself (${[...chain, real].join(' → ')})`);
      if (chain.length > MAX_INCLUDE_DEPTH)
        throw where(`$INCLUDE ${file}: includes nested deeper than ${MAX_INCLUDE_DEPTH}`);
      if (out.length >= MAX_INCLUDED_FILES)
        throw where(`$INCLUDE ${file}: more than ${MAX_INCLUDED_FILES} included files`);
      const text = readRegularFile(real, `the included file ${file}`);
      if (text === undefined) throw where(`$INCLUDE ${file}: the file does not exist`);
      bytes += text.length;
      if (bytes > MAX_ZONE_BYTES)
        throw where(`$INCLUDE ${file}: the zone and its includes are over ${MAX_ZONE_BYTES} bytes`);
      const included: ZoneFile = {
        file,
        entries: parseZone(text, file, {
          ...parse,
          ...(e.include.origin ? { origin: e.include.origin } : {}),
        }),
      };
      out.push(included);
      walk(included, [...chain, real]);
    }
  };
  let mainReal = main.file;
  try {
    mainReal = realpathSync(main.file);
  } catch {
    /* a zone not yet created includes nothing */
  }
  walk(main, [mainReal]);
  return out;
}

/** Create or truncate a small marker file, refusing to write through a symlink planted there. */
export function writeMarker(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY |
        constants.O_CREAT |
        constants.O_TRUNC |
        constants.O_NOFOLLOW |
        constants.O_NONBLOCK,
      0o644,
    );
  } catch (e) {
    if (errnoCode(e) === 'ELOOP')
      throw new InputError(
        'is a symlink; tlsa does not write through links it did not create: remove it',
        path,
      );
    throw e;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new InputError('is not a regular file: remove it', path);
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** The `reload` command after a write; a failure leaves the reload pending for the next run. */
export async function runReload(
  name: string,
  command: string,
  timeoutMs: number,
  cwd: string,
): Promise<void> {
  const r = await runCommand(command, timeoutMs, cwd);
  if (!r.ok)
    throw new ProviderError(
      name,
      `reload command ${r.message}; the zone file is written, the reload will be retried on the next run`,
    );
}

/** Replace the zone file atomically (bytes as read: latin1). The new inode is ours; give it
 *  back to the file's owner (root writing a knot:knot zone). */
export function writeZone(name: string, real: string, text: string): void {
  let owner: { uid: number; gid: number } | undefined;
  try {
    owner = lstatSync(real);
  } catch {
    /* a new file */
  }
  try {
    writeFileAtomic(real, Buffer.from(text, 'latin1'));
    if (owner && process.getuid?.() === 0) lchownSync(real, owner.uid, owner.gid);
  } catch (e) {
    throw new ProviderError(
      name,
      `cannot write ${real}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}
