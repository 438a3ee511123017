/** Where each owned record stands and what it waits for. Pure: state + clock in, view out.
 *  Propagation to every authoritative server is checked by the verification module; until
 *  that has seen a record, age alone is reported here and said to be unverified. */
import type { X509Certificate } from 'node:crypto';
import type { TlsaRecord } from '../tlsa/record.js';
import { recordMatchesChain } from '../verify/dane.js';
import { plainRecord } from './plan.js';
import type { OwnedRecord, TtlFact } from './state.js';

export type Phase = 'publishing' | 'pending' | 'live' | 'retiring' | 'removing';

export interface RecordView {
  record: OwnedRecord;
  phase: Phase;
  /** Seconds since the record entered this phase. */
  ageSeconds: number;
  /** Seconds until the next transition, when time alone decides it. */
  nextInSeconds?: number;
  waitsFor: string;
  /** For pending and retiring records: the TTL the wait counts from, and why. */
  wait?: WaitTtl;
}

/** The TTL a wait is counted from, and why (shown by status, plan and the engine). */
export interface WaitTtl {
  ttl: number;
  why: string;
}

const ms = (iso: string): number => new Date(iso).getTime();

/** When the record went to the provider (the before-write observation precedes it). */
const writtenAt = (r: OwnedRecord): number => ms(r.publishedAt ?? r.addedAt);

/** Each fact with the end of the time it describes: the TTL it saw may have been served until
 *  the next observation (the last one: until now and on). */
function periods(facts: readonly TtlFact[]): { fact: TtlFact; at: number; until: number }[] {
  const sorted = [...facts].sort((a, b) => ms(a.at) - ms(b.at));
  return sorted.map((fact, i) => ({
    fact,
    at: ms(fact.at),
    until: i + 1 < sorted.length ? ms(sorted[i + 1]!.at) : Infinity,
  }));
}

function factWhy(f: TtlFact): string {
  const when = f.source === 'before-write' ? "before tlsa's write" : "after tlsa's write";
  switch (f.served) {
    case 'rrset':
      return `the RRset was served with TTL ${f.ttl} ${when}${f.foreign ? ' (foreign record)' : ''}`;
    case 'negative':
      return `the name's negative answer (SOA) had TTL ${f.ttl} ${when}`;
    case 'cname':
      return `a CNAME with TTL ${f.ttl} was at the name ${when}`;
  }
}

const OWN_TTL = "tlsa's TTL, as published";

/** The record's own TTL, and why it is that: as published, or raised by the provider (the
 *  plan's TTL line says the same: "TTL 7200: raised from 3600: <cause>, …"). */
function ownTtl(r: OwnedRecord): WaitTtl {
  const raise = r.ttlRaise;
  if (!raise || raise.from >= r.ttl) return { ttl: r.ttl, why: OWN_TTL };
  return {
    ttl: r.ttl,
    why: `tlsa's TTL, raised from ${raise.from}: ${raise.cause ?? 'the provider publishes it'}`,
  };
}

/** The largest TTL with which a resolver may hold the owner's RRset without `r`: r's own TTL
 *  (the plan already raised it to the provider's effective TTL), any TTL served there while a
 *  cache filled then could still hold it when r was written (the RRset before tlsa's write, a
 *  CNAME), and any TTL observed after the write until r is live (`start`: when the count
 *  starts; facts after r is live no longer matter to it). A cached negative answer is
 *  remembered but does not count: a client holding it does no DANE (authenticated denial),
 *  it cannot fail a chain. */
export function waitTtl(r: OwnedRecord, facts: readonly TtlFact[] = [], start?: number): WaitTtl {
  let best: WaitTtl = ownTtl(r);
  const written = writtenAt(r);
  for (const p of periods(facts)) {
    if (p.fact.served === 'negative') continue;
    if (p.until + p.fact.ttl * 1000 <= written) continue; // every cache had forgotten it
    if (start !== undefined && p.at >= start + 2 * best.ttl * 1000) break; // r was live by then
    if (p.fact.ttl > best.ttl) best = { ttl: p.fact.ttl, why: factWhy(p.fact) };
  }
  return best;
}

/** The grace before a retired record is removed: the configured one (default the record's TTL),
 *  and at least the largest TTL served at its owner while it was in the RRset, since a cache
 *  may hold the RRset with it that long. */
export function graceWait(
  r: OwnedRecord,
  configured: number | undefined,
  facts: readonly TtlFact[] = [],
): WaitTtl {
  let best: WaitTtl = configured === undefined ? ownTtl(r) : { ttl: configured, why: 'grace_s' };
  const written = writtenAt(r);
  for (const p of periods(facts)) {
    if (p.until <= written || p.fact.served === 'negative') continue;
    if (p.fact.ttl > best.ttl) best = { ttl: p.fact.ttl, why: factWhy(p.fact) };
  }
  return best;
}

/** A record past its grace that the last run kept: "held since …: why; re-checked by …". */
export function heldText(held: { why: string; at: string }, now: Date): string {
  const ago = Math.max(0, Math.round((now.getTime() - new Date(held.at).getTime()) / 1000));
  return `held (checked ${ago} s ago): ${held.why}; removed once no live server presents a chain it matches (re-checked by the next publish, hook or daemon run)`;
}

/** "2×3600 s: the RRset was served with TTL 3600 before tlsa's write (foreign record)" */
export function describeWait(w: WaitTtl, factor = 2): string {
  return `${factor === 1 ? '' : `${factor}×`}${w.ttl} s: ${w.why}`;
}

/** Record an observation in an owner's facts. Only a change makes a new entry (the previous one
 *  then covers the time since); facts that no cache can still hold for any record at the owner
 *  are dropped (the newest is always kept, for `plan`). */
export function addTtlFact(
  facts: readonly TtlFact[],
  fact: TtlFact,
  atOwner: readonly OwnedRecord[],
): TtlFact[] {
  const last = facts[facts.length - 1];
  const same =
    last &&
    last.ttl === fact.ttl &&
    last.served === fact.served &&
    last.source === fact.source &&
    !!last.foreign === !!fact.foreign;
  const all = same ? [...facts] : [...facts, fact];
  const oldest = Math.min(...atOwner.map((r) => ms(r.addedAt)));
  return periods(all)
    .filter((p, i, ps) => i === ps.length - 1 || p.until + p.fact.ttl * 1000 > oldest)
    .map((p) => p.fact)
    .slice(-50);
}

/** When a published record is (or will be) live. Caches that still hold the RRset without it
 *  got it before the record was on every server, so they forget it at most the largest TTL they
 *  may hold (waitTtl) after that; the 2× count starts when every authoritative server was seen
 *  serving the record (a moment we know for sure), or at publication when propagation is not
 *  checked. Undefined while the servers have not been seen serving it. */
export function liveAt(
  r: OwnedRecord,
  propagationChecked: boolean,
  facts: readonly TtlFact[] = [],
): Date | undefined {
  if (r.status !== 'published' || !r.publishedAt) return undefined;
  const published = ms(r.publishedAt);
  let start = published;
  if (propagationChecked) {
    if (!r.seenAt) return undefined;
    start = Math.max(published, ms(r.seenAt));
  }
  return new Date(start + 2 * waitTtl(r, facts, start).ttl * 1000);
}

/** A record tlsa does not own (another writer's) as the TTL rule sees it: written, for all tlsa
 *  knows, when it first saw every authoritative server serve it (`seenAt`), with the TTL tlsa
 *  would give it (`ttl`; the TTL facts at the owner raise it to what the servers serve). */
export function observedRecord(r: TlsaRecord, seenAt: string, ttl: number): OwnedRecord {
  return {
    ...plainRecord(r),
    provider: '',
    service: '',
    ttl,
    status: 'published',
    addedAt: seenAt,
    publishedAt: seenAt,
    seenAt,
    by: '',
  };
}

/** When another writer's record counts as live: 2× the TTL rule's wait after tlsa first saw
 *  it on every authoritative server (caches that lack it got their answer before then). */
export function observedLiveAt(
  r: TlsaRecord,
  seenAt: string,
  ttl: number,
  facts: readonly TtlFact[] = [],
): Date {
  return liveAt(observedRecord(r, seenAt, ttl), true, facts)!;
}

export function viewRecord(
  r: OwnedRecord,
  now: Date,
  graceSeconds?: number,
  propagationChecked = false,
  facts: readonly TtlFact[] = [],
): RecordView {
  const t = now.getTime();
  const since = (iso: string | undefined) => (iso ? (t - new Date(iso).getTime()) / 1000 : 0);
  switch (r.status) {
    case 'publishing':
      return {
        record: r,
        phase: 'publishing',
        ageSeconds: since(r.addedAt),
        waitsFor: 'the provider call to be confirmed (an interrupted run: the next run settles it)',
      };
    case 'removing':
      return {
        record: r,
        phase: 'removing',
        ageSeconds: since(r.retiringSince ?? r.addedAt),
        waitsFor: 'the removal to be confirmed (an interrupted run: the next run settles it)',
      };
    case 'retiring': {
      const age = since(r.retiringSince);
      const wait = graceWait(r, graceSeconds, facts);
      const left = wait.ttl - age;
      return {
        record: r,
        phase: 'retiring',
        ageSeconds: age,
        nextInSeconds: Math.max(0, left),
        wait,
        waitsFor:
          left > 0
            ? `the grace period (${describeWait(wait, 1)}) so caches forget it, then removal by publish`
            : r.held
              ? heldText(r.held, now)
              : 'removal by the next publish',
      };
    }
    case 'published': {
      const age = since(r.publishedAt);
      const live = liveAt(r, propagationChecked, facts);
      const start = propagationChecked
        ? r.seenAt
          ? Math.max(ms(r.publishedAt!), ms(r.seenAt))
          : undefined
        : ms(r.publishedAt!);
      const wait = waitTtl(r, facts, start);
      if (!live)
        return {
          record: r,
          phase: 'pending',
          ageSeconds: age,
          wait,
          waitsFor: `every authoritative server to serve it (seen by the hook and the daemon; check only reports), then ${describeWait(wait)}`,
        };
      const left = (live.getTime() - t) / 1000;
      if (left > 0)
        return {
          record: r,
          phase: 'pending',
          ageSeconds: age,
          nextInSeconds: left,
          wait,
          waitsFor: propagationChecked
            ? `${describeWait(wait)}; counted from when every authoritative server served it`
            : `${describeWait(wait)}; counted from publication, before a chain relying on it is served`,
        };
      return { record: r, phase: 'live', ageSeconds: age, waitsFor: '' };
    }
  }
}

/** What a chain's readiness rests on: the records that match it, each with the TTL facts at its
 *  owner. Another writer's record counts from when tlsa first saw it served (`seenAt`; none yet:
 *  not on every authoritative server), with the TTL tlsa gives that owner. */
export interface ChainEvidence {
  /** A first install: nothing is served yet, so nothing can break. */
  bootstrap?: boolean;
  owned: { record: OwnedRecord; facts: readonly TtlFact[] }[];
  others: { record: TlsaRecord; seenAt?: string; ttl: number; facts: readonly TtlFact[] }[];
  propagationChecked: boolean;
}

/** Is this chain ready to be served: does a record that matches it count as live now (tlsa's own
 *  or another writer's)? And the earliest moment one will, when time alone decides it. */
export function chainReady(e: ChainEvidence, now: Date): { ready: boolean; eta?: Date } {
  const times = [
    ...e.owned.map((o) => liveAt(o.record, e.propagationChecked, o.facts)),
    ...e.others.map((o) =>
      o.seenAt ? observedLiveAt(o.record, o.seenAt, o.ttl, o.facts) : undefined,
    ),
  ].filter((d): d is Date => !!d);
  const eta = times.length ? new Date(Math.min(...times.map((d) => d.getTime()))) : undefined;
  const live = !!eta && eta.getTime() <= now.getTime();
  return { ready: !!e.bootstrap || live, ...(eta ? { eta } : {}) };
}

/** What a live probe saw: each chain a server presented, and what it could not check. */
export interface SeenChains {
  chains: { address: string; port: number; keyType: string; chain: X509Certificate[] }[];
  errors: string[];
}

/** Is this removal held: why a record past its grace must stay (a live server still presents a
 *  chain it matches, or the probe could not check every address), or undefined. */
export function removalHeld(r: TlsaRecord, seen: SeenChains): string | undefined {
  const user = seen.chains.find((x) => recordMatchesChain(r, x.chain));
  if (user)
    return `${user.address} port ${user.port} still presents a chain it matches (${user.keyType})`;
  if (seen.errors.length)
    return `the live probe could not check every address: ${seen.errors.join('; ')}`;
  return undefined;
}
