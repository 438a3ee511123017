/**
 * Provider calls side by side within a pace (providers/kit.ts Pacer): never more in flight than
 * the pace allows, starts spaced by its rate, and listMany/applyMany across zones use it.
 */
import { describe, expect, it } from 'vitest';
import { listByZone, Pacer, writesByZone } from '../../providers/kit.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fake call that counts how many run at once. */
function counter(ms: number) {
  let now = 0;
  const seen = { max: 0, calls: 0, starts: [] as number[] };
  const call = async () => {
    seen.calls++;
    seen.starts.push(Date.now());
    now++;
    seen.max = Math.max(seen.max, now);
    await sleep(ms);
    now--;
  };
  return { seen, call };
}

const owners = (zones: number, per: number) =>
  Array.from({ length: zones * per }, (_, i) => `_25._tcp.mx${i}.z${i % zones}.test.`);
const zoneOf = async (o: string) => o.split('.').slice(-3).join('.');
const rec = (owner: string): TlsaRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: 'ab'.repeat(32),
});

describe('Pacer', () => {
  it('runs at most `concurrency` tasks at once, and more than one when allowed', async () => {
    const { seen, call } = counter(20);
    const pacer = new Pacer({ concurrency: 3 });
    await Promise.all(Array.from({ length: 12 }, () => pacer.run(call)));
    expect(seen.calls).toBe(12);
    expect(seen.max).toBe(3);
  });

  it('holds the bound across calls sharing one pacer (listMany and applyMany of one instance)', async () => {
    const { seen, call } = counter(20);
    const pacer = new Pacer({ concurrency: 2 });
    await Promise.all([pacer.each([1, 2, 3, 4, 5], call), pacer.each([1, 2, 3, 4, 5], call)]);
    expect(seen.max).toBe(2);
  });

  it('spaces starts by the rate', async () => {
    const { seen, call } = counter(1);
    const pacer = new Pacer({ concurrency: 5, perSecond: 20 });
    await pacer.each([1, 2, 3, 4, 5], call);
    const gaps = seen.starts.slice(1).map((t, i) => t - seen.starts[i]!);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(45);
  });

  it('after a failure starts nothing more, waits for the calls in flight, throws the failure', async () => {
    const { seen, call } = counter(30);
    const pacer = new Pacer({ concurrency: 2 });
    let done = 0;
    const run = pacer.each([1, 2, 3, 4, 5, 6], async (i) => {
      if (i === 2) throw new Error('zone 2 failed');
      await call();
      done++;
    });
    await expect(run).rejects.toThrow('zone 2 failed');
    expect(done).toBe(seen.calls); // nothing left running
    expect(seen.calls).toBeLessThanOrEqual(2);
  });
});

describe('listMany and applyMany across zones', () => {
  it('listByZone reads zones side by side, never more than the pace', async () => {
    const { seen, call } = counter(20);
    const all = owners(10, 3);
    const out = await listByZone(
      all,
      zoneOf,
      (z) => z,
      async (_z, items) => {
        await call();
        return new Map(items.map((o) => [o, [rec(o)]]));
      },
      new Pacer({ concurrency: 4 }),
    );
    expect(seen.calls).toBe(10); // one read per zone
    expect(seen.max).toBe(4);
    for (const o of all) expect(out.get(o)).toEqual([rec(o)]);
  });

  it('writesByZone writes zones side by side, never more than the pace; one at a time without one', async () => {
    const all = owners(8, 2);
    const changes = all.map((o) => ({ owner: o, add: [rec(o)], remove: [] }));
    const paced = counter(20);
    await writesByZone(
      'fake',
      zoneOf,
      (z) => z,
      () => paced.call(),
      undefined,
      new Pacer({ concurrency: 3 }),
    ).applyMany(changes, () => 300);
    expect(paced.seen.calls).toBe(8);
    expect(paced.seen.max).toBe(3);
    const serial = counter(5);
    await writesByZone(
      'fake',
      zoneOf,
      (z) => z,
      () => serial.call(),
    ).applyMany(changes, () => 300);
    expect(serial.seen.max).toBe(1);
  });
});
