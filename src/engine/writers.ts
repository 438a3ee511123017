/** Several writers at one owner name (other hosts' tlsa, records by hand): what the cap and the
 *  TTL look like once everyone's records count. Pure: the plan, the listing and the state's
 *  facts in, warnings out. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import type { OwnerPlan } from './plan.js';
import type { OwnedRecord, TtlFact } from './state.js';

/** The records at the owner after the plan is applied, split into tlsa's and the others'. A
 *  desired record another writer published counts as the other writer's: tlsa never removes it. */
export function countAfter(
  p: OwnerPlan,
  listed: readonly TlsaRecord[],
  owned: readonly OwnedRecord[],
): { own: number; others: number } {
  const after = new Map(listed.map((r) => [recordKey(r), r]));
  for (const r of p.remove) after.delete(recordKey(r));
  for (const r of p.add) after.set(recordKey(r), r);
  const ours = new Set([
    ...owned.filter((o) => o.provider === p.provider).map(recordKey),
    ...p.add.map(recordKey),
  ]);
  let own = 0;
  for (const k of after.keys()) if (ours.has(k)) own++;
  return { own, others: after.size - own };
}

/** The cap (max_records_per_name) over every record at the owner, whoever wrote it; says who
 *  puts it over. Only when other writers have records there: tlsa's own are capped (and warned
 *  about) where its desired records are computed. */
export function capWarning(
  p: OwnerPlan,
  listed: readonly TlsaRecord[],
  owned: readonly OwnedRecord[],
  cap: number,
): string | undefined {
  // After the plan the owner holds at most what is listed plus what is added: within the cap
  // whoever wrote them (the common case, decided without building every record's key).
  if (listed.length + p.add.length <= cap) return undefined;
  const { own, others } = countAfter(p, listed, owned);
  if (!others || own + others <= cap) return undefined;
  const who =
    own >= cap ? `tlsa's ${own} alone reach it` : `the ${others} from other writers put it over`;
  return `${p.owner}: ${own + others} records at the owner, over the cap of ${cap} (max_records_per_name; some receivers, e.g. Microsoft's, handle about 12): ${own} published by tlsa here, ${others} by other writers (another host, or by hand); ${who}`;
}

/** What the authoritative servers were last seen serving the RRset with (the TTL facts). */
export function servedTtl(facts: readonly TtlFact[]): TtlFact | undefined {
  return [...facts].reverse().find((f) => f.served === 'rrset');
}

/** Another writer at the owner uses another TTL than tlsa's: every write resets the RRset's
 *  TTL (Knot, PowerDNS, whole-RRset APIs), so caches see whichever was written last. */
export function ttlMismatch(
  owner: string,
  ttl: number,
  facts: readonly TtlFact[],
): string | undefined {
  const other = [...facts]
    .reverse()
    .find((f) => f.served === 'rrset' && f.foreign && f.ttl !== ttl);
  if (!other) return undefined;
  return `${owner}: the RRset was served with TTL ${other.ttl} (${other.at}) while it held other writers' records, but tlsa publishes it with TTL ${ttl}: each write resets the RRset's TTL, so it changes with every writer; give every writer at this name the same ttl`;
}

/** Records tlsa published with another TTL than the configuration's now: the plan re-adds them
 *  with the new one (the provider then sets the RRset's TTL). */
export function ttlChangeNote(p: OwnerPlan): string | undefined {
  const old = [...new Set((p.rettl ?? []).map((x) => x.from))];
  if (!old.length) return undefined;
  return `${p.owner}: tlsa published its records there with TTL ${old.join(', ')}; the configuration says ${p.ttl}: publish re-adds them with TTL ${p.ttl} (TTL ${old.join(', ')} → ${p.ttl}), records it adds there wait 2× the larger TTL`;
}
