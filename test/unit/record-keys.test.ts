/**
 * Record keys: two records have the same key exactly when their fields are equal, also when a
 * name holds blanks (a hand-edited state file), and the one test "is r among these records"
 * answers as comparing keys does, for short and long lists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedChainViolations, type OwnerPlan, type TargetRecord } from '../../src/engine/plan.js';
import { keyAt, keyTest, RecordDraft, sameKey, stateKey } from '../../src/engine/record-index.js';
import { readState, STATE_FILE, type OwnedRecord } from '../../src/engine/state.js';
import { findOwned, settled, withRecord } from '../../src/engine/state-ops.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

type Rec = TlsaRecord & { provider: string };
const rec = (provider: string, owner: string, data: string, usage: 2 | 3 = 3): Rec => ({
  provider,
  owner,
  usage,
  selector: 1,
  matching: 1,
  data,
});
const sameFields = (a: TlsaRecord, b: TlsaRecord) =>
  a.owner === b.owner &&
  a.usage === b.usage &&
  a.selector === b.selector &&
  a.matching === b.matching &&
  a.data === b.data;

// Pairs whose space-joined keys were one string: an owner running into the rdata after it, a
// provider running into the owner.
const ranTogether: [Rec, Rec][] = [
  [rec('p', 'a. 3 1 1 aa.', 'bb'), rec('p', 'a.', 'aa. 3 1 1 bb')],
  [rec('p q', 'a.', 'aa'), rec('p', 'q a.', 'aa')],
  [rec('p', 'a b.', 'cc'), rec('p a', 'b.', 'cc')],
  [rec('', ' a.', 'aa'), rec(' ', 'a.', 'aa')],
];
const awkward: Rec[] = [
  ...ranTogether.flat(),
  rec('p', 'a.', 'aa'),
  rec('p', 'a.', 'aa', 2),
  rec('p', 'a.', 'aa aa'),
  rec('p', '1:a.', 'aa'),
  rec('p', '3:a. 3 1 1 aa', 'aa'),
  rec('1:p', 'a.', 'aa'),
];

/** A desired record matching chain "c", and the plan at its owner keeping `keep`. */
const target = (r: Rec): TargetRecord => ({
  ...r,
  service: 's',
  ttl: 300,
  why: 'leaf',
  matchesServed: true,
  chains: ['c'],
});
const planKeeping = (t: TargetRecord, keep: TargetRecord[]): OwnerPlan => ({
  owner: t.owner,
  provider: t.provider,
  ttl: 300,
  add: [],
  remove: [],
  keep,
  retiring: [],
  unowned: [],
  foreign: [],
  drift: [],
});

describe('record keys: names with blanks cannot make two records meet', () => {
  it('the old space-joined keys of these pairs were equal; their keys now differ', () => {
    const oldRecordKey = (r: TlsaRecord) =>
      `${r.owner} ${r.usage} ${r.selector} ${r.matching} ${r.data}`;
    for (const [a, b] of ranTogether) {
      expect(`${a.provider} ${oldRecordKey(a)}`).toBe(`${b.provider} ${oldRecordKey(b)}`);
      expect(stateKey(a)).not.toBe(stateKey(b));
    }
    const [a, b] = ranTogether[0]!;
    expect(recordKey(a)).not.toBe(recordKey(b));
    expect(sameKey(a, b)).toBe(false);
  });

  it('equal keys exactly when the fields are equal (and the provider, for the state key)', () => {
    for (const a of awkward)
      for (const b of awkward) {
        expect(recordKey(a) === recordKey(b)).toBe(sameFields(a, b));
        expect(sameKey(a, b)).toBe(sameFields(a, b));
        const same = sameFields(a, b) && a.provider === b.provider;
        expect(stateKey(a) === stateKey(b)).toBe(same);
        expect(keyAt(a.provider, b) === stateKey(b)).toBe(a.provider === b.provider);
      }
  });

  it('keyTest answers as comparing keys does, for lists short and long', () => {
    const many = Array.from({ length: 40 }, (_, i) =>
      rec('p', `_${i}._tcp.a.`, i.toString(16).padStart(2, '0')),
    );
    const pool = [...awkward, ...many];
    for (let n = 0; n <= pool.length; n += 3) {
      const list = pool.slice(pool.length - n);
      const test = keyTest(list);
      for (const r of [...pool, rec('p', 'other.', 'ff')])
        expect(test(r)).toBe(list.some((x) => recordKey(x) === recordKey(r)));
    }
  });
});

describe('a hand-edited state whose names ran together under the old keys', () => {
  let dir: string;
  beforeAll(() => {
    dir = makeTempDir('tlsa-keys-');
  });
  afterAll(() => removeTempDir(dir));
  const data = 'ab'.repeat(32);
  const record = (provider: string, owner: string): OwnedRecord => ({
    ...rec(provider, owner, data),
    service: 's',
    ttl: 300,
    status: 'publishing',
    addedAt: '2026-01-01T00:00:00.000Z',
    by: 'hand',
  });
  // Loads as it is: a provider and an owner name may hold a blank in the file.
  const load = () => {
    const records = [record('p q', 'a.'), record('p', 'q a.')];
    fs.writeFileSync(path.join(dir, STATE_FILE), JSON.stringify({ version: 1, records }));
    return readState(dir);
  };

  it('each record is found, and changed, as itself', () => {
    const state = load();
    const [first, second] = state.records as [OwnedRecord, OwnedRecord];
    expect(first.provider).toBe('p q');
    expect(findOwned(state, second)).toBe(second);
    expect(new RecordDraft(state.records).find(second)).toBe(second);
    const held = withRecord(state, { ...second, status: 'removing' });
    expect(held.records).toEqual([first, { ...second, status: 'removing' }]);
  });

  it('a run settles the record the provider lists, not the other one', () => {
    const state = load();
    const [first, second] = state.records as [OwnedRecord, OwnedRecord];
    const listed = rec('p', 'q a.', data);
    const wanted = target(listed);
    const plan = planKeeping(wanted, [wanted]);
    const next = settled(
      state,
      { plan: [plan], listed: new Map([['q a.', [listed]]]), desired: [wanted] },
      '2026-01-02T00:00:00.000Z',
    );
    expect(next.records).toEqual([
      first,
      { ...second, status: 'published', publishedAt: second.addedAt },
    ]);
  });
});

describe('the served-chain guard: a listed record whose old key was the desired one', () => {
  it('does not count as the record the chain needs', () => {
    const [listed, wanted] = ranTogether[0]!;
    const desired = target(wanted);
    const plan = planKeeping(desired, []);
    // Held under the wanted record's name (as a listing may hold a record under another name).
    const at = new Map([[wanted.owner, [listed]]]);
    expect(servedChainViolations([plan], at, [desired])).toEqual([
      'a.: no record would match the chain served from c',
    ]);
    expect(servedChainViolations([plan], new Map([[wanted.owner, [wanted]]]), [desired])).toEqual(
      [],
    );
  });
});
