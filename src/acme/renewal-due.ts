/** When a built-in ACME lineage is next renewed, and when the daemon should next look at it,
 *  from its certificate, the schedule `renew` last wrote (schedule-file.ts) and the daemon's own
 *  last attempt. Pure: no I/O, no clock. */
import {
  type CertFacts,
  type NextRenewal,
  type NextRenewalSource,
  renewalDecision,
} from './renewal-decision.js';
import type { RenewalSchedule } from './schedule-file.js';

export type { CertFacts, NextRenewal, NextRenewalSource } from './renewal-decision.js';
export { sameSerial } from './renewal-decision.js';

export function nextRenewal(
  cert: CertFacts | undefined,
  schedule: RenewalSchedule | undefined,
  now: Date,
): NextRenewal {
  return renewalDecision(cert, schedule, now).next;
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
