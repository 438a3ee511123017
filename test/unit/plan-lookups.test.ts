/** src/engine/plan-lookups.ts: the plan's key questions answered at the owner name, field by
 *  field (or by keys at an owner holding many; names with spaces included), give
 *  what a scan comparing recordKey strings gives. */
import { describe, expect, it } from 'vitest';
import { planLookups } from '../../src/engine/plan-lookups.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';

type Rec = TlsaRecord & { provider: string; n: number };

/** A small random generator, seeded: the same cases on every run. */
function random(seed: number) {
  let s = seed;
  return (n: number) => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s % n;
  };
}

function cases(seed: number, o: { spaces: boolean; crowded: boolean }) {
  const pick = random(seed);
  // Names and data chosen so that, with spaces, keys of different owners can meet:
  // "a 3" + 1 1 1 "d" and "a" + 3 1 1 "1 d" are not both possible (usage is a number), but
  // "a 3 1" + 1 1 1 "d" and "a 3" + 1 1 1 "1 d" share the key "a 3 1 1 1 1 d".
  const owners = o.spaces ? ['a.', 'b.', 'a 3', 'a 3 1', 'a. 1'] : ['a.', 'b.', 'c.', 'd.'];
  const datas = o.spaces ? ['d', '1 d', 'e', '1 e', 'ff'] : ['d', 'e', 'ff', '00'];
  const many = o.crowded ? 60 : 6;
  let n = 0;
  const rec = (provider?: string): Rec => ({
    provider: provider ?? ['p', 'q'][pick(2)]!,
    owner: owners[pick(owners.length)]!,
    usage: ([2, 3] as const)[pick(2)]!,
    selector: 1,
    matching: ([1, 1, 2] as const)[pick(3)]!,
    data: o.crowded ? `${datas[pick(datas.length)]}${pick(30)}` : datas[pick(datas.length)]!,
    n: n++,
  });
  const owned = Array.from({ length: many }, () => rec());
  const desired = Array.from({ length: many }, () => rec());
  const listed = new Map<string, TlsaRecord[]>();
  for (const name of owners)
    listed.set(
      name,
      Array.from({ length: pick(many) }, () => {
        const r = rec('p');
        // Now and then a record listed under another name than its own.
        return pick(5) ? { ...r, owner: name } : r;
      }),
    );
  const probes = [...owned, ...desired, ...Array.from({ length: many }, () => rec())];
  return { owned, desired, listed, probes };
}

/** What the plan asked before: every record's key string, scanned. */
function byScan(listed: Map<string, TlsaRecord[]>, owned: Rec[], desired: Rec[]) {
  const key = recordKey;
  return {
    listed: (r: TlsaRecord) => {
      const k = key(r);
      for (const [name, list] of listed)
        for (const x of list)
          if (key(x) === k && (x.owner === name ? true : name === r.owner)) return true;
      return false;
    },
    owned: (provider: string, r: TlsaRecord) =>
      owned.filter((o) => o.provider === provider && key(o) === key(r)).at(-1),
    desiredAt: (provider: string, r: TlsaRecord) =>
      desired.some((d) => d.provider === provider && key(d) === key(r)),
    wanted: (r: TlsaRecord) => desired.some((d) => key(d) === key(r)),
  };
}

describe('planLookups', () => {
  for (const spaces of [false, true])
    for (const crowded of [false, true])
      it(`answers as key strings do (${spaces ? 'names with spaces' : 'plain names'}, ${crowded ? 'many' : 'few'} records per owner)`, () => {
        let asked = 0;
        for (let seed = 1; seed <= (crowded ? 12 : 60); seed++) {
          const { owned, desired, listed, probes } = cases(seed, { spaces, crowded });
          const look = planLookups(listed, owned, desired);
          const want = byScan(listed, owned, desired);
          for (const r of probes)
            for (const provider of ['p', 'q', 'x']) {
              asked++;
              expect(look.owned(provider, r)?.n, `${seed} ${recordKey(r)}`).toBe(
                want.owned(provider, r)?.n,
              );
              expect(look.desiredAt(provider, r)).toBe(want.desiredAt(provider, r));
            }
          for (const r of probes) {
            expect(look.listed(r), `${seed} ${recordKey(r)}`).toBe(want.listed(r));
            expect(look.wanted(r)).toBe(want.wanted(r));
          }
        }
        expect(asked).toBeGreaterThan(300);
      });

  it('records of different owners are told apart even where the fields ran together through a space', () => {
    const owned: Rec = {
      provider: 'p',
      owner: 'x 3',
      usage: 3,
      selector: 1,
      matching: 1,
      data: 'd',
      n: 0,
    };
    // Joined by blanks, "x 3" + "3 1 1 d" and "x" + "3 3 1 1 d" read the same; not so now.
    const probe: TlsaRecord = { owner: 'x', usage: 3, selector: 3 as 1, matching: 1, data: '1 d' };
    expect(recordKey(probe)).not.toBe(recordKey(owned));
    const look = planLookups(new Map([['x', [probe]]]), [owned], [owned]);
    expect(look.owned('p', probe)).toBeUndefined();
    expect(look.wanted(probe)).toBe(false);
    expect(look.listed(owned)).toBe(false);
    expect(look.listed(probe)).toBe(true);
  });
});
