/** Whether a key's `3 1 1` record is live at every owner name of a service, by the engine's
 *  rule (every authoritative server, then 2×TTL; lifecycle.ts): the condition for serving a
 *  renewed certificate with that key at once. */
import type { LoadedConfig } from '../config/load.js';
import { servicePorts } from '../config/ports.js';
import { ownerName } from '../tlsa/record.js';
import { liveAt } from './lifecycle.js';
import type { StateFile } from './state.js';
import { factsAt } from './state-ops.js';

export function keyRecordLive(
  config: LoadedConfig,
  state: StateFile,
  service: string,
  spkiSha256: string,
  now: Date,
): boolean {
  const svc = config.raw.services[service]!;
  const data = spkiSha256.toLowerCase();
  return servicePorts(svc).every(({ port }) => {
    const owner = ownerName(svc.host, port);
    const r = state.records.find(
      (x) =>
        x.service === service &&
        x.owner === owner &&
        x.usage === 3 &&
        x.selector === 1 &&
        x.matching === 1 &&
        x.data.toLowerCase() === data,
    );
    const live = r && liveAt(r, config.raw.verify.propagation, factsAt(state, owner));
    return !!live && live.getTime() <= now.getTime();
  });
}
