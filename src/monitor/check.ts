/** The daemon's own check of what its services serve: every chain a live server presents (per
 *  address, port and key type; with verify.probe: false, the chains the configuration serves)
 *  against the TLSA records the provider lists at the owner name. Read-only: it changes
 *  neither DNS nor the state, and runs between the engine's runs, so that a record removed
 *  behind tlsa's back shows before the next run puts it back. */
import type { X509Certificate } from 'node:crypto';
import type { LoadedConfig } from '../config/load.js';
import { servicePorts, type PortProtocol } from '../config/ports.js';
import { NetworkError } from '../errors.js';
import { liveProbe, type LiveView, type ServedChains } from '../engine/observe.js';
import { createProviders } from '../engine/providers.js';
import {
  computeTargets,
  selectServices,
  type ServiceTargets,
  type Targets,
} from '../engine/targets.js';
import { isSmtp } from '../tlsa/policy.js';
import { ownerName, type TlsaRecord } from '../tlsa/record.js';
import { daneMatch, recordMatchesChain } from '../verify/dane.js';
import type { DnsProvider } from '../../providers/index.js';
import type { CheckResult, ServedObservation } from './model.js';
import { classifyProviderError } from './provider-errors.js';

export interface CheckOptions {
  services?: string[] | undefined;
  now: Date;
  /** Overrides for tests; default: the engine's live probe through verify.* settings. */
  live?: LiveView;
  /** The services' targets at `now`, when the caller computed them already (the daemon's
   *  check cycle shares them with its status page); read from the files otherwise. */
  targets?: Targets | undefined;
}

export interface CheckOutcome {
  check: CheckResult;
  providerErrors: { provider: string; kind: string }[];
}

interface Seen {
  address: string;
  port: number;
  keyType: string;
  chain: X509Certificate[];
}

/** The chains the configuration serves, when nothing is probed: one per key type and port. */
function configuredChains(t: ServiceTargets | undefined): Seen[] {
  if (!t) return [];
  return t.chains
    .filter((c) => c.role === 'served')
    .flatMap((c) =>
      t.ports.map((p) => ({
        address: 'configured',
        port: p.port,
        keyType: c.keyType.family,
        chain: c.certs.map((x) => x.x509),
      })),
    );
}

/** "127.0.0.1 port 25: rsa: …; ecdsa: …" (observe.ts) → the address and port it is about. */
function probeFailure(text: string, ports: PortProtocol[]): { address: string; port: number } {
  const m = /^(.+) port (\d+): /.exec(text);
  return m ? { address: m[1]!, port: Number(m[2]) } : { address: '', port: ports[0]?.port ?? 0 };
}

async function listed(provider: DnsProvider, owners: string[]): Promise<Map<string, TlsaRecord[]>> {
  if (provider.listMany && owners.length > 1) return provider.listMany(owners);
  const out = new Map<string, TlsaRecord[]>();
  for (const o of owners) out.set(o, await provider.list(o));
  return out;
}

export async function checkServedChains(
  config: LoadedConfig,
  opts: CheckOptions,
): Promise<CheckOutcome> {
  const names = selectServices(config, opts.services);
  const providerErrors: CheckOutcome['providerErrors'] = [];
  const observations: ServedObservation[] = [];
  const probeOn = config.raw.verify.probe;
  const live = opts.live ?? (probeOn ? liveProbe(config) : undefined);
  // Without a probe, the configured chains: every service's read once, not once per service.
  const targets = live ? undefined : (opts.targets ?? computeTargets(config, names, opts.now));
  const targetsOf = new Map(targets?.services.map((t) => [t.service, t]));
  const providers = await createProviders(
    config,
    names.map((n) => config.raw.services[n]!.provider),
  );
  for (const name of names) {
    const svc = config.raw.services[name]!;
    const ports = servicePorts(svc);
    const owners = ports.map((p) => ownerName(svc.host, p.port));
    const base = { service: name, host: svc.host };
    let records: Map<string, TlsaRecord[]> | undefined;
    let listError = '';
    try {
      records = await listed(providers.get(svc.provider)!, owners);
    } catch (e) {
      // Named as the adapters name themselves in their errors: "type(instance)".
      const c = classifyProviderError(e) ?? {
        provider: `${config.raw.providers[svc.provider]?.type}(${svc.provider})`,
        kind: 'other',
      };
      providerErrors.push(c);
      listError = `cannot list the published records: ${(e as Error).message}`;
    }
    let seen: Seen[] = [];
    if (live) {
      let served: ServedChains;
      try {
        served = await live.servedChains(svc.host, ports);
      } catch (e) {
        if (!(e instanceof NetworkError)) throw e;
        served = {
          chains: [],
          errors: ports.map((p) => `${svc.host} port ${p.port}: ${e.message}`),
        };
      }
      seen = served.chains.map((c) => ({ ...c }));
      for (const err of served.errors) {
        const where = probeFailure(err, ports);
        observations.push({
          ...base,
          ...where,
          keyType: 'any',
          verdict: 'unreachable',
          detail: err,
        });
      }
    } else {
      seen = configuredChains(targetsOf.get(name));
    }
    for (const s of seen) {
      const protocol = ports.find((p) => p.port === s.port)?.protocol;
      const leaf = s.chain[0];
      const at = records?.get(ownerName(svc.host, s.port)) ?? [];
      const o: ServedObservation = {
        ...base,
        address: s.address,
        port: s.port,
        keyType: s.keyType,
        verdict: 'unknown',
        detail: listError,
        ...(leaf
          ? {
              leaf: /(?:^|\n)CN=([^\n]*)/.exec(leaf.subject)?.[1] ?? leaf.subject,
              notAfter: new Date(leaf.validTo).toISOString(),
            }
          : {}),
      };
      if (records) {
        const m = daneMatch({
          records: at,
          chain: s.chain,
          names: [svc.host],
          now: opts.now,
          smtp: isSmtp(s.port, protocol),
        });
        o.unmatched = !at.some((r) => recordMatchesChain(r, s.chain));
        o.verdict = m.verified ? 'match' : 'mismatch';
        o.detail = m.verified
          ? `verified by ${m.match ? `${m.match.record.usage} ${m.match.record.selector} ${m.match.record.matching}` : 'a record'} at depth ${m.match?.depth ?? 0}`
          : at.length
            ? m.reasons.join('; ')
            : 'no TLSA record is published at the owner name';
      }
      observations.push(o);
    }
  }
  return { check: { at: opts.now.toISOString(), observations }, providerErrors };
}
