/** A lineage's next renewal in `--json` outputs (`renew`, `status`; json-contract.ts
 *  `nextRenewal`), field by field. */
import type { NextRenewal } from '../acme/renewal-due.js';

export function nextRenewalJson(n: NextRenewal) {
  return {
    at: n.at.toISOString(),
    source: n.source,
    ...(n.windowStart ? { windowStart: n.windowStart.toISOString() } : {}),
    ...(n.windowEnd ? { windowEnd: n.windowEnd.toISOString() } : {}),
    ...(n.nextPollAt ? { nextPollAt: n.nextPollAt.toISOString() } : {}),
    ...(n.lastError ? { lastError: n.lastError } : {}),
    ...(n.staleSchedule ? { staleSchedule: true } : {}),
  };
}
