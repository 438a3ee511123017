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
 *              (values outside are clamped; Enterprise zones could go to 30).
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
 * Limits:      1,200 requests per 5 minutes per user/token, 200 requests/s per IP; over it every
 *              call gets 429 for up to 5 minutes with `retry-after` (seconds). Batches hold 200
 *              records on Free zones (3,500 on paid plans). Retries: the SDK's own retry is off
 *              (maxRetries 0) so there is one bounded policy (src/util/retry.ts): 429 (waiting
 *              what `retry-after` says, at most 60 s; a longer wait fails with a message), 409,
 *              5xx and network errors, 5 attempts, exponential backoff with full jitter;
 *              30 s timeout per request.
 *              Listing pages by result_info.total_pages, so no extra empty-page request (the
 *              SDK's own iterator stops only on an empty page).
 * Errors:      401/403 (9109, 10000, 6003, …): "API token rejected or lacks Zone.DNS:Edit on
 *              <zone>"; an unknown zone id (7003/7000) or an owner in no visible zone is
 *              named; both fail at once.
 */
import Cloudflare, { APIConnectionError } from 'cloudflare';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, type TlsaRecord, recordKey } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { CLOUDFLARE_OPTIONS } from './cloudflare-options.js';
import { readOptions } from './options.js';
import {
  checkChangeOwners,
  ProviderError,
  type DnsProvider,
  type ProviderFactory,
  type TlsaChange,
} from './index.js';

export const MANAGED_COMMENT = 'managed by tlsa';
const MAX_RETRY_AFTER_MS = 60_000;
const CONFLICT_ATTEMPTS = 4;
const AUTH_CODES = new Set([9109, 10000, 10001, 9106, 9107, 6003, 6111, 1000, 9103]);

/** A batch met a record that another writer added or removed since our read. */
class Conflict extends Error {}

/** One owner's change, as applyMany works on it (changes for one owner merged). */
interface Want {
  owner: string;
  add: TlsaRecord[];
  removeKeys: Set<string>;
  ttl: number;
}

/** A record to post, with the TTL of its owner. */
interface Post {
  record: TlsaRecord;
  ttl: number;
}

interface Zone {
  id: string;
  /** How messages name it: "zone example.org (023e…)". */
  label: string;
}

/** What tlsa needs of a DNS record from the API (TLSA `data`, or `content` "u s m hex"). */
interface ApiRecord {
  id?: string;
  name?: string;
  type?: string;
  content?: string;
  comment?: string | null;
  data?: { usage?: number; selector?: number; matching_type?: number; certificate?: string };
}

interface PageLike {
  result: ApiRecord[];
  result_info?: { page?: number; per_page?: number; total_pages?: number };
  getNextPage(): Promise<PageLike>;
}

interface ApiErrorLike {
  status?: number;
  headers?: Headers;
  errors?: Array<{ code?: number; message?: string }>;
  message?: string;
}

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
  let client: Cloudflare | undefined;
  const cf = (): Cloudflare =>
    (client ??= new Cloudflare({
      apiToken: token,
      apiKey: null,
      apiEmail: null,
      userServiceKey: null,
      baseURL,
      maxRetries: 0,
      timeout: 30_000,
      logLevel: 'off',
    }));

  /** One API call with the bounded retry for 429/409/5xx/network errors; errors untranslated. */
  function raw<T>(fn: (c: Cloudflare) => Promise<T>): Promise<T> {
    return withRetry(() => fn(cf()), {
      attempts: 5,
      baseDelayMs: 500,
      maxDelayMs: MAX_RETRY_AFTER_MS,
      isRetryable: (e) => retryable(e) && (retryAfterMs(e) ?? 0) <= MAX_RETRY_AFTER_MS,
      retryAfterMs,
    });
  }

  /** raw(), with errors turned into ProviderErrors that name the zone. */
  async function call<T>(
    what: string,
    zone: string,
    fn: (c: Cloudflare) => Promise<T>,
  ): Promise<T> {
    try {
      return await raw(fn);
    } catch (e) {
      throw translate(e, what, zone);
    }
  }

  function translate(e: unknown, what: string, zone: string): Error {
    if (e instanceof ProviderError || e instanceof Conflict) return e;
    const x = e as ApiErrorLike;
    const status = x?.status;
    const detail = redact(describe(e));
    const codes = codesOf(e);
    if (status === 401 || status === 403 || codes.some((c) => AUTH_CODES.has(c))) {
      return new ProviderError(
        name,
        `API token rejected or lacks Zone.DNS:Edit on ${zone} (${what}: ${detail}); give the token Zone → DNS → Edit for this zone${zoneIdOption ? '' : ' (and Zone → Zone → Read, or set zone_id)'}`,
      );
    }
    if (codes.includes(7003) || codes.includes(7000)) {
      return new ProviderError(
        name,
        `${zone} is unknown to Cloudflare (${what}: ${detail}); check zone_id: it is the hex id on the zone's overview page`,
      );
    }
    if (codes.includes(81053) || codes.includes(81054)) return cnameError(zone, detail);
    if (status === 429) {
      const wait = retryAfterMs(e);
      return new ProviderError(
        name,
        `rate limited by Cloudflare (1,200 requests per 5 minutes per token)${wait !== undefined ? `, retry after ${Math.ceil(wait / 1000)} s` : ''} (${what} on ${zone}); run again later`,
      );
    }
    if (retryable(e))
      return new ProviderError(name, `${what} on ${zone} still failing after retries: ${detail}`);
    return new ProviderError(name, `${what} on ${zone} failed: ${detail}`, { cause: e });
  }

  function cnameError(where: string, detail?: string): ProviderError {
    return new ProviderError(
      name,
      `${where} has a CNAME; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME${detail ? ` (${detail})` : ''}`,
    );
  }

  const zones = new Map<string, Zone>();
  const notZones = new Set<string>();

  async function zoneFor(owner: string): Promise<Zone> {
    if (zoneIdOption) return { id: zoneIdOption, label: `zone ${zoneIdOption}` };
    const labels = owner.slice(0, -1).split('.');
    const tried: string[] = [];
    for (let i = 0; i < labels.length; i++) {
      const candidate = labels.slice(i).join('.');
      const cached = zones.get(candidate);
      if (cached) return cached;
      tried.push(candidate);
      if (notZones.has(candidate)) continue;
      const page = await call(
        'GET /zones',
        `the zone of ${owner}`,
        (c) =>
          c.zones.list({ name: candidate, per_page: 50 }) as unknown as Promise<{
            result: Array<{ id?: string; name?: string; status?: string }>;
          }>,
      );
      const matches = page.result.filter(
        (z) => z.id && z.name?.toLowerCase() === candidate && z.status !== 'moved',
      );
      const active = matches.filter((z) => z.status === 'active');
      const pick = active.length ? active : matches;
      if (pick.length > 1)
        throw new ProviderError(
          name,
          `${pick.length} Cloudflare zones are named ${candidate} (${pick.map((z) => z.id).join(', ')}); set zone_id`,
        );
      const z = pick[0];
      if (z?.id) {
        const zone = { id: z.id, label: `zone ${candidate} (${z.id})` };
        zones.set(candidate, zone);
        return zone;
      }
      notZones.add(candidate);
    }
    throw new ProviderError(
      name,
      `no Cloudflare zone found for ${owner} (looked for ${tried.join(', ')}); set zone_id, or give the token Zone → Zone → Read so that zones can be looked up by name`,
    );
  }

  /** Every record at the owner name (all types, all pages). */
  async function readName(zone: Zone, owner: string): Promise<ApiRecord[]> {
    const bare = owner.slice(0, -1);
    const out = await readAll(zone, { name: { exact: bare }, per_page: 100 });
    // The API matches names case-insensitively; keep only exact ones in case a filter was ignored.
    return out.filter((r) => r.name?.toLowerCase().replace(/\.$/, '') === bare);
  }

  /** Every record of `type` in the zone (all pages), keyed by owner name, for the asked owners. */
  async function readType(
    zone: Zone,
    type: 'TLSA' | 'CNAME',
    owners: string[],
  ): Promise<Map<string, ApiRecord[]>> {
    const out = new Map(owners.map((o) => [o, [] as ApiRecord[]] as const));
    for (const r of await readAll(zone, { type, per_page: 5_000 })) {
      if (r.type !== type) continue;
      const list = out.get(`${r.name?.toLowerCase().replace(/\.$/, '') ?? ''}.`);
      if (list) list.push(r);
    }
    return out;
  }

  /** GET dns_records with these filters, all pages. */
  async function readAll(zone: Zone, params: Record<string, unknown>): Promise<ApiRecord[]> {
    let page = await call(
      'GET dns_records',
      zone.label,
      (c) =>
        c.dns.records.list({ zone_id: zone.id, ...params } as Parameters<
          Cloudflare['dns']['records']['list']
        >[0]) as unknown as Promise<PageLike>,
    );
    const out = [...page.result];
    for (let n = 0; n < 10_000 && morePages(page); n++) {
      const current = page;
      page = await call('GET dns_records', zone.label, () => current.getNextPage());
      out.push(...page.result);
    }
    return out;
  }

  function tlsaOf(owner: string, r: ApiRecord): TlsaRecord | undefined {
    if (r.type !== 'TLSA') return undefined;
    try {
      const d = r.data;
      if (
        d &&
        d.usage !== undefined &&
        d.selector !== undefined &&
        d.matching_type !== undefined &&
        d.certificate
      ) {
        return {
          owner,
          ...parseRdata(`${d.usage} ${d.selector} ${d.matching_type} ${d.certificate}`),
        };
      }
      return { owner, ...parseRdata(r.content ?? '') };
    } catch {
      return undefined; // not readable as TLSA: never ours, never matched
    }
  }

  /** The writes for one zone: one request when there is one change, else batches of
   *  `batch_size` operations. */
  async function write(zone: Zone, deletes: string[], posts: Post[]): Promise<void> {
    const param = ({ record: r, ttl }: Post) => ({
      name: normaliseName(r.owner).slice(0, -1),
      type: 'TLSA' as const,
      ttl: Math.min(86_400, Math.max(60, ttl)),
      data: {
        usage: r.usage,
        selector: r.selector,
        matching_type: r.matching,
        certificate: r.data,
      },
      comment: MANAGED_COMMENT,
    });
    if (deletes.length + posts.length === 1) {
      const del = deletes[0];
      try {
        if (del) await raw((c) => c.dns.records.delete(del, { zone_id: zone.id }));
        else await raw((c) => c.dns.records.create({ zone_id: zone.id, ...param(posts[0]!) }));
      } catch (e) {
        const codes = codesOf(e);
        if (del && codes.includes(81044)) return; // already gone: what we wanted
        if (!del && (codes.includes(81058) || codes.includes(81057))) return; // already there
        throw translate(e, del ? 'DELETE dns_records' : 'POST dns_records', zone.label);
      }
      return;
    }
    // A batch is one transaction (deletes, then posts). When the change needs more than one,
    // every post goes in an earlier or the same batch as every delete: a failed batch then
    // leaves new records beside old ones, never a name emptied of both.
    const ops: Array<{ del?: string; post?: Post }> = [
      ...posts.map((post) => ({ post })),
      ...deletes.map((del) => ({ del })),
    ];
    for (let i = 0; i < ops.length; i += batchSize) {
      const chunk = ops.slice(i, i + batchSize);
      try {
        await raw((c) =>
          c.dns.records.batch({
            zone_id: zone.id,
            deletes: chunk.flatMap((o) => (o.del ? [{ id: o.del }] : [])),
            posts: chunk.flatMap((o) => (o.post ? [param(o.post)] : [])),
          }),
        );
      } catch (e) {
        // Deletes of records gone, posts of records there: another writer was here; re-read.
        if (codesOf(e).some((c) => c === 81044 || c === 81058 || c === 81057))
          throw new Conflict(describe(e));
        throw translate(e, 'POST dns_records/batch', zone.label);
      }
    }
  }

  /** One zone's part of applyMany: read (the name alone for one owner; else all TLSA records
   *  of the zone and all CNAMEs), compute deletes and posts, write; a conflict re-reads. */
  async function applyZone(zone: Zone, wants: Want[]): Promise<void> {
    const owners = wants.map((w) => w.owner);
    try {
      await withRetry(
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
          if (cnames.length)
            throw cnameError(
              `${nameList(cnames)} in ${zone.label}`,
              owners.length > 1 ? 'nothing was written' : undefined,
            );
          const deletes: string[] = [];
          const posts: Post[] = [];
          for (const w of wants) {
            const present = new Set<string>();
            for (const r of tlsa.get(w.owner) ?? []) {
              const t = tlsaOf(w.owner, r);
              if (!t || !r.id) continue;
              present.add(rdataKey(t));
              if (w.removeKeys.has(rdataKey(t))) deletes.push(r.id);
            }
            for (const r of w.add) {
              if (present.has(rdataKey(r))) continue;
              present.add(rdataKey(r));
              posts.push({ record: r, ttl: w.ttl });
            }
          }
          if (deletes.length === 0 && posts.length === 0) return;
          await write(zone, deletes, posts);
        },
        {
          attempts: CONFLICT_ATTEMPTS,
          baseDelayMs: 150,
          maxDelayMs: 2_000,
          isRetryable: (e) => e instanceof Conflict,
        },
      );
    } catch (e) {
      if (e instanceof Conflict) {
        throw new ProviderError(
          name,
          `the TLSA records at ${nameList(owners)} in ${zone.label} kept changing under us (${CONFLICT_ATTEMPTS} attempts; last: ${redact(e.message)}); another writer is busy there, run again`,
        );
      }
      throw e;
    }
  }

  async function byZone<T>(
    items: T[],
    ownerOf: (t: T) => string,
  ): Promise<Array<{ zone: Zone; items: T[] }>> {
    const out = new Map<string, { zone: Zone; items: T[] }>();
    for (const t of items) {
      const zone = await zoneFor(ownerOf(t));
      const entry = out.get(zone.id);
      if (entry) entry.items.push(t);
      else out.set(zone.id, { zone, items: [t] });
    }
    return [...out.values()];
  }

  const tlsaList = (o: string, records: ApiRecord[]): TlsaRecord[] =>
    records.flatMap((r) => {
      const t = tlsaOf(o, r);
      return t ? [t] : [];
    });

  const provider: DnsProvider = {
    name,
    async list(owner) {
      const o = normaliseName(owner);
      const zone = await zoneFor(o);
      return tlsaList(o, await readName(zone, o));
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

    async listMany(ownersIn) {
      const out = new Map<string, TlsaRecord[]>();
      const owners = [...new Set(ownersIn.map((o) => normaliseName(o)))];
      for (const { zone, items } of await byZone(owners, (o) => o)) {
        if (items.length === 1) {
          out.set(items[0]!, tlsaList(items[0]!, await readName(zone, items[0]!)));
          continue;
        }
        const tlsa = await readType(zone, 'TLSA', items);
        for (const o of items) out.set(o, tlsaList(o, tlsa.get(o) ?? []));
      }
      // Also under the caller's spelling, when it was not the normal form.
      for (const o of ownersIn) if (!out.has(o)) out.set(o, out.get(normaliseName(o)) ?? []);
      return out;
    },

    async apply(owner, change: TlsaChange, ttl) {
      const o = normaliseName(owner);
      checkChangeOwners(name, o, change);
      await provider.applyMany!([{ owner: o, add: change.add, remove: change.remove }], () => ttl);
    },

    async applyMany(changes, ttlOf) {
      // One Want per owner (changes for one owner merged); empty changes cost nothing.
      const wants = new Map<string, Want>();
      for (const c of changes) {
        const o = normaliseName(c.owner);
        checkChangeOwners(name, o, c);
        let w = wants.get(o);
        if (!w) {
          w = { owner: o, add: [], removeKeys: new Set(), ttl: ttlOf(c.owner) };
          wants.set(o, w);
        }
        w.add.push(...c.add);
        for (const r of c.remove) w.removeKeys.add(rdataKey(r));
      }
      // A record both added and removed stays (as with the other providers: add wins).
      for (const w of wants.values()) for (const r of w.add) w.removeKeys.delete(rdataKey(r));
      const todo = [...wants.values()].filter((w) => w.add.length || w.removeKeys.size);
      if (!todo.length) return;
      for (const { zone, items } of await byZone(todo, (w) => w.owner))
        await applyZone(zone, items);
    },
  };
  return provider;
};

/** Names for a message: all of a few, the first three of many. */
function nameList(names: string[]): string {
  return names.length <= 3
    ? names.join(', ')
    : `${names.slice(0, 3).join(', ')} and ${names.length - 3} more`;
}

function rdataKey(r: Pick<TlsaRecord, 'usage' | 'selector' | 'matching' | 'data'>): string {
  return `${r.usage} ${r.selector} ${r.matching} ${r.data.toLowerCase()}`;
}

/** More pages? By result_info.total_pages when the API gives it; otherwise a full page means
 *  maybe more (the SDK's rule: only an empty page ends the listing). */
function morePages(page: PageLike): boolean {
  const info = page.result_info ?? {};
  if (typeof info.total_pages === 'number') return (info.page ?? 1) < info.total_pages;
  return page.result.length > 0 && page.result.length >= (info.per_page ?? 100);
}

function codesOf(e: unknown): number[] {
  const errs = (e as ApiErrorLike)?.errors;
  return Array.isArray(errs)
    ? errs.flatMap((x) => (typeof x?.code === 'number' ? [x.code] : []))
    : [];
}

function describe(e: unknown): string {
  const x = e as ApiErrorLike;
  const errs = Array.isArray(x?.errors)
    ? x.errors.map((er) => `${er.code ?? '?'} ${er.message ?? ''}`.trim())
    : [];
  if (x?.status !== undefined) return `HTTP ${x.status}${errs.length ? ` ${errs.join('; ')}` : ''}`;
  return errs.length ? errs.join('; ') : ((e as Error)?.message ?? String(e));
}

function retryable(e: unknown): boolean {
  if (e instanceof Conflict || e instanceof ProviderError) return false;
  if (e instanceof APIConnectionError) return true;
  const status = (e as ApiErrorLike)?.status;
  return (
    status === 429 || status === 409 || status === 408 || (status !== undefined && status >= 500)
  );
}

/** The server's `retry-after` (seconds or an HTTP date) or `retry-after-ms`, in ms. */
function retryAfterMs(e: unknown): number | undefined {
  const h = (e as ApiErrorLike)?.headers;
  if (!h || typeof h.get !== 'function') return undefined;
  const ms = h.get('retry-after-ms');
  if (ms && !Number.isNaN(Number(ms))) return Math.max(0, Number(ms));
  const ra = h.get('retry-after');
  if (!ra) return undefined;
  const s = Number(ra);
  if (!Number.isNaN(s)) return Math.max(0, s * 1000);
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
