/** State records by provider and record key, for one operation on the state: with thousands of
 *  services the engine looks up every record several times per run, and a scan of the list per
 *  lookup would make a run quadratic. Pure. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';

type Keyed = { provider: string } & TlsaRecord;

/** A record's identity in the state: its provider and its key inside the RRset. */
export const stateKey = (r: Keyed): string => `${r.provider} ${recordKey(r)}`;

/** A copy of a record list to change by several upserts, with the position of each key kept in
 *  a Map built once: the list it was made from is never changed, and nothing else changes the
 *  copy (the operation that made it returns it when done). */
export class RecordDraft<T extends Keyed> {
  readonly records: T[];
  readonly #at = new Map<string, number>();

  constructor(from: readonly T[]) {
    this.records = [...from];
    from.forEach((r, i) => {
      const k = stateKey(r);
      if (!this.#at.has(k)) this.#at.set(k, i);
    });
  }

  /** The first record with r's provider and key (as a scan with findIndex would find it). */
  find(r: Keyed): T | undefined {
    const i = this.#at.get(stateKey(r));
    return i === undefined ? undefined : this.records[i];
  }

  /** Replace the first record with r's provider and key, or append r. */
  upsert(r: T): void {
    const k = stateKey(r);
    const i = this.#at.get(k);
    if (i !== undefined) this.records[i] = r;
    else {
      this.#at.set(k, this.records.length);
      this.records.push(r);
    }
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
