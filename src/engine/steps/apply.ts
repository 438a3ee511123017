/** Step: change DNS. Write-ahead intents first, then one provider call per owner (or one for
 *  all, where the provider can), then the confirmations; a run killed in between is settled by
 *  the next one from what the provider lists. */
import { groupBy } from '../../util/group-by.js';
import { plainRecord as plain, type OwnerPlan, type TargetRecord } from '../plan.js';
import { calling, flushAll } from '../provider-calls.js';
import { observedNow, save, type RunContext } from '../run.js';
import type { OwnedRecord } from '../state.js';
import { ownedAt, withConfirmed, withIntents, withTtlFact } from '../state-ops.js';
import { observeBeforeWrite } from './propagation.js';

export interface Change {
  p: OwnerPlan;
  add: TargetRecord[];
  remove: OwnedRecord[];
}

const byProvider = (items: Change[]): Map<string, Change[]> => groupBy(items, (i) => i.p.provider);

/** Apply changes at owner names of one or more providers, then let each provider flush. Returns
 *  how many records were added and removed. */
export async function applyChanges(
  ctx: RunContext,
  changes: Change[],
): Promise<{ added: number; removed: number }> {
  let added = 0;
  let removed = 0;
  for (const [provider, items] of byProvider(changes)) {
    await applyAtProvider(ctx, provider, items);
    added += items.reduce((n, i) => n + i.add.length, 0);
    removed += items.reduce((n, i) => n + i.remove.length, 0);
  }
  return { added, removed };
}

async function applyAtProvider(ctx: RunContext, provider: string, items: Change[]): Promise<void> {
  const dns = ctx.c.providers.get(provider)!;
  ctx.state = withIntents(ctx.state, items, ctx.by, new Date().toISOString());
  save(ctx);
  for (const { p, add, remove } of items)
    ctx.opts.progress?.(`${provider}: ${p.owner} +${add.length} -${remove.length}`);
  const confirm = (batch: Change[]) => {
    ctx.state = withConfirmed(ctx.state, batch, new Date().toISOString());
    save(ctx);
  };
  await calling(dns, async () => {
    if (dns.applyMany && items.length > 1) {
      const ttls = new Map(items.map(({ p }) => [p.owner, p.ttl]));
      await dns.applyMany(
        items.map(({ p, add, remove }) => ({
          owner: p.owner,
          add: add.map(plain),
          remove: remove.map(plain),
        })),
        (o) => ttls.get(o) ?? 3600,
      );
      confirm(items);
    } else {
      for (const item of items) {
        await dns.apply(
          item.p.owner,
          { add: item.add.map(plain), remove: item.remove.map(plain) },
          item.p.ttl,
        );
        confirm([item]);
      }
    }
  });
}

/** Publish what the plan adds (new records, and records re-added for a changed `ttl:`), after
 *  noting what caches may hold at those names. Returns how many records were added. */
export async function publishAdds(ctx: RunContext): Promise<number> {
  const adds = ctx.c.plan
    .filter((p) => p.add.length)
    .map((p): Change => ({ p, add: p.add, remove: [] }));
  const { config, opts } = ctx;
  // Only where a wait will rely on it: a plain `publish` of services without staged install
  // sends no DNS query (the README's quick start stays on the machine).
  const relies = (p: OwnerPlan) =>
    opts.checkServed ||
    opts.observeAll ||
    p.add.some((a) => config.raw.services[a.service]?.install);
  const observed = adds.filter((a) => relies(a.p)).map((a) => a.p.owner);
  if (ctx.propagation && observed.length) await observeBeforeWrite(ctx, ctx.propagation, observed);
  for (const { p } of adds) noteLoweredTtl(ctx, p);
  const { added } = await applyChanges(ctx, adds);
  await flushAll(ctx.c.providers);
  return added;
}

/** `ttl:` lowered since tlsa's records there were published: caches may hold the RRset with the
 *  old TTL, asked or not, so the wait of what is added now counts from it. */
function noteLoweredTtl(ctx: RunContext, p: OwnerPlan): void {
  const atOwner = [...ownedAt(ctx.state, p.owner)];
  const published = atOwner.filter((r) => r.provider === p.provider && r.status === 'published');
  const old = Math.max(0, ...published.map((r) => r.ttl));
  if (old > p.ttl)
    ctx.state = withTtlFact(
      ctx.state,
      p.owner,
      { ttl: old, of: 'rrset', records: atOwner },
      'before-write',
      observedNow(ctx.now),
    );
}
