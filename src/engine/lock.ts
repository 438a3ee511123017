/** One run at a time: the hook, the daemon and one-off commands share this lock in the
 *  state directory (the file locking itself is generic, in src/util/file-lock.ts). */
import { join } from 'node:path';
import { acquireLockFile, type LockOptions } from '../util/file-lock.js';

export const LOCK_FILE = 'lock';

export async function acquireLock(dir: string, opts: LockOptions): Promise<() => void> {
  return acquireLockFile(join(dir, LOCK_FILE), opts);
}
