/** What a built-in ACME lineage's schedule file (schedule-file.ts) says about its current
 *  certificate at a given moment: the one reading of it that `renew` (what to do), the daemon
 *  (when to wake) and `status` (what to show) share. Pure: no I/O, no clock.
 *
 *  A schedule counts only for the certificate it was made for (its serial; with no certificate,
 *  one made before the first issuance). Before its nextPollAt the schedule answers without
 *  asking the CA; a rate-limit wait holds until its time; a failure is retried once its backoff
 *  is over. Without a schedule for the certificate, the lifetime rule says when it is renewed
 *  (and `renew` asks the CA). */
import { lifetimeRenewal } from './renewal-time.js';
import type { RenewalSchedule, ScheduleSource } from './schedule-file.js';

/** The facts of a lineage's current certificate a renewal time depends on. */
export interface CertFacts {
  /** Hex, as X509Certificate.serialNumber gives it. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Where the next renewal time comes from: a schedule's source, or no certificate at all. */
export type NextRenewalSource = ScheduleSource | 'no-certificate';

export interface NextRenewal {
  /** Renew at (or after) this moment. */
  at: Date;
  source: NextRenewalSource;
  /** The CA's ARI window (source 'ari'). */
  windowStart?: Date;
  windowEnd?: Date;
  /** When to ask the CA's renewalInfo again, if sooner than `at` matters. */
  nextPollAt?: Date;
  /** Why the last attempt failed (source 'rate-limit' or 'retry'). */
  lastError?: string;
  /** A schedule was found but is for another certificate: the lifetime rule decided. */
  staleSchedule?: boolean;
}

/** What `renew` does now, unless forced (a rate-limit wait holds even then). */
export type RenewalAction =
  | { kind: 'renew'; why: 'no certificate' | 'due' }
  /** The schedule answers: its time has not come. */
  | { kind: 'wait' }
  /** The schedule does not answer (none for this certificate, its poll time has come, a
   *  retry's backoff is over): ask the CA. */
  | { kind: 'ask-ca' }
  | { kind: 'rate-limited'; until: Date; lastError?: string };

export interface RenewalDecision {
  action: RenewalAction;
  /** When the lineage is next renewed as far as the files say. */
  next: NextRenewal;
  /** The schedule made for this certificate (for no certificate: before the first issuance). */
  schedule?: RenewalSchedule;
  /** When the schedule behind `next` was written. */
  decidedAt?: Date;
}

/** Serial numbers compared as numbers written in hex (case and leading zeros aside). */
export function sameSerial(a: string, b: string): boolean {
  const norm = (s: string) =>
    s
      .replace(/[:\s]/g, '')
      .toLowerCase()
      .replace(/^0+(?=.)/, '');
  return norm(a) === norm(b);
}

export function renewalDecision(
  cert: CertFacts | undefined,
  stored: RenewalSchedule | undefined,
  now: Date,
): RenewalDecision {
  const schedule = stored && sameSerial(stored.serial, cert?.serial ?? '') ? stored : undefined;
  const made = schedule ? { schedule } : {};
  const t = now.getTime();
  const at = schedule ? Date.parse(schedule.at) : Number.NaN;
  if (!cert) {
    // Due at once, as far as anyone can see; a rate-limit wait holds `renew` back.
    const next: NextRenewal = { at: now, source: 'no-certificate' };
    const action: RenewalAction =
      schedule?.source === 'rate-limit' && at > t
        ? rateLimited(schedule)
        : { kind: 'renew', why: 'no certificate' };
    return { action, next, ...made };
  }
  if (!schedule)
    return {
      action: { kind: 'ask-ca' },
      next: {
        at: lifetimeRenewal(cert.notBefore, cert.notAfter),
        source: 'lifetime',
        ...(stored ? { staleSchedule: true } : {}),
      },
    };
  return {
    action: actionOf(schedule, at, t),
    next: nextOf(schedule),
    schedule,
    decidedAt: new Date(schedule.decidedAt),
  };
}

function actionOf(s: RenewalSchedule, at: number, t: number): RenewalAction {
  if (s.source === 'rate-limit') return at > t ? rateLimited(s) : { kind: 'ask-ca' };
  if (s.source === 'retry') return at > t ? { kind: 'wait' } : { kind: 'ask-ca' };
  if (!s.nextPollAt || Date.parse(s.nextPollAt) <= t) return { kind: 'ask-ca' };
  return at <= t ? { kind: 'renew', why: 'due' } : { kind: 'wait' };
}

const rateLimited = (s: RenewalSchedule): RenewalAction => ({
  kind: 'rate-limited',
  until: new Date(s.at),
  ...(s.lastError ? { lastError: s.lastError } : {}),
});

function nextOf(s: RenewalSchedule): NextRenewal {
  return {
    at: new Date(s.at),
    source: s.source,
    ...(s.windowStart ? { windowStart: new Date(s.windowStart) } : {}),
    ...(s.windowEnd ? { windowEnd: new Date(s.windowEnd) } : {}),
    ...(s.nextPollAt ? { nextPollAt: new Date(s.nextPollAt) } : {}),
    ...(s.lastError ? { lastError: s.lastError } : {}),
  };
}
