/** The daemon's built-in ACME part: before each run it renews the lineages that are due (as
 *  `tlsa renew` does, under the run lock), and it wakes when the next one is. A failed renewal
 *  is logged and retried (at the schedule the failure wrote, else with backoff); it never stops
 *  the daemon, and the engine run that follows still happens. */
import { readLineageRenewal, type LineageRenewalView } from '../acme/lineage-renewal.js';
import { earliestWake, type LastAttempt, lineageWake, sourceText } from '../acme/renewal-due.js';
import type { LoadedConfig } from '../config/load.js';
import { acmeServiceNames } from '../engine/acme-lineages.js';
import { type Due, retryDelaySeconds } from '../engine/due.js';
import { keyRecordLive } from '../engine/key-record-live.js';
import { acquireLock } from '../engine/lock.js';
import { readOwned } from '../engine/reconcile.js';
import type { StateFile } from '../engine/state.js';
import { exitCodeOf } from '../errors.js';
import { addWarning, progressLine } from './fail.js';
import { keyText } from './renewal-text.js';

/** What the daemon remembers between runs: its last try per lineage, failures per service. */
export interface RenewalMemo {
  attempts: Map<string, LastAttempt>;
  failures: Map<string, number>;
}

export const renewalMemo = (): RenewalMemo => ({ attempts: new Map(), failures: new Map() });

const labelOf = (l: { service: string; keyType: string }) => `${l.service} ${l.keyType}`;

function lineagesOf(config: LoadedConfig, services: string[] | undefined, now: Date) {
  return acmeServiceNames(config, services).flatMap((s) =>
    config.raw.services[s]!.acme!.key_types.map((k) =>
      readLineageRenewal(config.stateDir, s, k, now),
    ),
  );
}

function wakeOf(l: LineageRenewalView, memo: RenewalMemo) {
  const attempt = memo.attempts.get(labelOf(l));
  return lineageWake({
    label: labelOf(l),
    next: l.next,
    ...(l.scheduleDecidedAt ? { scheduleDecidedAt: l.scheduleDecidedAt } : {}),
    ...(attempt ? { attempt } : {}),
  });
}

/** When the daemon should next wake for a renewal, if any service has `acme:`. */
export function renewalWake(
  config: LoadedConfig,
  services: string[] | undefined,
  memo: RenewalMemo,
  now: Date,
): Due | undefined {
  return earliestWake(lineagesOf(config, services, now).map((l) => wakeOf(l, memo)));
}

/** Renews every due lineage. Returns the exit code of the first failure (0 when none). */
export async function renewDue(
  config: LoadedConfig,
  opts: { services: string[] | undefined; lockWaitSeconds: number | undefined },
  memo: RenewalMemo,
  now: Date,
): Promise<number> {
  const due = lineagesOf(config, opts.services, now).filter(
    (l) => wakeOf(l, memo).at.getTime() <= now.getTime(),
  );
  if (!due.length) return 0;
  for (const l of due)
    progressLine(`${labelOf(l)}: renewal due (${sourceText(l.next)})`, {
      event: 'renewal-due',
      service: l.service,
      fields: { keyType: l.keyType, at: l.next.at.toISOString(), source: l.next.source },
    });
  const services = [...new Set(due.map((l) => l.service))];
  let code = 0;
  const failed = (service: string, e: unknown) => {
    const failures = (memo.failures.get(service) ?? 0) + 1;
    memo.failures.set(service, failures);
    const retryAt = new Date(
      Date.now() + retryDelaySeconds(failures, config.raw.daemon.interval_s) * 1000,
    );
    const message = (e as Error)?.message ?? String(e);
    for (const l of due.filter((x) => x.service === service))
      memo.attempts.set(labelOf(l), {
        at: now,
        retryAt,
        why: `retry the renewal of ${labelOf(l)} after ${failures} failure(s)`,
      });
    const line = `the renewal of ${service} failed: ${message}; the current chain stays, retried at the schedule the failure wrote or by ${retryAt.toISOString()}`;
    addWarning(line);
    progressLine(line, {
      level: 'error',
      event: 'renewal-failed',
      service,
      fields: { exitCode: exitCodeOf(e) ?? 1, failures, retryAt: retryAt.toISOString() },
    });
    code ||= exitCodeOf(e) ?? 1;
  };
  let release: () => void;
  try {
    release = await acquireLock(config.stateDir, {
      command: 'daemon',
      waitSeconds: opts.lockWaitSeconds ?? 60,
    });
  } catch (e) {
    for (const s of services) failed(s, e);
    return code;
  }
  try {
    let state: StateFile;
    try {
      state = readOwned(config);
    } catch (e) {
      for (const s of services) failed(s, e);
      return code;
    }
    for (const service of services) {
      try {
        // The ACME client (and its HTTP stack) is loaded when a renewal is due, not by every
        // daemon: an idle daemon stays small.
        const { renewService } = await import('../acme/renew.js');
        const results = await renewService(config, service, {
          force: false,
          now,
          progress: (line) => progressLine(line, { event: 'progress', service }),
          isLive: (spki) => keyRecordLive(config, state, service, spki, now),
        });
        memo.failures.delete(service);
        for (const r of results) {
          const label = labelOf(r);
          if (r.outcome === 'renewed') {
            memo.attempts.delete(label);
            progressLine(
              `${label}: renewed with ${keyText(r.key!)}, valid until ${r.notAfter!.toISOString()}`,
              {
                event: 'renewed',
                service,
                fields: {
                  keyType: r.keyType,
                  key: r.key!.use,
                  notAfter: r.notAfter!.toISOString(),
                },
              },
            );
          } else {
            // The renewal itself decides: until it writes a newer schedule, ask it again then.
            const why = `renew ${label} (${r.due!.source} rule)`;
            memo.attempts.set(label, { at: now, retryAt: r.due!.at, why });
            progressLine(`${label}: not due until ${r.due!.at.toISOString()}`, {
              event: 'renewal-not-due',
              service,
              fields: { keyType: r.keyType, at: r.due!.at.toISOString(), source: r.due!.source },
            });
          }
        }
      } catch (e) {
        failed(service, e);
      }
    }
  } finally {
    release();
  }
  return code;
}
