/**
 * cloudflare's TXT records (contract.ts TxtRecords, for ACME DNS-01). Cloudflare stores single
 * records with ids, so no RRset is rewritten: add() reads the records at the owner name (all
 * types, so a CNAME there is seen) and posts each value not there as its own record; remove()
 * deletes exactly the records whose text is a named value, by id. A concurrent writer's
 * records have other ids and stay. A record already there (81058/81057) or already gone
 * (81044) counts as done. `content` is the record's presentation text: quoted
 * character-strings (RFC 1035), each up to 255 bytes (Cloudflare splits longer ones itself);
 * posted records carry `comment: "managed by tlsa"` and the TTL clamped to 60..86400. Records
 * stored before Cloudflare required quotes come back bare and are read as one string.
 */
import type { ApiRecord, cloudflareApi, Zone } from './cloudflare-api.js';
import { codesOf } from './cloudflare-api.js';
import type { TxtRecords } from './contract.js';
import { namingOwner, parseTxt, quoteTxt, txtArgs, txtCnameError } from './txt.js';

const GONE = 81044;
const THERE = [81058, 81057];

/** A TXT record's value: quoted strings joined, or legacy bare content as it is. */
export function cloudflareTxtValue(r: ApiRecord): string | undefined {
  if (r.type !== 'TXT' || typeof r.content !== 'string') return undefined;
  const content = r.content.trim();
  return content.startsWith('"') ? parseTxt(content) : content;
}

export function cloudflareTxt(
  name: string,
  api: Pick<ReturnType<typeof cloudflareApi>, 'raw' | 'translate' | 'zoneFor' | 'readName'>,
  comment: string,
  clampTtl: (ttl: number) => number,
): TxtRecords {
  const { raw, translate, zoneFor, readName } = api;

  /** The records at the owner, after the CNAME refusal. */
  async function readOwner(zone: Zone, owner: string): Promise<ApiRecord[]> {
    const records = await readName(zone, owner);
    const cname = records.find((r) => r.type === 'CNAME');
    if (cname) throw txtCnameError(name, owner, zone.label, cname.content);
    return records;
  }

  return {
    async list(ownerIn) {
      const { owner } = txtArgs(name, ownerIn, []);
      return namingOwner(name, owner, 'reading', async () =>
        (await readName(await zoneFor(owner), owner)).flatMap((r) => cloudflareTxtValue(r) ?? []),
      );
    },
    async add(ownerIn, valuesIn, ttl) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn, ttl);
      if (!values.length) return;
      await namingOwner(name, owner, 'adding', async () => {
        const zone = await zoneFor(owner);
        const present = new Set((await readOwner(zone, owner)).map(cloudflareTxtValue));
        for (const value of values) {
          if (present.has(value)) continue;
          try {
            await raw((c) =>
              c.dns.records.create({
                zone_id: zone.id,
                type: 'TXT',
                name: owner.slice(0, -1),
                content: quoteTxt(value),
                ttl: clampTtl(ttl),
                comment,
              }),
            );
          } catch (e) {
            if (!THERE.some((c) => codesOf(e).includes(c)))
              throw translate(e, 'POST dns_records', zone.label);
          }
        }
      });
    },
    async remove(ownerIn, valuesIn) {
      const { owner, values } = txtArgs(name, ownerIn, valuesIn);
      if (!values.length) return;
      await namingOwner(name, owner, 'removing', async () => {
        const zone = await zoneFor(owner);
        const named = new Set(values);
        for (const r of await readOwner(zone, owner)) {
          const value = cloudflareTxtValue(r);
          if (value === undefined || !named.has(value) || !r.id) continue;
          const id = r.id;
          try {
            await raw((c) => c.dns.records.delete(id, { zone_id: zone.id }));
          } catch (e) {
            if (!codesOf(e).includes(GONE)) throw translate(e, 'DELETE dns_records', zone.label);
          }
        }
      });
    },
  };
}
