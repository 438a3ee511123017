/** When a built-in ACME lineage is next renewed and when the daemon wakes for it
 *  (src/acme/renewal-due.ts): the schedule `renew` wrote for the current certificate, the
 *  lifetime rule when there is none or it is for another certificate, an earlier poll of the
 *  CA, and the daemon's last attempt until a newer schedule replaces it. */
import { describe, expect, it } from 'vitest';
import {
  earliestWake,
  lineageWake,
  nextKeyWarning,
  nextRenewal,
  sameSerial,
  sourceText,
} from '../../src/acme/renewal-due.js';
import type { RenewalSchedule } from '../../src/acme/schedule-file.js';

const T = (iso: string) => new Date(iso);
const now = T('2026-06-01T00:00:00Z');
// 90 days: the lifetime rule renews at two thirds, day 60.
const cert = {
  serial: '0A1B',
  notBefore: T('2026-05-01T00:00:00Z'),
  notAfter: T('2026-07-30T00:00:00Z'),
};
const LIFETIME_AT = T('2026-06-30T00:00:00Z');

const schedule = (s: Partial<RenewalSchedule>): RenewalSchedule => ({
  at: '2026-06-10T12:00:00.000Z',
  source: 'ari',
  serial: '0a1b',
  decidedAt: '2026-06-01T00:00:00.000Z',
  ...s,
});

describe('nextRenewal', () => {
  it('no certificate: due now', () => {
    expect(nextRenewal(undefined, schedule({}), now)).toEqual({
      at: now,
      source: 'no-certificate',
    });
  });

  it('no schedule: the lifetime rule', () => {
    expect(nextRenewal(cert, undefined, now)).toEqual({ at: LIFETIME_AT, source: 'lifetime' });
  });

  it('a schedule for another certificate is stale: the lifetime rule, said so', () => {
    const n = nextRenewal(cert, schedule({ serial: '0a1c' }), now);
    expect(n).toEqual({ at: LIFETIME_AT, source: 'lifetime', staleSchedule: true });
    expect(sourceText(n)).toMatch(/lifetime rule; the schedule file is for an earlier certificate/);
  });

  it('the ARI schedule of the current certificate (serials compared as hex numbers)', () => {
    expect(sameSerial('000A1B', '0a:1b')).toBe(true);
    const n = nextRenewal(
      cert,
      schedule({
        windowStart: '2026-06-10T00:00:00.000Z',
        windowEnd: '2026-06-11T00:00:00.000Z',
        nextPollAt: '2026-06-01T06:00:00.000Z',
      }),
      now,
    );
    expect(n).toEqual({
      at: T('2026-06-10T12:00:00Z'),
      source: 'ari',
      windowStart: T('2026-06-10T00:00:00Z'),
      windowEnd: T('2026-06-11T00:00:00Z'),
      nextPollAt: T('2026-06-01T06:00:00Z'),
    });
    expect(sourceText(n)).toBe('ARI window 2026-06-10T00:00:00.000Z – 2026-06-11T00:00:00.000Z');
  });

  it('a rate limit and a retry say until when and why', () => {
    const rl = nextRenewal(
      cert,
      schedule({
        source: 'rate-limit',
        at: '2026-06-01T03:00:00.000Z',
        lastError: 'too many certificates',
      }),
      now,
    );
    expect(rl).toMatchObject({ source: 'rate-limit', at: T('2026-06-01T03:00:00Z') });
    expect(sourceText(rl)).toBe(
      'rate limited until 2026-06-01T03:00:00.000Z: too many certificates',
    );
    const retry = nextRenewal(cert, schedule({ source: 'retry', lastError: 'ECONNREFUSED' }), now);
    expect(sourceText(retry)).toBe('retry after an error: ECONNREFUSED');
  });
});

describe('lineageWake: when the daemon looks at a lineage again', () => {
  const label = 'mx ecdsa-p256';
  const ari = nextRenewal(cert, schedule({}), now);

  it('at the renewal time', () => {
    expect(lineageWake({ label, next: ari })).toEqual({
      at: T('2026-06-10T12:00:00Z'),
      why: 'renew mx ecdsa-p256 (inside the ARI window)',
    });
    expect(lineageWake({ label, next: nextRenewal(cert, undefined, now) }).at).toEqual(LIFETIME_AT);
  });

  it('at the next poll of the CA when that comes first, not after it', () => {
    const polled = { ...ari, nextPollAt: T('2026-06-01T06:00:00Z') };
    expect(lineageWake({ label, next: polled })).toEqual({
      at: T('2026-06-01T06:00:00Z'),
      why: 'ask the CA about the renewal of mx ecdsa-p256 again (ARI)',
    });
    const late = { ...ari, nextPollAt: T('2026-06-20T00:00:00Z') };
    expect(lineageWake({ label, next: late }).at).toEqual(ari.at);
  });

  it('after a failed attempt: at its retry time, until a schedule written since replaces it', () => {
    const due = { at: T('2026-05-31T00:00:00Z'), source: 'retry' as const };
    const attempt = {
      at: now,
      retryAt: T('2026-06-01T00:00:05Z'),
      why: 'retry the renewal of mx ecdsa-p256 after 1 failure(s)',
    };
    // The schedule (written before the attempt) says "due": without the attempt, a spin.
    expect(
      lineageWake({ label, next: due, scheduleDecidedAt: T('2026-05-30T00:00:00Z'), attempt }),
    ).toEqual({ at: attempt.retryAt, why: attempt.why });
    // The failure wrote its own schedule (rate limited for an hour): that one counts.
    const limited = { at: T('2026-06-01T01:00:00Z'), source: 'rate-limit' as const };
    expect(lineageWake({ label, next: limited, scheduleDecidedAt: now, attempt }).at).toEqual(
      limited.at,
    );
    // …also when it is sooner than the daemon's own backoff (decided at the attempt's clock).
    const soon = { at: T('2026-06-01T00:00:02Z'), source: 'retry' as const };
    expect(lineageWake({ label, next: soon, scheduleDecidedAt: now, attempt }).at).toEqual(soon.at);
    // An attempt whose retry comes before the renewal time changes nothing.
    expect(lineageWake({ label, next: ari, attempt }).at).toEqual(ari.at);
  });

  it('earliestWake: the first of several lineages, none for none', () => {
    const a = { at: T('2026-06-02T00:00:00Z'), why: 'a' };
    const b = { at: T('2026-06-01T12:00:00Z'), why: 'b' };
    expect(earliestWake([a, b])).toBe(b);
    expect(earliestWake([])).toBeUndefined();
  });
});

describe('nextKeyWarning: a renewal soon and the next key not live', () => {
  const base = { label: 'mx ecdsa-p256', ttl: 3600, now };
  const inHours = (h: number) => ({
    at: new Date(now.getTime() + h * 3600_000),
    source: 'lifetime' as const,
  });

  it('warns within 24 h, or 2×TTL when that is longer', () => {
    expect(nextKeyWarning({ ...base, next: inHours(23), nextKeyLive: false })).toMatch(
      /renewal of mx ecdsa-p256 is due at .* next key's 3 1 1 is not live/,
    );
    expect(nextKeyWarning({ ...base, next: inHours(25), nextKeyLive: false })).toBeUndefined();
    expect(
      nextKeyWarning({ ...base, ttl: 86_400, next: inHours(47), nextKeyLive: false }),
    ).toBeDefined();
    expect(nextKeyWarning({ ...base, next: inHours(-1), nextKeyLive: false })).toMatch(
      /is due now/,
    );
  });

  it('says nothing when the next key is live', () => {
    expect(nextKeyWarning({ ...base, next: inHours(1), nextKeyLive: true })).toBeUndefined();
  });
});
