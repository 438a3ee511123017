/** User and group names to numeric ids, through NSS (getent) like chown(1) does, so that LDAP
 *  or systemd users resolve too; /etc/passwd and /etc/group when getent is missing. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

function fromFile(file: string, name: string): number | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
  } catch {
    /* no such file: unknown */
  }
  return undefined;
}

function lookup(db: 'passwd' | 'group', name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    const line = execFileSync('getent', [db, name], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    });
    const id = line.split('\n')[0]!.split(':')[2];
    return id !== undefined && /^\d+$/.test(id) ? Number(id) : undefined;
  } catch (e) {
    // getent exits 2 for "not found"; only a missing getent falls back to the files.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return fromFile(db === 'passwd' ? '/etc/passwd' : '/etc/group', name);
    return undefined;
  }
}

/** The uid of a user name or number; undefined when there is no such user. */
export function userId(name: string): number | undefined {
  return lookup('passwd', name);
}

/** The gid of a group name or number; undefined when there is no such group. */
export function groupId(name: string): number | undefined {
  return lookup('group', name);
}
