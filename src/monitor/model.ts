/** What the daemon's metrics and status page show, computed from the state file, the
 *  configuration, what the daemon remembers of its runs and checks, and the clock. Pure: the
 *  same input always gives the same view; the HTTP layer only renders it. */
import type { RawConfig } from '../config/schema.js';
import { liveAt, viewRecord, type Phase } from '../engine/lifecycle.js';
import { stateKey } from '../engine/record-index.js';
import type { OwnedRecord, StateFile } from '../engine/state.js';
import { rdataText, type TlsaRecord } from '../tlsa/record.js';

/** What a check of one served chain (per address, port and key type) found:
 *  - match: a published record verifies it (RFC 7672 rules, as `tlsa check` applies them);
 *  - mismatch: published records exist but none verifies it;
 *  - unreachable: the server (or the host's addresses) could not be probed;
 *  - unknown: the published records could not be listed (a provider error). */
export type Verdict = 'match' | 'mismatch' | 'unreachable' | 'unknown';
export const VERDICTS: readonly Verdict[] = ['match', 'mismatch', 'unreachable', 'unknown'];

export interface ServedObservation {
  service: string;
  host: string;
  port: number;
  /** The address probed, or "configured" when the chain is the one the configuration serves
   *  (verify.probe: false). */
  address: string;
  /** rsa, ecdsa, … or "any" when no handshake succeeded. */
  keyType: string;
  verdict: Verdict;
  /** The chain matches no record at the owner name by data alone: the alert every operator
   *  wants (undefined when that could not be told). */
  unmatched?: boolean;
  /** The leaf's subject CN and expiry, when a chain was seen. */
  leaf?: string;
  notAfter?: string;
  /** Why, for humans. */
  detail: string;
}

export interface CheckResult {
  at: string;
  observations: ServedObservation[];
}

export interface StagedWait {
  service: string;
  chain: string;
  reason: string;
  eta?: string;
}

/** What the daemon remembers between scrapes (its own runs and checks). */
export interface DaemonFacts {
  startedAt: string;
  lastRun?: { at: string; exitCode: number; error?: string };
  lastSuccessAt?: string;
  /** The staged chains the last run left waiting, with when their records turn live. */
  staged: StagedWait[];
  nextRun?: { at: string; why: string };
  /** Provider failures since the daemon started, per provider and kind. */
  providerErrors: { provider: string; kind: string; count: number }[];
  check?: CheckResult;
}

/** A chain staged for install (from the files: staged install), with the records it needs. */
export interface StagedChain {
  service: string;
  chain: string;
  records: (TlsaRecord & { provider: string })[];
}

/** A built-in ACME lineage's next renewal (src/acme/renewal-due.ts), as read from its files. */
export interface AcmeRenewal {
  service: string;
  keyType: string;
  at: string;
  /** ari, lifetime, rate-limit, retry or no-certificate. */
  source: string;
}

export interface MonitorInput {
  config: { raw: Pick<RawConfig, 'services' | 'verify'> };
  state: StateFile;
  now: Date;
  facts: DaemonFacts;
  /** The chains staged now; without it, those the last run left waiting (facts.staged). */
  staged?: StagedChain[];
  /** The built-in ACME lineages' next renewals (none without `acme:`). */
  renewals?: AcmeRenewal[];
}

export interface RecordRow {
  owner: string;
  rdata: string;
  provider: string;
  phase: Phase;
  /** Milestones (ISO), when known: published, live (or when it turns live), retiring since,
   *  removal due (end of the grace). */
  publishedAt?: string;
  liveAt?: string;
  retiringSince?: string;
  removeAt?: string;
  /** Seconds until the next transition (live for pending, removal for retiring), if known. */
  nextInSeconds?: number;
  waitsFor: string;
}

export interface ServiceModel {
  name: string;
  host: string;
  /** false: records of a service no longer in the configuration (they retire). */
  configured: boolean;
  records: RecordRow[];
  staged: (StagedWait & { inSeconds?: number })[];
  served: ServedObservation[];
}

export interface MonitorModel {
  now: string;
  facts: DaemonFacts;
  secondsSinceLastSuccess: number;
  services: ServiceModel[];
  /** Seconds until each ACME lineage's next renewal (negative: overdue). */
  renewals: (AcmeRenewal & { inSeconds: number })[];
}

const iso = (t: number): string => new Date(t).toISOString();
const secondsBetween = (from: string, to: Date): number => (to.getTime() - Date.parse(from)) / 1000;

function recordRow(r: OwnedRecord, input: MonitorInput): RecordRow {
  const { config, state, now } = input;
  const facts = state.ttls?.[r.owner] ?? [];
  const propagation = config.raw.verify.propagation;
  const v = viewRecord(r, now, config.raw.services[r.service]?.grace_s, propagation, facts);
  // A retiring record keeps its publication and sighting: when it went live is the same rule.
  const live =
    r.status === 'published' || r.status === 'retiring'
      ? liveAt({ ...r, status: 'published' }, propagation, facts)
      : undefined;
  const row: RecordRow = {
    owner: r.owner,
    rdata: rdataText(r),
    provider: r.provider,
    phase: v.phase,
    waitsFor: v.waitsFor,
  };
  if (r.publishedAt) row.publishedAt = r.publishedAt;
  if (live) row.liveAt = iso(live.getTime());
  if (r.retiringSince) row.retiringSince = r.retiringSince;
  if (v.nextInSeconds !== undefined) {
    row.nextInSeconds = v.nextInSeconds;
    if (v.phase === 'retiring') row.removeAt = iso(now.getTime() + v.nextInSeconds * 1000);
  }
  return row;
}

/** When a staged chain can be installed: when the first record that matches it turns live
 *  (the engine's rule; other writers' records, which the engine also counts, are left to its
 *  own runs, whose reason then wins). */
function stagedWaits(input: MonitorInput): StagedWait[] {
  const { state, config, facts } = input;
  if (!input.staged) return facts.staged;
  const owned = new Map(state.records.map((r) => [stateKey(r), r]));
  return input.staged.map((c) => {
    const mine = c.records
      .map((d) => owned.get(stateKey(d)))
      .filter((r): r is OwnedRecord => !!r && r.status === 'published');
    const lives = mine
      .map((r) => liveAt(r, config.raw.verify.propagation, state.ttls?.[r.owner] ?? []))
      .filter((d): d is Date => !!d)
      .map((d) => d.getTime());
    const last = facts.staged.find((w) => w.service === c.service && w.chain === c.chain);
    const reason =
      last?.reason ??
      (!mine.length
        ? 'its records to be published'
        : lives.length
          ? 'its records to be 2×TTL old'
          : 'its records to reach every authoritative server, then 2×TTL');
    return {
      service: c.service,
      chain: c.chain,
      reason,
      ...(lives.length ? { eta: iso(Math.min(...lives)) } : last?.eta ? { eta: last.eta } : {}),
    };
  });
}

export function monitorModel(input: MonitorInput): MonitorModel {
  const { config, state, now, facts } = input;
  const names = [
    ...Object.keys(config.raw.services),
    ...new Set(state.records.map((r) => r.service).filter((s) => !config.raw.services[s])),
  ];
  const staged = stagedWaits(input);
  const services = names.map((name): ServiceModel => {
    const svc = config.raw.services[name];
    const records = state.records
      .filter((r) => r.service === name)
      .sort((a, b) => a.owner.localeCompare(b.owner) || a.addedAt.localeCompare(b.addedAt))
      .map((r) => recordRow(r, input));
    return {
      name,
      host: svc?.host ?? records[0]?.owner.replace(/^_\d+\._[a-z]+\./, '').replace(/\.$/, '') ?? '',
      configured: !!svc,
      records,
      staged: staged
        .filter((w) => w.service === name)
        .map((w) => ({
          ...w,
          ...(w.eta ? { inSeconds: Math.max(0, -secondsBetween(w.eta, now)) } : {}),
        })),
      served: (facts.check?.observations ?? []).filter((o) => o.service === name),
    };
  });
  return {
    now: now.toISOString(),
    facts,
    secondsSinceLastSuccess: Math.max(
      0,
      secondsBetween(facts.lastSuccessAt ?? facts.startedAt, now),
    ),
    services,
    renewals: (input.renewals ?? []).map((r) => ({ ...r, inSeconds: -secondsBetween(r.at, now) })),
  };
}
