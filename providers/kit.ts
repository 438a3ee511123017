/**
 * The provider kit: the generic part of the contract (contract.ts) that every adapter would
 * otherwise write again: changes merged per owner with add-wins and the TTL rule, owner names
 * normalised and guarded, owners grouped by zone, the CNAME refusal, zone discovery up the
 * labels, conflict retries, Retry-After. An adapter keeps only what is specific to its API.
 */
import { EXIT } from '../src/errors.js';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { withRetry } from '../src/util/retry.js';
import { type DnsProvider, type OwnerChange, ProviderError, type TlsaChange } from './contract.js';

/** One owner's change, as a provider applies it: every change for the owner merged. */
export interface OwnerWant {
  /** normaliseName(owner). */
  owner: string;
  /** The records to add, each once. */
  add: TlsaRecord[];
  /** The records to remove, without those also added (add wins). */
  remove: TlsaRecord[];
  /** rdataKey() of `add`, in order, and of `remove`. */
  addKeys: string[];
  removeKeys: Set<string>;
  /** The TTL passed for this owner: the RRset's TTL when `add` is not empty (rule 4). */
  ttl: number;
}

/** `u s m hex` in lower case: a record's identity within one owner's RRset. */
export function rdataKey(r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): string {
  return rdataText(r).toLowerCase();
}

/** The identity of a record as an API spells it (presentation text), or of text that does not
 *  parse as TLSA (kept as it is, and never matched by a removal). */
export function contentKey(content: string): string {
  try {
    return rdataKey(parseRdata(content));
  } catch {
    return `raw:${content.trim().replace(/\s+/g, ' ').toLowerCase()}`;
  }
}

/** TLSA records from presentation texts; text that does not parse is left out. */
export function parseRecords(owner: string, contents: string[]): TlsaRecord[] {
  return contents.flatMap((c) => {
    try {
      return [{ owner, ...parseRdata(c) }];
    } catch {
      return [];
    }
  });
}

/** Every record of a change must belong to the owner name it is applied at: a guard against a
 *  caller's mix-up, the same for every provider (rule 7). */
export function checkChangeOwners(provider: string, owner: string, change: TlsaChange): void {
  const o = normaliseName(owner);
  for (const r of [...change.add, ...change.remove]) {
    if (normaliseName(r.owner) !== o)
      throw new ProviderError(provider, `record for ${r.owner} passed to apply(${o})`);
  }
}

/** The change as a provider must apply it: a record named in both `add` and `remove` is kept,
 *  so it is dropped from `remove` (rule 3). */
export function effectiveChange<T extends TlsaChange>(change: T): T {
  const added = new Set(change.add.map(rdataKey));
  if (!change.remove.some((r) => added.has(rdataKey(r)))) return change;
  return { ...change, remove: change.remove.filter((r) => !added.has(rdataKey(r))) };
}

/** The changes of an apply()/applyMany() call, one OwnerWant per owner (normalised, guarded,
 *  merged, add wins, TTL checked); owners with nothing to do are left out. */
export function mergeChanges(
  provider: string,
  changes: OwnerChange[],
  ttlOf: (owner: string) => number,
): OwnerWant[] {
  const wants = new Map<string, OwnerWant>();
  for (const c of changes) {
    const owner = normaliseName(c.owner);
    checkChangeOwners(provider, owner, c);
    let w = wants.get(owner);
    if (!w) {
      const ttl = ttlOf(c.owner);
      if (!Number.isInteger(ttl) || ttl < 0 || ttl > 0x7fffffff)
        throw new ProviderError(provider, `TTL ${ttl} is not a DNS TTL (whole seconds)`);
      w = { owner, add: [], remove: [], addKeys: [], removeKeys: new Set(), ttl };
      wants.set(owner, w);
    }
    for (const r of c.add) {
      const k = rdataKey(r);
      if (w.addKeys.includes(k)) continue;
      w.addKeys.push(k);
      w.add.push({ ...r, owner });
    }
    for (const r of c.remove) {
      const k = rdataKey(r);
      if (w.removeKeys.has(k)) continue;
      w.removeKeys.add(k);
      w.remove.push({ ...r, owner });
    }
  }
  const out: OwnerWant[] = [];
  for (const w of wants.values()) {
    for (const k of w.addKeys) w.removeKeys.delete(k);
    w.remove = w.remove.filter((r) => w.removeKeys.has(rdataKey(r)));
    if (w.add.length || w.remove.length) out.push(w);
  }
  return out;
}

/** Items grouped by a key found for each (the zone of an owner, looked up once per owner),
 *  in the order first seen. */
export async function groupBy<T, G>(
  items: T[],
  groupOf: (t: T) => Promise<G>,
  keyOf: (g: G) => string,
): Promise<Array<{ group: G; items: T[] }>> {
  const out = new Map<string, { group: G; items: T[] }>();
  for (const t of items) {
    const group = await groupOf(t);
    const entry = out.get(keyOf(group));
    if (entry) entry.items.push(t);
    else out.set(keyOf(group), { group, items: [t] });
  }
  return [...out.values()];
}

/** How many calls of one provider instance may run at once, and how many may start per second:
 *  each adapter sets it from its API's documented limits (its header says which). */
export interface Pace {
  concurrency: number;
  /** Starts per second, spaced evenly; unlimited when absent. */
  perSecond?: number;
}

/** One at a time: the pace of an adapter that sets none. */
export const SERIAL: Pace = { concurrency: 1 };

/** Runs tasks within a Pace: at most `concurrency` in flight, starts at least 1/perSecond apart.
 *  One per provider instance, shared by its listMany and applyMany, so that the limit holds
 *  across calls. */
export class Pacer {
  #running = 0;
  #nextStart = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly pace: Pace) {
    if (!(pace.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.pace.concurrency)
      await new Promise<void>((r) => this.#waiting.push(r));
    else this.#running++;
    try {
      if (this.pace.perSecond) {
        const now = Date.now();
        const at = Math.max(now, this.#nextStart);
        this.#nextStart = at + 1000 / this.pace.perSecond;
        if (at > now) await sleep(at - now);
      }
      return await task();
    } finally {
      // The slot passes straight to the next waiter (running stays counted).
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }

  /** `fn` for each item within the pace. After the first failure nothing more is started; the
   *  calls in flight are waited for, then that failure is thrown (as a loop would). */
  async each<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    let failed: { error: unknown } | undefined;
    let next = 0;
    const worker = async () => {
      while (!failed && next < items.length) {
        const item = items[next++]!;
        await this.run(() => fn(item)).catch((error: unknown) => {
          failed ??= { error };
        });
      }
    };
    const workers = Math.min(this.pace.concurrency, items.length);
    await Promise.all(Array.from({ length: workers }, worker));
    if (failed) throw failed.error;
  }
}

/** apply() and applyMany() of an adapter that writes one zone at a time: the changes merged
 *  per owner (mergeChanges), `prepare` given them all (a batch lookup of zones), then grouped by
 *  zone, each zone written by `applyZone` (zones side by side within `pacer`'s pace); apply()
 *  is applyMany() of one change. */
export function writesByZone<G>(
  provider: string,
  zoneOf: (owner: string) => Promise<G>,
  keyOf: (g: G) => string,
  applyZone: (zone: G, wants: OwnerWant[]) => Promise<void>,
  prepare?: (wants: OwnerWant[]) => Promise<void>,
  pacer: Pacer = new Pacer(SERIAL),
): Required<Pick<DnsProvider, 'apply' | 'applyMany'>> {
  const applyMany = async (changes: OwnerChange[], ttlOf: (owner: string) => number) => {
    const wants = mergeChanges(provider, changes, ttlOf);
    await prepare?.(wants);
    const zones = await groupBy(wants, (w) => zoneOf(w.owner), keyOf);
    await pacer.each(zones, ({ group, items }) => applyZone(group, items));
  };
  return { applyMany, apply: (owner, change, ttl) => applyMany([{ owner, ...change }], () => ttl) };
}

/** listMany() by zone: `read` answers for the normal forms of one zone's owners (zones side by
 *  side within `pacer`'s pace); the result also carries each owner under the caller's spelling
 *  (rule 5). */
export async function listByZone<G>(
  ownersIn: string[],
  zoneOf: (owner: string) => Promise<G>,
  keyOf: (g: G) => string,
  read: (zone: G, owners: string[]) => Promise<Map<string, TlsaRecord[]>>,
  pacer: Pacer = new Pacer(SERIAL),
): Promise<Map<string, TlsaRecord[]>> {
  const owners = [...new Set(ownersIn.map((o) => normaliseName(o)))];
  const out = new Map<string, TlsaRecord[]>();
  await pacer.each(await groupBy(owners, zoneOf, keyOf), async ({ group, items }) => {
    const found = await read(group, items);
    for (const o of items) out.set(o, found.get(o) ?? []);
  });
  for (const o of ownersIn) if (!out.has(o)) out.set(o, out.get(normaliseName(o)) ?? []);
  return out;
}

/** The CNAME refusal (rule 6): one error naming every owner with a CNAME (and its target
 *  where the read saw it); `note` says more ("nothing was written", the API's words). */
export function cnameError(
  provider: string,
  found: Array<{ owner: string; target?: string }>,
  where: string,
  note?: string,
): ProviderError {
  const shown = (c: { owner: string; target?: string }) =>
    `${c.owner}${c.target ? ` (to ${c.target})` : ''}`;
  const first = found[0]!;
  const names =
    found.length === 1
      ? `${first.owner} has a CNAME${first.target ? ` (to ${first.target})` : ''}`
      : `${nameList(found.map(shown))} have CNAMEs`;
  return new ProviderError(
    provider,
    `${names} in ${where}; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME${note ? ` (${note})` : ''}`,
  );
}

/** Before a write to `owners`: refuse it, naming every owner that has a CNAME. A write for
 *  several owners is refused as a whole, and the message says so. */
export function refuseCnames(
  provider: string,
  found: Array<{ owner: string; target?: string }>,
  where: string,
  owners: readonly unknown[],
): void {
  if (found.length)
    throw cnameError(provider, found, where, owners.length > 1 ? 'nothing was written' : undefined);
}

/** Names for a message: all of a few, the first three of many. */
export function nameList(names: string[]): string {
  return names.length <= 3
    ? names.join(', ')
    : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

/** A server-given wait in ms: `Retry-After` as seconds or an HTTP date, or `Retry-After-Ms`. */
export function retryAfterMs(headers: { get(name: string): string | null } | undefined) {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers?.get('retry-after');
  if (!ra) return undefined;
  const s = Number(ra);
  if (Number.isFinite(s)) return Math.max(0, s * 1000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Another writer changed what a conditional write was computed from. */
export class Conflict extends Error {
  // Only escapes retryOnConflict when a caller forgets it: still a provider failure.
  readonly exitCode = EXIT.provider;
}

/** Read-compute-write `attempt`, again from the read while it meets a Conflict; after
 *  `attempts` conflicts, `giveUp` names what kept changing. */
export async function retryOnConflict(
  attempt: () => Promise<void>,
  attempts: number,
  giveUp: (last: Conflict) => Error,
): Promise<void> {
  try {
    await withRetry(attempt, {
      attempts,
      baseDelayMs: 150,
      maxDelayMs: 2_000,
      isRetryable: (e) => e instanceof Conflict,
    });
  } catch (e) {
    throw e instanceof Conflict ? giveUp(e) : e;
  }
}

/** Zone discovery for APIs that look zones up by name: the owner's name, then each parent
 *  (most specific first), each candidate asked once per provider instance. */
export function zoneFinder<Z>(
  lookup: (candidate: string, owner: string) => Promise<Z | undefined>,
  notFound: (owner: string, tried: string[]) => Error,
  spell: (labels: string[]) => string = (l) => `${l.join('.')}.`,
): (owner: string) => Promise<Z> {
  const zones = new Map<string, Z>();
  const notZones = new Set<string>();
  return async (owner) => {
    const labels = owner.replace(/\.$/, '').split('.');
    const tried: string[] = [];
    for (let i = 0; i < labels.length; i++) {
      const candidate = spell(labels.slice(i));
      const cached = zones.get(candidate);
      if (cached) return cached;
      tried.push(candidate);
      if (notZones.has(candidate)) continue;
      const zone = await lookup(candidate, owner);
      if (zone) {
        zones.set(candidate, zone);
        return zone;
      }
      notZones.add(candidate);
    }
    throw notFound(owner, tried);
  };
}
