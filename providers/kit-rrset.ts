/**
 * The kit for APIs that store whole RRsets (Route 53, PowerDNS, deSEC): the new set an owner's
 * change makes of the current one, and, for APIs without a conditional write, the
 * read-modify-write that reads back and writes again what another writer overwrote. TLSA by
 * default; TXT (txt.ts) passes its own record identity (`keyOf`).
 */
import { Transient } from './http.js';
import { contentKey, type OwnerWant, sleep } from './kit.js';

/** A record as the API holds it: its text, and (PowerDNS) whether it is disabled. */
export interface SetRecord {
  content: string;
  disabled?: boolean;
}

export interface RRsetNow {
  ttl?: number;
  records: SetRecord[];
}

/** What the RRset kit needs of one owner's change: the identities (keyOf) of the records to
 *  add, each also the content to write, and of those to remove; the TTL when adding. */
export type SetWant = Pick<OwnerWant, 'owner' | 'addKeys' | 'removeKeys' | 'ttl'>;

/** A record's identity within its RRset, from the API's text of it. */
export type KeyOf = (content: string) => string;

/** The RRset an owner's change makes of `current` (every record not named in remove kept, ours
 *  added, a disabled copy enabled), with its TTL (rule 4: the change's when it adds, else the
 *  set's own); undefined when the server already has exactly that. */
export function nextRRset(
  want: SetWant,
  current: RRsetNow | undefined,
  keyOf: KeyOf = contentKey,
): { records: SetRecord[]; ttl: number } | undefined {
  const before = current?.records ?? [];
  const records = before.filter((r) => !want.removeKeys.has(keyOf(r.content)));
  for (const k of want.addKeys) {
    const i = records.findIndex((r) => keyOf(r.content) === k);
    if (i < 0) records.push({ content: k, disabled: false });
    else if (records[i]!.disabled) records[i] = { content: records[i]!.content, disabled: false };
  }
  const ttl = want.addKeys.length || current?.ttl === undefined ? want.ttl : current.ttl;
  const ttlChanges = before.length > 0 && records.length > 0 && ttl !== current?.ttl;
  return sameRecords(before, records, keyOf) && !ttlChanges ? undefined : { records, ttl };
}

function sameRecords(a: SetRecord[], b: SetRecord[], keyOf: KeyOf): boolean {
  const key = (r: SetRecord) => `${keyOf(r.content)}|${Boolean(r.disabled)}`;
  const ka = a.map(key).sort();
  const kb = b.map(key).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

/** Did our write survive, and did it not erase what was there before it? */
export function survived(
  want: SetWant,
  after: SetRecord[],
  before: SetRecord[],
  keyOf: KeyOf = contentKey,
): boolean {
  const present = new Map(after.map((r) => [keyOf(r.content), Boolean(r.disabled)]));
  return (
    want.addKeys.every((k) => present.get(k) === false) &&
    [...want.removeKeys].every((k) => !present.has(k)) &&
    before.every((r) => want.removeKeys.has(keyOf(r.content)) || present.has(keyOf(r.content)))
  );
}

/** One RRset to write, and what was there when it was computed. */
export interface SetWrite<W extends SetWant = OwnerWant> {
  want: W;
  before: SetRecord[];
  records: SetRecord[];
  ttl: number;
}

/** What verifiedWrites needs from an API without conditional writes. */
export interface VerifiedWriteApi<S, W extends SetWant = OwnerWant> {
  /** Read the owners' RRsets (and fail on a CNAME at any of them, rule 6). */
  read(owners: W[]): Promise<S>;
  /** The RRset (TLSA, or the type keyOf reads) of an owner in a read. */
  rrset(state: S, owner: W): RRsetNow | undefined;
  /** Write these RRsets (Transient: worth another read and try). Returns a check that a later
   *  read shows no other writer busy since the write (a serial, a `touched` stamp), asked
   *  once per look. */
  write(writes: SetWrite<W>[], before: S): Promise<(after: S) => boolean>;
  /** Asked after each write, before reading back: true when the API shows, without reading the
   *  RRsets, that nobody wrote to them since (they hold what the write made); then there is
   *  nothing to read back. */
  confirm?(): Promise<boolean>;
  /** A record's identity (default: TLSA's contentKey), and the type's name for messages. */
  keyOf?: KeyOf;
  type?: string;
  /** Pause before reading back (jittered), in ms. */
  settleMs: number;
  /** Failed writes tolerated before giving up. */
  attempts: number;
  fail(message: string): Error;
  /** "in zone example.org." for the give-up message. */
  where: string;
}

const MAX_ROUNDS = 6;

/** Read-modify-write of several owners with no conditional write: one read, one write, a
 *  read-back after a pause (again while other writes show), and repair rounds, each writing
 *  just the owners whose records the read-back shows lost or incomplete. A failed write is
 *  never re-sent as it was (it may be stale by then): the owners are read again. Residual
 *  race: a writer that read before our write and writes its stale set only after our last
 *  read-back removes our records unseen; the next run sees the loss and repairs it. */
export async function verifiedWrites<S, W extends SetWant = OwnerWant>(
  wants: W[],
  api: VerifiedWriteApi<S, W>,
) {
  const keyOf = api.keyOf ?? contentKey;
  let pending = wants;
  let state = await api.read(pending);
  let failedWrites = 0;
  for (let round = 1; round <= MAX_ROUNDS; ) {
    const writes: SetWrite<W>[] = [];
    for (const want of pending) {
      const now = api.rrset(state, want);
      const next = nextRRset(want, now, keyOf);
      if (next) writes.push({ want, before: now?.records ?? [], ...next });
    }
    if (!writes.length) return;
    let quiet: (after: S) => boolean;
    try {
      quiet = await api.write(writes, state);
    } catch (e) {
      // 429 (after its Retry-After), 5xx, network: wait, read again (the write may even have
      // landed) and recompute.
      if (!(e instanceof Transient)) throw e;
      if (++failedWrites >= api.attempts)
        throw api.fail(`${e.message} (gave up after ${api.attempts} attempts)`);
      const backoff = Math.round(Math.random() * Math.min(5_000, 250 * 2 ** (failedWrites - 1)));
      await sleep(Math.min(30_000, e.retryAfterMs ?? backoff));
      state = await api.read(pending);
      continue;
    }
    if (await api.confirm?.()) return;
    const written = writes.map((w) => w.want);
    let lost: W[] = [];
    for (let look = 0; look < MAX_ROUNDS; look++) {
      await sleep(Math.round(api.settleMs * (0.5 + Math.random())));
      state = await api.read(written);
      lost = writes
        .filter((w) => !survived(w.want, api.rrset(state, w.want)?.records ?? [], w.before, keyOf))
        .map((w) => w.want);
      if (lost.length || quiet(state)) break;
    }
    if (!lost.length) return;
    // Another writer changed these RRsets between our read and our read-back: write them
    // again, on what the read-back saw.
    pending = lost;
    round++;
  }
  const names = pending.map((w) => w.owner);
  throw api.fail(
    `${names.join(', ')}: other writers kept changing the ${api.type ?? 'TLSA'} RRset${names.length === 1 ? '' : 's'} ${api.where}; gave up after ${MAX_ROUNDS} read-modify-write rounds (a re-run repairs it)`,
  );
}
