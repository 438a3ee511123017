/** Finding a state record by provider and record key without a scan of the whole list: with
 *  thousands of services the engine looks up every record several times per run. Pure. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';

type Keyed = { provider: string } & TlsaRecord;

interface Index {
  /** The list's length and last record when the index was last in step: a push, a splice or a
   *  filter elsewhere shows as a change. (In the engine only upsertRecord replaces records in
   *  place, and with the same key.) */
  length: number;
  last: Keyed | undefined;
  /** Position of the first record with each `provider key`. */
  at: Map<string, number>;
}

const indexes = new WeakMap<readonly Keyed[], Index>();
const keyOf = (r: Keyed) => `${r.provider} ${recordKey(r)}`;

function indexOf(list: readonly Keyed[]): Index {
  let idx = indexes.get(list);
  if (!idx || idx.length !== list.length || idx.last !== list.at(-1)) {
    const at = new Map<string, number>();
    list.forEach((r, i) => {
      const k = keyOf(r);
      if (!at.has(k)) at.set(k, i);
    });
    idx = { length: list.length, last: list.at(-1), at };
    indexes.set(list, idx);
  }
  return idx;
}

/** Position of the first record in `list` with r's provider and key, or -1 (as findIndex). */
export function findRecordIndex(list: readonly Keyed[], r: Keyed): number {
  const k = keyOf(r);
  let i = indexOf(list).at.get(k);
  // Replaced in place by other code since: build again rather than answer from a stale index.
  if (i !== undefined && (!list[i] || keyOf(list[i]!) !== k)) {
    indexes.delete(list);
    i = indexOf(list).at.get(k);
  }
  return i ?? -1;
}

/** Replace the record with r's provider and key, or append r (one lookup, index kept in step). */
export function upsertRecord<T extends Keyed>(list: T[], r: T): void {
  const i = findRecordIndex(list, r);
  if (i >= 0) {
    list[i] = r;
    const idx = indexes.get(list);
    if (idx && i === list.length - 1) idx.last = r;
    return;
  }
  list.push(r);
  const idx = indexes.get(list);
  if (idx) {
    idx.at.set(keyOf(r), list.length - 1);
    idx.length = list.length;
    idx.last = r;
  }
}
