/** Reading a file only when it is a regular file of bounded size. Opening a FIFO for reading
 *  waits for a writer and /dev/zero never ends, so either would hang a run holding the lock; a
 *  huge file fills memory. The file is opened non-blocking (a FIFO put in its place after the
 *  stat then still returns at once) and checked again with fstat on the open descriptor, so
 *  what is read is what was checked. The callers word the refusals: each input has its own. */
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  statSync,
  type Stats,
} from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { errnoCode } from '../errors.js';

/** Why the file is not read. */
export type Refusal =
  /** The open failed (ENOENT, EACCES, ELOOP for a symlink under `noFollow`, ENXIO, …). */
  | { kind: 'open'; error: unknown }
  /** It is a FIFO, a device, a directory, a socket… */
  | { kind: 'not-regular'; stats: Stats }
  /** Larger than `maxBytes`: `size` is its size, or what was read when it grew while read. */
  | { kind: 'too-big'; size: number }
  /** fstat or reading failed (EISDIR, EIO, …). */
  | { kind: 'read'; error: unknown };

export interface RegularFileOptions {
  maxBytes: number;
  /** Refuse a symlink (O_NOFOLLOW): for a path already resolved, so a link put in its place
   *  is not followed. Default: symlinks are followed. */
  noFollow?: boolean;
  /** The error to throw for a refusal. */
  refuse: (r: Refusal) => Error;
  /** A missing file gives undefined instead of a refusal. */
  allowMissing?: boolean;
}

const NONBLOCK = constants.O_NONBLOCK ?? 0;

/** What is at `file` before it is opened, when it is plainly not a regular file: a device is
 *  then never opened (opening some has effects: a tape rewinds). */
function notRegularBeforeOpen(file: string, noFollow: boolean): Stats | undefined {
  try {
    const st = noFollow ? lstatSync(file) : statSync(file);
    return st.isFile() || st.isSymbolicLink() ? undefined : st;
  } catch {
    return undefined; // the open says why
  }
}

/** Opens `file` after the checks above and hands each chunk read to `take` (the buffer is
 *  reused: `take` must copy or decode what it keeps). False: missing, with `allowMissing`. */
function readChunks(
  file: string,
  o: RegularFileOptions,
  chunk: () => Buffer,
  take: (bytes: Buffer) => void,
): boolean {
  const noFollow = o.noFollow ?? false;
  const before = notRegularBeforeOpen(file, noFollow);
  if (before) throw o.refuse({ kind: 'not-regular', stats: before });
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | NONBLOCK | (noFollow ? constants.O_NOFOLLOW : 0));
  } catch (error) {
    if (o.allowMissing && errnoCode(error) === 'ENOENT') return false;
    throw o.refuse({ kind: 'open', error });
  }
  try {
    let stats: Stats;
    try {
      stats = fstatSync(fd);
    } catch (error) {
      throw o.refuse({ kind: 'read', error });
    }
    if (!stats.isFile()) throw o.refuse({ kind: 'not-regular', stats });
    if (stats.size > o.maxBytes) throw o.refuse({ kind: 'too-big', size: stats.size });
    // Read to the end rather than trusting the size: the file may grow while it is read.
    let total = 0;
    for (;;) {
      const buf = chunk();
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (error) {
        throw o.refuse({ kind: 'read', error });
      }
      if (n === 0) break;
      total += n;
      if (total > o.maxBytes) throw o.refuse({ kind: 'too-big', size: total });
      take(buf.subarray(0, n));
    }
    return true;
  } finally {
    closeSync(fd);
  }
}

const CHUNK_BYTES = 64 * 1024;

export function readRegularFile(
  file: string,
  o: RegularFileOptions & { allowMissing: true },
): Buffer | undefined;
export function readRegularFile(file: string, o: RegularFileOptions): Buffer;
export function readRegularFile(file: string, o: RegularFileOptions): Buffer | undefined {
  const chunks: Buffer[] = [];
  let total = 0;
  const found = readChunks(
    file,
    o,
    () => Buffer.allocUnsafe(CHUNK_BYTES),
    (bytes) => {
      chunks.push(bytes);
      total += bytes.length;
    },
  );
  return found ? Buffer.concat(chunks, total) : undefined;
}

/** The file's text, decoded chunk by chunk: the same text as decoding all its bytes at once,
 *  without ever holding them in one buffer. A buffer of the whole file (17 MB: the state at
 *  10,000 services) is memory the C library keeps once freed, and it raises the size from
 *  which the library maps (and returns) memory, so that every buffer after it stays too: a
 *  long-running daemon would carry that for good. */
export function readRegularText(
  file: string,
  o: RegularFileOptions & { allowMissing: true; encoding: 'utf8' | 'latin1' },
): string | undefined;
export function readRegularText(
  file: string,
  o: RegularFileOptions & { encoding: 'utf8' | 'latin1' },
): string;
export function readRegularText(
  file: string,
  o: RegularFileOptions & { encoding: 'utf8' | 'latin1' },
): string | undefined {
  const decoder = new StringDecoder(o.encoding);
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  const parts: string[] = [];
  const found = readChunks(
    file,
    o,
    () => buf,
    (bytes) => {
      parts.push(decoder.write(bytes));
    },
  );
  if (!found) return undefined;
  parts.push(decoder.end());
  return parts.join('');
}

/** The file's text handed to `take` a piece at a time as it is decoded (a piece ends anywhere,
 *  even inside a line; together they are the text readRegularText gives): for a reader that
 *  keeps only what it makes of the text, never the whole text. False: missing, with
 *  `allowMissing`. */
export function readRegularTextPieces(
  file: string,
  o: RegularFileOptions & { encoding: 'utf8' | 'latin1' },
  take: (piece: string) => void,
): boolean {
  const decoder = new StringDecoder(o.encoding);
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  const found = readChunks(
    file,
    o,
    () => buf,
    (bytes) => {
      const piece = decoder.write(bytes);
      if (piece) take(piece);
    },
  );
  if (!found) return false;
  const last = decoder.end();
  if (last) take(last);
  return true;
}
