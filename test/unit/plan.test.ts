import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type OwnerPlan,
  planOwners,
  servedChainViolations,
  type TargetRecord,
} from '../../src/engine/plan.js';
import type { OwnedRecord } from '../../src/engine/state.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { viewRecord } from '../../src/engine/lifecycle.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (s: string): TlsaRecord => ({ owner, usage: 3, selector: 1, matching: 1, data: h(s) });
const target = (s: string, chain = 'chainA'): TargetRecord => ({
  ...rec(s),
  why: s,
  matchesServed: true,
  chains: [chain],
  provider: 'p',
  service: 'mx',
  ttl: 300,
});
const owned = (s: string, extra: Partial<OwnedRecord> = {}): OwnedRecord => ({
  ...rec(s),
  provider: 'p',
  service: 'mx',
  ttl: 300,
  status: 'published',
  addedAt: '2026-01-01T00:00:00Z',
  publishedAt: '2026-01-01T00:00:00Z',
  by: 't',
  ...extra,
});
const now = new Date('2026-01-02T00:00:00Z');

describe('plan', () => {
  it('adds what is missing, keeps what is there, leaves foreign records alone', () => {
    const [p] = planOwners({
      desired: [target('new'), target('have')],
      listed: new Map([[owner, [rec('have'), rec('foreign')]]]),
      owned: [],
      now,
    });
    expect(p!.add.map((r) => r.why)).toEqual(['new']);
    expect(p!.keep.map((r) => r.why)).toEqual(['have']);
    expect(p!.foreign).toEqual([rec('foreign')]);
    expect(p!.remove).toEqual([]);
  });

  it('retires an owned record late: first a grace period, then removal', () => {
    const listed = new Map([[owner, [rec('old'), rec('new')]]]);
    const [first] = planOwners({
      desired: [target('new')],
      listed,
      owned: [owned('old'), owned('new')],
      now,
    });
    expect(first!.remove).toEqual([]);
    expect(first!.retiring.map((r) => r.record.data)).toEqual([h('old')]);
    expect(first!.retiring[0]!.due.toISOString()).toBe('2026-01-02T00:05:00.000Z');
    const retiring = owned('old', { status: 'retiring', retiringSince: '2026-01-01T23:58:00Z' });
    const [early] = planOwners({ desired: [target('new')], listed, owned: [retiring], now });
    expect(early!.remove).toEqual([]);
    const [late] = planOwners({
      desired: [target('new')],
      listed,
      owned: [{ ...retiring, retiringSince: '2026-01-01T23:50:00Z' }],
      now,
    });
    expect(late!.remove.map((r) => r.data)).toEqual([h('old')]);
  });

  it('re-adds an owned record somebody deleted and marks the drift', () => {
    const [p] = planOwners({
      desired: [target('x')],
      listed: new Map([[owner, []]]),
      owned: [owned('x')],
      now,
    });
    expect(p!.add).toHaveLength(1);
    expect(p!.drift).toHaveLength(1);
  });

  it('finishes an interrupted removal', () => {
    const [p] = planOwners({
      desired: [target('new')],
      listed: new Map([[owner, [rec('old'), rec('new')]]]),
      owned: [owned('old', { status: 'removing' })],
      now,
    });
    expect(p!.remove.map((r) => r.data)).toEqual([h('old')]);
  });

  it('the served-chain guard catches a plan that would leave a chain unmatched', () => {
    const listed = new Map([[owner, [rec('a')]]]);
    const plan = [
      {
        owner,
        provider: 'p',
        ttl: 300,
        add: [],
        remove: [owned('a')],
        keep: [],
        unowned: [],
        retiring: [],
        foreign: [],
        drift: [],
      },
    ];
    expect(servedChainViolations(plan, listed, [target('a')])).toEqual([
      `${owner}: no record would match the chain served from chainA`,
    ]);
    expect(servedChainViolations([], listed, [target('a')])).toEqual([]);
  });
});

describe('lifecycle', () => {
  it('pending until 2×TTL old, then live; retiring counts down the grace', () => {
    const r = owned('x', { publishedAt: '2026-01-01T23:55:00Z' });
    expect(viewRecord(r, now)).toMatchObject({ phase: 'pending', nextInSeconds: 300 });
    expect(viewRecord({ ...r, publishedAt: '2026-01-01T23:50:00Z' }, now).phase).toBe('live');
    expect(
      viewRecord(owned('y', { status: 'retiring', retiringSince: '2026-01-01T23:59:00Z' }), now),
    ).toMatchObject({ phase: 'retiring', nextInSeconds: 240 });
  });
});

describe('plan: what a listing holds, looked up by key', () => {
  const other = '_25._tcp.mx2.example.org.';
  const at = (o: string, s: string): TlsaRecord => ({ ...rec(s), owner: o });
  const want = (o: string, s: string, service = 'mx'): TargetRecord => ({
    ...target(s),
    owner: o,
    service,
  });

  it("a record a listing holds under another owner's name is not listed at its own", () => {
    // The listing of `owner` holds a record at `other` (a provider answering with more than the
    // name asked); `other`'s own listing is empty: at `other` it is missing, so it is added.
    const plans = planOwners({
      desired: [want(owner, 'a'), want(other, 'b')],
      listed: new Map([
        [owner, [at(owner, 'a'), at(other, 'b')]],
        [other, []],
      ]),
      owned: [],
      now,
    });
    const of = (o: string) => plans.find((p) => p.owner === o)!;
    expect(of(owner).keep.map((r) => r.why)).toEqual(['a']);
    expect(of(owner).foreign).toEqual([]);
    expect(of(other).add.map((r) => r.why)).toEqual(['b']);
    expect(of(other).keep).toEqual([]);
  });

  it('names differing by case are other names; one owner under two services is one plan', () => {
    const upper = owner.toUpperCase();
    const plans = planOwners({
      desired: [want(owner, 'a', 'mx'), want(owner, 'b', 'mx-rsa')],
      listed: new Map([
        [owner, [at(owner, 'a'), at(upper, 'b')]],
        [upper, [at(upper, 'b')]],
      ]),
      owned: [owned('b', { owner: upper })],
      now,
    });
    expect(plans.map((p) => p.owner)).toEqual([owner, upper]);
    const [low, up] = plans;
    expect(low!.keep.map((r) => r.why)).toEqual(['a']);
    expect(low!.add.map((r) => `${r.why} ${r.service}`)).toEqual(['b mx-rsa']);
    // The record at the upper-case name is owned (by the state) there: retiring, not foreign.
    expect(low!.foreign).toEqual([]);
    expect(up!.retiring.map((r) => r.record.owner)).toEqual([upper]);
  });
});

describe('served-chain guard: a few records compared field by field', () => {
  // The guard as it was, on key strings alone: the comparison by fields must say the same.
  const byKeys = (
    plan: OwnerPlan[],
    listed: Map<string, TlsaRecord[]>,
    desired: TargetRecord[],
  ) => {
    const problems: string[] = [];
    for (const p of plan) {
      const atOwner = desired.filter((d) => d.owner === p.owner);
      if (!atOwner.some((d) => d.chains.length)) continue;
      const after = new Set((listed.get(p.owner) ?? []).map(recordKey));
      for (const r of p.remove) after.delete(recordKey(r));
      for (const r of p.add) after.add(recordKey(r));
      const matched = new Set<string>();
      for (const d of atOwner)
        if (after.has(recordKey(d))) for (const c of d.chains) matched.add(c);
      for (const d of atOwner)
        for (const c of d.chains)
          if (!matched.has(c)) {
            matched.add(c);
            problems.push(`${p.owner}: no record would match the chain served from ${c}`);
          }
    }
    return problems;
  };
  const pick = <T>(list: T[], bits: number) => list.filter((_, i) => bits & (1 << i));

  it('removed then re-added, listed twice, under other names: as the key sets said, few or many', () => {
    const names = ['a', 'b', 'c'];
    const odd = { ...rec('b'), owner: `other.${owner}` }; // listed here under another name
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed >> 16; // the low bits of this generator repeat too soon
    };
    const filler = Array.from({ length: 30 }, (_, i) => rec(`filler${i}`));
    for (let round = 0; round < 400; round++) {
      const listedHere = [...pick(names, next()).map(rec), ...pick(names, next()).map(rec), odd];
      const desired = pick(names, next()).map((s, i) => target(s, `chain${i % 2}`));
      const plan = [
        {
          owner,
          provider: 'p',
          ttl: 300,
          add: pick(names, next()).map((s) => target(s)),
          remove: pick(names, next()).map((s) => owned(s)),
          keep: [],
          retiring: [],
          unowned: [],
          foreign: [],
          drift: [],
        },
      ] as unknown as OwnerPlan[];
      for (const extra of [[], filler]) {
        const listed = new Map([[owner, [...listedHere, ...extra]]]);
        expect(servedChainViolations(plan, listed, desired)).toEqual(byKeys(plan, listed, desired));
      }
    }
  });
});
