/** When the daemon next has something to do (src/engine/due.ts): from the state and the clock. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { LoadedConfig } from '../../src/config/load.js';
import {
  nextDue,
  nextDueFor,
  recheckDelaySeconds,
  retryDelaySeconds,
  RECHECK_FLOOR_S,
  RETRY_FLOOR_S,
} from '../../src/engine/due.js';
import { liveAt } from '../../src/engine/lifecycle.js';
import type { OwnedRecord } from '../../src/engine/state.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const now = new Date('2026-01-02T00:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000).toISOString();
const at = (s: number) => new Date(now.getTime() + s * 1000).toISOString();
const rec = (s: string, extra: Partial<OwnedRecord> = {}): OwnedRecord => ({
  owner,
  usage: 3,
  selector: 1,
  matching: 1,
  data: h(s),
  provider: 'p',
  service: 'mx',
  ttl: 300,
  status: 'published',
  addedAt: ago(5000),
  publishedAt: ago(5000),
  by: 't',
  ...extra,
});
const due = (
  records: OwnedRecord[],
  propagationChecked = true,
  grace = (r: OwnedRecord) => r.ttl,
) => nextDue({ records, now, propagationChecked, graceFor: grace });

describe('nextDue', () => {
  it('the earliest moment wins; at a tie the first owner to reach it, with its records counted', () => {
    const other = '_25._tcp.mx2.example.org.';
    const d = due([
      rec('late', { seenAt: ago(10) }), // live at +590
      rec('b1', { owner: other, seenAt: ago(100) }), // live at +500, the first at +500
      rec('a1', { seenAt: ago(100) }), // the same moment at another owner: not counted
      rec('b2', { owner: other, seenAt: ago(100) }),
      rec('b3', { owner: other, seenAt: ago(50) }), // same owner, later
    ]);
    expect(d!.at.toISOString()).toBe(at(500));
    expect(d!.why).toBe(`2 record(s) at ${other} turn live`);
  });

  it('a pending record seen on every server is due when liveAt says it turns live', () => {
    const r = rec('a', { seenAt: ago(100) });
    const d = due([r]);
    expect(d!.at).toEqual(liveAt(r, true));
    expect(d!.at.toISOString()).toBe(at(500));
    expect(d!.why).toMatch(/1 record\(s\) at _25\._tcp\.mx\.example\.org\. turn live/);
  });

  it('without propagation checks, publication starts the count', () => {
    const d = due([rec('a', { publishedAt: ago(60) })], false);
    expect(d!.at.toISOString()).toBe(at(540));
  });

  it('live records and nothing owned: nothing is due', () => {
    expect(due([])).toBeUndefined();
    expect(due([rec('a', { seenAt: ago(601) }), rec('b', { seenAt: ago(3600) })])).toBeUndefined();
  });

  it('a record not yet seen on every server is re-checked soon, then less often the longer it lags', () => {
    const fresh = due([rec('a', { publishedAt: ago(0) })]);
    expect(fresh!.at.toISOString()).toBe(at(RECHECK_FLOOR_S));
    expect(fresh!.why).toMatch(/re-check 1 record\(s\) .* not yet on every authoritative server/);
    const lagging = due([rec('a', { publishedAt: ago(600) })]);
    expect(lagging!.at.getTime() - now.getTime()).toBe(recheckDelaySeconds(600) * 1000);
    expect(recheckDelaySeconds(600)).toBeGreaterThan(RECHECK_FLOOR_S);
  });

  it('a retiring record is due when its grace ends; one kept past it is re-checked with backoff', () => {
    const r = rec('old', { status: 'retiring', retiringSince: ago(100) });
    expect(due([r])!.at.toISOString()).toBe(at(200));
    expect(due([r])!.why).toMatch(/grace of 1 retiring record\(s\)/);
    // grace_s from the configuration instead of the TTL
    expect(due([r], true, () => 3600)!.at.toISOString()).toBe(at(3500));
    const kept = rec('old', { status: 'retiring', retiringSince: ago(1000) });
    const d = due([kept]);
    expect(d!.at.getTime() - now.getTime()).toBe(recheckDelaySeconds(700) * 1000);
    expect(d!.why).toMatch(/still needs 1 retiring record/);
  });

  it('an interrupted change is settled soon', () => {
    expect(
      due([rec('a', { status: 'publishing', publishedAt: undefined })])!.at.toISOString(),
    ).toBe(at(RECHECK_FLOOR_S));
    expect(due([rec('a', { status: 'removing', addedAt: ago(86400) })])!.why).toMatch(
      /interrupted/,
    );
  });

  it('the earliest of everything, counting the records due together', () => {
    const d = due([
      rec('retiring', { status: 'retiring', retiringSince: ago(0) }), // +300
      rec('a', { seenAt: ago(500) }), // +100
      rec('b', { seenAt: ago(500) }), // +100
      rec('c', { seenAt: ago(400) }), // +200
      rec('live', { seenAt: ago(5000) }),
    ]);
    expect(d!.at.toISOString()).toBe(at(100));
    expect(d!.why).toMatch(/^2 record\(s\) at .* turn live$/);
  });
});

describe('backoff', () => {
  it('re-checks grow with the wait, from the floor to a cap', () => {
    expect(recheckDelaySeconds(0)).toBe(RECHECK_FLOOR_S);
    expect(recheckDelaySeconds(40)).toBeGreaterThan(recheckDelaySeconds(10));
    expect(recheckDelaySeconds(1e9)).toBeLessThanOrEqual(3600);
  });

  it('retries after failed runs double, bounded by the interval', () => {
    expect([1, 2, 3, 4].map((n) => retryDelaySeconds(n, 300))).toEqual([
      RETRY_FLOOR_S,
      2 * RETRY_FLOOR_S,
      4 * RETRY_FLOOR_S,
      8 * RETRY_FLOOR_S,
    ]);
    expect(retryDelaySeconds(100, 300)).toBe(300);
    expect(retryDelaySeconds(1, 3)).toBe(3);
  });
});

describe('nextDueFor: the records a run is responsible for', () => {
  const config = {
    raw: {
      services: { mx: { grace_s: 50 }, web: {} },
      providers: { p: {} },
    },
  } as unknown as LoadedConfig;
  const mx = rec('mx', { status: 'retiring', retiringSince: ago(0) }); // +50 (grace_s)
  const web = rec('web', { service: 'web', seenAt: ago(590) }); // +10
  const gone = rec('gone', {
    service: 'removed-service',
    status: 'retiring',
    retiringSince: ago(295),
  }); // +5
  const elsewhere = rec('x', { service: 'removed-service', provider: 'unknown', seenAt: ago(599) });

  it('a full run: every configured service, and records of removed services it still retires', () => {
    expect(
      nextDueFor(config, [mx, web, gone, elsewhere], {
        now,
        propagationChecked: true,
      })!.at.toISOString(),
    ).toBe(at(5));
    expect(nextDueFor(config, [mx, web], { now, propagationChecked: true })!.at.toISOString()).toBe(
      at(10),
    );
  });

  it('--service: only that service, with its grace_s', () => {
    expect(
      nextDueFor(config, [mx, web, gone], {
        services: ['mx'],
        now,
        propagationChecked: true,
      })!.at.toISOString(),
    ).toBe(at(50));
  });
});

describe("nextDueFor: other writers' records a chain waits for", () => {
  const config = {
    raw: {
      ttl: 3600,
      services: { mx: { host: 'mx.example.org', ports: [25], ttl: 300 } },
      providers: { p: {} },
    },
  } as unknown as LoadedConfig;
  const rdata = `2 1 1 ${h('int')}`;

  it('wakes when one seen on every server turns live (2× the TTL after tlsa first saw it)', () => {
    const d = nextDueFor(config, [], {
      now,
      propagationChecked: true,
      observed: { [owner]: { [rdata]: ago(100) } },
    });
    expect(d!.at.toISOString()).toBe(at(500));
    expect(d!.why).toMatch(/turn live/);
  });

  it('the TTL facts at the owner raise the wait; live ones and other owners are not due', () => {
    const facts = [
      {
        ttl: 600,
        at: ago(100),
        source: 'after-write' as const,
        served: 'rrset' as const,
        foreign: true,
      },
    ];
    expect(
      nextDueFor(config, [], {
        now,
        propagationChecked: true,
        observed: { [owner]: { [rdata]: ago(100) } },
        factsAt: () => facts,
      })!.at.toISOString(),
    ).toBe(at(1100));
    expect(
      nextDueFor(config, [], {
        now,
        propagationChecked: true,
        observed: { [owner]: { [rdata]: ago(700) } },
      }),
    ).toBeUndefined();
    expect(
      nextDueFor(config, [], {
        now,
        propagationChecked: true,
        observed: { '_443._tcp.other.example.': { [rdata]: ago(100) } },
      }),
    ).toBeUndefined();
  });
});
