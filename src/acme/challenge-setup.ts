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

/** The provider that writes the service's DNS-01 TXT records, checked for the capability. */
async function txtProvider(
  config: LoadedConfig,
  service: string,
): Promise<{ name: string; provider: DnsProvider & { txt: TxtRecords } }> {
  const svc = config.raw.services[service]!;
  const explicit = svc.acme!.challenge.dns01!.provider;
  const name = explicit ?? svc.provider;
  const provider = await createProviderInstance(config, name);
  if (!provider.txt) {
    const path = explicit
      ? ['services', service, 'acme', 'challenge', 'dns01', 'provider']
      : ['services', service, 'provider'];
    throw config.error(
      path,
      `provider "${name}" (type ${config.raw.providers[name]!.type}) cannot write TXT records, which DNS-01 needs; name another provider in acme.challenge.dns01.provider, or use http01`,
    );
  }
  return { name, provider: provider as DnsProvider & { txt: TxtRecords } };
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
  const { name, provider } = await txtProvider(config, service);
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
