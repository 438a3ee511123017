/** Reading a file the user named (certificate, key, issuer catalog, secret, configuration):
 *  only a regular file of bounded size is read (see regular-file.ts), and a symlink (certbot's
 *  live/) is followed. A refusal is an InputFileError: "cannot read WHAT: it is a FIFO …". */
import { statSync, type Stats } from 'node:fs';
import { InputError, errnoCode } from '../errors.js';
import {
  readRegularFile,
  readRegularText,
  readRegularTextPieces,
  type Refusal,
} from './regular-file.js';

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

/** How a refusal reads: "cannot read WHAT: REASON". */
function refusal(file: string, opts: ReadInputOptions): (r: Refusal) => Error {
  const refuse = (reason: string) => new InputFileError(opts.what, reason, opts.shownAs ?? file);
  return (r) => {
    switch (r.kind) {
      case 'open':
        return refuse(openReason(file, r.error));
      case 'not-regular':
        return refuse(`it is ${fileKind(r.stats)}, not a regular file`);
      case 'too-big':
        return refuse(
          `it has more than ${sizeText(opts.maxBytes)}, the limit for this input (is it the right file?)`,
        );
      case 'read':
        return refuse(
          errnoCode(r.error) === 'EISDIR'
            ? 'it is a directory, not a regular file'
            : errnoCode(r.error),
        );
    }
  };
}

export function readInputFile(file: string, opts: ReadInputOptions): Buffer {
  return readRegularFile(file, { maxBytes: opts.maxBytes, refuse: refusal(file, opts) });
}

export function readInputText(file: string, opts: ReadInputOptions): string {
  return readRegularText(file, {
    maxBytes: opts.maxBytes,
    refuse: refusal(file, opts),
    encoding: 'utf8',
  });
}

/** readInputText a piece at a time (readRegularTextPieces): the same checks and refusals. */
export function readInputTextPieces(
  file: string,
  opts: ReadInputOptions,
  take: (piece: string) => void,
): void {
  readRegularTextPieces(
    file,
    { maxBytes: opts.maxBytes, refuse: refusal(file, opts), encoding: 'utf8' },
    take,
  );
}
