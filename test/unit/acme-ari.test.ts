/** The pure parts of ARI (RFC 9773) and of the renewal schedule: the certificate id of the RFC's
 *  own example certificate, renewalInfo answers good and bad, Retry-After, what a run does from
 *  the stored schedule, the schedules written after asking the CA or after a failure, the
 *  rate-limit time, and the schedule file's parser. */
import { describe, expect, it } from 'vitest';
import { fetchRenewalInfo, renewalInfoUrl } from '../../src/acme/ari-fetch.js';
import { ariCertIdOf } from '../../src/acme/ari-id.js';
import { parseRenewalInfo, retryAfterSeconds } from '../../src/acme/ari-info.js';
import { rateLimitedUntil } from '../../src/acme/ca-problem.js';
import {
  type CurrentCert,
  decidedSchedule,
  rateLimitSchedule,
  retrySchedule,
  stepFor,
} from '../../src/acme/renewal-step.js';
import { parseSchedule, type RenewalSchedule } from '../../src/acme/schedule-file.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;

// RFC 9773 Appendix A: the example end-entity certificate of §4.1.
const RFC_9773_EXAMPLE = `-----BEGIN CERTIFICATE-----
MIIBQzCB66ADAgECAgUAh2VDITAKBggqhkjOPQQDAjAVMRMwEQYDVQQDEwpFeGFt
cGxlIENBMCIYDzAwMDEwMTAxMDAwMDAwWhgPMDAwMTAxMDEwMDAwMDBaMBYxFDAS
BgNVBAMTC2V4YW1wbGUuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeBZu
7cbpAYNXZLbbh8rNIzuOoqOOtmxA1v7cRm//AwyMwWxyHz4zfwmBhcSrf47NUAFf
qzLQ2PPQxdTXREYEnKMjMCEwHwYDVR0jBBgwFoAUaYhba4dGQEHhs3uEe6CuLN4B
yNQwCgYIKoZIzj0EAwIDRwAwRAIge09+S5TZAlw5tgtiVvuERV6cT4mfutXIlwTb
+FYN/8oCIClDsqBklhB9KAelFiYt9+6FDj3z4KGVelYM5MdsO3pK
-----END CERTIFICATE-----
`;

describe('ARI certificate id of the RFC 9773 example certificate', () => {
  it('is aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE (§4.1), read from the certificate itself', () => {
    expect(ariCertIdOf(RFC_9773_EXAMPLE)).toBe('aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });
});

describe('renewalInfo answers', () => {
  const good = JSON.stringify({
    suggestedWindow: { start: '2025-01-02T04:00:00Z', end: '2025-01-03T04:00:00Z' },
    explanationURL: 'https://acme.example.com/docs/ari',
  });

  it('reads the window and the explanation URL (the RFC example)', () => {
    expect(parseRenewalInfo(200, good)).toEqual({
      ok: true,
      info: {
        window: { start: new Date('2025-01-02T04:00:00Z'), end: new Date('2025-01-03T04:00:00Z') },
        explanationURL: 'https://acme.example.com/docs/ari',
      },
    });
  });

  it('refuses bad answers with the reason, never throwing', () => {
    const why = (status: number, body: string) => {
      const r = parseRenewalInfo(status, body);
      return r.ok ? 'ok' : r.why;
    };
    expect(why(404, good)).toBe('HTTP 404');
    expect(why(200, '{"suggestedWindow":')).toBe('not JSON');
    expect(why(200, '{}')).toBe('no suggestedWindow');
    expect(why(200, 'null')).toBe('no suggestedWindow');
    expect(why(200, '{"suggestedWindow": {"start": "2025-01-02T04:00:00Z"}}')).toMatch(
      /no valid start and end/,
    );
    expect(
      why(200, '{"suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "yesterday"}}'),
    ).toMatch(/no valid start and end/);
    // RFC 9773 §4.2: end at or before start is invalid.
    for (const end of ['2025-01-01T04:00:00Z', '2025-01-02T04:00:00Z'])
      expect(
        why(200, JSON.stringify({ suggestedWindow: { start: '2025-01-02T04:00:00Z', end } })),
      ).toBe('the suggestedWindow does not end after it starts');
  });

  it('is asked at renewalInfo/ID, over https or loopback http only', async () => {
    expect(renewalInfoUrl('https://ca.example/ri/', 'a.b')).toBe('https://ca.example/ri/a.b');
    const plain = await fetchRenewalInfo('http://ca.example/ri', 'a.b', undefined, new Date());
    expect(plain.result).toEqual({
      ok: false,
      why: 'renewalInfo http://ca.example/ri/a.b is neither https nor loopback http',
    });
  });

  it('Retry-After: seconds or an HTTP date, nothing for garbage', () => {
    const now = new Date('2025-01-01T00:00:00Z');
    expect(retryAfterSeconds('21600', now)).toBe(21_600);
    expect(retryAfterSeconds('Wed, 01 Jan 2025 02:00:00 GMT', now)).toBe(7200);
    expect(retryAfterSeconds('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
    expect(retryAfterSeconds('soon', now)).toBeUndefined();
    expect(retryAfterSeconds(undefined, now)).toBeUndefined();
  });
});

const now = new Date('2026-03-01T00:00:00Z');
const cert: CurrentCert = {
  serial: '0A1B',
  notBefore: new Date(now.getTime() - 30 * DAY),
  notAfter: new Date(now.getTime() + 60 * DAY),
  ariId: 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE',
};

describe('what a run does with a lineage', () => {
  const iso = (ms: number) => new Date(now.getTime() + ms).toISOString();
  const sched = (s: Partial<RenewalSchedule>): RenewalSchedule => ({
    at: iso(10 * DAY),
    source: 'ari',
    serial: cert.serial,
    decidedAt: iso(-HOUR),
    nextPollAt: iso(HOUR),
    ...s,
  });

  it('no certificate: renew; forced: renew', () => {
    expect(stepFor(undefined, undefined, now, false)).toEqual({
      kind: 'renew',
      why: 'no certificate',
    });
    expect(stepFor(cert, sched({}), now, true)).toEqual({ kind: 'renew', why: 'forced' });
  });

  it('before nextPollAt the stored schedule answers: not due, or due once its time came', () => {
    expect(stepFor(cert, sched({}), now, false)).toEqual({
      kind: 'not-due',
      due: { at: new Date(iso(10 * DAY)), source: 'ari', nextPollAt: new Date(iso(HOUR)) },
    });
    expect(stepFor(cert, sched({ at: iso(-1) }), now, false)).toEqual({
      kind: 'renew',
      why: 'due',
    });
    // A lifetime decision that has come due renews too (a failed ARI poll never blocks it).
    expect(stepFor(cert, sched({ source: 'lifetime', at: iso(-1) }), now, false).kind).toBe(
      'renew',
    );
  });

  it('asks the CA again when there is no schedule, it is stale, or its poll time came', () => {
    expect(stepFor(cert, undefined, now, false)).toEqual({ kind: 'decide' });
    expect(stepFor(cert, sched({ serial: 'FFFF' }), now, false)).toEqual({ kind: 'decide' });
    expect(stepFor(cert, sched({ nextPollAt: iso(-1) }), now, false)).toEqual({
      kind: 'decide',
    });
    const { nextPollAt: _, ...noPoll } = sched({});
    expect(stepFor(cert, noPoll, now, false)).toEqual({ kind: 'decide' });
  });

  it('a rate-limit wait holds even against --force, and even without a certificate', () => {
    const limited = sched({ source: 'rate-limit', at: iso(2 * HOUR), lastError: 'too many' });
    const step = { kind: 'rate-limited', until: new Date(iso(2 * HOUR)), lastError: 'too many' };
    expect(stepFor(cert, limited, now, false)).toEqual(step);
    expect(stepFor(cert, limited, now, true)).toEqual(step);
    expect(stepFor(undefined, { ...limited, serial: '' }, now, true)).toEqual(step);
    // Over, or for another certificate: no longer binding.
    expect(stepFor(cert, { ...limited, at: iso(-1) }, now, false)).toEqual({ kind: 'decide' });
    expect(stepFor(cert, { ...limited, serial: 'FFFF' }, now, false)).toEqual({ kind: 'decide' });
  });

  it('after a failure: not due before the backoff, then asked again; --force retries at once', () => {
    const retry = sched({ source: 'retry', at: iso(HOUR), nextPollAt: undefined });
    delete retry.nextPollAt;
    expect(stepFor(cert, retry, now, false)).toEqual({
      kind: 'not-due',
      due: { at: new Date(iso(HOUR)), source: 'retry' },
    });
    expect(stepFor(cert, { ...retry, at: iso(-1) }, now, false)).toEqual({ kind: 'decide' });
    expect(stepFor(cert, retry, now, true).kind).toBe('renew');
  });
});

describe('schedules written', () => {
  it('from an ARI window: a time inside it (the same on every run), the next poll by Retry-After', () => {
    const window = {
      start: new Date(now.getTime() + 20 * DAY),
      end: new Date(now.getTime() + 22 * DAY),
    };
    const s = decidedSchedule(cert, now, { window, retryAfterS: 3600 });
    expect(s.source).toBe('ari');
    expect(s.serial).toBe('0A1B');
    expect(Date.parse(s.at)).toBeGreaterThanOrEqual(window.start.getTime());
    expect(Date.parse(s.at)).toBeLessThanOrEqual(window.end.getTime());
    expect(s.windowStart).toBe(window.start.toISOString());
    expect(s.windowEnd).toBe(window.end.toISOString());
    expect(s.nextPollAt).toBe(new Date(now.getTime() + HOUR).toISOString());
    expect(decidedSchedule(cert, new Date(now.getTime() + 5 * HOUR), { window }).at).toBe(s.at);
    expect(parseSchedule(JSON.stringify(s))).toEqual(s);
  });

  it('without a usable window: the lifetime rule, the next poll after Retry-After or six hours', () => {
    const s = decidedSchedule(cert, now, undefined);
    expect(s.source).toBe('lifetime');
    expect(s.at).toBe(new Date(now.getTime() + 30 * DAY).toISOString()); // 2/3 of 90 days
    expect(s.nextPollAt).toBe(new Date(now.getTime() + 6 * HOUR).toISOString());
    expect(decidedSchedule(cert, now, { retryAfterS: 600 }).nextPollAt).toBe(
      new Date(now.getTime() + 600_000).toISOString(),
    );
  });

  it('after failures: a backoff of 15 minutes, doubled for the same certificate, at most 6 hours', () => {
    const first = retrySchedule('0A1B', undefined, now, 'boom');
    expect(first).toEqual({
      at: new Date(now.getTime() + 15 * 60_000).toISOString(),
      source: 'retry',
      serial: '0A1B',
      lastError: 'boom',
      decidedAt: now.toISOString(),
    });
    const later = new Date(Date.parse(first.at));
    expect(retrySchedule('0A1B', first, later, 'boom').at).toBe(
      new Date(later.getTime() + 30 * 60_000).toISOString(),
    );
    const long = { ...first, at: new Date(now.getTime() + 5 * HOUR).toISOString() };
    expect(retrySchedule('0A1B', long, now, 'x').at).toBe(
      new Date(now.getTime() + 6 * HOUR).toISOString(),
    );
    // Another certificate starts over.
    expect(retrySchedule('FFFF', long, now, 'x').at).toBe(first.at);
    const limited = rateLimitSchedule('0A1B', new Date(now.getTime() + HOUR), now, 'slow down');
    expect(parseSchedule(JSON.stringify(limited))).toEqual(limited);
  });

  it('rateLimited: Retry-After, else the time in the detail text, else an hour', () => {
    expect(rateLimitedUntil({ status: 429, retryAfterS: 7200 }, now)).toEqual(
      new Date(now.getTime() + 2 * HOUR),
    );
    expect(
      rateLimitedUntil(
        {
          status: 429,
          detail:
            'too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-03-02 10:00:00 UTC: see https://letsencrypt.org/docs/rate-limits/',
        },
        now,
      ),
    ).toEqual(new Date('2026-03-02T10:00:00Z'));
    expect(rateLimitedUntil({ status: 429, detail: 'slow down' }, now)).toEqual(
      new Date(now.getTime() + HOUR),
    );
  });
});

describe('schedule file parser', () => {
  const ok: RenewalSchedule = {
    at: '2026-03-10T00:00:00.000Z',
    source: 'ari',
    windowStart: '2026-03-09T00:00:00.000Z',
    windowEnd: '2026-03-11T00:00:00.000Z',
    nextPollAt: '2026-03-01T06:00:00.000Z',
    serial: '0A1B',
    decidedAt: '2026-03-01T00:00:00.000Z',
  };

  it('reads a schedule, and reads anything else as none', () => {
    expect(parseSchedule(JSON.stringify(ok))).toEqual(ok);
    expect(parseSchedule('not json')).toBeUndefined();
    expect(parseSchedule('[]')).toBeUndefined();
    expect(parseSchedule('null')).toBeUndefined();
    expect(parseSchedule(JSON.stringify({ ...ok, source: 'guess' }))).toBeUndefined();
    expect(parseSchedule(JSON.stringify({ ...ok, at: 'tomorrow' }))).toBeUndefined();
    expect(parseSchedule(JSON.stringify({ ...ok, nextPollAt: 'later' }))).toBeUndefined();
    expect(parseSchedule(JSON.stringify({ ...ok, serial: 42 }))).toBeUndefined();
    expect(parseSchedule(JSON.stringify({ ...ok, lastError: {} }))).toBeUndefined();
    const { decidedAt: _, ...undated } = ok;
    expect(parseSchedule(JSON.stringify(undated))).toBeUndefined();
  });
});
