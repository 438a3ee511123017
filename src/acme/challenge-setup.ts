/** The challenge solver of a service's `acme.challenge`, ready before anything is ordered: a
 *  DNS-01 provider that cannot write TXT records is bad input (exit 2), found before the CA is
 *  asked for anything. */
import { resolve } from 'node:path';
import type { DnsProvider, TxtRecords } from '../../providers/index.js';
import type { LoadedConfig } from '../config/load.js';
import { createProviderInstance } from '../config/provider-instance.js';
import { resolverFrom } from '../verify/resolver.js';
import { type ChallengeSolver, http01Solver } from './challenges.js';
import { dns01Solver, removeLeftoverTxt } from './dns01.js';
import { pendingTxtPath } from './dns01-leftovers.js';
import { standaloneResponder, webrootResponder } from './http01.js';

export type SolverFactory = () => Promise<ChallengeSolver>;

/** The provider that writes the service's DNS-01 TXT records: the one named in dns01, else
 *  the service's. */
export function dns01ProviderName(config: LoadedConfig, service: string): string {
  const svc = config.raw.services[service]!;
  return svc.acme!.challenge.dns01!.provider ?? svc.provider;
}

/** The provider, refused (exit 2, at the config line that chose it) without TXT capability. */
export function withTxt(
  config: LoadedConfig,
  service: string,
  provider: DnsProvider,
): DnsProvider & { txt: TxtRecords } {
  if (provider.txt) return provider as DnsProvider & { txt: TxtRecords };
  const name = dns01ProviderName(config, service);
  const path = config.raw.services[service]!.acme!.challenge.dns01!.provider
    ? ['services', service, 'acme', 'challenge', 'dns01', 'provider']
    : ['services', service, 'provider'];
  throw config.error(
    path,
    `provider "${name}" (type ${config.raw.providers[name]!.type}) cannot write TXT records, which DNS-01 needs; name another provider in acme.challenge.dns01.provider, or use http01`,
  );
}

export async function solverFor(
  config: LoadedConfig,
  service: string,
  progress?: (line: string) => void,
): Promise<SolverFactory> {
  const challenge = config.raw.services[service]!.acme!.challenge;
  if (challenge.http01) {
    const http01 = challenge.http01;
    if ('webroot' in http01) {
      const root = resolve(config.baseDir, http01.webroot);
      return async () => http01Solver(webrootResponder(root));
    }
    return async () => http01Solver(await standaloneResponder(http01.standalone));
  }
  const dns01 = challenge.dns01!;
  const name = dns01ProviderName(config, service);
  const provider = withTxt(config, service, await createProviderInstance(config, name));
  const v = config.raw.verify;
  return async () =>
    dns01Solver({
      who: `acme(${service})`,
      providerName: name,
      provider,
      ttl: dns01.ttl,
      timeoutMs: dns01.propagation_timeout_s * 1000,
      propagation: v.propagation,
      resolver: resolverFrom(v.resolver),
      authoritativePort: v.authoritative_port,
      pendingFile: pendingTxtPath(config.stateDir, service),
      ...(progress ? { progress } : {}),
    });
}

/** DNS-01 values an earlier run of this service left behind, removed (a no-op without any). */
export async function removeServiceLeftovers(
  config: LoadedConfig,
  service: string,
  progress?: (line: string) => void,
): Promise<void> {
  await removeLeftoverTxt(
    pendingTxtPath(config.stateDir, service),
    async (name) => (config.raw.providers[name] ? createProviderInstance(config, name) : undefined),
    progress,
  );
}
