/** `tlsa adopt`: take ownership of published records equal to desired ones, and of records
 *  carrying tlsa's marker (see adopt.ts). Changes the state only, never DNS. */
import type { LoadedConfig } from '../../config/load.js';
import { adoptionFor, type Adoption } from '../adopt.js';
import { calling } from '../provider-calls.js';
import type { PlanResult, RunOptions } from '../run.js';
import { actor, readState, writeState } from '../state.js';
import { computePlan } from './compute.js';

export interface AdoptResult extends PlanResult {
  adoption: Adoption;
}

export async function takeOver(
  config: LoadedConfig,
  opts: RunOptions & { dryRun?: boolean },
): Promise<AdoptResult> {
  const state = readState(config.stateDir);
  const { providers, ...c } = await computePlan(config, opts, state);
  const marked = new Map<string, Set<string>>();
  for (const [name, dns] of providers) {
    const owners = c.plan
      .filter((p) => p.provider === name && p.foreign.length)
      .map((p) => p.owner);
    if (!dns.markedKeys || !owners.length) continue;
    marked.set(name, await calling(dns, () => dns.markedKeys!([...new Set(owners)])));
  }
  const adoption = adoptionFor(
    c.plan,
    marked,
    state,
    opts.now ?? new Date(),
    actor(opts.entryPoint),
  );
  if (!opts.dryRun && (adoption.desired.length || adoption.marked.length)) {
    const records = [...state.records, ...adoption.desired, ...adoption.marked];
    writeState(config.stateDir, { ...state, records });
  }
  return { ...c, adoption };
}
