/** The order of a PowerDNS batch (powerdns-confirm.ts): zones written one after another, one
 *  zone list after the last write, each zone confirmed only at the serial its write left. */
import { describe, expect, it } from 'vitest';
import {
  CONFIRM_EVERY,
  type ConfirmBy,
  writeAndConfirm,
} from '../../providers/powerdns-confirm.js';

/** A zone's run as applyZone would make it: its write leaves `serial` (undefined: the kind
 *  cannot tell), then the confirmation decides whether it reads back. */
function batch(serialsAfter: Record<string, number>) {
  const log: string[] = [];
  let lists = 0;
  const run =
    (plan: Record<string, { serial?: number; fail?: string }>) =>
    async (z: string, confirmBy: ConfirmBy): Promise<void> => {
      const p = plan[z] ?? {};
      await Promise.resolve();
      if (p.fail) throw new Error(p.fail);
      log.push(`write ${z}`);
      if (await confirmBy(p.serial)) log.push(`confirmed ${z}`);
      else log.push(`read back ${z}`);
    };
  const serialsNow = async () => {
    lists++;
    log.push('list');
    return new Map(Object.entries(serialsAfter));
  };
  return { log, lists: () => lists, run, serialsNow };
}

describe('powerdns: a batch confirmed by one zone list', () => {
  it('writes every zone first, then lists once; only zones still at their serial are confirmed', async () => {
    const b = batch({ a: 5, b: 8, c: 3 });
    await writeAndConfirm(
      ['a', 'b', 'c', 'd'],
      (z) => z,
      b.run({ a: { serial: 5 }, b: { serial: 7 }, c: { serial: 3 }, d: {} }),
      b.serialsNow,
      0,
    );
    expect(b.log).toEqual([
      'write a',
      'write b',
      'write c',
      'write d',
      'read back d', // its kind cannot tell: read back at once, as before
      'list',
      'confirmed a',
      'read back b', // another write moved its serial past ours
      'confirmed c',
    ]);
  });

  it(`a long batch lists again every ${CONFIRM_EVERY} zones written`, async () => {
    const zones = Array.from({ length: 2 * CONFIRM_EVERY + 1 }, (_, i) => `z${i}`);
    const b = batch(Object.fromEntries(zones.map((z, i) => [z, i])));
    await writeAndConfirm(
      zones,
      (z) => z,
      b.run(Object.fromEntries(zones.map((z, i) => [z, { serial: i }]))),
      b.serialsNow,
      0,
    );
    expect(b.lists()).toBe(2);
    expect(b.log.indexOf('list')).toBe(CONFIRM_EVERY); // after the first CONFIRM_EVERY writes
    expect(b.log.at(-1)).toBe(`read back z${2 * CONFIRM_EVERY}`); // the last one alone
    expect(b.log.filter((l) => l.startsWith('confirmed'))).toHaveLength(2 * CONFIRM_EVERY);
  });

  it('a lone zone is read back (the list would cost as much)', async () => {
    const b = batch({ a: 5 });
    await writeAndConfirm(['a'], (z) => z, b.run({ a: { serial: 5 } }), b.serialsNow, 0);
    expect(b.log).toEqual(['write a', 'read back a']);
    expect(b.lists()).toBe(0);
  });

  it('after a zone fails nothing more is started; the zones written are confirmed, then the failure is thrown', async () => {
    const b = batch({ a: 5, b: 6 });
    await expect(
      writeAndConfirm(
        ['a', 'b', 'c', 'd'],
        (z) => z,
        b.run({ a: { serial: 5 }, b: { serial: 6 }, c: { fail: 'CNAME at c' } }),
        b.serialsNow,
        0,
      ),
    ).rejects.toThrow('CNAME at c');
    expect(b.log).toEqual(['write a', 'write b', 'list', 'confirmed a', 'confirmed b']);
  });

  it('a zone list that fails confirms nothing: every zone is read back', async () => {
    const b = batch({});
    await writeAndConfirm(
      ['a', 'b'],
      (z) => z,
      b.run({ a: { serial: 5 }, b: { serial: 6 } }),
      async () => {
        throw new Error('HTTP 500');
      },
      0,
    );
    expect(b.log).toEqual(['write a', 'write b', 'read back a', 'read back b']);
  });
});
