/** Private keys kept in the state directory: read only when a regular file (a symlink or a FIFO
 *  planted in its place is refused, as for state.json), written atomically with mode 0600. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { InputError, errnoCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readRegularFile } from '../util/regular-file.js';

const MAX_KEY_BYTES = 64 * 1024;

export function readKeyFile(path: string): string | undefined {
  const buf = readRegularFile(path, {
    maxBytes: MAX_KEY_BYTES,
    noFollow: true,
    allowMissing: true,
    refuse: (r) =>
      new InputError(
        r.kind === 'not-regular'
          ? 'a private key tlsa keeps must be a regular file; something else is in its place'
          : r.kind === 'too-big'
            ? `too big for a private key (${r.size} bytes)`
            : `cannot read the private key: ${errnoCode(r.error)}${errnoCode(r.error) === 'ELOOP' ? ' (a symlink is refused here)' : ''}`,
        path,
      ),
  });
  return buf?.toString('utf8');
}

export function writeKeyFile(path: string, pem: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, pem, 0o600);
}

/** The key at `path`, made by `create` and kept the first time it is asked for. */
export async function keyOnce(path: string, create: () => Promise<string>): Promise<string> {
  const existing = readKeyFile(path);
  if (existing !== undefined) return existing;
  const pem = await create();
  writeKeyFile(path, pem);
  return pem;
}
