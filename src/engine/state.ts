/** The state store: which records this tool owns and where each is in its lifecycle.
 *  One JSON file, written atomically; read and written only under the lock (lock.ts). */
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { InputError, errnoCode } from '../errors.js';
import type { TlsaRecord } from '../tlsa/record.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/**
 * - publishing: intent written, provider call not yet confirmed (a crash here is resolved by
 *   looking at what the provider lists: present means ours);
 * - published:  at the provider; `pending` until 2×TTL old, then `live` (see lifecycle.ts);
 * - retiring:   no served chain needs it any more; removed once the grace has passed;
 * - removing:   removal intent written, provider call not yet confirmed.
 */
export type RecordStatus = 'publishing' | 'published' | 'retiring' | 'removing';

export interface OwnedRecord extends TlsaRecord {
  provider: string;
  service: string;
  ttl: number;
  status: RecordStatus;
  addedAt: string;
  publishedAt?: string;
  retiringSince?: string;
  /** First time every authoritative server served it. */
  seenAt?: string;
  /** Who wrote it: entry point, host and pid. */
  by: string;
}

/** A TTL the authoritative servers answered with at an owner name: a resolver that asked
 *  then may hold that answer (the TLSA RRset, its absence, or a CNAME) that long. */
export interface TtlFact {
  ttl: number;
  /** When it was observed. */
  at: string;
  /** Observed just before tlsa wrote at the name, or on a later check of its records. */
  source: 'before-write' | 'after-write';
  /** What the servers answered: the TLSA RRset, no TLSA RRset (the TTL is then the zone's
   *  negative TTL, RFC 2308: min(SOA TTL, SOA MINIMUM)), or a CNAME at the name. */
  served: 'rrset' | 'negative' | 'cname';
  /** The RRset held records that tlsa does not own. */
  foreign?: boolean;
}

export interface StateFile {
  version: 1;
  records: OwnedRecord[];
  /** Per owner name, the TTLs seen there, oldest first (see lifecycle.ts for how they count).
   *  Absent in state files written before it existed. */
  ttls?: Record<string, TtlFact[]>;
}

export const STATE_FILE = 'state.json';

export function actor(entryPoint: string): string {
  return `${entryPoint}@${hostname()}:${process.pid}`;
}

export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    throw new InputError(`the state directory cannot be created or used: ${errnoCode(e)}`, dir);
  }
}

export function readState(dir: string): StateFile {
  const file = join(dir, STATE_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return { version: 1, records: [] };
    throw new InputError(`cannot read the state: ${errnoCode(e)}`, file);
  }
  try {
    const json = JSON.parse(text) as StateFile;
    if (json.version !== 1 || !Array.isArray(json.records)) throw new Error('unknown format');
    if (json.ttls !== undefined && (typeof json.ttls !== 'object' || json.ttls === null || Array.isArray(json.ttls))) throw new Error('"ttls" is not an object');
    return json;
  } catch (e) {
    throw new InputError(`the state file is damaged (${(e as Error).message}); it is only ever replaced atomically, so this was edited by hand`, file);
  }
}

export function writeState(dir: string, state: StateFile): void {
  const file = join(dir, STATE_FILE);
  try {
    writeFileAtomic(file, `${JSON.stringify(state, null, 2)}\n`, 0o600);
  } catch (e) {
    throw new InputError(`cannot write the state: ${errnoCode(e)}`, file);
  }
}
