/** The plan: a pure diff, per owner name, of desired records against what the provider lists,
 *  restricted to records this tool owns (state). Nothing here does I/O. */
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { groupBy } from '../util/group-by.js';
import type { DesiredRecord } from './desired.js';
import type { OwnedRecord } from './state.js';

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
}

export function planOwners(input: PlanInput): OwnerPlan[] {
  const owners = new Map<string, OwnerPlan>();
  const get = (owner: string, provider: string, ttl: number): OwnerPlan => {
    let p = owners.get(`${provider} ${owner}`);
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
      owners.set(`${provider} ${owner}`, p);
    }
    return p;
  };
  // Every lookup below goes through a Map or Set (keys built once per record): the plan stays
  // linear in the number of records for fleets of thousands of names.
  const keyOf = memoKey();
  const ownedByKey = new Map(input.owned.map((o) => [`${o.provider} ${keyOf(o)}`, o]));
  const ttlWhy = new Map<TargetRecord, string>();
  const desired = input.desired.map((d) => {
    const ttl = input.effectiveTtl?.(d) ?? d.ttl;
    const why = ttl !== d.ttl ? input.ttlWhy?.(d) : undefined;
    const out = { ...d, ttl };
    if (why) ttlWhy.set(out, why);
    return out;
  });
  const desiredKeys = new Set(desired.map((d) => `${d.provider} ${keyOf(d)}`));
  const listedKeys = new Map<string, Set<string>>();
  for (const [owner, records] of input.listed) listedKeys.set(owner, new Set(records.map(keyOf)));
  const isListed = (r: TlsaRecord) => listedKeys.get(r.owner)?.has(keyOf(r)) ?? false;
  for (const d of desired) {
    const p = get(d.owner, d.provider, d.ttl);
    if (!p.ttlWhy && p.ttl === d.ttl && ttlWhy.has(d)) p.ttlWhy = ttlWhy.get(d)!;
    const present = isListed(d);
    const owned = ownedByKey.get(`${d.provider} ${keyOf(d)}`);
    if (present && owned && owned.ttl !== d.ttl) {
      p.add.push(d);
      p.rettl = [...(p.rettl ?? []), { record: d, from: owned.ttl }];
    } else if (present) {
      p.keep.push(d);
      if (!owned) p.unowned.push(d);
    } else {
      p.add.push(d);
      if (ownedByKey.get(`${d.provider} ${keyOf(d)}`)?.status === 'published') p.drift.push(d);
    }
  }
  for (const o of input.owned) {
    if (desiredKeys.has(`${o.provider} ${keyOf(o)}`)) continue;
    if (!isListed(o)) continue; // already gone: the executor drops it from the state
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
  const plansAt = groupBy(owners.values(), (p) => p.owner);
  const wantedKeys = new Set(input.desired.map(keyOf));
  const foreignKeys = new Map<OwnerPlan, Set<string>>();
  for (const [owner, records] of input.listed) {
    const plans = plansAt.get(owner) ?? [];
    for (const r of records) {
      const k = keyOf(r);
      const ours = plans.some((p) => ownedByKey.has(`${p.provider} ${k}`));
      if (ours || wantedKeys.has(k)) continue;
      for (const p of plans) {
        const seen = foreignKeys.get(p) ?? new Set<string>();
        foreignKeys.set(p, seen);
        if (seen.has(k)) continue;
        seen.add(k);
        p.foreign.push(r);
      }
    }
  }
  const plans = [...owners.values()];
  if (plans.length < 2) return plans;
  const collator = ordering();
  return plans.sort(
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

/** recordKey, built once per record object for one computation (a Map, not a WeakMap: with
 *  tens of thousands of records a WeakMap's entries make each garbage collection slower). */
function memoKey(): (r: TlsaRecord) => string {
  const keys = new Map<TlsaRecord, string>();
  return (r) => {
    const known = keys.get(r);
    if (known !== undefined) return known;
    const k = recordKey(r);
    keys.set(r, k);
    return k;
  };
}

/** The rollover rule "a served chain always matches a published record" as a last guard:
 *  after the plan, every served chain still matches a record at each of its owner names.
 *  Returns the violations (empty when safe). */
export function servedChainViolations(
  plan: OwnerPlan[],
  listed: Map<string, TlsaRecord[]>,
  desired: TargetRecord[],
): string[] {
  const problems: string[] = [];
  const keyOf = memoKey();
  const desiredAt = groupBy(desired, (d) => d.owner);
  for (const p of plan) {
    const after = new Set((listed.get(p.owner) ?? []).map(keyOf));
    for (const r of p.remove) after.delete(keyOf(r));
    for (const r of p.add) after.add(keyOf(r));
    const atOwner = desiredAt.get(p.owner) ?? [];
    const chains = new Set(atOwner.flatMap((d) => d.chains));
    for (const chain of chains) {
      const ok = atOwner.some((d) => d.chains.includes(chain) && after.has(keyOf(d)));
      if (!ok) problems.push(`${p.owner}: no record would match the chain served from ${chain}`);
    }
  }
  return problems;
}
