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

export function readRegularFile(
  file: string,
  o: RegularFileOptions & { allowMissing: true },
): Buffer | undefined;
export function readRegularFile(file: string, o: RegularFileOptions): Buffer;
export function readRegularFile(file: string, o: RegularFileOptions): Buffer | undefined {
  const noFollow = o.noFollow ?? false;
  const before = notRegularBeforeOpen(file, noFollow);
  if (before) throw o.refuse({ kind: 'not-regular', stats: before });
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | NONBLOCK | (noFollow ? constants.O_NOFOLLOW : 0));
  } catch (error) {
    if (o.allowMissing && errnoCode(error) === 'ENOENT') return undefined;
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
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(64 * 1024);
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (error) {
        throw o.refuse({ kind: 'read', error });
      }
      if (n === 0) break;
      total += n;
      if (total > o.maxBytes) throw o.refuse({ kind: 'too-big', size: total });
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}
