/** The TTL a record's wait (and a retired record's grace) counts from: the largest TTL a
 *  resolver may hold for the owner's RRset, from the facts the engine observed there. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planJson, planText } from '../../src/cli/plan-view.js';
import {
  addTtlFact,
  graceWait,
  liveAt,
  observedLiveAt,
  viewRecord,
  waitTtl,
} from '../../src/engine/lifecycle.js';
import { planOwners, type OwnerPlan } from '../../src/engine/plan.js';
import {
  readState,
  stateProblem,
  type OwnedRecord,
  type StateFile,
  type TtlFact,
} from '../../src/engine/state.js';
import { settled, withConfirmed, withIntents } from '../../src/engine/state-ops.js';

const owner = '_25._tcp.mx.example.org.';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (s: number) => new Date(T0 + s * 1000).toISOString();
/** Written at 0 s, seen on every server at 5 s, tlsa TTL 10. */
const rec = (extra: Partial<OwnedRecord> = {}): OwnedRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: 'ab'.repeat(32),
  provider: 'p',
  service: 'mx',
  ttl: 10,
  status: 'published',
  addedAt: iso(0),
  publishedAt: iso(0),
  seenAt: iso(5),
  by: 't',
  ...extra,
});
const fact = (at: number, ttl: number, extra: Partial<TtlFact> = {}): TtlFact => ({
  ttl,
  at: iso(at),
  source: 'before-write',
  served: 'rrset',
  ...extra,
});
const secondsAfterT0 = (d: Date | undefined) => (d ? (d.getTime() - T0) / 1000 : undefined);

describe('the wait before a record is live', () => {
  it('without facts (an old state file): 2× its own TTL after every server served it', () => {
    expect(secondsAfterT0(liveAt(rec(), true))).toBe(25);
    expect(secondsAfterT0(liveAt(rec(), true, []))).toBe(25);
    expect(waitTtl(rec()).ttl).toBe(10);
  });

  it('a foreign record in the RRset before the write at TTL 30: 2×30 s, and says why', () => {
    const facts = [fact(-1, 30, { foreign: true })];
    expect(secondsAfterT0(liveAt(rec(), true, facts))).toBe(65);
    expect(waitTtl(rec(), facts).why).toBe(
      "the RRset was served with TTL 30 before tlsa's write (foreign record)",
    );
  });

  it('a CNAME at the name before the first write counts with its TTL; a negative answer does not', () => {
    expect(secondsAfterT0(liveAt(rec(), true, [fact(-1, 300, { served: 'cname' })]))).toBe(605);
    expect(waitTtl(rec(), [fact(-1, 300, { served: 'cname' })]).why).toBe(
      "a CNAME with TTL 300 was at the name before tlsa's write",
    );
    // A resolver holding the name's (signed) NXDOMAIN does no DANE at all: it cannot fail a chain.
    expect(secondsAfterT0(liveAt(rec(), true, [fact(-1, 60, { served: 'negative' })]))).toBe(25);
  });

  it("a lower TTL than tlsa's own does not shorten the wait", () => {
    expect(secondsAfterT0(liveAt(rec(), true, [fact(-1, 3)]))).toBe(25);
  });

  it('an older TTL counts while a cache filled then may still hold it when the record is written', () => {
    // TTL 100 seen until 40 s before the write (then 20): caches may hold it until 60 s after.
    expect(secondsAfterT0(liveAt(rec(), true, [fact(-500, 100), fact(-40, 20)]))).toBe(205);
    // TTL 100 seen until 200 s before the write: every cache forgot it before the write.
    expect(secondsAfterT0(liveAt(rec(), true, [fact(-500, 100), fact(-200, 20)]))).toBe(45);
  });

  it('a TTL raised after the write counts while the record is not live yet, not afterwards', () => {
    const raisedEarly = [fact(-1, 10), fact(10, 30, { source: 'after-write' })];
    expect(secondsAfterT0(liveAt(rec(), true, raisedEarly))).toBe(65);
    expect(waitTtl(rec(), raisedEarly, T0 + 5000).why).toBe(
      "the RRset was served with TTL 30 after tlsa's write",
    );
    // Seen at 30 s: the record had been live since 25 s; a live record never turns pending again.
    const raisedLate = [fact(-1, 10), fact(30, 30, { source: 'after-write' })];
    expect(secondsAfterT0(liveAt(rec(), true, raisedLate))).toBe(25);
  });

  it('without the propagation check: counted from publication, still from the largest TTL known', () => {
    expect(
      secondsAfterT0(liveAt(rec({ seenAt: undefined }), false, [fact(-1, 30, { foreign: true })])),
    ).toBe(60);
    expect(liveAt(rec({ seenAt: undefined }), true, [fact(-1, 30)])).toBeUndefined();
  });

  it('status says which TTL the wait counts from and why', () => {
    const facts = [fact(-1, 30, { foreign: true })];
    const v = viewRecord(rec(), new Date(T0 + 20_000), undefined, true, facts);
    expect(v.phase).toBe('pending');
    expect(v.nextInSeconds).toBe(45);
    expect(v.wait).toEqual({
      ttl: 30,
      why: "the RRset was served with TTL 30 before tlsa's write (foreign record)",
    });
    expect(v.waitsFor).toContain(
      "2×30 s: the RRset was served with TTL 30 before tlsa's write (foreign record)",
    );
    expect(viewRecord(rec(), new Date(T0 + 70_000), undefined, true, facts).phase).toBe('live');
  });
});

describe('the grace before a retired record is removed', () => {
  const retiring = rec({ status: 'retiring', retiringSince: iso(100) });

  it("defaults to the record's TTL; grace_s overrides it", () => {
    expect(graceWait(retiring, undefined).ttl).toBe(10);
    expect(graceWait(retiring, 5).ttl).toBe(5);
  });

  it('is at least the largest TTL served while the record was in the RRset', () => {
    const facts = [fact(-1, 10), fact(50, 30, { foreign: true })];
    expect(graceWait(retiring, undefined, facts)).toEqual({
      ttl: 30,
      why: "the RRset was served with TTL 30 before tlsa's write (foreign record)",
    });
    expect(graceWait(retiring, 5, facts).ttl).toBe(30);
    expect(viewRecord(retiring, new Date(T0 + 110_000), undefined, true, facts)).toMatchObject({
      phase: 'retiring',
      nextInSeconds: 20,
    });
  });

  it('ignores a TTL that was no longer served when the record was written', () => {
    expect(graceWait(retiring, undefined, [fact(-500, 300), fact(-100, 10)]).ttl).toBe(10);
  });
});

describe('remembering TTL facts', () => {
  it('adds a fact only when something changed', () => {
    const one = addTtlFact([], fact(0, 30), [rec()]);
    expect(addTtlFact(one, fact(10, 30), [rec()])).toEqual(one);
    expect(addTtlFact(one, fact(10, 30, { source: 'after-write' }), [rec()])).toHaveLength(2);
    expect(addTtlFact(one, fact(10, 60), [rec()])).toHaveLength(2);
  });

  it('drops facts no cache can hold for any record at the owner, keeps the newest', () => {
    // Each TTL may have been served until the next observation, and cached that long after it.
    const old = [fact(-1000, 30), fact(-900, 60), fact(-800, 5)];
    expect(addTtlFact(old, fact(-10, 20), [rec()]).map((f) => f.ttl)).toEqual([20]);
    expect(addTtlFact(old, fact(-10, 20), [rec({ addedAt: iso(-850) })]).map((f) => f.ttl)).toEqual(
      [60, 5, 20],
    );
    expect(addTtlFact([], fact(-10, 20), []).map((f) => f.ttl)).toEqual([20]);
  });

  it('an old state file without "ttls" still loads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tlsa-ttl-'));
    try {
      writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 1, records: [rec()] }));
      expect(readState(dir).records).toHaveLength(1);
      expect(readState(dir).ttls).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('plan shows the wait of the records it would add', () => {
  const plan: OwnerPlan[] = [
    {
      owner,
      provider: 'p',
      ttl: 10,
      remove: [],
      keep: [],
      unowned: [],
      retiring: [],
      foreign: [],
      drift: [],
      add: [{ ...rec(), why: 'new chain', matchesServed: false, chains: ['c'] }],
    },
  ];
  const waits = new Map([[owner, waitTtl(rec(), [fact(-1, 3600, { foreign: true })])]]);

  it('in text', () => {
    expect(planText(plan, new Date(T0), waits)).toContain(
      "new records live 2×3600 s: the RRset was served with TTL 3600 before tlsa's write (foreign record); counted from when every authoritative server serves them",
    );
    expect(planText(plan, new Date(T0), waits, false)).toContain('counted from publication');
  });

  it('in JSON', () => {
    expect(planJson(plan, waits).owners[0]!.wait).toEqual({
      seconds: 7200,
      ttl: 3600,
      why: "the RRset was served with TTL 3600 before tlsa's write (foreign record)",
    });
    expect(planJson(plan).owners[0]!.wait).toBeNull();
  });
});

describe("another writer's record: aged from when tlsa first saw it on every server", () => {
  const other = {
    owner,
    usage: 2 as const,
    selector: 1 as const,
    matching: 1 as const,
    data: 'cd'.repeat(32),
  };

  it('2× the TTL after that moment, raised by the TTL the servers serve', () => {
    expect(secondsAfterT0(observedLiveAt(other, iso(100), 10))).toBe(120);
    expect(
      secondsAfterT0(
        observedLiveAt(other, iso(100), 10, [
          fact(100, 60, { source: 'after-write', foreign: true }),
        ]),
      ),
    ).toBe(220);
    // A TTL served before tlsa saw it, still in caches then, counts too.
    expect(
      secondsAfterT0(
        observedLiveAt(other, iso(100), 10, [
          fact(50, 300, { foreign: true }),
          fact(90, 10, { source: 'after-write' }),
        ]),
      ),
    ).toBe(700);
  });

  it('the state remembers observations and rejects garbage in them; old files load', () => {
    expect(stateProblem({ version: 1, records: [] })).toBeUndefined();
    expect(
      stateProblem({
        version: 1,
        records: [],
        observed: { [owner]: { [`2 1 1 ${'cd'.repeat(32)}`]: iso(0) } },
      }),
    ).toBeUndefined();
    expect(stateProblem({ version: 1, records: [], observed: [] })).toMatch(
      /"observed" is not an object/,
    );
    expect(
      stateProblem({ version: 1, records: [], observed: { [owner]: { x: 'yesterday' } } }),
    ).toMatch(/"observed" at _25/);
    expect(stateProblem({ version: 1, records: [], observed: { [owner]: 5 } })).toMatch(
      /"observed" at _25/,
    );
  });
});

describe('a record past its grace that a live server still needs is said to be held', () => {
  const held = { why: '127.0.0.1 port 25 still presents a chain it matches (ecdsa)', at: iso(590) };
  const retiring = rec({ status: 'retiring', retiringSince: iso(0) });

  it('status says held, why and since when, not "removal by the next publish"', () => {
    const v = viewRecord({ ...retiring, held }, new Date(T0 + 600_000));
    expect(v.waitsFor).toMatch(
      /^held \(checked 10 s ago\): 127\.0\.0\.1 port 25 still presents a chain it matches \(ecdsa\); removed once no live server presents a chain it matches/,
    );
    expect(viewRecord(retiring, new Date(T0 + 600_000)).waitsFor).toBe(
      'removal by the next publish',
    );
  });

  it('plan says held instead of "retired (…grace over)"', () => {
    const plan: OwnerPlan[] = [
      {
        owner,
        provider: 'p',
        ttl: 10,
        add: [],
        keep: [],
        unowned: [],
        retiring: [],
        foreign: [],
        drift: [],
        remove: [{ ...retiring, held }],
      },
    ];
    const text = planText(plan, new Date(T0 + 600_000));
    expect(text).toContain(
      'held (checked 10 s ago): 127.0.0.1 port 25 still presents a chain it matches (ecdsa)',
    );
    expect(text).not.toContain('retired (no served chain needs it; grace over)');
    expect(planJson(plan).owners[0]!.remove[0]).toMatchObject({ held });
  });

  it('the state accepts the hold and rejects garbage in it', () => {
    expect(stateProblem({ version: 1, records: [{ ...retiring, held }] })).toBeUndefined();
    expect(
      stateProblem({ version: 1, records: [{ ...retiring, held: { why: 3, at: iso(0) } }] }),
    ).toMatch(/"held"/);
    expect(stateProblem({ version: 1, records: [{ ...retiring, held: 'x' }] })).toMatch(/"held"/);
  });
});

describe('a TTL the provider raised: the waits say so, as the plan says on its TTL line', () => {
  const cause = 'a TLSA line there not written by tlsa (zone.db line 6) has TTL 60';
  const raised = (extra: Partial<OwnedRecord> = {}) =>
    rec({ ttl: 60, ttlRaise: { from: 10, cause }, ...extra });
  const RAISED = `tlsa's TTL, raised from 10: ${cause}`;

  it("the wait, status' line and the grace name the raised TTL and its cause", () => {
    expect(waitTtl(raised())).toEqual({ ttl: 60, why: RAISED });
    const v = viewRecord(raised(), new Date(T0 + 20_000), undefined, true);
    expect(v.wait).toEqual({ ttl: 60, why: RAISED });
    expect(v.waitsFor).toContain(`2×60 s: ${RAISED}`);
    const retiring = raised({ status: 'retiring', retiringSince: iso(100) });
    expect(graceWait(retiring, undefined)).toEqual({ ttl: 60, why: RAISED });
    expect(graceWait(retiring, 5)).toEqual({ ttl: 5, why: 'grace_s' });
    // A raise without a cause still says it was raised; a larger served TTL still wins.
    expect(waitTtl(rec({ ttl: 60, ttlRaise: { from: 10 } })).why).toBe(
      "tlsa's TTL, raised from 10: the provider publishes it",
    );
    expect(waitTtl(raised(), [fact(-1, 90, { foreign: true })]).ttl).toBe(90);
  });

  it('the normal case keeps its text', () => {
    expect(waitTtl(rec()).why).toBe("tlsa's TTL, as published");
    expect(graceWait(rec({ status: 'retiring', retiringSince: iso(1) }), undefined).why).toBe(
      "tlsa's TTL, as published",
    );
  });

  it('the plan marks the raised copy; publish records the raise, a re-add at the asked TTL drops it', () => {
    const target = {
      owner,
      usage: 3 as const,
      selector: 1 as const,
      matching: 1 as const,
      data: 'ab'.repeat(32),
      provider: 'p',
      service: 'mx',
      ttl: 10,
      why: 'leaf key',
      matchesServed: true,
      chains: [],
    };
    const [p] = planOwners({
      desired: [target],
      listed: new Map(),
      owned: [],
      now: new Date(T0),
      effectiveTtl: () => 60,
      ttlWhy: () => `raised from 10: ${cause}, and more`,
      ttlCause: () => cause,
    });
    expect(p!.add[0]).toMatchObject({ ttl: 60, ttlRaise: { from: 10, cause } });
    expect(target).not.toHaveProperty('ttlRaise');
    const empty: StateFile = { version: 1, records: [] };
    const intent = withIntents(empty, [{ add: p!.add, remove: [] }], 'me', iso(0));
    expect(intent.records[0]).toMatchObject({ ttl: 60, ttlRaise: { from: 10, cause } });
    const done = withConfirmed(intent, [{ add: p!.add, remove: [] }], iso(1));
    expect(done.records[0]).toMatchObject({ ttl: 60, status: 'published', ttlRaise: { from: 10 } });
    expect(waitTtl(done.records[0]!).why).toBe(RAISED);
    // The hand-made line lowered: re-added with the configured TTL, no raise left.
    const again = withIntents(done, [{ add: [target], remove: [] }], 'me', iso(2));
    expect(again.records[0]).toMatchObject({ ttl: 60, ttlRaise: { from: 10 } });
    const lowered = withConfirmed(again, [{ add: [target], remove: [] }], iso(3));
    expect(lowered.records[0]!.ttl).toBe(10);
    expect(lowered.records[0]).not.toHaveProperty('ttlRaise');
    expect(waitTtl(lowered.records[0]!).why).toBe("tlsa's TTL, as published");
  });

  it('a record in place takes the reason the provider gives now; an unchanged one costs no state change', () => {
    const target = {
      ...raised(),
      why: 'leaf key',
      matchesServed: true,
      chains: [],
    };
    const state: StateFile = { version: 1, records: [raised()] };
    const view = (keep: typeof target) => {
      const [p] = planOwners({
        desired: [keep],
        listed: new Map([[owner, [keep]]]),
        owned: state.records,
        now: new Date(T0),
      });
      return { plan: [p!], listed: new Map([[owner, [keep]]]), desired: [keep] };
    };
    expect(settled(state, view(target), iso(9))).toBe(state);
    const moved = { ...target, ttlRaise: { from: 10, cause: 'line 9 now' } };
    expect(settled(state, view(moved), iso(9)).records[0]!.ttlRaise).toEqual({
      from: 10,
      cause: 'line 9 now',
    });
    // The configured TTL reached the pinned one: no raise any more, the text is the plain one.
    const { ttlRaise: _r, ...reached } = target;
    const plain = settled(state, view(reached), iso(9)).records[0]!;
    expect(plain).not.toHaveProperty('ttlRaise');
    expect(plain).toEqual({ ...rec({ ttl: 60 }) });
  });

  it('the state accepts the raise and rejects garbage in it', () => {
    expect(stateProblem({ version: 1, records: [raised()] })).toBeUndefined();
    expect(
      stateProblem({ version: 1, records: [rec({ ttlRaise: { from: 10 } })] }),
    ).toBeUndefined();
    for (const bad of [{ from: '10' }, { from: 10, cause: 3 }, 'x', null])
      expect(stateProblem({ version: 1, records: [{ ...rec(), ttlRaise: bad }] })).toMatch(
        /"ttlRaise"/,
      );
  });
});
