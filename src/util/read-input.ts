/** Reading a file the user named (certificate, key, issuer catalog, secret, configuration):
 *  only a regular file of bounded size is read. Opening a FIFO for reading waits for a writer
 *  and /dev/zero never ends, so either hung a run holding the lock; a huge file fills memory.
 *  The file is opened non-blocking (a FIFO put in its place after the stat then still returns
 *  at once) and checked again with fstat on the open descriptor, so a symlink (certbot's
 *  live/) is followed and what is read is what was checked. */
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { InputError, errnoCode } from '../errors.js';

/** PEM certificates, chains and keys: a long chain is a few tens of KiB. */
export const MAX_PEM_BYTES = 1024 * 1024;
/** An issuer catalog's JSON and each of its PEM files. */
export const MAX_CATALOG_BYTES = 1024 * 1024;
/** A `*_file` secret (an API token, a TSIG key). */
export const MAX_SECRET_BYTES = 64 * 1024;
/** The YAML configuration (thousands of services fit). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface ReadInputOptions {
  /** What the file is, for the message: "certificate file", "private key file", … */
  what: string;
  maxBytes: number;
  /** The path as the user wrote it, for the message (default: the path opened). */
  shownAs?: string;
}

/** A file that cannot be used as input; `reason` is the part after "cannot read WHAT: ". */
export class InputFileError extends InputError {
  constructor(
    readonly what: string,
    readonly reason: string,
    file: string,
  ) {
    super(`cannot read ${what}: ${reason}`, file);
  }
}

export function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export function sizeText(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}

function openReason(file: string, e: unknown): string {
  const code = errnoCode(e);
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'too many levels of symbolic links';
  if (code === 'ENOTDIR') return 'a parent of it is not a directory';
  // Opening a Unix socket (or a device without a driver) fails with ENXIO: say what it is.
  try {
    const st = statSync(file);
    if (!st.isFile()) return `it is ${fileKind(st)}, not a regular file`;
  } catch {
    /* the code below */
  }
  return code;
}

const NONBLOCK = constants.O_NONBLOCK ?? 0;

export function readInputFile(file: string, opts: ReadInputOptions): Buffer {
  const shown = opts.shownAs ?? file;
  const refuse = (reason: string) => new InputFileError(opts.what, reason, shown);
  // stat first, so that a device is not even opened (opening some has effects: a tape
  // rewinds); fstat after the open checks what was really opened.
  let before: Stats | undefined;
  try {
    before = statSync(file);
  } catch {
    /* the open below says why */
  }
  if (before && !before.isFile()) throw refuse(`it is ${fileKind(before)}, not a regular file`);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | NONBLOCK);
  } catch (e) {
    throw refuse(openReason(file, e));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw refuse(`it is ${fileKind(st)}, not a regular file`);
    const tooBig = () =>
      refuse(
        `it has more than ${sizeText(opts.maxBytes)}, the limit for this input (is it the right file?)`,
      );
    if (st.size > opts.maxBytes) throw tooBig();
    // Read to the end rather than trusting st.size: the file may grow while it is read.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      total += n;
      if (total > opts.maxBytes) throw tooBig();
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw refuse(
      errnoCode(e) === 'EISDIR' ? 'it is a directory, not a regular file' : errnoCode(e),
    );
  } finally {
    closeSync(fd);
  }
}

export function readInputText(file: string, opts: ReadInputOptions): string {
  return readInputFile(file, opts).toString('utf8');
}
