/** `tlsa plan`: what publish would do, read-only. */
import type { LoadedConfig } from '../../config/load.js';
import type { WaitTtl } from '../lifecycle.js';
import { waitTtl } from '../lifecycle.js';
import { dnsPropagation } from '../observe.js';
import type { PlanResult, RunOptions } from '../run.js';
import { readState, type OwnedRecord, type TtlFact } from '../state.js';
import { factsAt } from '../state-ops.js';
import { servedTtl } from '../writers.js';
import { computePlan } from './compute.js';
import { observeBeforeWrite } from './propagation.js';

export async function previewPlan(config: LoadedConfig, opts: RunOptions): Promise<PlanResult> {
  const { providers: _p, ...rest } = await computePlan(config, opts, readState(config.stateDir));
  // What publish would see before its write (it asks where a staged chain will wait), without
  // remembering it.
  const seen = { state: rest.state, now: new Date(), opts };
  const view = config.raw.verify.propagation ? dnsPropagation(config) : undefined;
  const owners = rest.plan
    .filter((p) => p.add.some((a) => config.raw.services[a.service]?.install))
    .map((p) => p.owner);
  if (view) await observeBeforeWrite(seen, view, [...new Set(owners)]);
  const state = seen.state;
  const waits = new Map<string, WaitTtl>();
  const stamp = (opts.now ?? new Date()).toISOString();
  for (const p of rest.plan.filter((x) => x.add.length)) {
    const top = p.add.reduce((a, b) => (b.ttl > a.ttl ? b : a));
    const next: OwnedRecord = {
      ...top,
      status: 'published',
      addedAt: stamp,
      publishedAt: stamp,
      by: '',
    };
    waits.set(p.owner, waitTtl(next, factsAt(state, p.owner)));
  }
  const served = new Map<string, TtlFact>();
  for (const p of rest.plan) {
    const f = servedTtl(factsAt(state, p.owner));
    if (f) served.set(p.owner, f);
  }
  return { ...rest, state, waits, servedTtls: served };
}
