/** Step: from the configuration, the state and what the providers list to the plan. */
import type { DnsProvider, PublishedTtl } from '../../../providers/index.js';
import type { LoadedConfig } from '../../config/load.js';
import { UnsafeError } from '../../errors.js';
import type { TlsaRecord } from '../../tlsa/record.js';
import { groupBy, innerMap } from '../../util/group-by.js';
import { recentStrings } from '../../util/string-pool.js';
import { graceWait } from '../lifecycle.js';
import { planOwners, servedChainViolations, type OwnerPlan, type TargetRecord } from '../plan.js';
import { asProviderError, listAll } from '../provider-calls.js';
import { createProviders } from '../providers.js';
import type { Computed, RunOptions } from '../run.js';
import type { OwnedRecord, StateFile } from '../state.js';
import { factsAt } from '../state-ops.js';
import { computeTargets, selectServices, type Targets } from '../targets.js';
import { capWarning, ttlChangeNote, ttlMismatch } from '../writers.js';

export async function computePlan(
  config: LoadedConfig,
  opts: RunOptions,
  state: StateFile,
  providers?: Map<string, DnsProvider>,
  /** Computed already for this run (and `now`): chains and catalogs are not read again. */
  computed?: Targets,
): Promise<Computed> {
  const now = opts.now ?? new Date();
  const names = selectServices(config, opts.services);
  const targets = computed ?? computeTargets(config, names, now);
  const chosen = new Set(names);
  // Records of services that were removed from the configuration are still ours to retire,
  // unless this run is limited to named services.
  const known = new Set(Object.keys(config.raw.services));
  const owned = state.records.filter(
    (r) =>
      chosen.has(r.service) ||
      (!opts.services?.length && !known.has(r.service) && config.raw.providers[r.provider]),
  );
  const ownersByProvider = new Map<string, Set<string>>();
  for (const list of [targets.records, owned])
    for (const r of list) {
      if (!config.raw.providers[r.provider]) continue;
      if (!ownersByProvider.has(r.provider)) ownersByProvider.set(r.provider, new Set());
      ownersByProvider.get(r.provider)!.add(r.owner);
    }
  const prov =
    providers ?? opts.providers ?? (await createProviders(config, ownersByProvider.keys()));
  for (const name of ownersByProvider.keys())
    if (!prov.has(name)) for (const [k, v] of await createProviders(config, [name])) prov.set(k, v);
  const effective = await effectiveTtls(prov, targets.records);
  // The digests listed are mostly those of the desired records: listed records share their
  // strings (listAll), not copies cut from the provider's answer.
  const shareData = recentStrings(16);
  for (const r of targets.records) shareData(r.data);
  const listedByProvider = await listAll(prov, ownersByProvider, shareData);
  const plan: OwnerPlan[] = [];
  const listedAll = new Map<string, TlsaRecord[]>();
  for (const [provider, listed] of listedByProvider) {
    plan.push(
      ...planOwners({
        desired: targets.records.filter((r) => r.provider === provider),
        listed,
        owned: owned.filter((r) => r.provider === provider),
        now,
        graceFor: (r) =>
          graceWait(r, config.raw.services[r.service]?.grace_s, factsAt(state, r.owner)).ttl,
        effectiveTtl: effective.ttl,
        ttlWhy: effective.why,
        ttlCause: effective.cause,
      }),
    );
    for (const [owner, recs] of listed) listedAll.set(owner, recs);
  }
  const violations = servedChainViolations(plan, listedAll, targets.records);
  if (violations.length)
    throw new UnsafeError(
      `internal safety check failed, nothing changed: ${violations.join('; ')}`,
    );
  // Other writers at the same owner: their records count for the cap, their TTL resets ours.
  // Only records at the owner's names can count (keys include the owner): no scan per owner.
  // Each check only where it can say something (each returns nothing otherwise): an owner
  // within the cap needs no count of whose records it holds, no TTL seen no comparison.
  let ownedAt: Map<string, OwnedRecord[]> | undefined;
  const cap = config.raw.max_records_per_name;
  const warned = new Set(targets.warnings);
  const none: never[] = [];
  const warn = (w: string | undefined) => {
    if (w && !warned.has(w)) {
      warned.add(w);
      targets.warnings.push(w);
    }
  };
  for (const p of plan) {
    const listed = listedAll.get(p.owner) ?? none;
    if (listed.length + p.add.length > cap) {
      ownedAt ??= groupBy(owned, (o) => o.owner);
      warn(capWarning(p, listed, ownedNear(p.owner, listed, ownedAt) ?? none, cap));
    }
    const facts = factsAt(state, p.owner);
    if (facts.length) warn(ttlMismatch(p.owner, p.ttl, facts));
    if (p.rettl?.length) warn(ttlChangeNote(p));
  }
  return { targets, plan, listed: listedAll, state, providers: prov };
}

/** The state's records at the owner and at the other names its listing holds, in that order;
 *  the owner's own list where the listing holds only the owner (no copy per owner). */
function ownedNear(
  owner: string,
  listed: readonly TlsaRecord[],
  ownedAt: Map<string, OwnedRecord[]>,
): readonly OwnedRecord[] | undefined {
  if (listed.every((r) => r.owner === owner)) return ownedAt.get(owner);
  const near = [...new Set([owner, ...listed.map((r) => r.owner)])];
  return near.flatMap((o) => ownedAt.get(o) ?? []);
}

/** A provider that publishes another TTL than asked (deSEC's minimum, a zone file's foreign
 *  line): tlsa writes with it and waits count from it; `why` says where it comes from. */
async function effectiveTtls(
  providers: Map<string, DnsProvider>,
  records: readonly TargetRecord[],
): Promise<{
  ttl: (r: TargetRecord) => number;
  why: (r: TargetRecord) => string | undefined;
  cause: (r: TargetRecord) => string | undefined;
}> {
  // Asked once per provider, owner and TTL: per provider a map of owners, per owner its few
  // TTLs and their answers in a list (nearly always one). No key string per record, and no map
  // per owner: 10,000 of them were ≈ 3 MB held through the whole run.
  type Answer = { ttl: number } & Partial<PublishedTtl>;
  type Asked = { ttl: number; answer: Answer };
  const got = new Map<string, Map<string, Asked[]>>();
  const asAnswer = (a: number | PublishedTtl): Answer => (typeof a === 'number' ? { ttl: a } : a);
  const askedAt = (list: readonly Asked[] | undefined, ttl: number) => {
    if (list) for (const a of list) if (a.ttl === ttl) return a;
    return undefined;
  };
  // Providers that answer many at once are asked once, after the loop, in first-seen order.
  const batched = new Map<DnsProvider, { owner: string; ttl: number; at: Asked }[]>();
  for (const r of records) {
    const p = providers.get(r.provider);
    if (!p?.effectiveTtl && !p?.effectiveTtlMany) continue;
    const byOwner = innerMap(got, r.provider);
    let list = byOwner.get(r.owner);
    if (askedAt(list, r.ttl)) continue;
    if (!list) {
      list = [];
      byOwner.set(r.owner, list);
    }
    if (p.effectiveTtlMany) {
      const asks = batched.get(p) ?? [];
      batched.set(p, asks);
      // Asked: the answer replaces this one below.
      const at: Asked = { ttl: r.ttl, answer: { ttl: r.ttl } };
      list.push(at);
      asks.push({ owner: r.owner, ttl: r.ttl, at });
      continue;
    }
    let answer: number | PublishedTtl;
    try {
      answer = await p.effectiveTtl!(r.owner, r.ttl);
    } catch (e) {
      throw asProviderError(p.name, e);
    }
    list.push({ ttl: r.ttl, answer: asAnswer(answer) });
  }
  for (const [p, asks] of batched) {
    let answers: (number | PublishedTtl)[];
    try {
      answers = await p.effectiveTtlMany!(asks);
    } catch (e) {
      throw asProviderError(p.name, e);
    }
    asks.forEach((a, i) => {
      a.at.answer = asAnswer(answers[i]!);
    });
  }
  // Asked record by record, owner by owner: the last answer is nearly always the next one.
  let last: { provider: string; owner: string; ttl: number; answer?: Answer } | undefined;
  const at = (r: TargetRecord) => {
    if (last && last.owner === r.owner && last.ttl === r.ttl && last.provider === r.provider)
      return last.answer;
    const answer = askedAt(got.get(r.provider)?.get(r.owner), r.ttl)?.answer;
    last = { provider: r.provider, owner: r.owner, ttl: r.ttl, answer };
    return answer;
  };
  return { ttl: (r) => at(r)?.ttl ?? r.ttl, why: (r) => at(r)?.why, cause: (r) => at(r)?.cause };
}
