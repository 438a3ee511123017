/**
 * powerdns: the PowerDNS Authoritative HTTP API (pdns_server 4.x, `/api/v1`).
 *
 * Credentials: `api_key`, the server's `api-key` setting, sent as the `X-API-Key` header. Write
 *              it as `api_key: ${PDNS_API_KEY}` (from the environment) or
 *              `api_key_file: /etc/tlsa/pdns-api-key` (mode 0600). It is never printed.
 * Options:     url (`http://127.0.0.1:8081`: the webserver, without `/api/v1`); server_id
 *              (`localhost`); zone (optional, e.g. `example.org.`); timeout_s (30, per request);
 *              settle_ms (250: how long to wait before reading back a write, see Concurrency).
 * Privileges:  the API key is all-or-nothing: whoever holds it can change every zone on the
 *              server, its DNSSEC keys and its settings. PowerDNS has no per-zone or read-only
 *              keys. Narrow it from outside: `webserver-allow-from` with only the host that runs
 *              tlsa, the webserver on a private address, or a reverse proxy that passes only
 *              `GET /api/v1/servers/ID/zones[...]` and `PATCH /api/v1/servers/ID/zones/ZONE`.
 * Zone:        the `zone` option (checked with `GET /zones?zone=NAME`), or else the longest zone
 *              on the server whose name is a suffix of the owner name (`GET /zones`, once per run).
 * Writes:      RRsets are written whole: `PATCH /zones/ZONE` with `changetype: REPLACE` and every
 *              record of the TLSA RRset (each keeping its `disabled` flag), or `DELETE` when the
 *              set becomes empty. `comments` are not sent, so the RRset's comments are kept (they
 *              go with the RRset when it is deleted). Ownership is not marked in comments: they
 *              belong to the RRset, not to a record. The TTL is the requested one when records
 *              are added, else the RRset's own (the contract's rule 4). An owner's adds and removes go in one REPLACE
 *              of its RRset, so there is no moment with one done and not the other; a record
 *              named in both is kept (add wins). DNSSEC signing and rectifying are the server's
 *              (`default-api-rectify=yes`, the default, rectifies after each PATCH). A change with adds
 *              writes the RRset with the requested TTL even when every record is already there
 *              (a changed TTL reaches the records already published). applyMany
 *              sends every changed RRset of a zone in ONE PATCH (PowerDNS applies a PATCH in one
 *              transaction), split only when its body would pass 1 MiB (the webserver refuses
 *              bodies over `webserver-max-bodysize`, 2 MiB by default; about 5,000 records fit).
 * Reads:       apply and applyMany read `GET /zones/ZONE` (the whole zone, once for all the
 *              owner names of the zone), not `?rrset_name=`: on 4.7 that filtered listing leaves
 *              out disabled records, and a write based on it would delete them. list() (enabled
 *              records only) uses `?rrset_name=NAME&rrset_type=TLSA`; listMany() one
 *              `GET /zones/ZONE` per zone (the filtered read when it asks for one name only).
 * Requests:    (plus `GET /zones` once per provider instance to find the zones.) list: 1 GET.
 *              listMany: 1 GET per zone. apply: 1 GET, 1 PATCH, 1 GET to read back. applyMany of
 *              N names in one zone: the same 3 requests whatever N (names already as asked cost
 *              only the first GET); each repair round adds 1 PATCH of just the names that need
 *              it and 1 GET. A naive loop over N names costs 3·N requests and N settle pauses.
 * CNAME:       a CNAME at an owner name is found by the read before any write and reported,
 *              naming the owner; in a batch nothing is written when any owner has one (PowerDNS
 *              itself answers 422 "Conflicts with pre-existing RRset").
 * Concurrency: there is no conditional write, so a read-modify-write can lose another writer's
 *              change. apply/applyMany read the zone, compute each new set (keep every record not
 *              named in `remove`, add the new ones), write them, wait `settle_ms` (jittered),
 *              read the zone back once, and check for every owner written that our adds are
 *              there, our removes are gone and every record that was there before our write
 *              (and not removed by us) is still there. Owners that fail the check are written
 *              again, on what the read-back saw, alone (6 rounds at most). A writer whose records
 *              were overwritten sees it and writes again.
 *              Residual race: if another writer read the RRset before our write and writes its
 *              stale set only after our read-back, our records are lost and neither side sees
 *              it. The window is that writer's read-to-write time, usually one round trip;
 *              `settle_ms` covers it in the common case, and while the zone's SOA serial shows
 *              other writes during our read-back (`soa_edit_api` raises it on every PATCH) we
 *              look again after another pause. Measured on a loaded 2-core machine against
 *              pdns 4.7/sqlite3, all writers starting at once on one RRset: settle_ms 0 lost a
 *              record in 7 of 40 races of 3 writers (14 of 40 without the serial check);
 *              settle_ms 100 in 0 of 60 races of 5 writers; 250 in 0 of 80 (5 writers). The
 *              engine's own runs are serialised by its state lock, and a lost record is seen
 *              (list, DNS checks) and re-published by the next run.
 * Limits:      PowerDNS has no request limits of its own. 429 and 5xx (the sqlite3 backend
 *              answers 500 "database is locked" when writes collide) and network errors are
 *              retried with backoff (5 attempts); a failed write is not re-sent as it was (by
 *              then it may be stale): the zone is read again and the sets recomputed. Errors:
 *              401 (plain text "Unauthorized") means the key is wrong; 404 (plain "Not Found") an unknown zone or server_id; 422 has a
 *              JSON body `{"error": "..."}`.
 */
import { normaliseName } from '../src/tlsa/record.js';
import { redact, registerSecret } from '../src/util/redact.js';
import { type DnsProvider, ProviderError, type ProviderFactory } from './contract.js';
import { exchangeJson, retryTransient, Transient } from './http.js';
import {
  cnameError,
  groupBy,
  listByZone,
  mergeChanges,
  type OwnerWant,
  parseRecords,
  retryAfterMs,
} from './kit.js';
import { type SetRecord, type SetWrite, verifiedWrites } from './kit-rrset.js';
import { readOptions } from './options.js';

interface PdnsRRset {
  name: string;
  type: string;
  ttl: number;
  records: SetRecord[];
}

/** What one read of a zone says about the owner names asked for. */
interface ZoneState {
  names: Map<string, { tlsa?: PdnsRRset; cname?: string }>;
  /** The zone's SOA serial: with soa_edit_api (DEFAULT) every PATCH raises it. */
  serial?: number;
}

interface Zone {
  name: string;
  id: string;
}

/** 404: the caller knows what was not found (a zone, the server_id). */
class NotFound extends Error {}

/** Another 4xx (422 mostly), with PowerDNS's own `error` text. */
class Rejected extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(detail);
  }
}

/** Largest PATCH body sent at once; the webserver's default webserver-max-bodysize is 2 MiB. */
const MAX_BODY = 1 << 20;
/** Attempts per request (and failed writes per apply) before giving up. */
const ATTEMPTS = 5;

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(options, ctx, 'powerdns', [
    'api_key',
    'url',
    'server_id',
    'zone',
    'timeout_s',
    'settle_ms',
  ]);
  const str = (key: string, fallback?: string) => opt.string(key, fallback);
  const num = (key: string, fallback: number, min: number) => opt.number(key, fallback, { min });
  const apiKey = str('api_key');
  if (!apiKey)
    throw ctx.optionError(
      'api_key',
      'powerdns needs "api_key" (the server\'s api-key), e.g. api_key: ${PDNS_API_KEY} or api_key_file: PATH',
    );
  registerSecret(apiKey);
  const rawUrl = str('url', 'http://127.0.0.1:8081')!;
  let baseUrl: URL;
  try {
    baseUrl = new URL(rawUrl);
    if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:')
      throw new Error('not http(s)');
  } catch {
    throw ctx.optionError(
      'url',
      `"url" must be the http(s) address of the PowerDNS webserver, e.g. http://127.0.0.1:8081 (got "${rawUrl}")`,
    );
  }
  const serverId = str('server_id', 'localhost')!;
  const zoneOpt = str('zone');
  let fixedZone: string | undefined;
  try {
    fixedZone = zoneOpt ? normaliseName(zoneOpt) : undefined;
  } catch (e) {
    throw ctx.optionError('zone', (e as Error).message);
  }
  const timeoutMs = num('timeout_s', 30, 1) * 1000;
  const settleMs = num('settle_ms', 250, 0);
  const name = `powerdns(${ctx.instance})`;
  const apiRoot = `${baseUrl.origin}${baseUrl.pathname.replace(/\/+$/, '')}/api/v1/servers/${encodeURIComponent(serverId)}`;
  const fail = (message: string): ProviderError => new ProviderError(name, redact(message));
  const server = `the PowerDNS server at ${baseUrl.origin}`;

  /** One HTTP exchange; permanent errors become ProviderErrors, transient ones are retried
   *  unless `once`: a write is never re-sent as it was (its body may be stale by then). */
  async function request(method: string, path: string, what: string, body?: unknown, once = false) {
    const exchange = async (): Promise<unknown> => {
      const { res, text, json } = await exchangeJson(
        `${apiRoot}${path}`,
        { method, headers: { 'X-API-Key': apiKey! }, body, timeoutMs },
        `the PowerDNS API at ${baseUrl.origin} (${what})`,
      );
      if (res.ok) return json;
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
    return body.flatMap((z: { name?: unknown; id?: unknown }) =>
      typeof z.name === 'string' && typeof z.id === 'string'
        ? [{ name: z.name.toLowerCase(), id: z.id }]
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
  const allZones = cached(() => getZones('', 'listing zones'));
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
    const best = zones
      .filter((z) => inZone(z.name))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (best) return best;
    const known = zones.map((z) => z.name);
    throw fail(
      `no zone on ${server} contains ${owner} (zones: ${known.slice(0, 10).join(', ') || 'none'}${known.length > 10 ? ', …' : ''}); create the zone or set the option "zone"`,
    );
  }

  // Zone ids are "opaque, safe for embedding in URLs" (API docs): used as they come.
  const zonePath = (z: Zone) => `/zones/${z.id}`;

  /** The TLSA and CNAME RRsets at `owners` and the zone's serial. `filter` (one owner) reads
   *  with `?rrset_name=&rrset_type=TLSA` (cheap, but without disabled records on 4.7: only for
   *  listing); else the whole zone, once for all of them. A server that ignores the filter
   *  sends the whole zone, which is filtered here as well. */
  async function readZone(z: Zone, owners: Set<string>, filter?: string): Promise<ZoneState> {
    const query = filter ? `?rrset_name=${encodeURIComponent(filter)}&rrset_type=TLSA` : '';
    const body = await request('GET', `${zonePath(z)}${query}`, `reading zone ${z.name}`).catch(
      (e: unknown) => {
        if (e instanceof NotFound) throw fail(`zone ${z.name} not found on ${server} (deleted?)`);
        throw e;
      },
    );
    const { rrsets, serial } = (body ?? {}) as { rrsets?: unknown; serial?: unknown };
    if (!Array.isArray(rrsets)) throw fail(`unexpected answer to GET zone ${z.name} (no rrsets)`);
    const state: ZoneState = {
      names: new Map(),
      ...(typeof serial === 'number' ? { serial } : {}),
    };
    for (const r of rrsets as PdnsRRset[]) {
      const owner = typeof r?.name === 'string' ? r.name.toLowerCase() : '';
      if (!owners.has(owner) || (filter !== undefined && owner !== filter)) continue;
      const at = state.names.get(owner) ?? {};
      state.names.set(owner, at);
      if (r.type === 'TLSA') {
        const records = (r.records ?? []).map((x) => ({
          content: x.content,
          disabled: !!x.disabled,
        }));
        at.tlsa = { name: r.name, type: 'TLSA', ttl: r.ttl, records };
      } else if (r.type === 'CNAME') at.cname = r.records?.[0]?.content ?? '?';
    }
    return state;
  }

  /** The enabled TLSA records of one owner, as list() returns them. */
  const enabledRecords = (owner: string, state: ZoneState): TlsaList =>
    parseRecords(
      owner,
      (state.names.get(owner)?.tlsa?.records ?? [])
        .filter((r) => !r.disabled)
        .map((r) => r.content),
    );
  type TlsaList = ReturnType<typeof parseRecords>;

  const rrsetOf = (w: SetWrite) =>
    w.records.length
      ? { name: w.want.owner, type: 'TLSA', ttl: w.ttl, changetype: 'REPLACE', records: w.records }
      : { name: w.want.owner, type: 'TLSA', changetype: 'DELETE' };

  /** Write these RRsets of one zone: one PATCH, split only where the body would pass MAX_BODY.
   *  Returns the number of PATCHes sent (each raises the zone's serial once). */
  async function write(z: Zone, writes: SetWrite[]): Promise<number> {
    const batches: SetWrite[][] = [];
    let size = 0;
    for (const w of writes) {
      const n = JSON.stringify(rrsetOf(w)).length + 1;
      const last = batches.at(-1);
      const fits = last !== undefined && size + n <= MAX_BODY;
      if (fits) last.push(w);
      else batches.push([w]);
      size = fits ? size + n : n;
    }
    for (const batch of batches) {
      const owners = batch.map((w) => w.want.owner);
      const where = owners.length === 1 ? `${owners[0]} TLSA` : `TLSA at ${owners.length} names`;
      const body = { rrsets: batch.map(rrsetOf) };
      await request('PATCH', zonePath(z), `writing ${where} in zone ${z.name}`, body, true).catch(
        (e: unknown) => {
          if (e instanceof NotFound) throw fail(`zone ${z.name} not found on ${server}`);
          if (!(e instanceof Rejected)) throw e;
          // PowerDNS names the RRset: "RRset NAME IN TLSA: Conflicts with pre-existing RRset".
          const named = /RRset (\S+) IN TLSA/i.exec(e.detail)?.[1]?.toLowerCase();
          const owner =
            named && owners.includes(named) ? named : owners.length === 1 ? owners[0] : undefined;
          if (/Conflicts with pre-existing RRset/i.test(e.detail))
            throw owner
              ? cnameError(name, [{ owner }], `zone ${z.name}`)
              : fail(
                  `one of ${owners.join(', ')} has a CNAME in zone ${z.name} (HTTP ${e.status}: ${e.detail}); TLSA records cannot sit beside it`,
                );
          throw fail(
            `PowerDNS rejected the TLSA RRset${owners.length === 1 ? ` at ${owners[0]}` : `s of ${owners.length} names`} in zone ${z.name} (HTTP ${e.status}): ${e.detail}`,
          );
        },
      );
    }
    return batches.length;
  }

  /** Read-modify-write of several owners of one zone (kit-rrset.ts verifiedWrites): one read,
   *  one PATCH, one read-back; while the zone's serial rose by more than our PATCHes, another
   *  writer may not have written yet, so the read-back looks again. */
  async function applyZone(z: Zone, wants: OwnerWant[]): Promise<void> {
    await verifiedWrites<ZoneState>(wants, {
      async read(owners) {
        const state = await readZone(z, new Set(owners.map((w) => w.owner)));
        const found = owners.flatMap((w) => {
          const target = state.names.get(w.owner)?.cname;
          return target === undefined ? [] : [{ owner: w.owner, target }];
        });
        if (found.length)
          throw cnameError(
            name,
            found,
            `zone ${z.name}`,
            owners.length > 1 ? 'nothing was written' : undefined,
          );
        return state;
      },
      rrset: (state, w) => state.names.get(w.owner)?.tlsa,
      async write(writes, before) {
        const sent = await write(z, writes);
        let serial = before.serial;
        let ours = sent;
        return (after) => {
          const quiet =
            serial === undefined || after.serial === undefined || after.serial - serial <= ours;
          serial = after.serial;
          ours = 0;
          return quiet;
        };
      },
      settleMs,
      attempts: ATTEMPTS,
      fail,
      where: `in zone ${z.name}`,
    });
  }

  const provider: DnsProvider = {
    name,
    async list(ownerIn) {
      const owner = normaliseName(ownerIn);
      return enabledRecords(owner, await readZone(await zoneFor(owner), new Set([owner]), owner));
    },
    listMany: (owners) =>
      listByZone(
        owners,
        zoneFor,
        (z) => z.id,
        async (z, items) => {
          const state = await readZone(
            z,
            new Set(items),
            items.length === 1 ? items[0] : undefined,
          );
          return new Map(items.map((o) => [o, enabledRecords(o, state)]));
        },
      ),
    apply: (owner, change, ttl) => provider.applyMany!([{ owner, ...change }], () => ttl),
    async applyMany(changes, ttlOf) {
      const wants = mergeChanges(name, changes, ttlOf);
      for (const { group, items } of await groupBy(
        wants,
        (w) => zoneFor(w.owner),
        (z) => z.id,
      ))
        await applyZone(group, items);
    },
  };
  return provider;
};
