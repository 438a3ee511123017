/** The one reading of a lineage's schedule file (src/acme/renewal-decision.ts) that `renew`,
 *  the daemon and `status` share: what `renew` does, when the lineage is next renewed, and which
 *  schedule stands behind it, for every kind of schedule and certificate. */
import { describe, expect, it } from 'vitest';
import { renewalDecision } from '../../src/acme/renewal-decision.js';
import type { RenewalSchedule } from '../../src/acme/schedule-file.js';

const T = (iso: string) => new Date(iso);
const now = T('2026-06-01T00:00:00Z');
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(now.getTime() + ms).toISOString();
// 90 days: the lifetime rule renews at two thirds, day 60.
const cert = {
  serial: '0A1B',
  notBefore: T('2026-05-01T00:00:00Z'),
  notAfter: T('2026-07-30T00:00:00Z'),
};
const LIFETIME_AT = T('2026-06-30T00:00:00Z');
const DECIDED = '2026-05-31T23:00:00.000Z';

const sched = (s: Partial<RenewalSchedule>): RenewalSchedule => ({
  at: iso(240 * HOUR),
  source: 'ari',
  serial: '000a1b',
  decidedAt: DECIDED,
  nextPollAt: iso(HOUR),
  ...s,
});

describe('renewalDecision', () => {
  it('no certificate: renew now, and shown as due now, whatever the schedule says', () => {
    for (const s of [undefined, sched({}), sched({ serial: '' })])
      expect(renewalDecision(undefined, s, now)).toMatchObject({
        action: { kind: 'renew', why: 'no certificate' },
        next: { at: now, source: 'no-certificate' },
      });
    expect(renewalDecision(undefined, sched({ serial: '' }), now).decidedAt).toBeUndefined();
  });

  it('no certificate and a rate-limit wait made before the first issuance: renew waits, the view stays "due now"', () => {
    const limited = sched({ source: 'rate-limit', serial: '', at: iso(HOUR), lastError: 'slow' });
    expect(renewalDecision(undefined, limited, now)).toEqual({
      action: { kind: 'rate-limited', until: new Date(iso(HOUR)), lastError: 'slow' },
      next: { at: now, source: 'no-certificate' },
      schedule: limited,
    });
  });

  it('no schedule, or one for another certificate: ask the CA; the lifetime rule meanwhile', () => {
    expect(renewalDecision(cert, undefined, now)).toEqual({
      action: { kind: 'ask-ca' },
      next: { at: LIFETIME_AT, source: 'lifetime' },
    });
    expect(renewalDecision(cert, sched({ serial: '0a1c' }), now)).toEqual({
      action: { kind: 'ask-ca' },
      next: { at: LIFETIME_AT, source: 'lifetime', staleSchedule: true },
    });
  });

  it('an ARI schedule before its poll time: wait, or renew once its time came', () => {
    const s = sched({
      windowStart: iso(200 * HOUR),
      windowEnd: iso(300 * HOUR),
    });
    expect(renewalDecision(cert, s, now)).toEqual({
      action: { kind: 'wait' },
      next: {
        at: new Date(iso(240 * HOUR)),
        source: 'ari',
        windowStart: new Date(iso(200 * HOUR)),
        windowEnd: new Date(iso(300 * HOUR)),
        nextPollAt: new Date(iso(HOUR)),
      },
      schedule: s,
      decidedAt: T(DECIDED),
    });
    expect(renewalDecision(cert, sched({ at: iso(-1) }), now).action).toEqual({
      kind: 'renew',
      why: 'due',
    });
    expect(renewalDecision(cert, sched({ source: 'lifetime', at: iso(-1) }), now).action).toEqual({
      kind: 'renew',
      why: 'due',
    });
  });

  it('its poll time came, or none was set: ask the CA; the schedule is still what is shown', () => {
    const polled = renewalDecision(cert, sched({ nextPollAt: iso(-1) }), now);
    expect(polled.action).toEqual({ kind: 'ask-ca' });
    expect(polled.next.at).toEqual(new Date(iso(240 * HOUR)));
    expect(polled.decidedAt).toEqual(T(DECIDED));
    const { nextPollAt: _, ...noPoll } = sched({});
    expect(renewalDecision(cert, noPoll, now).action).toEqual({ kind: 'ask-ca' });
  });

  it('a rate-limit wait holds until its time, then the CA is asked', () => {
    const limited = sched({ source: 'rate-limit', at: iso(2 * HOUR), lastError: 'too many' });
    expect(renewalDecision(cert, limited, now)).toEqual({
      action: { kind: 'rate-limited', until: new Date(iso(2 * HOUR)), lastError: 'too many' },
      next: {
        at: new Date(iso(2 * HOUR)),
        source: 'rate-limit',
        nextPollAt: new Date(iso(HOUR)),
        lastError: 'too many',
      },
      schedule: limited,
      decidedAt: T(DECIDED),
    });
    expect(renewalDecision(cert, { ...limited, at: iso(-1) }, now).action).toEqual({
      kind: 'ask-ca',
    });
  });

  it('after a failure: wait for the backoff (a poll time does not shorten it), then ask the CA', () => {
    const retry = sched({ source: 'retry', at: iso(HOUR), nextPollAt: iso(-HOUR) });
    expect(renewalDecision(cert, retry, now).action).toEqual({ kind: 'wait' });
    expect(renewalDecision(cert, { ...retry, at: iso(-1) }, now).action).toEqual({
      kind: 'ask-ca',
    });
  });
});
