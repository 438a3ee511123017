/** Checks of the staged-install settings at config load: the key's owner and group resolved to
 *  ids (an unknown user is bad input, not a failed install after the records changed), and
 *  the installed copies of all services: one DIR/NAME is either one chain shared by several
 *  services (installed once) or a clash. */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { InputError } from '../errors.js';
import { sourceName, toCertSource } from './cert-sources.js';
import { groupId, userId } from '../util/accounts.js';
import type { RawConfig } from './schema.js';

/** Owner, group and mode of a service's installed key copies (install.owner/group/mode). */
export interface KeyAccess {
  uid?: number;
  gid?: number;
  /** Permission bits; default 0600. */
  mode: number;
  /** For messages: the configured names. */
  describe?: string;
}

type ErrorAt = (path: (string | number)[], message: string) => InputError;

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Where a service's installed copies go, comparable across services: install.dir resolved
 *  against the config's directory, through the admin's symlinks when it exists. */
export function installRoot(baseDir: string, dir: string): string {
  const abs = resolve(baseDir, dir);
  try {
    return realpathSync(abs);
  } catch {
    return abs;
  }
}

/** The key's owner, group and mode per service with install:. */
export function keyAccessOf(raw: RawConfig, error: ErrorAt): Map<string, KeyAccess> {
  const out = new Map<string, KeyAccess>();
  for (const [name, svc] of Object.entries(raw.services)) {
    const inst = svc.install;
    if (!inst) continue;
    const access: KeyAccess = { mode: inst.mode ? parseInt(inst.mode, 8) : 0o600 };
    if (inst.owner) {
      const uid = userId(inst.owner);
      if (uid === undefined)
        throw error(
          ['services', name, 'install', 'owner'],
          `no user "${inst.owner}" on this system`,
        );
      access.uid = uid;
    }
    if (inst.group) {
      const gid = groupId(inst.group);
      if (gid === undefined)
        throw error(
          ['services', name, 'install', 'group'],
          `no group "${inst.group}" on this system`,
        );
      access.gid = gid;
    }
    const who = [inst.owner && `user ${inst.owner}`, inst.group && `group ${inst.group}`]
      .filter(Boolean)
      .join(', ');
    if (who) access.describe = who;
    out.set(name, access);
  }
  return out;
}

function label(sourceJson: string): string {
  const s = JSON.parse(sourceJson) as { dir?: string; fullchain?: string; cert?: string };
  return s.dir ?? s.fullchain ?? s.cert ?? sourceJson;
}

export interface InstalledCopy {
  /** installRoot(install.dir) + NAME: the same for every service that shares the copy. */
  key: string;
  dir: string;
  name: string;
  services: string[];
}

/** Every installed copy of the configuration, with the services that read it. Throws (exit 2)
 *  when two services would install different chains, or the same one with different key
 *  access, under one DIR/NAME. */
export function installedCopies(
  raw: RawConfig,
  baseDir: string,
  error: ErrorAt,
  access: Map<string, KeyAccess>,
): Map<string, InstalledCopy> {
  const copies = new Map<string, InstalledCopy & { source: string; first: string }>();
  for (const [service, svc] of Object.entries(raw.services)) {
    const install = svc.install;
    if (!install) continue;
    const root = installRoot(baseDir, install.dir);
    svc.certificates.forEach((src, i) => {
      const at = ['services', service, 'certificates', i];
      const source = toCertSource(src, baseDir);
      const name = sourceName(src, source);
      if (!SAFE_NAME.test(name))
        throw error(
          at,
          `the installed copy would be named "${name}"; give this source a "name:" (letters, digits, ".", "_", "-")`,
        );
      const key = `${root}/${name}`;
      const id = JSON.stringify(source);
      const seen = copies.get(key);
      if (!seen) {
        copies.set(key, {
          key,
          dir: resolve(baseDir, install.dir),
          name,
          services: [service],
          source: id,
          first: service,
        });
        return;
      }
      if (seen.services.includes(service)) return; // two sources of one service: sources.ts says so
      if (seen.source !== id) {
        throw error(
          at,
          `services "${seen.first}" and "${service}" both install a chain as ${key}, from different sources (${label(seen.source)} and ${label(id)}): they would overwrite each other; give one a "name:" or another install.dir`,
        );
      }
      const a = access.get(seen.first)!;
      const b = access.get(service)!;
      if (a.uid !== b.uid || a.gid !== b.gid || a.mode !== b.mode) {
        throw error(
          at,
          `services "${seen.first}" and "${service}" share the installed copy ${key} but ask for different install.owner, install.group or install.mode; one file has one owner: make them equal`,
        );
      }
      seen.services.push(service);
    });
  }
  const out = new Map<string, InstalledCopy>();
  for (const [k, v] of copies)
    out.set(k, { key: v.key, dir: v.dir, name: v.name, services: v.services });
  return out;
}
