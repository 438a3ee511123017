/** When a built-in ACME lineage is next renewed, and when the daemon should next look at it,
 *  from its certificate, the schedule `renew` last wrote (schedule-file.ts) and the daemon's own
 *  last attempt. Pure: no I/O, no clock. */
import type { RenewalSchedule, ScheduleSource } from './schedule-file.js';
import { lifetimeRenewal } from './renewal-time.js';

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

/** Serial numbers compared as numbers written in hex (case and leading zeros aside). */
export function sameSerial(a: string, b: string): boolean {
  const norm = (s: string) =>
    s
      .replace(/[:\s]/g, '')
      .toLowerCase()
      .replace(/^0+(?=.)/, '');
  return norm(a) === norm(b);
}

export function nextRenewal(
  cert: CertFacts | undefined,
  schedule: RenewalSchedule | undefined,
  now: Date,
): NextRenewal {
  if (!cert) return { at: now, source: 'no-certificate' };
  if (!schedule || !sameSerial(schedule.serial, cert.serial))
    return {
      at: lifetimeRenewal(cert.notBefore, cert.notAfter),
      source: 'lifetime',
      ...(schedule ? { staleSchedule: true } : {}),
    };
  return {
    at: new Date(schedule.at),
    source: schedule.source,
    ...(schedule.windowStart ? { windowStart: new Date(schedule.windowStart) } : {}),
    ...(schedule.windowEnd ? { windowEnd: new Date(schedule.windowEnd) } : {}),
    ...(schedule.nextPollAt ? { nextPollAt: new Date(schedule.nextPollAt) } : {}),
    ...(schedule.lastError ? { lastError: schedule.lastError } : {}),
  };
}

const SOURCE_TEXT: Record<NextRenewalSource, string> = {
  ari: 'inside the ARI window',
  lifetime: 'lifetime rule',
  'rate-limit': 'rate limited',
  retry: 'retry after an error',
  'no-certificate': 'no certificate yet',
};

/** "ARI window 2026-…–2026-…", "lifetime rule", "rate limited until …: why", for humans. */
export function sourceText(n: NextRenewal): string {
  switch (n.source) {
    case 'ari':
      return n.windowStart && n.windowEnd
        ? `ARI window ${n.windowStart.toISOString()} – ${n.windowEnd.toISOString()}`
        : SOURCE_TEXT.ari;
    case 'rate-limit':
      return `rate limited until ${n.at.toISOString()}${n.lastError ? `: ${n.lastError}` : ''}`;
    case 'retry':
      return `retry after an error${n.lastError ? `: ${n.lastError}` : ''}`;
    default:
      return `${SOURCE_TEXT[n.source]}${n.staleSchedule ? '; the schedule file is for an earlier certificate' : ''}`;
  }
}

/** The daemon's last try at a lineage: a renewal that failed, or one the renewal itself found
 *  not due yet. Until a newer schedule is written, the daemon waits for `retryAt`, so that a
 *  schedule nobody updates (a failure before the CA answered) does not make it spin. */
export interface LastAttempt {
  at: Date;
  retryAt: Date;
  why: string;
}

export interface Wake {
  at: Date;
  why: string;
}

/** When the daemon should look at the lineage `label` ("mx ecdsa-p256") again: its renewal
 *  time, or the next poll of the CA when that comes first, or after its last attempt. */
export function lineageWake(input: {
  label: string;
  next: NextRenewal;
  /** When the schedule file was written (`decidedAt`), if one applies. */
  scheduleDecidedAt?: Date;
  attempt?: LastAttempt;
}): Wake {
  const { label, next, attempt } = input;
  const own: Wake =
    next.nextPollAt && next.nextPollAt.getTime() < next.at.getTime()
      ? { at: next.nextPollAt, why: `ask the CA about the renewal of ${label} again (ARI)` }
      : { at: next.at, why: `renew ${label} (${sourceText(next)})` };
  // A schedule decided at the attempt's own clock (`renew` given the same `now`) is the answer
  // of that attempt: it counts.
  const superseded =
    !attempt ||
    (input.scheduleDecidedAt !== undefined &&
      input.scheduleDecidedAt.getTime() >= attempt.at.getTime());
  if (superseded || attempt.retryAt.getTime() <= own.at.getTime()) return own;
  return { at: attempt.retryAt, why: attempt.why };
}

/** The earliest of the wakes, or undefined for none. */
export function earliestWake(wakes: readonly Wake[]): Wake | undefined {
  return wakes.reduce<Wake | undefined>((a, b) => (!a || b.at < a.at ? b : a), undefined);
}

const DAY_S = 86_400;

/** A renewal coming within max(24 h, 2×TTL) whose next key's 3 1 1 is not live: the renewal
 *  would need a fresh key and a staged wait. The margin is what the record still needs to turn
 *  live (2×TTL) and a day for someone to act. Returns the warning, or undefined. */
export function nextKeyWarning(input: {
  label: string;
  next: NextRenewal;
  nextKeyLive: boolean;
  ttl: number;
  now: Date;
}): string | undefined {
  if (input.nextKeyLive) return undefined;
  const margin = Math.max(DAY_S, 2 * input.ttl);
  const inS = (input.next.at.getTime() - input.now.getTime()) / 1000;
  if (inS > margin) return undefined;
  const when = inS <= 0 ? 'is due now' : `is due at ${input.next.at.toISOString()}`;
  return `the renewal of ${input.label} ${when} and its next key's 3 1 1 is not live: it would use a fresh key and the new chain would wait for its records (staged install)`;
}
