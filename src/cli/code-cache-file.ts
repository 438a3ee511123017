/** The file that holds the bundle's V8 code cache (run-bundle.ts): the cache, twice. V8 checks
 *  a cache's header (its version, flags, source length, payload length) but not its payload: a
 *  cache whose length is right and whose bytes are not (a write cut short by a power loss leaves
 *  zeros, a flipped bit on disk) crashes the process inside V8 (SIGSEGV or a V8 fatal error)
 *  before any of tlsa's code runs, at every start until the next build. Damage shows as two
 *  copies that differ. Cheaper checks cost more at start than they are worth: V8's own payload
 *  checksum (--verify-snapshot-checksum) changes V8's flag hash, so Node then rejects the code
 *  cache of every built-in module it loads (+5 % start-up), and loading node:zlib for a CRC or
 *  node:crypto for a hash costs 1–2 %; reading and comparing a second copy costs no measurable
 *  time (0.6 MB from the page cache). */
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** The cache is ≈ 0.6 MB (twice that on disk); anything much larger is not one. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

/** The code cache stored in `file`, or undefined when there is none to trust: missing, not a
 *  regular file (a FIFO would block the read forever, a device never end it), too large, or
 *  its bytes not those written. */
export function readCodeCache(file: string): Buffer | undefined {
  let fd: number | undefined;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
    const stat = fstatSync(fd);
    const size = stat.size;
    if (!stat.isFile() || size === 0 || size % 2 !== 0 || size > MAX_FILE_BYTES) return undefined;
    const buf = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, buf, read, size - read, read);
      if (n === 0) return undefined;
      read += n;
    }
    const cache = buf.subarray(0, size / 2);
    return cache.equals(buf.subarray(size / 2)) ? cache : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Store the cache `make` returns in `file`, best effort (an install directory may be
 *  read-only): a temp file created anew (never through a link or into someone else's file),
 *  mode 0644 whatever the umask (the cache is code that root may run), synced, then renamed
 *  over `file` (replacing a link there, never writing through it). The temp file is made
 *  first: serialising the cache takes ≈ 35 ms, not worth spending where it cannot be kept. */
export function writeCodeCache(file: string, make: () => Uint8Array): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch {
    return;
  }
  try {
    try {
      const cache = make();
      writeAll(fd, cache);
      writeAll(fd, cache);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch {
    rmSync(tmp, { force: true });
  }
}

function writeAll(fd: number, data: Uint8Array): void {
  let off = 0;
  while (off < data.length) off += writeSync(fd, data, off, data.length - off);
}
