/** TXT records for ACME DNS-01 through the PowerDNS API (powerdns.ts has the provider's story).
 *  The TXT RRset is written whole, so each change is a read-modify-write of the owner's RRset:
 *  every value not named stays (another client's challenge, SPF, a verification string, a
 *  disabled record), ours are added or taken out, and a read-back after `settle_ms` checks that
 *  no other writer's change was lost and ours holds; otherwise it is done again on what the
 *  read-back saw. A CNAME at the owner is refused before anything is written. */
import type { TxtRecords } from './contract.js';
import { namingOwner, parseTxt, quoteTxt } from './txt.js';
import { Transient } from './http.js';
import { sleep } from './kit.js';
import type { SetRecord } from './kit-rrset.js';
import { ATTEMPTS, NotFound, Rejected, type Zone, type ZoneState } from './powerdns-api.js';

/** The value of TXT content as the API shows it (quoted strings joined, `\DDD` a byte); text
 *  that does not parse is kept as it is, so it is never taken for one of our values. */
export const unquoteTxt = (content: string): string => parseTxt(content) ?? content;

interface PdnsTxtDeps {
  zoneFor(owner: string): Promise<Zone>;
  readZone(
    z: Zone,
    owners: Set<string>,
    filter?: string,
    type?: 'TLSA' | 'TXT',
  ): Promise<ZoneState>;
  request(
    method: string,
    path: string,
    what: string,
    body?: unknown,
    once?: boolean,
  ): Promise<unknown>;
  zonePath(z: Zone): string;
  settleMs: number;
  fail(message: string): Error;
  normalise(owner: string): string;
  /** The provider instance's name, as errors carry it. */
  provider: string;
}

export function powerdnsTxt(d: PdnsTxtDeps): TxtRecords {
  const cnameError = (owner: string, target: string | undefined, zone: string) =>
    d.fail(
      `${owner} has a CNAME${target ? ` (to ${target})` : ''} in zone ${zone}; TXT records cannot sit beside it, and tlsa does not overwrite it: remove the CNAME, or point the provider at the zone of its target`,
    );

  async function read(z: Zone, owner: string) {
    const state = await d.readZone(z, new Set([owner]));
    const at = state.names.get(owner);
    if (at?.cname !== undefined) throw cnameError(owner, at.cname, z.name);
    return at?.txt;
  }

  /** Our values present (enabled), removed ones gone, every other value that was there kept. */
  const holds = (
    after: SetRecord[],
    before: SetRecord[],
    add: Set<string>,
    remove: Set<string>,
  ) => {
    const now = new Map(after.map((r) => [unquoteTxt(r.content), Boolean(r.disabled)]));
    return (
      [...add].every((v) => now.get(v) === false) &&
      [...remove].every((v) => !now.has(v)) &&
      before.every((r) => remove.has(unquoteTxt(r.content)) || now.has(unquoteTxt(r.content)))
    );
  };

  async function change(ownerIn: string, addIn: string[], removeIn: string[], ttl?: number) {
    const owner = d.normalise(ownerIn);
    const add = new Set(addIn);
    const remove = new Set(removeIn.filter((v) => !add.has(v)));
    if (!add.size && !remove.size) return;
    const z = await d.zoneFor(owner);
    let current = await read(z, owner);
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const before = current?.records ?? [];
      const records = before.filter((r) => !remove.has(unquoteTxt(r.content)));
      for (const v of add) {
        const i = records.findIndex((r) => unquoteTxt(r.content) === v);
        if (i < 0) records.push({ content: quoteTxt(v), disabled: false });
        else records[i] = { content: records[i]!.content, disabled: false };
      }
      const newTtl = add.size && ttl !== undefined ? ttl : (current?.ttl ?? ttl ?? 60);
      if (holds(before, before, add, remove) && (!add.size || current?.ttl === newTtl)) return;
      const rrset = records.length
        ? { name: owner, type: 'TXT', ttl: newTtl, changetype: 'REPLACE', records }
        : { name: owner, type: 'TXT', changetype: 'DELETE' };
      try {
        await d.request(
          'PATCH',
          d.zonePath(z),
          `writing ${owner} TXT in zone ${z.name}`,
          { rrsets: [rrset] },
          true,
        );
      } catch (e) {
        if (e instanceof NotFound) throw d.fail(`zone ${z.name} not found (deleted?)`);
        if (e instanceof Rejected) {
          if (/Conflicts with pre-existing RRset/i.test(e.detail))
            throw cnameError(owner, undefined, z.name);
          throw d.fail(
            `PowerDNS rejected the TXT RRset at ${owner} in zone ${z.name} (HTTP ${e.status}): ${e.detail}`,
          );
        }
        if (!(e instanceof Transient)) throw e;
        await sleep(Math.min(30_000, e.retryAfterMs ?? 250 * 2 ** attempt));
        current = await read(z, owner);
        continue;
      }
      await sleep(Math.round(d.settleMs * (0.5 + Math.random())));
      current = await read(z, owner);
      if (holds(current?.records ?? [], before, add, remove)) return;
    }
    throw d.fail(
      `${owner}: other writers kept changing the TXT RRset in zone ${z.name}; gave up after ${ATTEMPTS} read-modify-write rounds`,
    );
  }

  return {
    list: (ownerIn) =>
      namingOwner(d.provider, d.normalise(ownerIn), 'listing', async () => {
        const owner = d.normalise(ownerIn);
        const z = await d.zoneFor(owner);
        const state = await d.readZone(z, new Set([owner]), owner, 'TXT');
        return (state.names.get(owner)?.txt?.records ?? [])
          .filter((r) => !r.disabled)
          .map((r) => unquoteTxt(r.content));
      }),
    add: (owner, values, ttl) =>
      namingOwner(d.provider, d.normalise(owner), 'adding', () => change(owner, values, [], ttl)),
    remove: (owner, values) =>
      namingOwner(d.provider, d.normalise(owner), 'removing', () => change(owner, [], values)),
  };
}
