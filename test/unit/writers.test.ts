/** Several writers at one owner name (src/engine/writers.ts): the cap over everyone's records,
 *  and the TTL the servers really serve. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { planJson, planText } from '../../src/cli/plan-view.js';
import { planOwners, type TargetRecord } from '../../src/engine/plan.js';
import type { OwnedRecord, TtlFact } from '../../src/engine/state.js';
import {
  capWarning,
  countAfter,
  servedTtl,
  ttlChangeNote,
  ttlMismatch,
} from '../../src/engine/writers.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const now = new Date('2026-01-02T00:00:00Z');
const rec = (s: string): TlsaRecord => ({ owner, usage: 2, selector: 1, matching: 1, data: h(s) });
const target = (s: string): TargetRecord => ({
  ...rec(s),
  why: s,
  matchesServed: true,
  chains: ['c'],
  provider: 'p',
  service: 'mx',
  ttl: 10,
});
const owned = (s: string): OwnedRecord => ({
  ...rec(s),
  provider: 'p',
  service: 'mx',
  ttl: 10,
  status: 'published',
  addedAt: now.toISOString(),
  publishedAt: now.toISOString(),
  by: 't',
});

describe('the cap counts every record at the owner', () => {
  const own = Array.from({ length: 12 }, (_, i) => `own${i}`);
  const foreign = ['d1', 'd2', 'd3'];
  const listed = new Map([[owner, [...own, ...foreign].map(rec)]]);
  const plan = planOwners({ desired: own.map(target), listed, owned: own.map(owned), now })[0]!;

  it('12 of tlsa + 3 of other writers: over the cap of 12, says who', () => {
    expect(plan.add).toEqual([]); // "Nothing to do" before
    expect(countAfter(plan, listed.get(owner)!, own.map(owned))).toEqual({ own: 12, others: 3 });
    expect(capWarning(plan, listed.get(owner)!, own.map(owned), 12)).toBe(
      `${owner}: 15 records at the owner, over the cap of 12 (max_records_per_name; some receivers, e.g. Microsoft's, handle about 12): 12 published by tlsa here, 3 by other writers (another host, or by hand); tlsa's 12 alone reach it`,
    );
    expect(capWarning(plan, listed.get(owner)!, own.map(owned), 14)).toMatch(
      /15 records .* cap of 14.*: 12 published by tlsa here, 3 by other writers .*; the 3 from other writers put it over$/,
    );
    expect(capWarning(plan, listed.get(owner)!, own.map(owned), 15)).toBeUndefined();
  });

  it('records tlsa adds count as its own; a desired record another writer published counts as theirs', () => {
    const l = [rec('own0'), rec('d1')];
    const p = planOwners({
      desired: [target('own0'), target('new'), target('d1')],
      listed: new Map([[owner, l]]),
      owned: [owned('own0')],
      now,
    })[0]!;
    expect(countAfter(p, l, [owned('own0')])).toEqual({ own: 2, others: 1 });
    expect(capWarning(p, l, [owned('own0')], 2)).toMatch(
      /3 records .*: 2 published by tlsa here, 1 by other writers/,
    );
    // Only tlsa's: warned where the desired records are computed, not here.
    expect(capWarning(p, [rec('own0')], [owned('own0')], 1)).toBeUndefined();
  });
});

describe('the TTL the servers serve, when other writers use another one', () => {
  const fact = (ttl: number, at: string, extra: Partial<TtlFact> = {}): TtlFact => ({
    ttl,
    at,
    source: 'after-write',
    served: 'rrset',
    ...extra,
  });
  const facts = [
    fact(30, '2026-01-01T00:00:00.000Z', { source: 'before-write', foreign: true }),
    fact(10, '2026-01-01T00:01:00.000Z', { foreign: true }),
    fact(300, '2026-01-01T00:02:00.000Z', { served: 'negative' }),
  ];

  it('served: the last RRset answer', () => {
    expect(servedTtl(facts)).toMatchObject({ ttl: 10 });
    expect(servedTtl([])).toBeUndefined();
  });

  it("warns when the RRset with other writers' records was served with another TTL", () => {
    expect(ttlMismatch(owner, 10, facts)).toBe(
      `${owner}: the RRset was served with TTL 30 (2026-01-01T00:00:00.000Z) while it held other writers' records, but tlsa publishes it with TTL 10: each write resets the RRset's TTL, so it changes with every writer; give every writer at this name the same ttl`,
    );
    expect(ttlMismatch(owner, 30, [facts[0]!])).toBeUndefined();
    expect(ttlMismatch(owner, 10, [fact(30, '2026-01-01T00:00:00.000Z')])).toBeUndefined(); // only tlsa's records
  });

  it('plan shows the served TTL beside the configured one', () => {
    const plan = planOwners({
      desired: [target('a')],
      listed: new Map([[owner, [rec('a')]]]),
      owned: [owned('a')],
      now,
    });
    expect(planText(plan, now, undefined, true, new Map([[owner, facts[0]!]]))).toContain(
      `${owner}  (provider p, TTL 10; served with TTL 30 when last seen, 2026-01-01T00:00:00.000Z)`,
    );
  });
});

describe('a changed ttl: in the configuration (issue 14, point 4)', () => {
  const at60 = { ...owned('a'), ttl: 60 };
  const listed = new Map([[owner, [rec('a')]]]);

  it('re-adds the records tlsa published there with the new TTL, and says so', () => {
    const plan = planOwners({ desired: [target('a')], listed, owned: [at60], now })[0]!;
    expect(plan.add.map((r) => [r.data, r.ttl])).toEqual([[h('a'), 10]]);
    expect(plan.rettl).toEqual([{ record: plan.add[0], from: 60 }]);
    expect(plan.keep).toEqual([]);
    expect(ttlChangeNote(plan)).toBe(
      `${owner}: tlsa published its records there with TTL 60; the configuration says 10: publish re-adds them with TTL 10 (TTL 60 → 10), records it adds there wait 2× the larger TTL`,
    );
    expect(planText([plan], now)).toContain('[TTL 60 → 10: re-adding with the new TTL]');
    expect(planJson([plan]).owners[0]!.add[0]).toMatchObject({ ttl: 10, ttlFrom: 60 });
  });

  it('does nothing once the TTL is the configured one, nor for records tlsa does not own or no longer wants', () => {
    const same = planOwners({ desired: [target('a')], listed, owned: [owned('a')], now })[0]!;
    expect([same.add, same.rettl, ttlChangeNote(same)]).toEqual([[], [], undefined]);
    const unowned = planOwners({ desired: [target('a')], listed, owned: [], now })[0]!;
    expect(unowned.add).toEqual([]);
    const retiring = planOwners({ desired: [], listed, owned: [at60], now })[0]!;
    expect([retiring.add, retiring.retiring.length]).toEqual([[], 1]);
  });

  it("compares with the provider's effective TTL (deSEC's minimum), passed into the plan", () => {
    const at3600 = { ...owned('a'), ttl: 3600 };
    const plan = planOwners({
      desired: [target('a')],
      listed,
      owned: [at3600],
      now,
      effectiveTtl: (r) => Math.max(3600, r.ttl),
    })[0]!;
    expect([plan.ttl, plan.add, plan.keep.map((r) => r.ttl)]).toEqual([3600, [], [3600]]);
  });
});
