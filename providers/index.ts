/**
 * The provider registry: provider type → its module, loaded lazily (dynamic import) so that an
 * unused SDK costs nothing at start-up (a certbot hook is a cold process). The contract every
 * provider keeps is in contract.ts; adding a provider is one line here (docs/providers.md).
 */
import type { ProviderFactory } from './contract.js';

// The contract's names, for callers of the registry (the engine).
export {
  type DnsProvider,
  type OwnerChange,
  type ProviderContext,
  ProviderError,
  type ProviderFactory,
  type TlsaChange,
} from './contract.js';

type Loader = () => Promise<{ createProvider: ProviderFactory }>;

const registry: Record<string, Loader> = {
  zonefile: () => import('./zonefile.js'),
  exec: () => import('./exec.js'),
  rfc2136: () => import('./rfc2136.js'),
  route53: () => import('./route53.js'),
  cloudflare: () => import('./cloudflare.js'),
  powerdns: () => import('./powerdns.js'),
  desec: () => import('./desec.js'),
};

export function knownProviderTypes(): string[] {
  return Object.keys(registry).sort();
}

export async function loadProviderFactory(type: string): Promise<ProviderFactory | undefined> {
  const load = registry[type];
  if (!load) return undefined;
  return (await load()).createProvider;
}
