/** What `renew` does with one lineage now, from its current certificate and the schedule the
 *  last run wrote (read as renewal-decision.ts reads it for everyone), and the schedules it
 *  writes after asking the CA or after a failure. Pure.
 *
 *  --force renews at once, except while a rate-limit wait holds (asking earlier only adds to
 *  the limit). */
import { renewalDecision, sameSerial } from './renewal-decision.js';
import type { RenewalSchedule, ScheduleSource } from './schedule-file.js';
import { type AriWindow, pollDelaySeconds, renewalTime, windowFraction } from './renewal-time.js';

export interface CurrentCert {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** RFC 9773 id; undefined when the certificate has no Authority Key Identifier. */
  ariId?: string;
}

export interface Due {
  at: Date;
  source: ScheduleSource;
  nextPollAt?: Date;
}

export type RenewalStep =
  | { kind: 'renew'; why: 'no certificate' | 'forced' | 'due' }
  | { kind: 'not-due'; due: Due }
  | { kind: 'rate-limited'; until: Date; lastError?: string }
  /** The stored schedule does not answer (none, stale, or its poll time has come). */
  | { kind: 'decide' };

export function dueOfSchedule(s: RenewalSchedule): Due {
  return {
    at: new Date(s.at),
    source: s.source,
    ...(s.nextPollAt ? { nextPollAt: new Date(s.nextPollAt) } : {}),
  };
}

export function stepFor(
  cert: CurrentCert | undefined,
  stored: RenewalSchedule | undefined,
  now: Date,
  force: boolean,
): RenewalStep {
  const { action, schedule } = renewalDecision(cert, stored, now);
  if (action.kind === 'rate-limited') return action;
  if (action.kind === 'renew' && action.why === 'no certificate') return action;
  if (force) return { kind: 'renew', why: 'forced' };
  if (action.kind === 'wait') return { kind: 'not-due', due: dueOfSchedule(schedule!) };
  return action.kind === 'ask-ca' ? { kind: 'decide' } : action;
}

/** The schedule after asking the CA: inside its window when it gave a usable one, else by the
 *  lifetime rule, asking again after Retry-After (bounded; six hours when not said). */
export function decidedSchedule(
  cert: CurrentCert,
  now: Date,
  ari: { window: AriWindow; retryAfterS?: number } | { retryAfterS?: number } | undefined,
): RenewalSchedule {
  const base = { serial: cert.serial, decidedAt: now.toISOString() };
  if (ari && 'window' in ari) {
    const d = renewalTime({
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      now,
      ari: {
        window: ari.window,
        fraction: windowFractionSeed(cert),
        ...(ari.retryAfterS !== undefined ? { retryAfterS: ari.retryAfterS } : {}),
      },
    });
    return {
      ...base,
      at: d.at.toISOString(),
      source: 'ari',
      windowStart: ari.window.start.toISOString(),
      windowEnd: ari.window.end.toISOString(),
      nextPollAt: d.nextPollAt!.toISOString(),
    };
  }
  const d = renewalTime({ notBefore: cert.notBefore, notAfter: cert.notAfter, now });
  const pollS = pollDelaySeconds(ari?.retryAfterS);
  return {
    ...base,
    at: d.at.toISOString(),
    source: 'lifetime',
    nextPollAt: new Date(now.getTime() + pollS * 1000).toISOString(),
  };
}

const windowFractionSeed = (cert: CurrentCert): number => windowFraction(cert.ariId ?? cert.serial);

/** Backoff after a failed attempt: 15 minutes, doubled after each failure for the same
 *  certificate, at most six hours (a daemon wakes then; a cron run before it says not due). */
const FIRST_RETRY_S = 15 * 60;
const MAX_RETRY_S = 6 * 3600;

export function retrySchedule(
  serial: string,
  previous: RenewalSchedule | undefined,
  now: Date,
  lastError: string,
): RenewalSchedule {
  let delayS = FIRST_RETRY_S;
  if (previous?.source === 'retry' && sameSerial(previous.serial, serial)) {
    const before = (Date.parse(previous.at) - Date.parse(previous.decidedAt)) / 1000;
    delayS = Math.min(MAX_RETRY_S, Math.max(FIRST_RETRY_S, before * 2));
  }
  return {
    at: new Date(now.getTime() + delayS * 1000).toISOString(),
    source: 'retry',
    serial,
    lastError,
    decidedAt: now.toISOString(),
  };
}

export function rateLimitSchedule(
  serial: string,
  until: Date,
  now: Date,
  lastError: string,
): RenewalSchedule {
  return {
    at: until.toISOString(),
    source: 'rate-limit',
    serial,
    lastError,
    decidedAt: now.toISOString(),
  };
}
