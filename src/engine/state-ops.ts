/** Pure operations on the state: each takes a state and returns the new one, so that the
 *  engine's steps only decide when to write it (write-ahead intents, confirmations). Apart
 *  from state.ts, which reads and writes the file, because the TTL rule (lifecycle.ts) builds
 *  on the state's types. */
import { parseRdata } from '../tlsa/presentation.js';
import { rdataText, recordKey, type TlsaRecord } from '../tlsa/record.js';
import { groupBy } from '../util/group-by.js';
import { addTtlFact, observedRecord } from './lifecycle.js';
import type { OwnerPlan, TargetRecord } from './plan.js';
import { firstByKey, keyTest, RecordDraft, stateKey } from './record-index.js';
import type { OwnedRecord, StateFile, TtlFact, TtlRaise } from './state.js';

type AtProvider = { provider: string } & TlsaRecord;

/** Lookups of one state list, each built on its first use and once per list: the steps ask
 *  about every record, and the operations below never change a list in place (each returns a
 *  new one), so a list's lookups never go stale. */
interface Lookups {
  byKey?: Map<string, OwnedRecord>;
  keys?: Set<string>;
  byOwner?: Map<string, OwnedRecord[]>;
}
const lookups = new WeakMap<readonly OwnedRecord[], Lookups>();
function lookupsOf(records: readonly OwnedRecord[]): Lookups {
  let l = lookups.get(records);
  if (!l) {
    l = {};
    lookups.set(records, l);
  }
  return l;
}

export function findOwned(state: StateFile, r: AtProvider): OwnedRecord | undefined {
  const l = lookupsOf(state.records);
  l.byKey ??= firstByKey(state.records);
  return l.byKey.get(stateKey(r));
}

/** Every record tlsa owns at the owner name, whatever the provider. */
export function ownsKey(state: StateFile, r: TlsaRecord): boolean {
  const l = lookupsOf(state.records);
  l.keys ??= new Set(state.records.map(recordKey));
  return l.keys.has(recordKey(r));
}

/** The state's records at an owner name. */
export function ownedAt(state: StateFile, owner: string): readonly OwnedRecord[] {
  const l = lookupsOf(state.records);
  l.byOwner ??= groupBy(state.records, (r) => r.owner);
  return l.byOwner.get(owner) ?? [];
}

export function withRecord(state: StateFile, rec: OwnedRecord): StateFile {
  const draft = new RecordDraft(state.records);
  draft.upsert(rec);
  return { ...state, records: draft.records };
}

/** Several records at once: one pass over the state, however many go. */
function without(records: readonly OwnedRecord[], gone: readonly AtProvider[]): OwnedRecord[] {
  const keys = new Set(gone.map(stateKey));
  return records.filter((r) => !keys.has(stateKey(r)));
}

export const factsAt = (state: StateFile, owner: string): TtlFact[] => state.ttls?.[owner] ?? [];

/** What the authoritative servers answered at an owner: the largest TTL, what it was of, and the
 *  TLSA records they served. */
export interface ServedAnswer {
  ttl: number;
  of: TtlFact['served'];
  records: TlsaRecord[];
}

const otherRecord = (owner: string, rdata: string): TlsaRecord => ({ owner, ...parseRdata(rdata) });

/** Remember a TTL the servers answered with at `owner` (see lifecycle.ts for how it counts). */
export function withTtlFact(
  state: StateFile,
  owner: string,
  served: ServedAnswer,
  source: TtlFact['source'],
  at: Date,
): StateFile {
  const foreign = served.records.some((x) => !ownsKey(state, x));
  const fact: TtlFact = {
    ttl: served.ttl,
    at: at.toISOString(),
    source,
    served: served.of,
    ...(foreign ? { foreign: true } : {}),
  };
  const others = Object.entries(state.observed?.[owner] ?? {}).map(([rdata, seenAt]) =>
    observedRecord(otherRecord(owner, rdata), seenAt, served.ttl),
  );
  const facts = addTtlFact(factsAt(state, owner), fact, [...ownedAt(state, owner), ...others]);
  return { ...state, ttls: { ...state.ttls, [owner]: facts } };
}

/** The other writers' records at `owner` and when tlsa first saw each (rdata → time), as a
 *  new state: an owner with none left disappears from the map. */
function withObservedAt(state: StateFile, owner: string, at: Record<string, string>): StateFile {
  const { [owner]: _before, ...rest } = state.observed ?? {};
  return { ...state, observed: Object.keys(at).length ? { ...rest, [owner]: at } : rest };
}

/** When records `asked` about were first seen served (on every authoritative server, or listed
 *  by the provider where propagation is not checked): tlsa's own get `seenAt`, another writer's
 *  an entry in `observed`; a first sighting is never moved. Another writer's record no longer
 *  seen starts over. */
export function withSeen(
  state: StateFile,
  owner: string,
  asked: readonly TlsaRecord[],
  seen: readonly TlsaRecord[],
  at: Date,
  whose: 'own' | 'other',
): StateFile {
  const seenAt = at.toISOString();
  const wasSeen = keyTest(seen);
  if (whose === 'own') {
    const draft = new RecordDraft(state.records);
    let changed = false;
    for (const r of asked.filter(wasSeen)) {
      const o = draft.find(r as AtProvider);
      if (o && !o.seenAt) {
        draft.upsert({ ...o, seenAt });
        changed = true;
      }
    }
    return changed ? { ...state, records: draft.records } : state;
  }
  const times = { ...state.observed?.[owner] };
  for (const r of asked)
    if (wasSeen(r)) times[rdataText(r)] ??= seenAt;
    else delete times[rdataText(r)];
  return withObservedAt(state, owner, times);
}

/** The field only when there is a raise: records written without one carry no key. */
const withRaise = (raise: TtlRaise | undefined) => (raise ? { ttlRaise: raise } : {});

const sameRaise = (a: TtlRaise | undefined, b: TtlRaise | undefined) =>
  a === b || (!!a && !!b && a.from === b.from && a.cause === b.cause);

/** The part of a computed plan `settled` needs. */
export interface PlanView {
  plan: OwnerPlan[];
  listed: Map<string, TlsaRecord[]>;
  desired: TargetRecord[];
}

/** Transitions that need no DNS change: interrupted publishes found at the provider, records
 *  leaving the desired set (start of their grace), records already gone, other writers' records
 *  gone (or now ours: they start over if they come back). */
export function settled(state: StateFile, c: PlanView, stamp: string): StateFile {
  const draft = new RecordDraft(state.records);
  let changed = false;
  const upsert = (r: OwnedRecord) => {
    draft.upsert(r);
    changed = true;
  };
  for (const p of c.plan) {
    for (const k of p.keep) {
      const owned = draft.find(k);
      let now = owned;
      if (owned && owned.status !== 'published') {
        const { held: _held, ...rest } = owned;
        now = { ...rest, status: 'published', publishedAt: owned.publishedAt ?? owned.addedAt };
        upsert(now);
      }
      // The provider's reason for the TTL of a record in place: the one it gives now (the
      // line pinning it moved, the configured TTL reached it), so that status stays true.
      if (now && !sameRaise(now.ttlRaise, k.ttlRaise)) {
        const { ttlRaise: _before, ...rest } = now;
        upsert({ ...rest, ...withRaise(k.ttlRaise) });
      }
    }
    for (const r of p.retiring)
      if (r.record.status !== 'retiring')
        upsert({ ...r.record, status: 'retiring', retiringSince: stamp });
  }
  // Planned owners per provider: no joined key string per plan and per state record.
  const owners = new Map<string, Set<string>>();
  for (const p of c.plan) {
    const set = owners.get(p.provider);
    if (set) set.add(p.owner);
    else owners.set(p.provider, new Set([p.owner]));
  }
  // One test per owner's listing, for all the owned records there. The desired keys only when a
  // record is missing from its listing: a run that changes nothing builds no key string per record.
  const listedTests = new Map<string, (r: TlsaRecord) => boolean>();
  const isListed = (o: OwnedRecord) => {
    let test = listedTests.get(o.owner);
    if (!test) {
      test = keyTest(c.listed.get(o.owner) ?? []);
      listedTests.set(o.owner, test);
    }
    return test(o);
  };
  let desired: Set<string> | undefined;
  const isDesired = (o: OwnedRecord) => {
    desired ??= new Set(c.desired.map(stateKey));
    return desired.has(stateKey(o));
  };
  const gone = draft.records.filter(
    (o) => owners.get(o.provider)?.has(o.owner) === true && !isListed(o) && !isDesired(o),
  );
  let next = changed || gone.length ? { ...state, records: without(draft.records, gone) } : state;
  for (const [owner, listed] of c.listed) {
    const seen = next.observed?.[owner];
    if (!seen) continue;
    const keep = Object.entries(seen).filter(([rdata]) =>
      listed.some((r) => rdataText(r) === rdata && !ownsKey(next, r)),
    );
    if (keep.length < Object.keys(seen).length)
      next = withObservedAt(next, owner, Object.fromEntries(keep));
  }
  return next;
}

/** Past its grace but kept: remembered, so that `status` (which reads only the state) and
 *  `plan` say why. */
export function withHeld(state: StateFile, r: AtProvider, why: string, at: Date): StateFile {
  const o = findOwned(state, r);
  return o ? withRecord(state, { ...o, held: { why, at: at.toISOString() } }) : state;
}

/** The write-ahead intents of one provider call: records to add become `publishing` (a record
 *  re-added for a new TTL keeps its old one until the call is confirmed, so that a run killed
 *  in between re-adds it again), records to remove `removing`. */
export function withIntents(
  state: StateFile,
  items: { add: readonly TargetRecord[]; remove: readonly OwnedRecord[] }[],
  by: string,
  stamp: string,
): StateFile {
  const draft = new RecordDraft(state.records);
  for (const { add, remove } of items) {
    for (const a of add) {
      const prior = draft.find(a);
      draft.upsert({
        owner: a.owner,
        usage: a.usage,
        selector: a.selector,
        matching: a.matching,
        data: a.data,
        provider: a.provider,
        service: a.service,
        ttl: prior?.ttl ?? a.ttl,
        ...withRaise(prior ? prior.ttlRaise : a.ttlRaise),
        status: 'publishing',
        addedAt: prior?.addedAt ?? stamp,
        by,
      });
    }
    for (const r of remove) draft.upsert({ ...r, status: 'removing' });
  }
  return { ...state, records: draft.records };
}

/** The provider confirmed the call: added records are published (with the TTL they were
 *  written with), removed ones are gone. */
export function withConfirmed(
  state: StateFile,
  items: { add: readonly TargetRecord[]; remove: readonly OwnedRecord[] }[],
  stamp: string,
): StateFile {
  const draft = new RecordDraft(state.records);
  for (const { add } of items)
    for (const a of add) {
      const { ttlRaise: _before, ...prior } = draft.find(a)!;
      draft.upsert({
        ...prior,
        ttl: a.ttl,
        ...withRaise(a.ttlRaise),
        status: 'published',
        publishedAt: stamp,
      });
    }
  const removed = items.flatMap(({ remove }) => remove);
  return { ...state, records: without(draft.records, removed) };
}
