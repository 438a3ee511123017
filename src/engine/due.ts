/** When the engine next has something to do, from the state and the clock alone, so that the
 *  daemon sleeps until then instead of a whole interval: a staged chain must be installed as
 *  soon as its records are live, not up to `interval_s` later. Pure: no I/O, no clock. */
import type { LoadedConfig } from '../config/load.js';
import { servicePorts } from '../config/ports.js';
import { parseRdata } from '../tlsa/presentation.js';
import { ownerName } from '../tlsa/record.js';
import { graceWait, liveAt, observedLiveAt } from './lifecycle.js';
import type { OwnedRecord, TtlFact } from './state.js';

export interface Due {
  at: Date;
  /** For humans: what happens then. */
  why: string;
}

/** Something that has not happened yet (a record not on every authoritative server, a retiring
 *  record a live server may still present) is looked at again this soon… */
export const RECHECK_FLOOR_S = 2;
/** …and then less often, in proportion to how long it has been waited for: a secondary that
 *  lags for an hour, or a server nobody reloads, is not polled every few seconds all along. */
const RECHECK_FACTOR = 0.25;
const RECHECK_CAP_S = 3600;
/** The first retry after a failed run; each further failure doubles it. */
export const RETRY_FLOOR_S = 5;

export function recheckDelaySeconds(waitedSeconds: number): number {
  return Math.min(
    RECHECK_CAP_S,
    Math.max(RECHECK_FLOOR_S, RECHECK_FACTOR * Math.max(0, waitedSeconds)),
  );
}

/** Seconds before the next try after `failures` failed runs in a row (1 = the first failure),
 *  never more than `capSeconds` (the daemon's own schedule bounds it anyway). */
export function retryDelaySeconds(failures: number, capSeconds: number): number {
  return Math.min(capSeconds, RETRY_FLOOR_S * 2 ** Math.min(Math.max(0, failures - 1), 20));
}

export interface DueInput {
  /** The records the run is responsible for (its services'), in any status. */
  records: OwnedRecord[];
  now: Date;
  /** verify.propagation: a record counts only once every authoritative server serves it. */
  propagationChecked: boolean;
  /** Grace of a retiring record, in seconds. */
  graceFor: (r: OwnedRecord) => number;
  /** What the authoritative servers served at an owner name (the TTL rule of lifecycle.ts). */
  factsAt?: (owner: string) => readonly TtlFact[];
  /** Other writers' records a chain may rely on (state.ts `observed`), with the TTL tlsa gives
   *  its own records at their owner. */
  observed?: { owner: string; rdata: string; seenAt: string; ttl: number }[];
}

type Kind = 'live' | 'unseen' | 'grace' | 'held' | 'unsettled';

const WHY: Record<Kind, (n: number, owner: string) => string> = {
  live: (n, o) => `${n} record(s) at ${o} turn live`,
  unseen: (n, o) => `re-check ${n} record(s) at ${o} not yet on every authoritative server`,
  grace: (n, o) => `the grace of ${n} retiring record(s) at ${o} ends`,
  held: (n, o) => `re-check whether a live server still needs ${n} retiring record(s) at ${o}`,
  unsettled: (n, o) => `settle ${n} interrupted change(s) at ${o}`,
};

/** The earliest moment a run has something to do, or undefined when only time-independent
 *  events (a renewal, a configuration change) can give it work. */
export function nextDue(input: DueInput): Due | undefined {
  const t = input.now.getTime();
  const after = (seconds: number) => t + seconds * 1000;
  const waited = (from: number) => Math.max(0, (t - from) / 1000);
  // The earliest moment, kept as the records go by (no map of every owner's moments): the first
  // (kind, owner, moment) to reach it wins a tie, and counts the records that share all three.
  let best: { kind: Kind; owner: string; at: number; n: number } | undefined;
  const add = (kind: Kind, owner: string, at: number) => {
    if (!best || at < best.at) best = { kind, owner, at, n: 1 };
    else if (kind === best.kind && owner === best.owner && `${at}` === `${best.at}`) best.n++;
  };
  for (const r of input.records) {
    switch (r.status) {
      case 'published': {
        const live = liveAt(r, input.propagationChecked, input.factsAt?.(r.owner));
        if (!live)
          add(
            'unseen',
            r.owner,
            after(recheckDelaySeconds(waited(r.publishedAt ? Date.parse(r.publishedAt) : t))),
          );
        else if (live.getTime() > t) add('live', r.owner, live.getTime());
        break;
      }
      case 'retiring': {
        const since = r.retiringSince ? Date.parse(r.retiringSince) : t;
        const due = since + input.graceFor(r) * 1000;
        // Past its grace and still here: the last run kept it (a live server presents a chain
        // it matches, or the probe could not tell).
        if (due > t) add('grace', r.owner, due);
        else add('held', r.owner, after(recheckDelaySeconds(waited(due))));
        break;
      }
      case 'publishing':
      case 'removing':
        add('unsettled', r.owner, after(RECHECK_FLOOR_S));
        break;
    }
  }
  for (const o of input.observed ?? []) {
    const live = observedLiveAt(
      { owner: o.owner, ...parseRdata(o.rdata) },
      o.seenAt,
      o.ttl,
      input.factsAt?.(o.owner),
    ).getTime();
    if (live > t) add('live', o.owner, live);
  }
  return best ? { at: new Date(best.at), why: WHY[best.kind](best.n, best.owner) } : undefined;
}

/** nextDue over the records a run for `services` (all when none) is responsible for, with the
 *  configuration's graces: the same records the engine plans for. */
export function nextDueFor(
  config: LoadedConfig,
  records: OwnedRecord[],
  opts: {
    services?: string[] | undefined;
    now: Date;
    propagationChecked: boolean;
    factsAt?: (owner: string) => readonly TtlFact[];
    observed?: Record<string, Record<string, string>> | undefined;
  },
): Due | undefined {
  const known = new Set(Object.keys(config.raw.services));
  const chosen = opts.services?.length ? new Set(opts.services) : known;
  // Records of services removed from the configuration are still retired by a full run.
  const inScope = (r: OwnedRecord) =>
    chosen.has(r.service) ||
    (!opts.services?.length && !known.has(r.service) && !!config.raw.providers[r.provider]);
  const ttlAt = new Map<string, number>();
  if (Object.keys(opts.observed ?? {}).length)
    for (const name of chosen) {
      const svc = config.raw.services[name];
      if (!svc) continue;
      for (const { port } of servicePorts(svc)) {
        const owner = ownerName(svc.host, port);
        ttlAt.set(owner, Math.max(ttlAt.get(owner) ?? 0, svc.ttl ?? config.raw.ttl));
      }
    }
  const observed = Object.entries(opts.observed ?? {})
    .filter(([owner]) => ttlAt.has(owner))
    .flatMap(([owner, seen]) =>
      Object.entries(seen).map(([rdata, seenAt]) => ({
        owner,
        rdata,
        seenAt,
        ttl: ttlAt.get(owner)!,
      })),
    );
  return nextDue({
    records: records.filter(inScope),
    observed,
    now: opts.now,
    propagationChecked: opts.propagationChecked,
    graceFor: (r) =>
      graceWait(r, config.raw.services[r.service]?.grace_s, opts.factsAt?.(r.owner)).ttl,
    ...(opts.factsAt ? { factsAt: opts.factsAt } : {}),
  });
}
