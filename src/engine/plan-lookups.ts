/** The plan's questions about records by their key (is it listed at its owner, which owned
 *  record has it, is it desired), answered without a key string per record: a fleet's plan
 *  asks them for tens of thousands of records, and building, hashing and dropping a
 *  ~100-character key for each was most of the plan's time and garbage. Records are grouped
 *  by owner name and compared field by field there (a handful per owner); an owner holding
 *  many gets key strings once. Pure. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { sameKey } from './record-index.js';

type AtProvider = TlsaRecord & { provider: string };

export interface PlanLookups<O extends AtProvider> {
  /** Whether the listing at r's owner name holds a record with r's key. */
  listed(r: TlsaRecord): boolean;
  /** The owned record of `provider` with r's key (the last one, when the state holds two). */
  owned(provider: string, r: TlsaRecord): O | undefined;
  /** Whether the desired records of `provider` hold r's key. */
  desiredAt(provider: string, r: TlsaRecord): boolean;
  /** Whether the desired records of any provider hold r's key. */
  wanted(r: TlsaRecord): boolean;
}

/** Up to this many records at an owner, comparing fields costs less than a key string each. */
const FEW_AT_OWNER = 24;

/** Lists of records by owner name (listed under it, or with it as their owner); the last
 *  record with a key is found by fields in a short list, by key strings in a long one. */
class AtOwner<T extends TlsaRecord> {
  readonly lists: Map<string, T[]>;
  #keyed = new Map<T[], Map<string, T>>();

  constructor(lists = new Map<string, T[]>()) {
    this.lists = lists;
  }

  add(r: T): void {
    const list = this.lists.get(r.owner);
    if (list) list.push(r);
    else this.lists.set(r.owner, [r]);
  }

  /** The last record listed under r's owner name with r's key. */
  last(r: TlsaRecord): T | undefined {
    const list = this.lists.get(r.owner);
    if (!list) return undefined;
    if (list.length <= FEW_AT_OWNER) {
      for (let i = list.length - 1; i >= 0; i--) if (sameKey(list[i]!, r)) return list[i];
      return undefined;
    }
    let keyed = this.#keyed.get(list);
    if (!keyed) {
      keyed = new Map();
      for (const x of list) keyed.set(recordKey(x), x);
      this.#keyed.set(list, keyed);
    }
    return keyed.get(recordKey(r));
  }
}

function byProvider<T extends AtProvider>(records: readonly T[]): Map<string, AtOwner<T>> {
  const out = new Map<string, AtOwner<T>>();
  for (const r of records) {
    let at = out.get(r.provider);
    if (!at) {
      at = new AtOwner();
      out.set(r.provider, at);
    }
    at.add(r);
  }
  return out;
}

/** The lookups for one plan's records. An owner name with a space (a hand-edited state) can
 *  make the keys of records at different owners equal; then every answer is by whole keys, as
 *  the keys themselves would give it. */
export function planLookups<O extends AtProvider, D extends AtProvider>(
  listed: Map<string, readonly TlsaRecord[]>,
  owned: readonly O[],
  desired: readonly D[],
): PlanLookups<O> {
  const spaced = (r: TlsaRecord) => r.owner.includes(' ');
  let ambiguous = owned.some(spaced) || desired.some(spaced);
  for (const [owner, records] of listed) {
    if (ambiguous) break;
    ambiguous = owner.includes(' ') || records.some(spaced);
  }
  if (ambiguous) return keyLookups(listed, owned, desired);
  // Without a space in any owner name, equal keys are equal fields (sameKey) at one owner.
  const listedAt = new AtOwner(listed as Map<string, TlsaRecord[]>);
  const ownedBy = byProvider(owned);
  const desiredBy = byProvider(desired);
  return {
    listed: (r) => listedAt.last(r) !== undefined,
    owned: (provider, r) => ownedBy.get(provider)?.last(r),
    desiredAt: (provider, r) => desiredBy.get(provider)?.last(r) !== undefined,
    wanted: (r) => {
      for (const at of desiredBy.values()) if (at.last(r)) return true;
      return false;
    },
  };
}

/** The same answers from key strings, for names where keys of different owners can meet. */
function keyLookups<O extends AtProvider, D extends AtProvider>(
  listed: Map<string, readonly TlsaRecord[]>,
  owned: readonly O[],
  desired: readonly D[],
): PlanLookups<O> {
  const ownedByKey = new Map<string, Map<string, O>>();
  for (const o of owned) inner(ownedByKey, o.provider, () => new Map()).set(recordKey(o), o);
  const desiredByProvider = new Map<string, Set<string>>();
  for (const d of desired) inner(desiredByProvider, d.provider, () => new Set()).add(recordKey(d));
  // A key names its owner, so the records listed at their own owner name share one set; a
  // record a listing holds under another name is found in that name's own set.
  const listedAtOwn = new Set<string>();
  const listedElsewhere = new Map<string, Set<string>>();
  for (const [owner, records] of listed)
    for (const r of records) {
      const k = recordKey(r);
      if (r.owner === owner) listedAtOwn.add(k);
      else inner(listedElsewhere, owner, () => new Set()).add(k);
    }
  return {
    listed: (r) => {
      const k = recordKey(r);
      return listedAtOwn.has(k) || (listedElsewhere.get(r.owner)?.has(k) ?? false);
    },
    owned: (provider, r) => ownedByKey.get(provider)?.get(recordKey(r)),
    desiredAt: (provider, r) => desiredByProvider.get(provider)?.has(recordKey(r)) ?? false,
    wanted: (r) => {
      const k = recordKey(r);
      for (const set of desiredByProvider.values()) if (set.has(k)) return true;
      return false;
    },
  };
}

function inner<V>(outer: Map<string, V>, key: string, make: () => V): V {
  let v = outer.get(key);
  if (v === undefined) {
    v = make();
    outer.set(key, v);
  }
  return v;
}
