/** One provider instance of the config (`providers.<name>`), its module loaded lazily; unknown
 *  names and types, and option errors, are bad input at their place in the config. */
import {
  type DnsProvider,
  knownProviderTypes,
  loadProviderFactory,
} from '../../providers/index.js';
import type { LoadedConfig } from './load.js';

export async function createProviderInstance(
  config: LoadedConfig,
  name: string,
): Promise<DnsProvider> {
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
  return factory(options, {
    instance: name,
    baseDir: config.baseDir,
    optionError: (key, message) => config.error(['providers', name, key], message),
  });
}
