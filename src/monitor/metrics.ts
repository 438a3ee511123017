/** The metric families tlsa daemon exposes, and their samples from a MonitorModel. Pure: the
 *  exposition (prom-client) is in exposition.ts. The alert rules in contrib/prometheus use
 *  these names; a test keeps them in step. */
import type { Phase } from '../engine/lifecycle.js';
import { VERDICTS, type MonitorModel } from './model.js';

export interface MetricFamily {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  labelNames: readonly string[];
  samples: { labels: Record<string, string>; value: number }[];
}

const PHASES: readonly Phase[] = ['publishing', 'pending', 'live', 'retiring', 'removing'];
const SERVED_LABELS = ['service', 'host', 'port', 'address', 'key_type'] as const;
const DAY_S = 86400;

export const METRICS = {
  records: {
    name: 'tlsa_records',
    help: 'Records tlsa owns, per service, owner name and phase (publishing, pending, live, retiring, removing)',
    type: 'gauge',
    labelNames: ['service', 'owner', 'phase'],
  },
  recordLiveIn: {
    name: 'tlsa_record_live_in_seconds',
    help: 'Seconds until a pending record turns live (absent while the authoritative servers have not all served it)',
    type: 'gauge',
    labelNames: ['service', 'owner', 'record'],
  },
  recordRemovalIn: {
    name: 'tlsa_record_removal_in_seconds',
    help: 'Seconds until the grace of a retiring record ends (0: due, or held while a live server presents a chain it matches)',
    type: 'gauge',
    labelNames: ['service', 'owner', 'record'],
  },
  stagedInstallIn: {
    name: 'tlsa_staged_chain_install_in_seconds',
    help: 'Seconds until a staged chain can be installed (its records turn live), as of the last run',
    type: 'gauge',
    labelNames: ['service', 'chain'],
  },
  stagedWaiting: {
    name: 'tlsa_staged_chain_waiting',
    help: '1 per staged chain the last run left waiting (with or without a known time)',
    type: 'gauge',
    labelNames: ['service', 'chain'],
  },
  servedUnmatched: {
    name: 'tlsa_served_chain_unmatched',
    help: '1 while a served chain matches no published record at its owner name (DANE clients fail), else 0',
    type: 'gauge',
    labelNames: SERVED_LABELS,
  },
  checkVerdict: {
    name: 'tlsa_check_verdict',
    help: 'The last check of a served chain: 1 for its verdict (match, mismatch, unreachable, unknown), 0 for the others',
    type: 'gauge',
    labelNames: [...SERVED_LABELS, 'verdict'],
  },
  certificateExpiry: {
    name: 'tlsa_certificate_expiry_days',
    help: 'Days until the served leaf certificate expires (negative: expired)',
    type: 'gauge',
    labelNames: SERVED_LABELS,
  },
  acmeRenewalIn: {
    name: 'tlsa_acme_renewal_in_seconds',
    help: 'Seconds until a built-in ACME lineage is next renewed (negative: overdue), and where that time comes from (ari, lifetime, rate-limit, retry, no-certificate)',
    type: 'gauge',
    labelNames: ['service', 'key_type', 'source'],
  },
  lastCheck: {
    name: 'tlsa_last_check_timestamp_seconds',
    help: 'When the served chains were last checked (Unix time)',
    type: 'gauge',
    labelNames: [],
  },
  lastSuccess: {
    name: 'tlsa_last_successful_run_timestamp_seconds',
    help: 'When the last run that exited 0 ended (Unix time; absent before the first)',
    type: 'gauge',
    labelNames: [],
  },
  sinceSuccess: {
    name: 'tlsa_seconds_since_last_successful_run',
    help: 'Seconds since the last run that exited 0 (before the first: since the daemon started)',
    type: 'gauge',
    labelNames: [],
  },
  lastExitCode: {
    name: 'tlsa_last_run_exit_code',
    help: 'Exit code of the last run (0 ok, 1 unsafe, 2 bad input, 3 provider or network, 4 wait)',
    type: 'gauge',
    labelNames: [],
  },
  providerErrors: {
    name: 'tlsa_provider_errors_total',
    help: 'Provider failures since the daemon started, per provider and kind (auth, throttled, timeout, network, not-found, reload, other)',
    type: 'counter',
    labelNames: ['provider', 'kind'],
  },
} as const satisfies Record<string, Omit<MetricFamily, 'samples'>>;

const seconds = (isoTime: string): number => Date.parse(isoTime) / 1000;
const round3 = (x: number): number => Math.round(x * 1000) / 1000;

export function metricFamilies(m: MonitorModel): MetricFamily[] {
  const family = (k: keyof typeof METRICS): MetricFamily => ({ ...METRICS[k], samples: [] });
  const f = Object.fromEntries(
    (Object.keys(METRICS) as (keyof typeof METRICS)[]).map((k) => [k, family(k)]),
  ) as Record<keyof typeof METRICS, MetricFamily>;
  const now = Date.parse(m.now);

  for (const s of m.services) {
    const owners = new Map<string, Map<Phase, number>>();
    for (const r of s.records) {
      const counts = owners.get(r.owner) ?? new Map(PHASES.map((p) => [p, 0]));
      counts.set(r.phase, (counts.get(r.phase) ?? 0) + 1);
      owners.set(r.owner, counts);
      const labels = { service: s.name, owner: r.owner, record: r.rdata };
      if (r.phase === 'pending' && r.nextInSeconds !== undefined)
        f.recordLiveIn.samples.push({ labels, value: round3(r.nextInSeconds) });
      if (r.phase === 'retiring' && r.nextInSeconds !== undefined)
        f.recordRemovalIn.samples.push({ labels, value: round3(r.nextInSeconds) });
    }
    for (const [owner, counts] of owners)
      for (const [phase, n] of counts)
        f.records.samples.push({ labels: { service: s.name, owner, phase }, value: n });
    for (const w of s.staged) {
      const labels = { service: s.name, chain: w.chain };
      f.stagedWaiting.samples.push({ labels, value: 1 });
      if (w.inSeconds !== undefined)
        f.stagedInstallIn.samples.push({ labels, value: round3(w.inSeconds) });
    }
    for (const o of s.served) {
      const labels = {
        service: o.service,
        host: o.host,
        port: String(o.port),
        address: o.address,
        key_type: o.keyType,
      };
      if (o.unmatched !== undefined)
        f.servedUnmatched.samples.push({ labels, value: o.unmatched ? 1 : 0 });
      for (const v of VERDICTS)
        f.checkVerdict.samples.push({
          labels: { ...labels, verdict: v },
          value: o.verdict === v ? 1 : 0,
        });
      if (o.notAfter)
        f.certificateExpiry.samples.push({
          labels,
          value: round3((Date.parse(o.notAfter) - now) / 1000 / DAY_S),
        });
    }
  }
  for (const r of m.renewals ?? [])
    f.acmeRenewalIn.samples.push({
      labels: { service: r.service, key_type: r.keyType, source: r.source },
      value: round3(r.inSeconds),
    });
  const facts = m.facts;
  if (facts.check) f.lastCheck.samples.push({ labels: {}, value: seconds(facts.check.at) });
  if (facts.lastSuccessAt)
    f.lastSuccess.samples.push({ labels: {}, value: seconds(facts.lastSuccessAt) });
  f.sinceSuccess.samples.push({ labels: {}, value: round3(m.secondsSinceLastSuccess) });
  if (facts.lastRun) f.lastExitCode.samples.push({ labels: {}, value: facts.lastRun.exitCode });
  for (const e of facts.providerErrors)
    f.providerErrors.samples.push({
      labels: { provider: e.provider, kind: e.kind },
      value: e.count,
    });
  return Object.values(f);
}
