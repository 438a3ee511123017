/** The renewal schedule of one built-in ACME lineage, kept beside its next key in
 *  STATE_DIR/acme/SERVICE/schedule/KEY_TYPE.json: when `renew` last decided the next renewal,
 *  from where (the CA's ARI window, the lifetime rule, or a wait the CA imposed), and when to ask
 *  the CA again. `renew` writes it; the daemon (when to wake) and `status` (what to show) read
 *  it without asking the CA. A missing, unreadable or foreign file reads as "no schedule": the
 *  readers then fall back to the lifetime rule of the certificate itself. */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AcmeKeyType } from '../config/schema.js';
import { InputError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { readRegularFile } from '../util/regular-file.js';

export type ScheduleSource =
  /** inside the window the CA suggested (RFC 9773) */
  | 'ari'
  /** two thirds of the lifetime (one half at 10 days or less) */
  | 'lifetime'
  /** the CA said rateLimited: not before its Retry-After */
  | 'rate-limit'
  /** the last attempt failed for another reason: retried with backoff */
  | 'retry';

export interface RenewalSchedule {
  /** ISO time: renew at (or after) this moment. */
  at: string;
  source: ScheduleSource;
  /** ISO times of the ARI window, with source 'ari'. */
  windowStart?: string;
  windowEnd?: string;
  /** ISO time: ask the CA's renewalInfo again (Retry-After, bounded). */
  nextPollAt?: string;
  /** The serial (hex) of the certificate this schedule is for: a schedule for another
   *  certificate (the lineage was renewed since, by hand or by certbot) is stale. */
  serial: string;
  /** Why the last attempt failed (with source 'rate-limit' or 'retry'), secrets redacted. */
  lastError?: string;
  /** ISO time the schedule was written. */
  decidedAt: string;
}

export function schedulePath(stateDir: string, service: string, keyType: AcmeKeyType): string {
  return join(stateDir, 'acme', service, 'schedule', `${keyType}.json`);
}

const isIso = (v: unknown): v is string => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const SOURCES: readonly ScheduleSource[] = ['ari', 'lifetime', 'rate-limit', 'retry'];

/** Pure: a parsed schedule, or undefined when the text is not one. */
export function parseSchedule(text: string): RenewalSchedule | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!v || typeof v !== 'object') return undefined;
  const s = v as Record<string, unknown>;
  if (!isIso(s.at) || !isIso(s.decidedAt) || typeof s.serial !== 'string') return undefined;
  if (!SOURCES.includes(s.source as ScheduleSource)) return undefined;
  for (const k of ['windowStart', 'windowEnd', 'nextPollAt'] as const)
    if (s[k] !== undefined && !isIso(s[k])) return undefined;
  if (s.lastError !== undefined && typeof s.lastError !== 'string') return undefined;
  return s as unknown as RenewalSchedule;
}

export function readSchedule(
  stateDir: string,
  service: string,
  keyType: AcmeKeyType,
): RenewalSchedule | undefined {
  let buf: Buffer | undefined;
  try {
    buf = readRegularFile(schedulePath(stateDir, service, keyType), {
      maxBytes: 64 * 1024,
      noFollow: true,
      allowMissing: true,
      refuse: () => new InputError('not a schedule file'),
    });
  } catch {
    return undefined;
  }
  return buf === undefined ? undefined : parseSchedule(buf.toString('utf8'));
}

export function writeSchedule(
  stateDir: string,
  service: string,
  keyType: AcmeKeyType,
  schedule: RenewalSchedule,
): void {
  const path = schedulePath(stateDir, service, keyType);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, `${JSON.stringify(schedule, null, 2)}\n`, 0o600);
}
