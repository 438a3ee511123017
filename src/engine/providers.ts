/** Instantiate the providers a run needs, from the config, lazily loading their modules. */
import type { LoadedConfig } from '../config/load.js';
import {
  knownProviderTypes,
  loadProviderFactory,
  type DnsProvider,
} from '../../providers/index.js';

export async function createProviders(
  config: LoadedConfig,
  names: Iterable<string>,
): Promise<Map<string, DnsProvider>> {
  const out = new Map<string, DnsProvider>();
  for (const name of new Set(names)) {
    const raw = config.raw.providers[name];
    if (!raw) throw config.error(['providers'], `unknown provider "${name}"`);
    const { type, ...options } = raw;
    const factory = await loadProviderFactory(type);
    if (!factory) {
      throw config.error(
        ['providers', name, 'type'],
        `unknown provider type "${type}" (known: ${knownProviderTypes().join(', ')})`,
      );
    }
    out.set(
      name,
      factory(options, {
        instance: name,
        baseDir: config.baseDir,
        optionError: (key, message) => config.error(['providers', name, key], message),
      }),
    );
  }
  return out;
}
