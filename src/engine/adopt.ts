/** Adoption: taking ownership of records that are already published, after a lost state or a
 *  migration from hand-made records or another tool. Pure: the plan and the listing in, the
 *  records to add to the state out. Ownership is what lets tlsa retire a record later, so it is
 *  taken only where it is certain the record is one tlsa would publish (equal to a desired
 *  record) or one a tlsa wrote (the provider's marker); everything else stays foreign. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { plainRecord, type OwnerPlan } from './plan.js';
import { keyAt, stateKey } from './record-index.js';
import type { OwnedRecord, StateFile } from './state.js';

export interface Adoption {
  /** Equal to a desired record: owned from now on, `published` (it counts as live only once
   *  every authoritative server has been seen serving it and 2×TTL has passed, as for a new one). */
  desired: OwnedRecord[];
  /** Written by a tlsa (marker) but no longer desired: owned and `retiring`, so the normal rules
   *  remove it (grace, and a live probe that no address still presents a chain it matches). */
  marked: OwnedRecord[];
  /** At the owner names, neither desired nor marked: left alone. */
  foreign: TlsaRecord[];
}

/** `marked`: recordKey()s of the records that carry tlsa's marker (zone-file `; tlsa:managed`,
 *  Cloudflare comment), per provider name. */
export function adoptionFor(
  plan: OwnerPlan[],
  marked: Map<string, Set<string>>,
  state: StateFile,
  now: Date,
  by: string,
): Adoption {
  const stamp = now.toISOString();
  const owned = new Set(state.records.map(stateKey));
  const out: Adoption = { desired: [], marked: [], foreign: [] };
  for (const p of plan) {
    const taken = new Set<string>();
    for (const k of p.keep) {
      const key = keyAt(p.provider, k);
      if (owned.has(key) || taken.has(key)) continue;
      taken.add(key);
      out.desired.push({
        ...plainRecord(k),
        provider: p.provider,
        service: k.service,
        ttl: k.ttl,
        status: 'published',
        addedAt: stamp,
        publishedAt: stamp,
        by,
      });
    }
    // A marked record belongs to the service that publishes at this owner name (the first one,
    // when several share it: the live probe before removal covers every address of the host).
    const service = p.keep[0]?.service ?? p.add[0]?.service;
    for (const f of p.foreign) {
      const key = keyAt(p.provider, f);
      if (
        marked.get(p.provider)?.has(recordKey(f)) &&
        service &&
        !owned.has(key) &&
        !taken.has(key)
      ) {
        taken.add(key);
        out.marked.push({
          ...plainRecord(f),
          provider: p.provider,
          service,
          ttl: p.ttl,
          status: 'retiring',
          addedAt: stamp,
          publishedAt: stamp,
          retiringSince: stamp,
          by,
        });
      } else out.foreign.push(f);
    }
  }
  return out;
}
