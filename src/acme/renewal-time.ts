/** When to renew a certificate: inside the CA's ARI window when it suggests one (RFC 9773
 *  §4.2), else by the lifetime rule. Pure: the clock and the point inside the window are given. */

export interface AriWindow {
  start: Date;
  end: Date;
}

export interface RenewalDecision {
  at: Date;
  source: 'ari' | 'lifetime';
  /** With ARI: when to ask for the window again (Retry-After, bounded). */
  nextPollAt?: Date;
}

const DAY_MS = 86_400_000;
/** RFC 9773 §4.3.3: poll no more often than once a minute, no less than once a day;
 *  without Retry-After, six hours. */
const MIN_POLL_S = 60;
const MAX_POLL_S = 86_400;
const DEFAULT_POLL_S = 6 * 3600;

/** Two thirds of the lifetime, one half for certificates of ten days or less: a short-lived
 *  certificate needs the larger margin, since a failed attempt costs a bigger share of it. */
export function lifetimeRenewal(notBefore: Date, notAfter: Date): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const share = lifetime <= 10 * DAY_MS ? 1 / 2 : 2 / 3;
  return new Date(notBefore.getTime() + lifetime * share);
}

/** A fraction in [0, 1) fixed for one certificate (from its ARI id): every run picks the same
 *  time inside the same window, so a daemon does not re-roll (and drift early) on each poll,
 *  while different certificates still spread across the window as RFC 9773 asks. */
export function windowFraction(seed: string): number {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619) >>> 0;
  return h / 2 ** 32;
}

export function pollDelaySeconds(retryAfterS: number | undefined): number {
  if (retryAfterS === undefined || !Number.isFinite(retryAfterS)) return DEFAULT_POLL_S;
  return Math.min(MAX_POLL_S, Math.max(MIN_POLL_S, Math.round(retryAfterS)));
}

export function renewalTime(input: {
  notBefore: Date;
  notAfter: Date;
  now: Date;
  ari?: { window: AriWindow; retryAfterS?: number; fraction: number };
}): RenewalDecision {
  const { ari, now } = input;
  if (!ari || ari.window.end.getTime() < ari.window.start.getTime())
    return { at: lifetimeRenewal(input.notBefore, input.notAfter), source: 'lifetime' };
  const { start, end } = ari.window;
  const f = Math.min(Math.max(ari.fraction, 0), 1);
  const at = new Date(start.getTime() + (end.getTime() - start.getTime()) * f);
  const nextPollAt = new Date(now.getTime() + pollDelaySeconds(ari.retryAfterS) * 1000);
  // A window already over means renew now (the CA may want it replaced, e.g. a revocation).
  return { at: end.getTime() <= now.getTime() ? now : at, source: 'ari', nextPollAt };
}

export function isDue(decision: RenewalDecision, now: Date): boolean {
  return decision.at.getTime() <= now.getTime();
}
