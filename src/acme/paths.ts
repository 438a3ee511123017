/** Where built-in ACME keeps its files in the state directory:
 *    acme/accounts/<hash of the directory URL>/account.key   one account per directory URL
 *    acme/<service>/<key type>/                               the lineage (certbot layout), a
 *        symlink to acme/<service>/releases/<key type>-<time>/, swapped atomically */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { AcmeKeyType } from '../config/schema.js';

export function accountKeyPath(stateDir: string, directoryUrl: string): string {
  const id = createHash('sha256').update(directoryUrl).digest('hex').slice(0, 16);
  return join(stateDir, 'acme', 'accounts', id, 'account.key');
}

export function lineageDir(stateDir: string, service: string, keyType: AcmeKeyType): string {
  return join(stateDir, 'acme', service, keyType);
}

export function releasesDir(stateDir: string, service: string): string {
  return join(stateDir, 'acme', service, 'releases');
}
