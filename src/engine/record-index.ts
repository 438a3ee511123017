/** State records by provider and record key, for one operation on the state: with thousands of
 *  services the engine looks up every record several times per run, and a scan of the list per
 *  lookup would make a run quadratic. Pure. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';

type Keyed = { provider: string } & TlsaRecord;

/** A record's identity in the state: its provider and its key inside the RRset. The provider's
 *  name goes first with its length, as the owner's does in `recordKey`: equal keys, equal fields. */
export const keyAt = (provider: string, r: TlsaRecord): string =>
  `${provider.length}:${provider} ${recordKey(r)}`;

/** `keyAt` the record's own provider. */
export const stateKey = (r: Keyed): string => keyAt(r.provider, r);

/** Whether two records have the same `recordKey`, without building either key string: the key is
 *  made of these fields, so equal fields are equal keys. */
export function sameKey(a: TlsaRecord, b: TlsaRecord): boolean {
  return (
    a.data === b.data &&
    a.owner === b.owner &&
    a.usage === b.usage &&
    a.selector === b.selector &&
    a.matching === b.matching
  );
}

/** Up to this many records, comparing a record with each costs less than a key string each. */
const FEW = 16;

// Most lists asked about are empty (nothing to add or remove at an owner): no test made for them.
const findNone = (_r: TlsaRecord) => undefined;
const inNone = (_r: TlsaRecord) => false;

/** "Which record of this list has r's key?" (the last one, when several do), asked many times of
 *  one list: a few records are compared field by field, a longer list gets its keys once. The
 *  list must not change while the finder is in use (a short one is read at each call). */
export function keyFind<T extends TlsaRecord>(
  list: readonly T[],
): (r: TlsaRecord) => T | undefined {
  if (!list.length) return findNone;
  if (list.length > FEW) {
    const byKey = new Map<string, T>();
    for (const x of list) byKey.set(recordKey(x), x);
    return (r) => byKey.get(recordKey(r));
  }
  return (r) => {
    for (let i = list.length - 1; i >= 0; i--) if (sameKey(list[i]!, r)) return list[i];
    return undefined;
  };
}

/** "Is record r among these records, by key?" (keyFind, yes or no). */
export function keyTest(list: readonly TlsaRecord[]): (r: TlsaRecord) => boolean {
  const find = keyFind(list);
  return find === findNone ? inNone : (r) => find(r) !== undefined;
}

/** A copy of a record list to change by several upserts, with the position of each key kept in
 *  maps built once: the list it was made from is never changed, and nothing else changes the
 *  copy (the operation that made it returns it when done). The positions are kept per provider
 *  and owner, so that a lookup builds no key string. */
export class RecordDraft<T extends Keyed> {
  readonly records: T[];
  readonly #byName = new Map<string, Map<string, number[]>>();

  constructor(from: readonly T[]) {
    this.records = [...from];
    for (let i = 0; i < from.length; i++) {
      const r = from[i]!;
      if (this.#indexOf(r) === undefined) this.#positions(r).push(i);
    }
  }

  /** The first record with r's provider and key (as a scan with findIndex would find it). */
  find(r: Keyed): T | undefined {
    const i = this.#indexOf(r);
    return i === undefined ? undefined : this.records[i];
  }

  /** Replace the first record with r's provider and key, or append r. */
  upsert(r: T): void {
    const i = this.#indexOf(r);
    if (i !== undefined) {
      this.records[i] = r;
      return;
    }
    this.#positions(r).push(this.records.length);
    this.records.push(r);
  }

  #indexOf(r: Keyed): number | undefined {
    const at = this.#byName.get(r.provider)?.get(r.owner);
    if (at) for (const i of at) if (sameKey(this.records[i]!, r)) return i;
    return undefined;
  }

  #positions(r: Keyed): number[] {
    let owners = this.#byName.get(r.provider);
    if (!owners) {
      owners = new Map();
      this.#byName.set(r.provider, owners);
    }
    let at = owners.get(r.owner);
    if (!at) {
      at = [];
      owners.set(r.owner, at);
    }
    return at;
  }
}

/** The first record of `list` per provider and key, built once for the lookups of one list. */
export function firstByKey<T extends Keyed>(list: readonly T[]): Map<string, T> {
  const byKey = new Map<string, T>();
  for (const r of list) {
    const k = stateKey(r);
    if (!byKey.has(k)) byKey.set(k, r);
  }
  return byKey;
}
