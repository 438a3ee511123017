/** Giving memory back between the daemon's runs. A run at 10,000 services builds a few
 *  hundred MB of short-lived objects (the configuration read, every target, the state and
 *  the zone parsed); V8 collects its old generation only when that has grown a few times over
 *  what was live at the last collection, so how much of it the process still held when the
 *  run ended, and through the sleep (often minutes), depended on when the last collection
 *  happened: 226 to 375 MB measured. Once the run is over little is live (≈ 25 MB at 10,000
 *  services): one full collection that also compacts (moves the survivors together, so that
 *  the pages they were spread over can be returned) brings the process to ≈ 75–85 MB.
 *
 *  Node has no API for a collection: V8's `gc` function exists once the flag that exposes it
 *  is set, in a context created after that (not the main one, made at start-up). Compaction
 *  is switched on for that one collection only (V8 otherwise moves a few MB per collection).
 *  Should a Node lack either, the daemon runs on as before, without the collection. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let collect: (() => void) | undefined;
let looked = false;

function collector(): (() => void) | undefined {
  if (looked) return collect;
  looked = true;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined');
    if (typeof gc === 'function') collect = () => gc();
  } catch {
    collect = undefined;
  }
  return collect;
}

/** A full, compacting collection, when what a run built is garbage: call it between runs. */
export function releaseRunMemory(): void {
  const gc = collector();
  if (!gc) return;
  // First without moving anything: the pages only garbage was on are given back. Compacting
  // at once would copy the survivors to new pages while every page the run filled was still
  // held (+5–7 MB over the run's own peak at 10,000 services).
  gc();
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/** A run's peak kept near what it holds. A run at 10,000 services holds ≈ 45–55 MB at its
 *  fullest (and Node itself ≈ 50 MB outside its heap), yet the process peaked at 175–205 MB
 *  once the run held no more than that: V8 let the young generation grow to 2 × 16 MB while
 *  the configuration was read, and after each full collection let the old generation grow
 *  well past what had survived before collecting again, while a run promotes tens of MB that
 *  die soon after (the zone file's lines, the copies a parse makes). For the daemon, which
 *  keeps running beside the services it serves, a smaller heap is worth the extra
 *  collections (≈ 3–10 % more CPU a run at 10,000 services): the young generation stays at its
 *  start size, and the old one is collected once it has grown by 20 % over what survived
 *  (≈ 120–135 MB at the peak). Set before the configuration is read, for the whole process:
 *  V8 reads both flags when it resizes the heap. */
export function keepHeapSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString('--heap-growing-percent=20');
}
