/** Step: remove records whose grace is over, unless a live server still presents a chain they
 *  match (or the probe could not tell): those are held, and the state says why. */
import type { PortProtocol } from '../../config/ports.js';
import { servicePorts } from '../../config/ports.js';
import { NetworkError } from '../../errors.js';
import { removalHeld } from '../lifecycle.js';
import { liveProbe, type LiveView, type ServedChains } from '../observe.js';
import type { OwnerPlan } from '../plan.js';
import { flushAll } from '../provider-calls.js';
import { noteNetwork, observedNow, save, type EngineResult, type RunContext } from '../run.js';
import type { OwnedRecord } from '../state.js';
import { withHeld } from '../state-ops.js';
import { applyChanges } from './apply.js';

export async function retireDue(
  ctx: RunContext,
): Promise<Pick<EngineResult, 'held' | 'retired' | 'removed'>> {
  const { config, opts } = ctx;
  const held: EngineResult['held'] = [];
  const retired: OwnedRecord[] = [];
  const due = ctx.c.plan.flatMap((p) => p.remove.map((r) => ({ p, r })));
  const liveView =
    due.length && config.raw.verify.probe
      ? (opts.live ?? liveProbe(config, opts.progress))
      : undefined;
  const seenChains = new Map<string, ServedChains>();
  const removable = new Map<OwnerPlan, OwnedRecord[]>();
  for (const { p, r } of due) {
    const svc = config.raw.services[r.service];
    if (liveView && svc) {
      if (!seenChains.has(r.service)) {
        const ports = servicePorts(svc);
        opts.progress?.(
          `probing ${svc.host} (ports ${ports.map((x) => `${x.port} ${x.protocol}`).join(', ')}) before removing records`,
        );
        seenChains.set(r.service, await servedOrKept(liveView, svc.host, ports, ctx.network));
      }
      const why = removalHeld(r, seenChains.get(r.service)!);
      if (why) {
        held.push({ record: r, why });
        ctx.state = withHeld(ctx.state, r, why, observedNow(ctx.now));
        continue;
      }
    }
    retired.push(r);
    removable.set(p, [...(removable.get(p) ?? []), r]);
  }
  if (held.length) save(ctx);
  if (!ctx.write) return { held, retired, removed: 0 };
  const removals = [...removable].map(([p, remove]) => ({ p, add: [], remove }));
  const { removed } = await applyChanges(ctx, removals);
  if (removed) await flushAll(ctx.c.providers);
  return { held, retired, removed };
}

/** The live probe before a removal; when it cannot see every address the records stay, and
 *  the run says why (exit 3). */
async function servedOrKept(
  view: LiveView,
  host: string,
  ports: PortProtocol[],
  network: NetworkError[],
): Promise<ServedChains> {
  let seen: ServedChains;
  try {
    seen = await view.servedChains(host, ports);
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    noteNetwork(network, e);
    return { chains: [], errors: [e.message] };
  }
  if (seen.errors.length) {
    noteNetwork(
      network,
      new NetworkError(
        `the live probe of ${host} could not check every address, so records it might still need are kept: ${seen.errors.join('; ')}`,
        `is ${host} reachable from here on port${ports.length === 1 ? '' : 's'} ${ports.map((x) => x.port).join(', ')}? (verify.probe: false skips the probe)`,
      ),
    );
  }
  return seen;
}
