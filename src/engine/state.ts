/** The state store: which records this tool owns and where each is in its lifecycle.
 *  One JSON file, written atomically; read and written only under the lock (lock.ts). */
import { mkdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { InputError, errnoCode } from '../errors.js';
import type { TlsaRecord } from '../tlsa/record.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readInputText, readInputTextPieces } from '../util/read-input.js';
import { stringPool } from '../util/string-pool.js';
import { StateLines } from './state-lines.js';

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
  /** Past its grace but kept: why, and when the last run decided so (for plan and status). */
  held?: { why: string; at: string };
  /** Published with a higher TTL than the configured one because the provider publishes that
   *  (deSEC's minimum, a zone file's line tlsa did not write): the configured TTL and the
   *  provider's cause, so that every wait counted from `ttl` says why (status reads only the
   *  state). */
  ttlRaise?: TtlRaise;
}

/** A TTL the provider raised: from the configured one, and what raised it in a few words. */
export interface TtlRaise {
  from: number;
  cause?: string;
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
  /** Per owner name, records tlsa does not own (another writer's, or by hand) that match a
   *  chain it waits for: rdata ("2 1 1 ab…") to when every authoritative server was first seen
   *  serving it. Their age counts from then; tlsa never removes them. Absent in older files. */
  observed?: Record<string, Record<string, string>>;
}

export const STATE_FILE = 'state.json';
/** Far above what 10,000 services with a dozen records each need (about 10 MB). */
const MAX_STATE_BYTES = 256 * 1024 * 1024;

export function actor(entryPoint: string): string {
  return `${entryPoint}@${hostname()}:${process.pid}`;
}

export function ensureStateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!statSync(dir).isDirectory())
      throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (e) {
    throw new InputError(`the state directory cannot be created or used: ${errnoCode(e)}`, dir);
  }
}

export function readState(dir: string): StateFile {
  const file = join(dir, STATE_FILE);
  try {
    statSync(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return { version: 1, records: [] };
  }
  // Only a regular file: a FIFO planted here would otherwise hang every run holding the lock.
  const input = { what: 'the state file', maxBytes: MAX_STATE_BYTES };
  // In the layout tlsa writes, a record at a time (state-lines.ts); else the whole text. A file
  // replaced in between (only ever atomically) is read as the newer one, as a later read would.
  const lines = new StateLines();
  readInputTextPieces(file, input, (piece) => lines.push(piece));
  let json = lines.end();
  if (json === undefined) {
    const text = readInputText(file, input);
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw damaged(file, `not JSON: ${(e as Error).message}`);
    }
  }
  const problem = stateProblem(json);
  if (problem) throw damaged(file, problem);
  return withSharedStrings(json as StateFile);
}

/** The state's records with each repeated value (owner, digest, provider, service, status,
 *  times, actor) as one string: a run keeps the state from start to end, and JSON.parse gave
 *  every record its own copy of each (at 10,000 services ≈ 9 MB of a 14 MB state). The same
 *  values: only the number of strings behind them changes. */
function withSharedStrings(state: StateFile): StateFile {
  const pool = stringPool();
  const share = pool.share;
  for (const r of state.records) {
    r.owner = share(r.owner);
    r.data = share(r.data);
    r.provider = share(r.provider);
    r.service = share(r.service);
    r.status = share(r.status) as RecordStatus;
    r.addedAt = share(r.addedAt);
    r.by = share(r.by);
    if (r.publishedAt !== undefined) r.publishedAt = share(r.publishedAt);
    if (r.retiringSince !== undefined) r.retiringSince = share(r.retiringSince);
    if (r.seenAt !== undefined) r.seenAt = share(r.seenAt);
  }
  return state;
}

/** Both ways out of a damaged state keep DNS as it is: the records stay published, and
 *  `adopt` takes over the ones tlsa would publish (and the ones carrying its marker). */
function damaged(file: string, why: string): InputError {
  return new InputError(
    `the state file is damaged (${why}); tlsa only ever replaces it atomically, so it was changed by something else`,
    file,
    undefined,
    `move it aside (mv ${file} ${file}.damaged), then run "tlsa adopt --dry-run" and "tlsa adopt" to take ownership of the published records again`,
  );
}

const STATUSES: readonly string[] = ['publishing', 'published', 'retiring', 'removing'];
// Checked for each of tens of thousands of records: built once.
const USAGES: readonly number[] = [0, 1, 2, 3];
const SELECTORS: readonly number[] = [0, 1];
const MATCHINGS: readonly number[] = [0, 1, 2];
const HEX = /^(?:[0-9a-f]{2})+$/;
const OPTIONAL_TIMES = ['publishedAt', 'retiringSince', 'seenAt'] as const;
const isDate = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** isDate for one check of a file: a run stamps thousands of records with the same few times,
 *  so each distinct string is parsed once. */
function datesOnce(): (v: unknown) => boolean {
  const known = new Map<string, boolean>();
  return (v) => {
    if (typeof v !== 'string') return false;
    let ok = known.get(v);
    if (ok === undefined) {
      ok = isDate(v);
      known.set(v, ok);
    }
    return ok;
  };
}

/** What is wrong with a parsed state file, or undefined. Unknown fields are allowed: a newer
 *  tlsa may have written them. */
export function stateProblem(json: unknown): string | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return 'not an object';
  const s = json as { version?: unknown; records?: unknown };
  if (s.version !== 1) return `unknown version ${JSON.stringify(s.version)}`;
  if (!Array.isArray(s.records)) return '"records" is not a list';
  const ttls = (json as { ttls?: unknown }).ttls;
  if (ttls !== undefined && (typeof ttls !== 'object' || ttls === null || Array.isArray(ttls)))
    return '"ttls" is not an object';
  const observed = (json as { observed?: unknown }).observed;
  if (observed !== undefined) {
    const isMap = (v: unknown): v is Record<string, unknown> =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    if (!isMap(observed)) return '"observed" is not an object';
    for (const [owner, seen] of Object.entries(observed)) {
      if (!isMap(seen) || Object.values(seen).some((t) => !isDate(t)))
        return `"observed" at ${owner}: not a map of records to times`;
    }
  }
  const isTime = datesOnce();
  const records = s.records as Record<string, unknown>[];
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const bad = (what: string) => `records[${i}]: ${what}`;
    if (typeof r !== 'object' || r === null) return bad('not an object');
    if (typeof r.owner !== 'string' || !r.owner.endsWith('.'))
      return bad('"owner" is not an absolute name');
    if (!USAGES.includes(r.usage as number)) return bad('"usage" is not 0-3');
    if (!SELECTORS.includes(r.selector as number)) return bad('"selector" is not 0 or 1');
    if (!MATCHINGS.includes(r.matching as number)) return bad('"matching" is not 0-2');
    if (typeof r.data !== 'string' || !HEX.test(r.data)) return bad('"data" is not lower-case hex');
    if (typeof r.provider !== 'string' || typeof r.service !== 'string')
      return bad('"provider" or "service" missing');
    if (!Number.isInteger(r.ttl) || (r.ttl as number) < 1)
      return bad('"ttl" is not a positive integer');
    if (!STATUSES.includes(r.status as string))
      return bad(`"status" is not one of ${STATUSES.join(', ')}`);
    if (!isTime(r.addedAt)) return bad('"addedAt" is not a time');
    for (const k of OPTIONAL_TIMES)
      if (r[k] !== undefined && !isTime(r[k])) return bad(`"${k}" is not a time`);
    if (r.status === 'published' && !isTime(r.publishedAt))
      return bad('a published record without "publishedAt"');
    const held = r.held as { why?: unknown; at?: unknown } | undefined;
    if (
      held !== undefined &&
      (typeof held !== 'object' ||
        held === null ||
        typeof held.why !== 'string' ||
        !isTime(held.at))
    )
      return bad('"held" is not {why, at}');
    const raise = r.ttlRaise as { from?: unknown; cause?: unknown } | undefined;
    if (
      raise !== undefined &&
      (typeof raise !== 'object' ||
        raise === null ||
        !Number.isInteger(raise.from) ||
        (raise.cause !== undefined && typeof raise.cause !== 'string'))
    )
      return bad('"ttlRaise" is not {from, cause}');
    if (r.status === 'retiring' && !isTime(r.retiringSince))
      return bad('a retiring record without "retiringSince"');
  }
  return undefined;
}

/** Whether the state has been written at all (a run that changes nothing still creates it). */
export function hasStateFile(dir: string): boolean {
  try {
    statSync(join(dir, STATE_FILE));
    return true;
  } catch {
    return false;
  }
}

export function writeState(dir: string, state: StateFile): void {
  const file = join(dir, STATE_FILE);
  try {
    writeFileAtomic(file, stateText(state), 0o600);
  } catch (e) {
    throw new InputError(`cannot write the state: ${errnoCode(e)}`, file);
  }
}

/** The state as JSON with one record (and one owner's TTLs or observed records) a line: as
 *  easy to read, grep and diff as one value a line, and a third smaller; a fleet's state of tens
 *  of thousands of records is read by every run (JSON.parse of the indented form took twice as
 *  long). The same value as JSON.stringify gives (keys without a value are left out). */
export function stateText(state: StateFile): string {
  const entries = Object.entries(state).filter(([, v]) => v !== undefined);
  const parts = entries.map(([key, value]) => {
    let text: string;
    if (Array.isArray(value)) {
      text = value.length
        ? `[\n${value.map((v) => `    ${JSON.stringify(v) ?? 'null'}`).join(',\n')}\n  ]`
        : '[]';
    } else if (value !== null && typeof value === 'object') {
      const inner = Object.entries(value)
        .map(([k, v]) => [k, JSON.stringify(v) as string | undefined] as const)
        .filter(([, v]) => v !== undefined);
      text = inner.length
        ? `{\n${inner.map(([k, v]) => `    ${JSON.stringify(k)}: ${v}`).join(',\n')}\n  }`
        : '{}';
    } else {
      text = JSON.stringify(value);
    }
    return `  ${JSON.stringify(key)}: ${text}`;
  });
  return parts.length ? `{\n${parts.join(',\n')}\n}\n` : '{}\n';
}
