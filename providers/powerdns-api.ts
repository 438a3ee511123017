/** The PowerDNS HTTP API as the powerdns provider uses it (powerdns.ts has the provider's
 *  whole story): requests with retries and errors mapped to ProviderErrors, zone discovery, and
 *  the TLSA (TXT) and CNAME RRsets at owner names with the zone's serial. */
import { EXIT } from '../src/errors.js';
import { recentStrings } from '../src/util/string-pool.js';
import { type AnswerHeaders, exchangeJson, retryTransient, Transient } from './http.js';
import { retryAfterMs } from './kit.js';
import type { SetRecord } from './kit-rrset.js';
import { serialRisesOnEveryWrite } from './powerdns-serials.js';
import { longestZoneOf, zoneIndex } from './powerdns-zone-index.js';

export interface PdnsRRset {
  name: string;
  type: string;
  ttl: number;
  records: SetRecord[];
}

/** What one read of a zone says about the owner names asked for. */
export interface ZoneState {
  names: Map<string, { tlsa?: PdnsRRset; txt?: PdnsRRset; cname?: string }>;
  /** The zone's SOA serial: with soa_edit_api (DEFAULT) every PATCH raises it. */
  serial?: number;
  /** The zone's soa_edit_api ("" or NONE: a PATCH leaves the serial as it is). */
  soaEditApi?: string;
}

/** Does every PATCH to the zone move its serial to a new value (so that an unchanged serial
 *  shows that nobody wrote through the API since)? Not under EPOCH (two writes in one second
 *  leave one serial), NONE or an empty soa_edit_api (powerdns-serials.ts). */
export const serialTracksWrites = (s: ZoneState): boolean =>
  s.serial !== undefined && serialRisesOnEveryWrite(s.soaEditApi);

export interface Zone {
  name: string;
  id: string;
  /** The SOA serial when the zone list was read. */
  serial?: number;
}

/** 404: the caller knows what was not found (a zone, the server_id). */
export class NotFound extends Error {
  readonly exitCode = EXIT.provider;
}

/** Another 4xx (422 mostly), with PowerDNS's own `error` text. */
export class Rejected extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** Attempts per request (and failed writes per apply) before giving up. */
export const ATTEMPTS = 5;

export function powerdnsApi(cfg: {
  baseUrl: URL;
  serverId: string;
  apiKey: string;
  timeoutMs: number;
  fixedZone: string | undefined;
  fail: (message: string) => Error;
}) {
  const { baseUrl, serverId, apiKey, timeoutMs, fixedZone, fail } = cfg;
  const apiRoot = `${baseUrl.origin}${baseUrl.pathname.replace(/\/+$/, '')}/api/v1/servers/${encodeURIComponent(serverId)}`;
  const server = `the PowerDNS server at ${baseUrl.origin}`;

  /** One HTTP exchange; permanent errors become ProviderErrors, transient ones are retried
   *  unless `once`: a write is never re-sent as it was (its body may be stale by then). */
  async function request(method: string, path: string, what: string, body?: unknown, once = false) {
    return (await send(method, path, what, body, once)).json;
  }

  /** request(), with the answer's headers (a PATCH's new serial). */
  async function send(method: string, path: string, what: string, body?: unknown, once = false) {
    const exchange = async (): Promise<{ json: unknown; headers: AnswerHeaders }> => {
      const { res, text, json } = await exchangeJson(
        `${apiRoot}${path}`,
        { method, headers: { 'X-API-Key': apiKey! }, body, timeoutMs },
        `the PowerDNS API at ${baseUrl.origin} (${what})`,
        fail,
      );
      if (res.ok) return { json, headers: res.headers };
      const said = (json as { error?: unknown } | undefined)?.error;
      const detail = typeof said === 'string' ? said : text.trim().slice(0, 300) || res.statusText;
      if (res.status === 429 || res.status >= 500)
        throw new Transient(
          `PowerDNS API ${what}: HTTP ${res.status} ${detail}`,
          retryAfterMs(res.headers),
        );
      if (res.status === 401)
        throw fail(
          `API key rejected (HTTP 401 from ${baseUrl.origin}); check "api_key" against the server's api-key setting`,
        );
      if (res.status === 403)
        throw fail(
          `access denied (HTTP 403 from ${baseUrl.origin}, ${what}); the server's webserver-allow-from must include this host`,
        );
      if (res.status === 404) throw new NotFound(detail);
      throw new Rejected(res.status, detail);
    };
    if (once) return exchange();
    return retryTransient(
      exchange,
      { attempts: ATTEMPTS, baseDelayMs: 200, maxDelayMs: 5_000 },
      fail,
    );
  }

  /** GET a list of zones; a 404 means the server_id is wrong. */
  async function getZones(query: string, what: string): Promise<Zone[]> {
    const body = await request('GET', `/zones?${query}dnssec=false`, what).catch((e: unknown) => {
      if (e instanceof NotFound)
        throw fail(`server_id "${serverId}" not found at ${baseUrl.origin} (GET /zones: 404)`);
      throw e;
    });
    if (!Array.isArray(body)) throw fail(`unexpected answer to GET /zones (not a list)`);
    return body.flatMap((z: { name?: unknown; id?: unknown; serial?: unknown }) =>
      typeof z.name === 'string' && typeof z.id === 'string'
        ? [
            {
              name: z.name.toLowerCase(),
              id: z.id,
              ...(typeof z.serial === 'number' ? { serial: z.serial } : {}),
            },
          ]
        : [],
    );
  }

  /** Asked once per instance (a failure is asked again). */
  const cached = <T>(load: () => Promise<T>): (() => Promise<T>) => {
    let p: Promise<T> | undefined;
    return () => {
      p ??= load();
      p.catch(() => {
        p = undefined;
      });
      return p;
    };
  };
  const allZones = cached(async () => zoneIndex(await getZones('', 'listing zones')));
  const theZone = cached(async () => {
    const z = fixedZone!;
    const found = (await getZones(`zone=${encodeURIComponent(z)}&`, `looking up zone ${z}`)).find(
      (x) => x.name === z,
    );
    if (!found) throw fail(`zone ${z} not found on ${server} (server_id ${serverId})`);
    return found;
  });

  async function zoneFor(owner: string): Promise<Zone> {
    const inZone = (z: string) => owner === z || owner.endsWith(`.${z}`);
    if (fixedZone) {
      if (!inZone(fixedZone)) throw fail(`${owner} is not in zone ${fixedZone} (option "zone")`);
      return theZone();
    }
    const zones = await allZones();
    const best = longestZoneOf(owner, zones.byName);
    if (best) return best;
    const known = zones.list.map((z) => z.name);
    throw fail(
      `no zone on ${server} contains ${owner} (zones: ${known.slice(0, 10).join(', ') || 'none'}${known.length > 10 ? ', …' : ''}); create the zone or set the option "zone"`,
    );
  }

  /** Every zone's serial now, in one request (id → serial). */
  async function zoneSerials(): Promise<Map<string, number>> {
    const zones = await getZones('', "reading the zones' serials");
    return new Map(zones.flatMap((z) => (z.serial === undefined ? [] : [[z.id, z.serial]])));
  }

  // Zone ids are "opaque, safe for embedding in URLs" (API docs): used as they come.
  const zonePath = (z: Zone) => `/zones/${z.id}`;

  /** The TLSA, TXT and CNAME RRsets at `owners` and the zone's serial. `filter` (one owner)
   *  reads with `?rrset_name=&rrset_type=TLSA` (or TXT; cheap, but without disabled records on
   *  4.7: only for listing); else the whole zone, once for all of them. A server that ignores the filter
   *  sends the whole zone, which is filtered here as well. */
  async function readZone(
    z: Zone,
    owners: Set<string>,
    filter?: string,
    filterType: 'TLSA' | 'TXT' = 'TLSA',
  ): Promise<ZoneState> {
    const query = filter
      ? `?rrset_name=${encodeURIComponent(filter)}&rrset_type=${filterType}`
      : '';
    const body = await request('GET', `${zonePath(z)}${query}`, `reading zone ${z.name}`).catch(
      (e: unknown) => {
        if (e instanceof NotFound) throw fail(`zone ${z.name} not found on ${server} (deleted?)`);
        throw e;
      },
    );
    const { rrsets, serial, soa_edit_api } = (body ?? {}) as {
      rrsets?: unknown;
      serial?: unknown;
      soa_edit_api?: unknown;
    };
    if (!Array.isArray(rrsets)) throw fail(`unexpected answer to GET zone ${z.name} (no rrsets)`);
    const state: ZoneState = {
      names: new Map(),
      ...(typeof serial === 'number' ? { serial } : {}),
      ...(typeof soa_edit_api === 'string' ? { soaEditApi: soa_edit_api } : {}),
    };
    // Kept for the writes that follow (powerdns-bases.ts): one string per distinct content, not
    // a copy per record (a fleet's zones repeat a few digests).
    const shareContent = recentStrings(16);
    for (const r of rrsets as PdnsRRset[]) {
      const owner = typeof r?.name === 'string' ? r.name.toLowerCase() : '';
      if (!owners.has(owner) || (filter !== undefined && owner !== filter)) continue;
      const at = state.names.get(owner) ?? {};
      state.names.set(owner, at);
      if (r.type === 'TLSA' || r.type === 'TXT') {
        const records = (r.records ?? []).map((x) => ({
          content: typeof x.content === 'string' ? shareContent(x.content) : x.content,
          disabled: !!x.disabled,
        }));
        at[r.type === 'TLSA' ? 'tlsa' : 'txt'] = {
          name: r.name,
          type: r.type,
          ttl: r.ttl,
          records,
        };
      } else if (r.type === 'CNAME') at.cname = r.records?.[0]?.content ?? '?';
    }
    return state;
  }

  return { request, send, zoneFor, zonePath, readZone, zoneSerials, server };
}
