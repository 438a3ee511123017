/**
 * cloudflare: Cloudflare DNS through the v4 API and Cloudflare's TypeScript SDK (`cloudflare`,
 * about 120 MB and a second to load: it is imported only when a configuration uses it).
 *
 * Credentials: `api_token` (required; write it as ${ENV} or `api_token_file:` so that it is a
 *              secret, redacted from every message). A scoped API token, never the Global API
 *              Key. The CLOUDFLARE_API_KEY / CLOUDFLARE_EMAIL / CLOUDFLARE_BASE_URL environment
 *              variables the SDK would otherwise read are ignored.
 * Token scope: Zone → DNS → Edit, with "Zone Resources: Include → Specific zone → <your zone>"
 *              for each zone tlsa writes. Without `zone_id` the zone is looked up by name, which
 *              also needs Zone → Zone → Read on those zones (GET /zones?name= answers an empty
 *              list to a token without it).
 * Options:     api_token, zone_id (optional, see Zone), base_url (tests; default
 *              https://api.cloudflare.com/client/v4), batch_size (operations per batch: 200,
 *              the Free plan's limit; up to 3,500 on Pro, Business and Enterprise zones).
 * Zone:        zone_id, or GET /zones?name= for the owner name and then each parent (most
 *              specific first; an active zone wins over a pending one). Cached per instance.
 * Writes:      Cloudflare stores single records with ids, so writers never need to replace a
 *              whole RRset. apply() reads the records at the owner name once (all types and
 *              pages, so a CNAME there is seen), deletes exactly the TLSA records named in
 *              `remove` (matched by usage/selector/matching type/data) and posts the missing
 *              ones of `add` with `comment: "managed by tlsa"` (it marks our records in the
 *              dashboard; ownership itself is kept in tlsa's state). One change is one
 *              request; several are one POST /dns_records/batch (one transaction; the API runs
 *              its deletes before its posts, so a replacement is never half done). A concurrent writer cannot lose records: its records have
 *              other ids. A record already gone (81044) or already there (81058/81057) counts as
 *              done; a batch that fails that way is re-read and retried (4 attempts). A CNAME at
 *              the owner name (or 81053/81054) is reported, never replaced. TTL: 60..86400
 *              (values outside are clamped; Enterprise zones could go to 30). An add of a record
 *              that is there with another TTL (the configured TTL changed) PATCHes the TTL of
 *              every TLSA record at the owner, in the same batch: DNS serves one TTL per RRset.
 *              applyMany() of several names in a zone reads GET dns_records?type=TLSA (all
 *              pages, per_page 5,000) and ?type=CNAME once each, keeps the asked owners, and
 *              sends all deletes and posts of the zone in ONE batch. Over batch_size
 *              operations it is split, posts first: every post goes in an earlier or the same
 *              batch as every delete, so a batch that fails leaves new records beside the old
 *              ones, never a name without either (the next run finishes the deletes). A
 *              CNAME at any owner is reported, naming it, before anything is written. apply()
 *              is applyMany() of one (one read of the name, as above).
 * Requests:    (plus GET /zones per zone level once per instance, without zone_id.) list: 1 GET
 *              per 100 records at the name. listMany of N names in one zone: 1 GET of the
 *              zone's TLSA records (a name alone: as list). apply: 1 GET + 1 write. applyMany of
 *              N names in one zone: 2 GETs (TLSA, CNAME) + 1 batch per batch_size operations; each
 *              conflict retry repeats them.
 * Limits:      listMany and applyMany work on 2 zones at a time, starting at most 1 per second
 *              (a zone is 1–3 requests: within 4/s). 1,200 requests per 5 minutes per user/token, 200 requests/s per IP; over it every
 *              call gets 429 for up to 5 minutes with `retry-after` (seconds). Batches hold 200
 *              records on Free zones (3,500 on paid plans). Retries: the SDK's own retry is off
 *              (maxRetries 0) so there is one bounded policy (src/util/retry.ts): 429 (waiting
 *              what `retry-after` says, at most 60 s; a longer wait fails with a message), 409,
 *              5xx and network errors, 5 attempts, exponential backoff with full jitter;
 *              30 s timeout per request.
 *              Listing pages by result_info.total_pages, so no extra empty-page request (the
 *              SDK's own iterator stops only on an empty page).
 * TXT:         for ACME DNS-01, one record per value: cloudflare-txt.ts.
 * Errors:      401/403 (9109, 10000, 6003, …): "API token rejected or lacks Zone.DNS:Edit on
 *              <zone>"; an unknown zone id (7003/7000) or an owner in no visible zone is
 *              named; both fail at once.
 */
import { normaliseName, recordKey, type TlsaRecord } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import {
  type ApiRecord,
  cloudflareApi,
  codesOf,
  describe,
  tlsaOf,
  type Zone,
} from './cloudflare-api.js';
import { type DnsProvider, ProviderError, type ProviderFactory } from './contract.js';
import {
  Conflict,
  refuseCnames,
  listByZone,
  Pacer,
  nameList,
  type OwnerWant,
  rdataKey,
  retryOnConflict,
  writesByZone,
} from './kit.js';
import { readOptions } from './options.js';
import { CLOUDFLARE_OPTIONS } from './cloudflare-options.js';
import { cloudflareTxt } from './cloudflare-txt.js';

/** 1,200 requests per 5 minutes (4/s) per token; a zone's read and write are 1–3 of them. */
const PACE = { concurrency: 2, perSecond: 1 };

export const MANAGED_COMMENT = 'managed by tlsa';
const CONFLICT_ATTEMPTS = 4;
/** "Record does not exist" (a delete or patch of a record gone), "already exists". */
const GONE = 81044;
const THERE = [81058, 81057];

/** A record to post, with the TTL of its owner. */
interface Post {
  record: TlsaRecord;
  ttl: number;
}

/** One operation of a batch: posts first, then TTL patches, then deletes (rules 1 and 9 of
 *  contract.ts). */
type Op = { post: Post } | { patch: { id: string; ttl: number } } | { del: string };

/** Cloudflare's TTL bounds (Enterprise zones could go to 30). */
const clampTtl = (ttl: number) => Math.min(86_400, Math.max(60, ttl));

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(CLOUDFLARE_OPTIONS, options, ctx);
  const token = opt.api_token;
  const zoneIdOption = opt.zone_id;
  if (zoneIdOption && !/^[0-9a-f]{32}$/i.test(zoneIdOption))
    throw ctx.optionError(
      'zone_id',
      '"zone_id" is the 32-character hex id from the zone\'s overview page, not its name',
    );
  const baseURL = opt.base_url;
  const batchSize = opt.batch_size;
  if (!/^https?:\/\/[^\s/]+/.test(baseURL))
    throw ctx.optionError('base_url', '"base_url" must be an http(s) URL');

  const name = `cloudflare(${ctx.instance})`;
  const api = cloudflareApi({ name, token, baseURL, zoneIdOption });
  const { raw, translate, zoneFor, readName, readType } = api;

  const param = ({ record: r, ttl }: Post) => ({
    name: normaliseName(r.owner).slice(0, -1),
    type: 'TLSA' as const,
    ttl: clampTtl(ttl),
    data: { usage: r.usage, selector: r.selector, matching_type: r.matching, certificate: r.data },
    comment: MANAGED_COMMENT,
  });

  /** A single post or delete as one request; anything else as batches of `batch_size`
   *  operations. A batch is one transaction; over several, every post goes in an earlier or
   *  the same batch as every delete: a failed batch then leaves new records beside old ones,
   *  never a name emptied of both. */
  async function write(zone: Zone, ops: Op[]): Promise<void> {
    const only = ops.length === 1 ? ops[0]! : undefined;
    if (only && !('patch' in only)) {
      const del = 'del' in only ? only.del : undefined;
      try {
        if (del) await raw((c) => c.dns.records.delete(del, { zone_id: zone.id }));
        else if ('post' in only)
          await raw((c) => c.dns.records.create({ zone_id: zone.id, ...param(only.post) }));
      } catch (e) {
        const codes = codesOf(e);
        if (del && codes.includes(GONE)) return; // already gone: what we wanted
        if (!del && THERE.some((c) => codes.includes(c))) return; // already there
        throw translate(e, del ? 'DELETE dns_records' : 'POST dns_records', zone.label);
      }
      return;
    }
    for (let i = 0; i < ops.length; i += batchSize) {
      const chunk = ops.slice(i, i + batchSize);
      try {
        await raw((c) =>
          c.dns.records.batch({
            zone_id: zone.id,
            deletes: chunk.flatMap((o) => ('del' in o ? [{ id: o.del }] : [])),
            patches: chunk.flatMap((o) => ('patch' in o ? [o.patch] : [])),
            posts: chunk.flatMap((o) => ('post' in o ? [param(o.post)] : [])),
          } as Parameters<typeof c.dns.records.batch>[0]),
        );
      } catch (e) {
        // Deletes of records gone, posts of records there: another writer was here; re-read.
        if (codesOf(e).some((c) => c === GONE || THERE.includes(c)))
          throw new Conflict(describe(e));
        throw translate(e, 'POST dns_records/batch', zone.label);
      }
    }
  }

  /** The operations for one owner: posts of the missing adds, deletes of the removes, and,
   *  when an added record is there with another TTL (the configured TTL changed), a TTL patch
   *  of every record at the owner that has another TTL: DNS serves one TTL per RRset. */
  function opsOf(w: OwnerWant, records: ApiRecord[]): Op[] {
    const ttl = clampTtl(w.ttl);
    const tlsa = records.flatMap((r) => {
      const t = tlsaOf(w.owner, r);
      return t && r.id ? [{ id: r.id, ttl: r.ttl, key: rdataKey(t) }] : [];
    });
    const present = new Set(tlsa.map((r) => r.key));
    const added = new Set(w.addKeys);
    const retime = tlsa.some((r) => added.has(r.key) && r.ttl !== undefined && r.ttl !== ttl);
    const kept = tlsa.filter((r) => !w.removeKeys.has(r.key));
    return [
      ...w.add.flatMap((r) =>
        present.has(rdataKey(r)) ? [] : [{ post: { record: r, ttl: w.ttl } }],
      ),
      ...(retime
        ? kept.filter((r) => r.ttl !== ttl).map((r) => ({ patch: { id: r.id, ttl } }))
        : []),
      ...tlsa.filter((r) => w.removeKeys.has(r.key)).map((r) => ({ del: r.id })),
    ];
  }

  /** One zone's part of applyMany: read (the name alone for one owner; else all TLSA records
   *  of the zone and all CNAMEs), compute the operations, write; a conflict re-reads. */
  async function applyZone(zone: Zone, wants: OwnerWant[]): Promise<void> {
    const owners = wants.map((w) => w.owner);
    await retryOnConflict(
      async () => {
        let tlsa: Map<string, ApiRecord[]>;
        let cnames: string[];
        if (owners.length === 1) {
          const records = await readName(zone, owners[0]!);
          tlsa = new Map([[owners[0]!, records]]);
          cnames = records.some((r) => r.type === 'CNAME') ? [owners[0]!] : [];
        } else {
          tlsa = await readType(zone, 'TLSA', owners);
          const c = await readType(zone, 'CNAME', owners);
          cnames = owners.filter((o) => c.get(o)?.length);
        }
        refuseCnames(
          name,
          cnames.map((owner) => ({ owner })),
          zone.label,
          owners,
        );
        const all = wants.map((w) => opsOf(w, tlsa.get(w.owner) ?? []));
        // Across owners too: every post, then every patch, then every delete.
        const rank = (o: Op) => ('post' in o ? 0 : 'patch' in o ? 1 : 2);
        const ops = all.flat().sort((a, b) => rank(a) - rank(b));
        if (ops.length) await write(zone, ops);
      },
      CONFLICT_ATTEMPTS,
      (e) =>
        new ProviderError(
          name,
          `the TLSA records at ${nameList(owners)} in ${zone.label} kept changing under us (${CONFLICT_ATTEMPTS} attempts; last: ${redact(e.message)}); another writer is busy there, run again`,
        ),
    );
  }

  const tlsaList = (o: string, records: ApiRecord[]): TlsaRecord[] =>
    records.flatMap((r) => tlsaOf(o, r) ?? []);

  const pacer = new Pacer(PACE);
  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      return tlsaList(o, await readName(await zoneFor(o), o));
    },
    async markedKeys(owners) {
      // The comment marks records a tlsa wrote: `tlsa adopt` takes those over after a lost state.
      const keys = new Set<string>();
      for (const owner of owners) {
        const o = normaliseName(owner);
        for (const r of await readName(await zoneFor(o), o)) {
          const t = r.comment === MANAGED_COMMENT ? tlsaOf(o, r) : undefined;
          if (t) keys.add(recordKey(t));
        }
      }
      return keys;
    },
    listMany: (owners) =>
      listByZone(
        owners,
        zoneFor,
        (z) => z.id,
        async (zone, items) => {
          if (items.length === 1)
            return new Map([[items[0]!, tlsaList(items[0]!, await readName(zone, items[0]!))]]);
          const tlsa = await readType(zone, 'TLSA', items);
          return new Map(items.map((o) => [o, tlsaList(o, tlsa.get(o) ?? [])]));
        },
        pacer,
      ),
    ...writesByZone(name, zoneFor, (z) => z.id, applyZone, undefined, pacer),
    txt: cloudflareTxt(name, api, MANAGED_COMMENT, clampTtl),
  };
  return provider;
};
