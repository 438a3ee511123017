/** The chains staged for install now, read from the files as the engine reads them (staged
 *  state is never stored), with the records each needs: the status page and the metrics show
 *  a chain the hook staged after the daemon's last run. */
import type { LoadedConfig } from '../config/load.js';
import { computeTargets, selectServices } from '../engine/targets.js';
import type { StagedChain } from './model.js';

/** Undefined when the chains cannot be read now (a renewal half-written): the last run's
 *  view stands in. */
export function stagedChains(
  config: LoadedConfig,
  services: string[] | undefined,
  now: Date,
): StagedChain[] | undefined {
  let targets: ReturnType<typeof computeTargets>;
  try {
    targets = computeTargets(config, selectServices(config, services), now);
  } catch {
    return undefined;
  }
  return targets.services.flatMap((svc) =>
    svc.chains
      .filter((c) => c.role === 'staged' && !c.bootstrap)
      .map((c) => ({
        service: svc.service,
        chain: c.label,
        records: targets.records.filter(
          (d) => d.service === svc.service && d.chains.includes(c.label),
        ),
      })),
  );
}
