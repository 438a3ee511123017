/** Cloudflare as the cloudflare provider uses it (cloudflare.ts has the provider's whole
 *  story): SDK calls with one bounded retry policy and errors translated to ProviderErrors,
 *  zone discovery, and the records at owner names. */
import Cloudflare, { APIConnectionError } from 'cloudflare';
import { parseRdata } from '../src/tlsa/presentation.js';
import type { TlsaRecord } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { ProviderError } from './contract.js';
import { Conflict, retryAfterMs, zoneFinder } from './kit.js';

const MAX_RETRY_AFTER_MS = 60_000;
const AUTH_CODES = new Set([9109, 10000, 10001, 9106, 9107, 6003, 6111, 1000, 9103]);

export interface Zone {
  id: string;
  /** How messages name it: "zone example.org (023e…)". */
  label: string;
}

/** What tlsa needs of a DNS record from the API (TLSA `data`, or `content` "u s m hex"). */
export interface ApiRecord {
  ttl?: number;
  id?: string;
  name?: string;
  type?: string;
  content?: string;
  comment?: string | null;
  data?: { usage?: number; selector?: number; matching_type?: number; certificate?: string };
}

export interface PageLike {
  result: ApiRecord[];
  result_info?: { page?: number; per_page?: number; total_pages?: number };
  getNextPage(): Promise<PageLike>;
}

export interface ApiErrorLike {
  status?: number;
  headers?: Headers;
  errors?: Array<{ code?: number; message?: string }>;
  message?: string;
}

export function cloudflareApi(cfg: {
  name: string;
  token: string;
  baseURL: string;
  zoneIdOption: string | undefined;
}) {
  const { name, zoneIdOption } = cfg;
  let client: Cloudflare | undefined;
  const cf = (): Cloudflare =>
    (client ??= new Cloudflare({
      apiToken: cfg.token,
      apiKey: null,
      apiEmail: null,
      userServiceKey: null,
      baseURL: cfg.baseURL,
      maxRetries: 0,
      timeout: 30_000,
      logLevel: 'off',
    }));
  const headersOf = (e: unknown) => {
    const h = (e as ApiErrorLike)?.headers;
    return h && typeof h.get === 'function' ? h : undefined;
  };
  const waitOf = (e: unknown) => retryAfterMs(headersOf(e));

  /** One API call with the bounded retry for 429/409/5xx/network errors; errors untranslated. */
  function raw<T>(fn: (c: Cloudflare) => Promise<T>): Promise<T> {
    return withRetry(() => fn(cf()), {
      attempts: 5,
      baseDelayMs: 500,
      maxDelayMs: MAX_RETRY_AFTER_MS,
      isRetryable: (e) => retryable(e) && (waitOf(e) ?? 0) <= MAX_RETRY_AFTER_MS,
      retryAfterMs: waitOf,
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
    if (codes.includes(81053) || codes.includes(81054))
      return new ProviderError(
        name,
        `${zone} has a CNAME; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME (${detail})`,
      );
    if (status === 429) {
      const wait = waitOf(e);
      return new ProviderError(
        name,
        `rate limited by Cloudflare (1,200 requests per 5 minutes per token)${wait !== undefined ? `, retry after ${Math.ceil(wait / 1000)} s` : ''} (${what} on ${zone}); run again later`,
      );
    }
    if (retryable(e))
      return new ProviderError(name, `${what} on ${zone} still failing after retries: ${detail}`);
    return new ProviderError(name, `${what} on ${zone} failed: ${detail}`, { cause: e });
  }

  const findZone = zoneFinder<Zone>(
    async (candidate, owner) => {
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
      return z?.id ? { id: z.id, label: `zone ${candidate} (${z.id})` } : undefined;
    },
    (owner, tried) =>
      new ProviderError(
        name,
        `no Cloudflare zone found for ${owner} (looked for ${tried.join(', ')}); set zone_id, or give the token Zone → Zone → Read so that zones can be looked up by name`,
      ),
    (labels) => labels.join('.'),
  );
  const zoneFor = (owner: string): Promise<Zone> =>
    zoneIdOption
      ? Promise.resolve({ id: zoneIdOption, label: `zone ${zoneIdOption}` })
      : findZone(owner);

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

  return { cf, raw, translate, zoneFor, readName, readType };
}

/** A TLSA record from the API (`data`, or `content` "u s m hex"); undefined when unreadable:
 *  never ours, never matched. */
export function tlsaOf(owner: string, r: ApiRecord): TlsaRecord | undefined {
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
    return undefined;
  }
}

/** More pages? By result_info.total_pages when the API gives it; otherwise a full page means
 *  maybe more (the SDK's rule: only an empty page ends the listing). */
function morePages(page: PageLike): boolean {
  const info = page.result_info ?? {};
  if (typeof info.total_pages === 'number') return (info.page ?? 1) < info.total_pages;
  return page.result.length > 0 && page.result.length >= (info.per_page ?? 100);
}

export function codesOf(e: unknown): number[] {
  const errs = (e as ApiErrorLike)?.errors;
  return Array.isArray(errs)
    ? errs.flatMap((x) => (typeof x?.code === 'number' ? [x.code] : []))
    : [];
}

export function describe(e: unknown): string {
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
