/** The plan: a pure diff, per owner name, of desired records against what the provider lists,
 *  restricted to records this tool owns (state). Nothing here does I/O. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { groupBy } from '../util/group-by.js';
import type { DesiredRecord } from './desired.js';
import type { OwnedRecord, TtlRaise } from './state.js';
import { planLookups } from './plan-lookups.js';
import { keyTest } from './record-index.js';

/** A record as providers take it: the owner and the rdata, nothing of tlsa's bookkeeping. */
export function plainRecord(r: TlsaRecord): TlsaRecord {
  return {
    owner: r.owner,
    usage: r.usage,
    selector: r.selector,
    matching: r.matching,
    data: r.data,
  };
}

export interface TargetRecord extends DesiredRecord {
  provider: string;
  service: string;
  ttl: number;
  /** Set by the plan when the provider publishes a higher TTL than the configured one. */
  ttlRaise?: TtlRaise;
}

export interface OwnerPlan {
  owner: string;
  provider: string;
  /** The TTL tlsa writes at the owner and its waits count from: the configured one, or the one
   *  the provider publishes instead (effectiveTtl). */
  ttl: number;
  /** Why `ttl` is not the configured TTL (the provider's reason); absent when it is. */
  ttlWhy?: string;
  /** Desired, not at the provider: publish now. */
  add: TargetRecord[];
  /** Owned, retiring, grace passed (or a removal that was interrupted): remove now. */
  remove: OwnedRecord[];
  /** Desired and already there. */
  keep: TargetRecord[];
  /** The part of `keep` tlsa does not own (published by hand, by another writer, or before a
   *  lost state): never removed by tlsa unless `tlsa adopt` takes it over. */
  unowned: TargetRecord[];
  /** Owned, no longer desired: start (or continue) the grace period; removed after `due`. */
  retiring: { record: OwnedRecord; since: Date; due: Date }[];
  /** At the provider, not ours, not desired: left alone. */
  foreign: TlsaRecord[];
  /** Owned and published per state but missing at the provider (someone deleted it). */
  drift: TargetRecord[];
  /** The part of `add` already at the provider, owned, published with another TTL (`ttl:`
   *  changed): re-added, which sets the RRset's TTL. Always set by planOwners; optional for
   *  plans built by hand. */
  rettl?: { record: TargetRecord; from: number }[];
}

export interface PlanInput {
  desired: TargetRecord[];
  /** What the provider lists, per owner name. */
  listed: Map<string, TlsaRecord[]>;
  owned: OwnedRecord[];
  now: Date;
  /** Grace after a record stops being needed, in seconds; default the RRset TTL. */
  graceFor?: (r: OwnedRecord) => number;
  /** The TTL the provider publishes a desired record with (deSEC's minimum may raise the one
   *  asked for); default the record's own. */
  effectiveTtl?: (r: TargetRecord) => number;
  /** Why the provider publishes another TTL than the record's own (shown in the plan). */
  ttlWhy?: (r: TargetRecord) => string | undefined;
  /** The same in a few words (the provider's cause), for the lines that name a wait. */
  ttlCause?: (r: TargetRecord) => string | undefined;
}

export function planOwners(input: PlanInput): OwnerPlan[] {
  // Every lookup below goes through a Map (per provider and owner name, no "provider key"
  // strings): the plan stays linear in the number of records, and light on garbage, for
  // fleets of thousands of names.
  const made: OwnerPlan[] = [];
  const plansAt = new Map<string, OwnerPlan[]>();
  // Records come owner by owner: the plan of the last record is nearly always the next one's.
  let last: OwnerPlan | undefined;
  const get = (owner: string, provider: string, ttl: number): OwnerPlan => {
    if (last && last.owner === owner && last.provider === provider) return last;
    last = find(owner, provider, ttl);
    return last;
  };
  const find = (owner: string, provider: string, ttl: number): OwnerPlan => {
    const here = plansAt.get(owner);
    let p = here?.find((x) => x.provider === provider);
    if (!p) {
      p = {
        owner,
        provider,
        ttl,
        add: [],
        remove: [],
        keep: [],
        unowned: [],
        retiring: [],
        foreign: [],
        drift: [],
        rettl: [],
      };
      made.push(p);
      if (here) here.push(p);
      else plansAt.set(owner, [p]);
    }
    return p;
  };
  // Keys are compared at their owner name, field by field (planLookups): no key string per
  // record, which at tens of thousands of records was most of the plan's time and garbage.
  const look = planLookups(input.listed, input.owned, input.desired);
  // A copy only where the provider changes the TTL: the plan's records are otherwise the
  // desired ones themselves (nothing changes either).
  const ttlWhy = new Map<TargetRecord, string>();
  const desired = input.desired.map((d) => {
    const ttl = input.effectiveTtl?.(d) ?? d.ttl;
    if (ttl === d.ttl) return d;
    const cause = input.ttlCause?.(d);
    const out: TargetRecord =
      ttl > d.ttl
        ? { ...d, ttl, ttlRaise: { from: d.ttl, ...(cause ? { cause } : {}) } }
        : { ...d, ttl };
    const why = input.ttlWhy?.(d);
    if (why) ttlWhy.set(out, why);
    return out;
  });
  for (const d of desired) {
    const p = get(d.owner, d.provider, d.ttl);
    if (ttlWhy.size && !p.ttlWhy && p.ttl === d.ttl && ttlWhy.has(d)) p.ttlWhy = ttlWhy.get(d)!;
    const present = look.listed(d);
    const owned = look.owned(d.provider, d);
    if (present && owned && owned.ttl !== d.ttl) {
      p.add.push(d);
      p.rettl = [...(p.rettl ?? []), { record: d, from: owned.ttl }];
    } else if (present) {
      p.keep.push(d);
      if (!owned) p.unowned.push(d);
    } else {
      p.add.push(d);
      if (owned?.status === 'published') p.drift.push(d);
    }
  }
  for (const o of input.owned) {
    if (look.desiredAt(o.provider, o)) continue;
    if (!look.listed(o)) continue; // already gone: the executor drops it from the state
    const p = get(o.owner, o.provider, o.ttl);
    if (o.status === 'removing') {
      p.remove.push(o);
      continue;
    }
    const since = o.retiringSince ? new Date(o.retiringSince) : input.now;
    const due = new Date(since.getTime() + (input.graceFor?.(o) ?? o.ttl) * 1000);
    if (due.getTime() <= input.now.getTime() && o.status === 'retiring') p.remove.push(o);
    else p.retiring.push({ record: o, since, due });
  }
  const foreignKeys = new Map<OwnerPlan, Set<string>>();
  for (const [owner, records] of input.listed) {
    const plans = plansAt.get(owner) ?? [];
    records.forEach((r) => {
      // Wanted first: nearly every listed record is, and then its owner is not looked up.
      if (look.wanted(r) || plans.some((p) => look.owned(p.provider, r) !== undefined)) return;
      const k = recordKey(r);
      for (const p of plans) {
        const seen = foreignKeys.get(p) ?? new Set<string>();
        foreignKeys.set(p, seen);
        if (seen.has(k)) continue;
        seen.add(k);
        p.foreign.push(r);
      }
    });
  }
  if (made.length < 2) return made;
  const collator = ordering();
  return made.sort(
    (a, b) => collator.compare(a.owner, b.owner) || collator.compare(a.provider, b.provider),
  );
}

// The same order as String#localeCompare (which builds a collator on every call); built on the
// first sort, not when the module loads (ICU costs a cold start ~10 ms).
let collatorMade: Intl.Collator | undefined;
const ordering = (): Intl.Collator => {
  collatorMade ??= new Intl.Collator();
  return collatorMade;
};

/** The rollover rule "a served chain always matches a published record" as a last guard:
 *  after the plan, every served chain still matches a record at each of its owner names.
 *  Returns the violations (empty when safe). */
export function servedChainViolations(
  plan: OwnerPlan[],
  listed: Map<string, TlsaRecord[]>,
  desired: TargetRecord[],
): string[] {
  const problems: string[] = [];
  const desiredAt = groupBy(desired, (d) => d.owner);
  // One set emptied per owner, not one made per owner (thousands of owners in a fleet).
  const matched = new Set<string>();
  for (const p of plan) {
    const atOwner = desiredAt.get(p.owner) ?? [];
    if (!atOwner.some((d) => d.chains.length)) continue; // no served chain here: nothing to check
    matched.clear();
    const here = listed.get(p.owner) ?? [];
    // What the owner holds after the plan: the listing less what it removes, plus what it adds.
    const added = keyTest(p.add);
    const wasListed = keyTest(here);
    const removed = keyTest(p.remove);
    const holds = (d: TargetRecord) => added(d) || (wasListed(d) && !removed(d));
    // The chains some live record matches, then each chain none does (once, in first-seen order).
    for (const d of atOwner) if (holds(d)) for (const c of d.chains) matched.add(c);
    for (const d of atOwner)
      for (const chain of d.chains)
        if (!matched.has(chain)) {
          matched.add(chain);
          problems.push(`${p.owner}: no record would match the chain served from ${chain}`);
        }
  }
  return problems;
}
