/** The chains staged for install, read from the files as the engine reads them (staged state is
 *  never stored), with the records each needs: the status page and the metrics show a chain
 *  the hook staged after the daemon's last run. Pure: from targets the daemon's check cycle
 *  computed. */
import type { Targets } from '../engine/targets.js';
import type { StagedChain } from './model.js';

export function stagedChains(targets: Targets): StagedChain[] {
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
