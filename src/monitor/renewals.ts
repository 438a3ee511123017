/** The built-in ACME lineages' next renewals for the metrics, read from their files at each
 *  scrape (a renewal by hand or by the daemon shows at once). */
import { readLineageRenewal } from '../acme/lineage-renewal.js';
import type { LoadedConfig } from '../config/load.js';
import { acmeServiceNames } from '../engine/acme-lineages.js';
import type { AcmeRenewal } from './model.js';

export function acmeRenewals(
  config: LoadedConfig,
  services: string[] | undefined,
  now: Date,
): AcmeRenewal[] {
  return acmeServiceNames(config, services).flatMap((service) =>
    config.raw.services[service]!.acme!.key_types.map((keyType) => {
      const { next } = readLineageRenewal(config.stateDir, service, keyType, now);
      return { service, keyType, at: next.at.toISOString(), source: next.source };
    }),
  );
}
