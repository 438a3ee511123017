/** The plan's questions about records by their key (is it listed at its owner, which owned
 *  record has it, is it desired), answered without a key string per record: a fleet's plan
 *  asks them for tens of thousands of records, and building, hashing and dropping a
 *  ~100-character key for each was most of the plan's time and garbage. Records are grouped
 *  by owner name and compared field by field there (a handful per owner); an owner holding
 *  many gets key strings once. Pure. */
import type { TlsaRecord } from '../tlsa/record.js';
import { keyFind } from './record-index.js';

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

/** Lists of records by owner name (listed under it, or with it as their owner); the last
 *  record with a key is found by keyFind, made once per list when first asked. */
class AtOwner<T extends TlsaRecord> {
  readonly lists: Map<string, T[]>;
  #finders = new Map<string, (r: TlsaRecord) => T | undefined>();

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
    let find = this.#finders.get(r.owner);
    if (!find) {
      const list = this.lists.get(r.owner);
      if (!list) return undefined;
      find = keyFind(list);
      this.#finders.set(r.owner, find);
    }
    return find(r);
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

/** The lookups for one plan's records. Keys cannot collide (recordKey), so equal keys are
 *  equal fields at one owner name, and each question is asked at the record's own owner. */
export function planLookups<O extends AtProvider, D extends AtProvider>(
  listed: Map<string, readonly TlsaRecord[]>,
  owned: readonly O[],
  desired: readonly D[],
): PlanLookups<O> {
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
