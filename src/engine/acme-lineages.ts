/** Every built-in ACME lineage of some services, with its next renewal and whether its next
 *  key's 3 1 1 is live: what `status` shows, `check` warns about and the daemon wakes for. */
import { type LineageRenewalView, readLineageRenewal } from '../acme/lineage-renewal.js';
import { readNextKey } from '../acme/next-key-files.js';
import type { LoadedConfig } from '../config/load.js';
import { keyRecordLive } from './key-record-live.js';
import type { StateFile } from './state.js';

export interface AcmeLineageStatus extends LineageRenewalView {
  /** The next key (null before the first `renew` made one). */
  nextKey: { spkiSha256: string; live: boolean } | null;
  /** The TTL the service's records are published with. */
  ttl: number;
}

/** The services (of `only`, else all) that have an `acme:` block. */
export function acmeServiceNames(config: LoadedConfig, only?: readonly string[]): string[] {
  const names = only?.length ? only : Object.keys(config.raw.services);
  return names.filter((s) => config.raw.services[s]?.acme);
}

export function acmeLineages(
  config: LoadedConfig,
  state: StateFile | undefined,
  services: readonly string[],
  now: Date,
): AcmeLineageStatus[] {
  return services.flatMap((service) => {
    const svc = config.raw.services[service]!;
    return (svc.acme?.key_types ?? []).map((keyType) => {
      const view = readLineageRenewal(config.stateDir, service, keyType, now);
      const key = readNextKey(config.stateDir, service, keyType);
      return {
        ...view,
        nextKey: key
          ? {
              spkiSha256: key.spkiSha256,
              live: !!state && keyRecordLive(config, state, service, key.spkiSha256, now),
            }
          : null,
        ttl: svc.ttl ?? config.raw.ttl,
      };
    });
  });
}
