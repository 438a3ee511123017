/**
 * The provider registry: provider type → its option declarations and its module, loaded
 * lazily (dynamic import) so that an unused SDK costs nothing at start-up (a certbot hook is a
 * cold process). The contract every provider keeps is in contract.ts; adding a provider is one
 * line here (docs/providers.md).
 */
import { CLOUDFLARE_OPTIONS } from './cloudflare-options.js';
import type { ProviderFactory } from './contract.js';
import { DESEC_OPTIONS } from './desec-options.js';
import { EXEC_OPTIONS } from './exec-options.js';
import type { ProviderOptions } from './options.js';
import { POWERDNS_OPTIONS } from './powerdns-options.js';
import { RFC2136_OPTIONS } from './rfc2136-options.js';
import { ROUTE53_OPTIONS } from './route53-options.js';
import { ZONEFILE_OPTIONS } from './zonefile-options.js';

// The contract's names, for callers of the registry (the engine).
export {
  type DnsProvider,
  type OwnerChange,
  type ProviderContext,
  ProviderError,
  type ProviderFactory,
  type PublishedTtl,
  type TlsaChange,
  type TxtRecords,
} from './contract.js';

type Loader = () => Promise<{ createProvider: ProviderFactory }>;

/** Each type's options (cheap modules: the config schema reads them) and its adapter, loaded
 *  only when a configuration uses it. */
const registry: Record<string, { options: ProviderOptions; load: Loader }> = {
  zonefile: { options: ZONEFILE_OPTIONS, load: () => import('./zonefile.js') },
  exec: { options: EXEC_OPTIONS, load: () => import('./exec.js') },
  rfc2136: { options: RFC2136_OPTIONS, load: () => import('./rfc2136.js') },
  route53: { options: ROUTE53_OPTIONS, load: () => import('./route53.js') },
  cloudflare: { options: CLOUDFLARE_OPTIONS, load: () => import('./cloudflare.js') },
  powerdns: { options: POWERDNS_OPTIONS, load: () => import('./powerdns.js') },
  desec: { options: DESEC_OPTIONS, load: () => import('./desec.js') },
};

export function knownProviderTypes(): string[] {
  return Object.keys(registry).sort();
}

/** The option declarations of every provider type, in registry order. */
export function providerOptions(): ProviderOptions[] {
  return Object.values(registry).map((r) => r.options);
}

export async function loadProviderFactory(type: string): Promise<ProviderFactory | undefined> {
  const entry = registry[type];
  if (!entry) return undefined;
  return (await entry.load()).createProvider;
}
