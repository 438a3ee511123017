/** When the powerdns provider writes a zone on the read listMany() made of it (no read of its
 *  own before the PATCH): only while the zones' serials show nobody wrote since. */
import { describe, expect, it } from 'vitest';
import type { Zone, ZoneState } from '../../providers/powerdns-api.js';
import { BASE_MAX_AGE_MS, listedBases, SERIALS_FRESH_MS } from '../../providers/powerdns-bases.js';

const zone = (n: number): Zone => ({ name: `z${n}.test.`, id: `z${n}.test.` });
const state = (serial: number, soaEditApi = 'DEFAULT'): ZoneState => ({
  names: new Map(),
  serial,
  soaEditApi,
});

/** listedBases over a server whose zone list answers `serials`, on a clock the test moves. */
function setup(serials: Record<string, number>) {
  let t = 1_000_000;
  let lists = 0;
  const bases = listedBases(
    async () => {
      lists++;
      return new Map(Object.entries(serials));
    },
    () => t,
  );
  return {
    bases,
    lists: () => lists,
    tick: (ms: number) => {
      t += ms;
    },
  };
}

describe('powerdns: listed reads as write bases', () => {
  it('a batch of zones unchanged since listed: one zone list, each base used once', async () => {
    const { bases, lists } = setup({ 'z1.test.': 7, 'z2.test.': 9 });
    const s1 = state(7);
    const s2 = state(9);
    bases.keep(zone(1), ['a.z1.test.'], s1);
    bases.keep(zone(2), ['a.z2.test.'], s2);
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBe(s1);
    expect(await bases.take(zone(2), ['a.z2.test.'])).toBe(s2);
    expect(lists()).toBe(1);
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeUndefined();
  });

  it('a zone whose serial moved since it was listed is read afresh', async () => {
    const { bases } = setup({ 'z1.test.': 8, 'z2.test.': 9 });
    bases.keep(zone(1), ['a.z1.test.'], state(7));
    bases.keep(zone(2), ['a.z2.test.'], state(9));
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeUndefined();
    expect(await bases.take(zone(2), ['a.z2.test.'])).toBeDefined();
  });

  it('a lone zone is read (as cheap as the zone list, and fresher)', async () => {
    const { bases, lists } = setup({ 'z1.test.': 7 });
    bases.keep(zone(1), ['a.z1.test.'], state(7));
    bases.batch(['z1.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeUndefined();
    expect(lists()).toBe(0);
  });

  it('the zone list vouches for a second: later zones list again while two are left, else read', async () => {
    const serials = { 'z1.test.': 1, 'z2.test.': 2, 'z3.test.': 3, 'z4.test.': 4 };
    const { bases, lists, tick } = setup(serials);
    const ids = Object.keys(serials);
    for (const n of [1, 2, 3, 4]) bases.keep(zone(n), [`a.z${n}.test.`], state(n));
    bases.batch(ids);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeDefined();
    expect(await bases.take(zone(2), ['a.z2.test.'])).toBeDefined();
    tick(SERIALS_FRESH_MS + 1);
    expect(await bases.take(zone(3), ['a.z3.test.'])).toBeDefined();
    expect(lists()).toBe(2);
    tick(SERIALS_FRESH_MS + 1);
    expect(await bases.take(zone(4), ['a.z4.test.'])).toBeUndefined();
    expect(lists()).toBe(2);
  });

  it('writes slower than the list stays fresh: after a list that vouched for one zone, the rest are read', async () => {
    const serials = { 'z1.test.': 1, 'z2.test.': 2, 'z3.test.': 3, 'z4.test.': 4 };
    const { bases, lists, tick } = setup(serials);
    for (const n of [1, 2, 3, 4]) bases.keep(zone(n), [`a.z${n}.test.`], state(n));
    bases.batch(Object.keys(serials));
    for (const n of [1, 2, 3, 4]) {
      const taken = await bases.take(zone(n), [`a.z${n}.test.`]);
      expect(taken, `z${n}`).toEqual(n === 1 ? state(1) : undefined);
      tick(SERIALS_FRESH_MS + 1);
    }
    expect(lists()).toBe(1);
  });

  it('a zone written meanwhile by this provider is not vouched for by an older zone list', async () => {
    const { bases } = setup({ 'z1.test.': 1, 'z2.test.': 2 });
    bases.keep(zone(1), ['a.z1.test.'], state(1));
    bases.batch(['z1.test.', 'z2.test.']);
    bases.keep(zone(2), ['a.z2.test.'], state(2));
    expect(await bases.take(zone(2), ['a.z2.test.'])).toBeUndefined(); // lone now: read
    bases.keep(zone(2), ['a.z2.test.'], state(2));
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeDefined();
    bases.wrote(zone(2));
    expect(await bases.take(zone(2), ['a.z2.test.'])).toBeUndefined();
  });

  it('not used: owners the listing did not read, an old listing, a serial that writes do not move (or, EPOCH, move to the same value within a second)', async () => {
    const { bases, tick } = setup({ 'z1.test.': 1, 'z2.test.': 2 });
    bases.keep(zone(1), ['a.z1.test.'], state(1));
    bases.keep(zone(2), ['a.z2.test.'], state(2));
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.', 'b.z1.test.'])).toBeUndefined();

    bases.keep(zone(1), ['a.z1.test.'], state(1));
    bases.keep(zone(2), ['a.z2.test.'], state(2));
    tick(BASE_MAX_AGE_MS + 1);
    bases.batch(['z1.test.', 'z2.test.']);
    expect(await bases.take(zone(1), ['a.z1.test.'])).toBeUndefined();

    for (const soa of ['', 'NONE', 'none', 'EPOCH', 'SOA-EDIT']) {
      bases.keep(zone(1), ['a.z1.test.'], state(1, soa));
      bases.keep(zone(2), ['a.z2.test.'], state(2));
      bases.batch(['z1.test.', 'z2.test.']);
      expect(await bases.take(zone(1), ['a.z1.test.']), soa).toBeUndefined();
    }
  });
});
