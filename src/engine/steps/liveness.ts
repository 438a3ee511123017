/** Step: does a chain match a live record (tlsa's own or another writer's), after asking the
 *  authoritative servers about those not yet seen there; and, when not, what it waits for. The
 *  staged install and the hook's served-chain check both ask this. */
import { recordMatchesChain } from '../../verify/dane.js';
import { rdataText, type TlsaRecord } from '../../tlsa/record.js';
import { groupBy } from '../../util/group-by.js';
import {
  chainReady,
  describeWait,
  observedRecord,
  waitTtl,
  type ChainEvidence,
} from '../lifecycle.js';
import type { OwnerPlan, TargetRecord } from '../plan.js';
import { save, type RunContext } from '../run.js';
import type { ServiceChain } from '../sources.js';
import type { OwnedRecord, StateFile } from '../state.js';
import { factsAt, findOwned, ownsKey } from '../state-ops.js';
import type { ServiceTargets } from '../targets.js';
import { listedNow, observeAndSave } from './propagation.js';

/** The TTL tlsa gives an owner name (the provider's effective one): another writer's record
 *  there is assumed to have it unless the servers were seen serving more. */
function ttlAt(ctx: RunContext, owner: string): number {
  return ttlsOf(ctx.c.plan).get(owner)?.ttl || 3600;
}

/** That TTL as tlsa's own records there carry it: with the provider's raise, if any, so that a
 *  wait reason names it as the plan's TTL line does. */
function ownTtlAt(ctx: RunContext, owner: string): Pick<OwnedRecord, 'ttl' | 'ttlRaise'> {
  const t = ttlsOf(ctx.c.plan).get(owner);
  if (!t?.ttl) return { ttl: 3600 };
  return t.ttlRaise ? { ttl: t.ttl, ttlRaise: t.ttlRaise } : { ttl: t.ttl };
}

/** Per run's plan and targets, built once: the steps ask per chain and per record, and with
 *  thousands of services a scan each time would make a run quadratic. */
type OwnerTtl = Pick<TargetRecord, 'ttl' | 'ttlRaise'>;
const planTtls = new WeakMap<readonly OwnerPlan[], Map<string, OwnerTtl>>();
function ttlsOf(plan: readonly OwnerPlan[]): Map<string, OwnerTtl> {
  let ttls = planTtls.get(plan);
  if (!ttls) {
    ttls = new Map();
    for (const d of plan.flatMap((p) => [...p.add, ...p.keep]))
      if (d.ttl > (ttls.get(d.owner)?.ttl ?? 0)) ttls.set(d.owner, d);
    planTtls.set(plan, ttls);
  }
  return ttls;
}

const serviceTargets = new WeakMap<readonly TargetRecord[], Map<string, TargetRecord[]>>();
function targetsOf(records: readonly TargetRecord[], service: string): readonly TargetRecord[] {
  let byService = serviceTargets.get(records);
  if (!byService) {
    byService = groupBy(records, (d) => d.service);
    serviceTargets.set(records, byService);
  }
  return byService.get(service) ?? [];
}

function evidence(
  ctx: RunContext,
  owned: OwnedRecord[],
  others: TlsaRecord[],
  bootstrap: boolean,
): ChainEvidence {
  const s = ctx.state;
  return {
    bootstrap,
    owned: owned.map((o) => ({ record: findOwned(s, o)!, facts: factsAt(s, o.owner) })),
    others: others.map((r) => {
      const seenAt = s.observed?.[r.owner]?.[rdataText(r)];
      return {
        record: r,
        ...(seenAt ? { seenAt } : {}),
        ttl: ttlAt(ctx, r.owner),
        facts: factsAt(s, r.owner),
      };
    }),
    propagationChecked: !!ctx.propagation,
  };
}

/** Records at the owners of a chain's records that tlsa does not own but that match the chain
 *  (another host's tlsa published them, or someone by hand): they count for it once live. */
function othersFor(ctx: RunContext, owners: Set<string>, chain: ServiceChain): TlsaRecord[] {
  const certs = chain.certs.map((x) => x.x509);
  return [...owners].flatMap((owner) =>
    (ctx.c.listed.get(owner) ?? []).filter(
      (r) => !ownsKey(ctx.state, r) && recordMatchesChain(r, certs),
    ),
  );
}

export interface Liveness {
  owned: OwnedRecord[];
  others: TlsaRecord[];
  /** A record that matches it is live (or it is a first install). */
  ready: boolean;
  eta?: Date;
}

const isReady = (ctx: RunContext, e: ChainEvidence) => chainReady(e, ctx.now).ready;

/** Whether the chain matches a live record now, and the earliest moment one turns live. Records
 *  of other writers count once live too: their age counts from when tlsa first saw them on every
 *  authoritative server (or listed by the provider, when propagation is not checked). */
export async function chainLiveness(
  ctx: RunContext,
  svc: ServiceTargets,
  chain: ServiceChain,
  bootstrap: boolean,
): Promise<Liveness> {
  const matching = targetsOf(ctx.c.targets.records, svc.service).filter((d) =>
    d.chains.includes(chain.label),
  );
  const owned = matching.map((d) => findOwned(ctx.state, d)).filter((o): o is OwnedRecord => !!o);
  const ownLive = () => isReady(ctx, evidence(ctx, owned, [], false));
  if (!bootstrap && !ownLive()) await observeAndSave(ctx, owned, 'own');
  const others =
    bootstrap || ownLive() ? [] : othersFor(ctx, new Set(matching.map((d) => d.owner)), chain);
  const otherLive = (r: TlsaRecord) => isReady(ctx, evidence(ctx, [], [r], false));
  if (others.length && !others.some(otherLive)) {
    const pending = others.filter((r) => !otherLive(r));
    if (ctx.propagation) await observeAndSave(ctx, pending, 'other');
    else {
      listedNow(ctx, others);
      save(ctx);
    }
  }
  const { ready, eta } = chainReady(evidence(ctx, owned, others, bootstrap), ctx.now);
  return { owned, others, ready, ...(eta ? { eta } : {}) };
}

/** Whether a (non-first) staged chain's own records are live by what the state already
 *  knows: no server is asked and no other writer's record counts. A chain that is not ready by
 *  this is not waiting yet either; chainLiveness() decides that. */
export function chainLiveNow(ctx: RunContext, svc: ServiceTargets, chain: ServiceChain): Liveness {
  const owned = targetsOf(ctx.c.targets.records, svc.service)
    .filter((d) => d.chains.includes(chain.label))
    .map((d) => findOwned(ctx.state, d))
    .filter((o): o is OwnedRecord => !!o);
  const ready =
    !chain.bootstrap && owned.length > 0 && isReady(ctx, evidence(ctx, owned, [], false));
  return { owned, others: [], ready };
}

const shortOther = (r: TlsaRecord): string =>
  `${r.usage} ${r.selector} ${r.matching} ${r.data.slice(0, 12)}…`;

/** What a staged chain that is not ready waits for, for humans. */
export function waitReason(ctx: RunContext, { owned, others }: Liveness): string {
  if (owned.length || !others.length) {
    const waits = owned
      .map((o) => waitTtl(findOwned(ctx.state, o)!, factsAt(ctx.state, o.owner)))
      .sort((a, b) => a.ttl - b.ttl);
    const span = waits.length ? describeWait(waits[0]!) : '2×TTL';
    return owned.some((o) => o.status === 'published' && !o.seenAt && ctx.propagation)
      ? `its records to reach every authoritative server, then ${span}`
      : `its records to be 2×TTL old (${span})`;
  }
  return otherWait(ctx, ctx.state, others);
}

function otherWait(ctx: RunContext, state: StateFile, others: TlsaRecord[]): string {
  const seen = others.filter((r) => state.observed?.[r.owner]?.[rdataText(r)]);
  const which = others.map((r) => shortOther(r)).join(', ');
  if (!seen.length)
    return `another writer's record (${which}) to reach every authoritative server, then 2×TTL`;
  const waits = seen
    .map((r) =>
      waitTtl(
        {
          ...observedRecord(r, state.observed![r.owner]![rdataText(r)]!, 0),
          ...ownTtlAt(ctx, r.owner),
        },
        factsAt(state, r.owner),
      ),
    )
    .sort((a, b) => a.ttl - b.ttl);
  // Nobody told tlsa the other writer's TTL: its own for the name stands in (with the
  // provider's raise), raised by what the servers were seen serving.
  const w = { ...waits[0]!, why: forTheName(waits[0]!.why) };
  return `another writer's record (${which}) to be 2×TTL old (${describeWait(w)}), counted from when tlsa first saw it ${ctx.propagation ? 'on every authoritative server' : 'at the provider'}`;
}

/** A wait reason that is tlsa's own TTL, said of the name: the other writer's record has it
 *  only by assumption. */
function forTheName(why: string): string {
  if (why === "tlsa's TTL, as published")
    return "tlsa's TTL for the name (the servers were seen serving no larger one)";
  return why.replace(/^tlsa's TTL, raised from /, "tlsa's TTL for the name, raised from ");
}
