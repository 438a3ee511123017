/** The human plan of a fleet: owner names with nothing to do fold into one line once there are
 *  more than QUIET_OWNERS_LISTED of them; owners with something to do or to point out are listed
 *  in full, and `all` lists every one as a small setup sees it. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isQuiet, planJson, planListing, planText } from '../../src/cli/plan-view.js';
import { QUIET_OWNERS_LISTED } from '../../src/cli/options.js';
import type { OwnerPlan, TargetRecord } from '../../src/engine/plan.js';
import type { OwnedRecord } from '../../src/engine/state.js';

const now = new Date('2026-01-02T00:00:00Z');
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const target = (owner: string, s: string): TargetRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: h(s),
  why: `key ${s}`,
  matchesServed: true,
  chains: ['c'],
  provider: 'p',
  service: 's',
  ttl: 3600,
});
const owned = (owner: string, s: string): OwnedRecord => ({
  ...target(owner, s),
  status: 'retiring',
  addedAt: now.toISOString(),
  publishedAt: now.toISOString(),
  by: 't',
});

/** An owner name with `keep` records in place and nothing else. */
function quiet(i: number, keep = 4): OwnerPlan {
  const owner = `_25._tcp.mx${i}.example.org.`;
  return {
    owner,
    provider: 'p',
    ttl: 3600,
    add: [],
    remove: [],
    keep: Array.from({ length: keep }, (_, k) => target(owner, `${i}-${k}`)),
    unowned: [],
    retiring: [],
    foreign: [],
    drift: [],
    rettl: [],
  };
}

/** A fleet of `n` quiet owner names, with the busy ones spliced in at their places. */
function fleet(n: number, busy: Record<number, (p: OwnerPlan) => OwnerPlan> = {}): OwnerPlan[] {
  return Array.from({ length: n }, (_, i) => (busy[i] ? busy[i](quiet(i)) : quiet(i)));
}

const adding = (p: OwnerPlan): OwnerPlan => ({ ...p, add: [target(p.owner, 'new')] });
const removing = (p: OwnerPlan): OwnerPlan => ({ ...p, remove: [owned(p.owner, 'old')] });
const retiringLater = (p: OwnerPlan): OwnerPlan => ({
  ...p,
  retiring: [{ record: owned(p.owner, 'old'), since: now, due: new Date(now.getTime() + 60e3) }],
});
const withForeign = (p: OwnerPlan): OwnerPlan => ({
  ...p,
  foreign: [{ owner: p.owner, usage: 3, selector: 1, matching: 1, data: h('theirs') }],
});
const notOwned = (p: OwnerPlan): OwnerPlan => ({ ...p, unowned: [p.keep[0]!] });

/** The owner names a plan text lists (their header lines). */
const listedOwners = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('_'))
    .map((l) => l.split(' ')[0]);

describe('folding owner names with nothing to do', () => {
  it('the threshold is 50 quiet owner names', () => {
    expect(QUIET_OWNERS_LISTED).toBe(50);
  });

  it('an owner with anything to add, remove, retire, a foreign or an unowned record is not quiet', () => {
    expect(isQuiet(quiet(0))).toBe(true);
    for (const busy of [adding, removing, retiringLater, withForeign, notOwned])
      expect(isQuiet(busy(quiet(0))), busy.name).toBe(false);
  });

  it(`at ${QUIET_OWNERS_LISTED} quiet owner names every record is listed, as before`, () => {
    const plan = fleet(QUIET_OWNERS_LISTED + 2, { 3: adding, 40: removing });
    const text = planText(plan, now);
    expect(text).toBe(planText(plan, now, undefined, true, undefined, { all: true }));
    expect(listedOwners(text)).toEqual(plan.map((p) => p.owner));
    expect(text.match(/^ {2}= /gm)).toHaveLength(4 * plan.length);
    expect(text).not.toMatch(/nothing to do, .* not listed/);
    expect(planListing(plan).folded).toEqual({ owners: 0, records: 0 });
  });

  it(`at ${QUIET_OWNERS_LISTED + 1} they fold into one line with the right counts; busy owners stay in full, in order`, () => {
    const busy = { 2: adding, 17: removing, 30: retiringLater, 44: withForeign, 55: notOwned };
    const plan = fleet(QUIET_OWNERS_LISTED + 1 + 5, busy);
    // One quiet owner with 2 records instead of 4: the record count is summed, not assumed.
    plan[10] = quiet(10, 2);
    const text = planText(plan, now);
    const lines = text.trimEnd().split('\n');
    expect(listedOwners(text)).toEqual([2, 17, 30, 44, 55].map((i) => plan[i]!.owner));
    const records = QUIET_OWNERS_LISTED * 4 + 2;
    expect(lines.at(-3)).toBe(
      `${QUIET_OWNERS_LISTED + 1} owner names with nothing to do, ${records} records in place: not listed ("tlsa plan --all" lists every record).`,
    );
    expect(lines.at(-2)).toBe('Plan: 1 to add, 1 to remove, 1 retiring later.');
    expect(lines.at(-1)).toMatch(/^1 of the records in place is not owned by tlsa/);
    // A busy owner keeps its records in place, its foreign and retiring lines.
    const at = (i: number) => text.split(plan[i]!.owner)[1]!.split('\n_')[0]!;
    expect(at(2)).toMatch(/^ {2}\+ 3 1 1 /m);
    expect(at(2).match(/^ {2}= /gm)).toHaveLength(4);
    expect(at(17)).toMatch(/^ {2}- 3 1 1 /m);
    expect(at(30)).toMatch(/^ {2}~ 3 1 1 .*retiring/m);
    expect(at(44)).toMatch(/^ {2}! 3 1 1 .*not published by tlsa/m);
    expect(at(55)).toMatch(/^ {2}= .*\[not owned by tlsa/m);
    expect(text.match(/^ {2}= /gm)).toHaveLength(5 * 4);
    expect(planListing(plan).folded).toEqual({ owners: QUIET_OWNERS_LISTED + 1, records });
  });

  it('a fleet with nothing to do at all: the folded line, then the summary', () => {
    const plan = fleet(10_000);
    expect(planText(plan, now)).toBe(
      '10000 owner names with nothing to do, 40000 records in place: not listed ("tlsa plan --all" lists every record).\nNothing to do: 40000 records in place.\n',
    );
  });

  it('all lists every owner name and record, whatever their number', () => {
    const plan = fleet(200, { 150: adding });
    const text = planText(plan, now, undefined, true, undefined, { all: true });
    expect(listedOwners(text)).toEqual(plan.map((p) => p.owner));
    expect(text.match(/^ {2}= /gm)).toHaveLength(200 * 4);
    expect(text).not.toContain('not listed');
    expect(planListing(plan, true)).toEqual({ listed: plan, folded: { owners: 0, records: 0 } });
  });

  it('the JSON plan lists every owner name, folded or not', () => {
    const plan = fleet(200);
    expect(planJson(plan).owners).toHaveLength(200);
    expect(planJson(plan).summary.keep).toBe(800);
  });
});
