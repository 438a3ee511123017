/** State records by provider and record key, for one operation on the state: with thousands of
 *  services the engine looks up every record several times per run, and a scan of the list per
 *  lookup would make a run quadratic. Pure. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';

type Keyed = { provider: string } & TlsaRecord;

/** A record's identity in the state: its provider and its key inside the RRset. */
export const stateKey = (r: Keyed): string => `${r.provider} ${recordKey(r)}`;

/** Whether two records have the same `recordKey`, without building either key string: equal
 *  fields are equal keys. Usage, selector and matching are numbers (no blank in their text), so
 *  after the same owner unequal fields make unequal keys; different owners can still join into
 *  one key only when one holds a space (a hand-edited state), and then the keys are compared. */
export function sameKey(a: TlsaRecord, b: TlsaRecord): boolean {
  if (
    a.data === b.data &&
    a.owner === b.owner &&
    a.usage === b.usage &&
    a.selector === b.selector &&
    a.matching === b.matching
  )
    return true;
  return a.owner !== b.owner && (a.owner.includes(' ') || b.owner.includes(' '))
    ? recordKey(a) === recordKey(b)
    : false;
}

/** Provider or owner with a space: `stateKey`s of different (provider, owner) pairs can meet. */
const ambiguous = (r: Keyed) => r.provider.includes(' ') || r.owner.includes(' ');

/** A copy of a record list to change by several upserts, with the position of each key kept in
 *  maps built once: the list it was made from is never changed, and nothing else changes the
 *  copy (the operation that made it returns it when done). The positions are kept per provider
 *  and owner, so that a lookup builds no key string; a name with a space turns the draft to
 *  whole `stateKey`s, where such names can collide exactly as the keys do. */
export class RecordDraft<T extends Keyed> {
  readonly records: T[];
  #byName: Map<string, Map<string, number[]>> | undefined = new Map();
  #byKey: Map<string, number> | undefined;

  constructor(from: readonly T[]) {
    this.records = [...from];
    for (let i = 0; i < from.length; i++) {
      const r = from[i]!;
      if (ambiguous(r)) {
        this.#toKeys();
        return;
      }
      if (this.#inName(r) === undefined) this.#positions(r).push(i);
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
    const at = this.records.length;
    this.records.push(r);
    if (this.#byKey) this.#byKey.set(stateKey(r), at);
    else this.#positions(r).push(at);
  }

  #indexOf(r: Keyed): number | undefined {
    if (!this.#byKey && ambiguous(r)) this.#toKeys();
    return this.#byKey ? this.#byKey.get(stateKey(r)) : this.#inName(r);
  }

  #inName(r: Keyed): number | undefined {
    const at = this.#byName!.get(r.provider)?.get(r.owner);
    if (at) for (const i of at) if (sameKey(this.records[i]!, r)) return i;
    return undefined;
  }

  #positions(r: Keyed): number[] {
    let owners = this.#byName!.get(r.provider);
    if (!owners) {
      owners = new Map();
      this.#byName!.set(r.provider, owners);
    }
    let at = owners.get(r.owner);
    if (!at) {
      at = [];
      owners.set(r.owner, at);
    }
    return at;
  }

  /** Every record keeps its position: the first one per key is the one an upsert replaced in
   *  place, and a new key was appended after every earlier one. */
  #toKeys(): void {
    this.#byName = undefined;
    this.#byKey = firstIndexByKey(this.records);
  }
}

function firstIndexByKey(list: readonly Keyed[]): Map<string, number> {
  const at = new Map<string, number>();
  list.forEach((r, i) => {
    const k = stateKey(r);
    if (!at.has(k)) at.set(k, i);
  });
  return at;
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
