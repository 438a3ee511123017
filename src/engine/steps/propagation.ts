/** Step: ask the authoritative servers about records, and remember what they answered: when each
 *  record was first on every server (tlsa's and other writers' alike), and the TTLs served. */
import { NetworkError } from '../../errors.js';
import type { TlsaRecord } from '../../tlsa/record.js';
import { groupBy } from '../../util/group-by.js';
import { liveAt } from '../lifecycle.js';
import type { PropagationView } from '../observe.js';
import { noteNetwork, observedNow, save, type RunContext } from '../run.js';
import type { OwnedRecord } from '../state.js';
import { factsAt, withSeen, withTtlFact } from '../state-ops.js';

const byOwner = <T extends TlsaRecord>(records: readonly T[]): Map<string, T[]> =>
  groupBy(records, (r) => r.owner);

/** Mark records seen on every authoritative server (once), so that they can become live, and
 *  remember the TTL the servers serve them with. `whose`: tlsa's own records (those published
 *  and not yet live), or another writer's (their age counts from this first sighting). Returns
 *  notes for humans; network failures go to the run's list. */
export async function observePropagation(
  ctx: RunContext,
  view: PropagationView,
  records: readonly TlsaRecord[],
  whose: 'own' | 'other',
): Promise<string[]> {
  const notes: string[] = [];
  const asked =
    whose === 'own'
      ? (records as OwnedRecord[]).filter((r) => {
          const live = liveAt(r, true, factsAt(ctx.state, r.owner));
          return r.status === 'published' && !(live && live.getTime() <= ctx.now.getTime());
        })
      : records;
  for (const [owner, recs] of byOwner(asked)) {
    try {
      const { seen, lagging, ttl } = await view.propagated(owner, recs);
      const at = observedNow(ctx.now);
      ctx.state = withSeen(ctx.state, owner, recs, seen, at, whose);
      if (ttl) ctx.state = withTtlFact(ctx.state, owner, ttl, 'after-write', at);
      if (lagging.length) {
        const what = whose === 'own' ? '' : "another writer's record is ";
        notes.push(`${owner}: ${what}not on every authoritative server yet: ${lagging.join('; ')}`);
        ctx.opts.progress?.(`${owner}: waiting for ${lagging.join('; ')}`);
      }
    } catch (e) {
      if (e instanceof NetworkError) noteNetwork(ctx.network, e);
      else notes.push(`${owner}: cannot check the authoritative servers: ${(e as Error).message}`);
    }
  }
  return notes;
}

/** Observe, print the notes, keep the state. */
export async function observeAndSave(
  ctx: RunContext,
  records: readonly TlsaRecord[],
  whose: 'own' | 'other',
): Promise<void> {
  if (!ctx.propagation) return;
  for (const n of await observePropagation(ctx, ctx.propagation, records, whose))
    ctx.opts.progress?.(n);
  save(ctx);
}

/** Another writer's records when propagation is not checked: they count from when the provider
 *  first listed them. */
export function listedNow(ctx: RunContext, records: readonly TlsaRecord[]): void {
  const at = observedNow(ctx.now);
  for (const [owner, recs] of byOwner(records))
    ctx.state = withSeen(ctx.state, owner, recs, recs, at, 'other');
}

/** Before tlsa writes at an owner name, what resolvers may have cached there and how long: the
 *  write resets the RRset's TTL on many servers (Knot, PowerDNS), so this is the last moment
 *  the TTL of a foreign record, an earlier tool, a CNAME or a negative answer can be seen. */
export async function observeBeforeWrite(
  ctx: Pick<RunContext, 'state' | 'now' | 'opts'>,
  view: PropagationView,
  owners: string[],
): Promise<void> {
  if (!view.servedTtl) return;
  const seen = await Promise.all(
    owners.map(async (owner) => {
      try {
        return { owner, served: await view.servedTtl!(owner) };
      } catch (e) {
        return { owner, error: (e as Error).message };
      }
    }),
  );
  const at = observedNow(ctx.now);
  for (const x of seen) {
    if (x.served) ctx.state = withTtlFact(ctx.state, x.owner, x.served, 'before-write', at);
    else
      ctx.opts.progress?.(
        `${x.owner}: cannot see what the authoritative servers serve before writing (${x.error ?? 'no server answered'}); the wait counts from the TTLs seen after the write`,
      );
  }
}
