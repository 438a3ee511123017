/** Giving memory back between the daemon's runs. A run at 10,000 services builds a few
 *  hundred MB of short-lived objects (the configuration read, every target, the state and
 *  the zone parsed); V8 collects its old generation only when it has grown a few times over
 *  what was live at the last collection, so how much of that the process still holds when
 *  the run ends (and through the sleep, often minutes) depended on when the last collection
 *  happened: 160 to 375 MB measured. Once the run is over little is live (≈ 20 MB at 10,000
 *  services): one full collection then returns the rest to the system.
 *
 *  Node has no API for a collection; V8's `gc` function is there once the flag that exposes
 *  it is set, in a context created after that (not the main one, made at start-up). Should a
 *  Node refuse the flag, the daemon runs on as before, only without the collection. */
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

/** A full collection, when the run's objects are garbage: call it between runs. */
export function releaseRunMemory(): void {
  collector()?.();
}
