/** Instantiate the providers a run needs, from the config, lazily loading their modules. */
import type { LoadedConfig } from '../config/load.js';
import { createProviderInstance } from '../config/provider-instance.js';
import type { DnsProvider } from '../../providers/index.js';

export async function createProviders(
  config: LoadedConfig,
  names: Iterable<string>,
): Promise<Map<string, DnsProvider>> {
  const out = new Map<string, DnsProvider>();
  for (const name of new Set(names)) out.set(name, await createProviderInstance(config, name));
  return out;
}
