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
 *              are added, else the RRset's own. An owner's adds and removes go in one REPLACE
 *              of its RRset, so there is no moment with one done and not the other; a record
 *              named in both is kept (add wins). DNSSEC signing and rectifying are the server's
 *              (`default-api-rectify=yes`, the default, rectifies after each PATCH). applyMany
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
import { redact } from '../src/util/redact.js';
import { withRetry } from '../src/util/retry.js';
import { parseRdata } from '../src/tlsa/presentation.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { exchangeJson, Transient } from './http.js';
import { readOptions } from './options.js';
import { POWERDNS_OPTIONS } from './powerdns-options.js';
import {
  checkChangeOwners,
  ProviderError,
  type DnsProvider,
  type ProviderFactory,
  type TlsaChange,
} from './index.js';

interface PdnsRecord {
  content: string;
  disabled: boolean;
}

interface PdnsRRset {
  name: string;
  type: string;
  ttl: number;
  records: PdnsRecord[];
}

interface NameState {
  tlsa?: PdnsRRset;
  cname?: string;
}

/** What one read of a zone says about the owner names asked for. */
interface ZoneState {
  names: Map<string, NameState>;
  /** The zone's SOA serial: with soa_edit_api (DEFAULT) every PATCH raises it. */
  serial?: number;
}

/** One owner's change, as applyMany works on it. */
interface Want {
  owner: string;
  /** `u s m hex` of the records to add. */
  addKeys: string[];
  /** Of the records to remove (those also named in add are left out: add wins). */
  removeKeys: Set<string>;
  /** The TTL to write when records are added; otherwise the RRset keeps its own. */
  ttl: number;
  adds: boolean;
}

/** One RRset to write, and what was there when it was computed. */
interface Write {
  want: Want;
  before: PdnsRecord[];
  records: PdnsRecord[];
  ttl: number;
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

const MAX_ROUNDS = 6;
/** Largest PATCH body sent at once; the webserver's default webserver-max-bodysize is 2 MiB. */
const MAX_BODY = 1 << 20;
/** Attempts per request (and failed writes per apply) before giving up. */
const ATTEMPTS = 5;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Identity of a TLSA record's content: `u s m hex`, or the raw text when it does not parse. */
function contentKey(content: string): string {
  try {
    return rdataText(parseRdata(content));
  } catch {
    return `raw:${content.trim().replace(/\s+/g, ' ').toLowerCase()}`;
  }
}

function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const s = Number(header);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(header);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

export const createProvider: ProviderFactory = (options, ctx) => {
  const opt = readOptions(POWERDNS_OPTIONS, options, ctx);
  const apiKey = opt.api_key;
  const rawUrl = opt.url;
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
  const serverId = opt.server_id;
  const zoneOpt = opt.zone;
  let fixedZone: string | undefined;
  try {
    fixedZone = zoneOpt ? normaliseName(zoneOpt) : undefined;
  } catch (e) {
    throw ctx.optionError('zone', (e as Error).message);
  }
  const timeoutMs = opt.timeout_s * 1000;
  const settleMs = opt.settle_ms;
  const name = `powerdns(${ctx.instance})`;
  const apiRoot = `${baseUrl.origin}${baseUrl.pathname.replace(/\/+$/, '')}/api/v1/servers/${encodeURIComponent(serverId)}`;
  const fail = (message: string, cause?: unknown): ProviderError =>
    new ProviderError(name, redact(message), cause === undefined ? undefined : { cause });

  /** One HTTP exchange; permanent errors become ProviderErrors, transient ones are retried. */
  async function request(
    method: string,
    path: string,
    what: string,
    body?: unknown,
    opts: { once?: boolean } = {},
  ): Promise<unknown> {
    const exchange = async (): Promise<unknown> => {
      const { res, text, json } = await exchangeJson(
        `${apiRoot}${path}`,
        { method, headers: { 'X-API-Key': apiKey! }, body, timeoutMs },
        `the PowerDNS API at ${baseUrl.origin} (${what})`,
      );
      if (res.ok) return json;
      const detail =
        json && typeof json === 'object' && typeof (json as { error?: unknown }).error === 'string'
          ? (json as { error: string }).error
          : text.trim().slice(0, 300) || res.statusText;
      if (res.status === 429 || res.status >= 500) {
        throw new Transient(
          `PowerDNS API ${what}: HTTP ${res.status} ${detail}`,
          retryAfter(res.headers.get('retry-after')),
        );
      }
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
    // `once`: a write is never re-sent as it was: its body may be stale by then (the caller
    // reads again and recomputes instead).
    if (opts.once) return exchange();
    return withRetry(exchange, {
      attempts: ATTEMPTS,
      baseDelayMs: 200,
      maxDelayMs: 5_000,
      isRetryable: (e) => e instanceof Transient,
      retryAfterMs: (e) => (e instanceof Transient ? e.retryAfterMs : undefined),
    }).catch((e: unknown) => {
      if (e instanceof Transient) throw fail(`${e.message} (gave up after ${ATTEMPTS} attempts)`);
      throw e;
    });
  }

  let zonesCache: Promise<Zone[]> | undefined;
  const zoneByName = new Map<string, Promise<Zone>>();

  async function listZones(): Promise<Zone[]> {
    zonesCache ??= (async () => {
      let body: unknown;
      try {
        body = await request('GET', '/zones?dnssec=false', 'listing zones');
      } catch (e) {
        if (e instanceof NotFound)
          throw fail(
            `server_id "${serverId}" not found at ${baseUrl.origin} (GET /api/v1/servers/${serverId}/zones: 404)`,
          );
        throw e;
      }
      if (!Array.isArray(body)) throw fail('unexpected answer to GET /zones (not a list)');
      return body.flatMap((z: { name?: unknown; id?: unknown }) =>
        typeof z.name === 'string' && typeof z.id === 'string'
          ? [{ name: z.name.toLowerCase(), id: z.id }]
          : [],
      );
    })();
    zonesCache.catch(() => {
      zonesCache = undefined;
    });
    return zonesCache;
  }

  async function zoneFor(owner: string): Promise<Zone> {
    if (fixedZone) {
      if (owner !== fixedZone && !owner.endsWith(`.${fixedZone}`))
        throw fail(`${owner} is not in zone ${fixedZone} (option "zone")`);
      let z = zoneByName.get(fixedZone);
      if (!z) {
        z = (async () => {
          let body: unknown;
          try {
            body = await request(
              'GET',
              `/zones?zone=${encodeURIComponent(fixedZone)}&dnssec=false`,
              `looking up zone ${fixedZone}`,
            );
          } catch (e) {
            if (e instanceof NotFound)
              throw fail(`server_id "${serverId}" not found at ${baseUrl.origin}`);
            throw e;
          }
          const found = Array.isArray(body)
            ? (body.find((x: { name?: string }) => x.name?.toLowerCase() === fixedZone) as
                | { name: string; id: string }
                | undefined)
            : undefined;
          if (!found)
            throw fail(
              `zone ${fixedZone} not found on the PowerDNS server at ${baseUrl.origin} (server_id ${serverId})`,
            );
          return { name: fixedZone, id: found.id };
        })();
        zoneByName.set(fixedZone, z);
        z.catch(() => zoneByName.delete(fixedZone));
      }
      return z;
    }
    const zones = await listZones();
    const best = zones
      .filter((z) => owner === z.name || owner.endsWith(`.${z.name}`))
      .sort((a, b) => b.name.length - a.name.length)[0];
    if (!best) {
      const known =
        zones
          .map((z) => z.name)
          .slice(0, 10)
          .join(', ') || 'none';
      throw fail(
        `no zone on the PowerDNS server at ${baseUrl.origin} contains ${owner} (zones: ${known}${zones.length > 10 ? ', …' : ''}); create the zone or set the option "zone"`,
      );
    }
    return best;
  }

  // Zone ids are "opaque, safe for embedding in URLs" (API docs): used as they come.
  const zonePath = (z: Zone) => `/zones/${z.id}`;

  /** The TLSA and CNAME RRsets at `owners` and the zone's serial. `filter` (one owner) reads
   *  with `?rrset_name=&rrset_type=TLSA` (cheap, but without disabled records on 4.7: only for
   *  listing); else the whole zone, once for all of them. A server that ignores the filter
   *  sends the whole zone, which is filtered here as well. */
  async function readZone(z: Zone, owners: Set<string>, filter?: string): Promise<ZoneState> {
    let body: unknown;
    const query = filter ? `?rrset_name=${encodeURIComponent(filter)}&rrset_type=TLSA` : '';
    try {
      body = await request('GET', `${zonePath(z)}${query}`, `reading zone ${z.name}`);
    } catch (e) {
      if (e instanceof NotFound)
        throw fail(
          `zone ${z.name} not found on the PowerDNS server at ${baseUrl.origin} (it was deleted?)`,
        );
      throw e;
    }
    const rrsets = (body as { rrsets?: unknown })?.rrsets;
    if (!Array.isArray(rrsets)) throw fail(`unexpected answer to GET zone ${z.name} (no rrsets)`);
    const serial = (body as { serial?: unknown }).serial;
    const state: ZoneState = {
      names: new Map(),
      ...(typeof serial === 'number' ? { serial } : {}),
    };
    for (const r of rrsets as PdnsRRset[]) {
      if (typeof r?.name !== 'string') continue;
      const owner = r.name.toLowerCase();
      if (!owners.has(owner) || (filter !== undefined && owner !== filter)) continue;
      let name = state.names.get(owner);
      if (!name) {
        name = {};
        state.names.set(owner, name);
      }
      if (r.type === 'TLSA') {
        name.tlsa = {
          name: r.name,
          type: 'TLSA',
          ttl: r.ttl,
          records: (r.records ?? []).map((x) => ({
            content: x.content,
            disabled: Boolean(x.disabled),
          })),
        };
      } else if (r.type === 'CNAME') {
        name.cname = r.records?.[0]?.content ?? '?';
      }
    }
    return state;
  }

  /** The enabled TLSA records of one owner, as list() returns them. */
  const enabledRecords = (owner: string, name: NameState | undefined): TlsaRecord[] =>
    (name?.tlsa?.records ?? []).flatMap((r) => {
      if (r.disabled) return [];
      try {
        return [{ owner, ...parseRdata(r.content) } as TlsaRecord];
      } catch {
        return [];
      }
    });

  const rrsetOf = (w: Write) =>
    w.records.length
      ? { name: w.want.owner, type: 'TLSA', ttl: w.ttl, changetype: 'REPLACE', records: w.records }
      : { name: w.want.owner, type: 'TLSA', changetype: 'DELETE' };

  /** Write these RRsets of one zone: one PATCH, split only where the body would pass MAX_BODY.
   *  Returns the number of PATCHes sent (each raises the zone's serial once). */
  async function write(z: Zone, writes: Write[]): Promise<number> {
    const batches: Write[][] = [];
    let size = 0;
    for (const w of writes) {
      const n = JSON.stringify(rrsetOf(w)).length + 1;
      const last = batches.at(-1);
      if (last && size + n <= MAX_BODY) {
        last.push(w);
        size += n;
      } else {
        batches.push([w]);
        size = n;
      }
    }
    for (const batch of batches) {
      const owners = batch.map((w) => w.want.owner);
      const where = owners.length === 1 ? `${owners[0]} TLSA` : `TLSA at ${owners.length} names`;
      try {
        await request(
          'PATCH',
          zonePath(z),
          `writing ${where} in zone ${z.name}`,
          { rrsets: batch.map(rrsetOf) },
          { once: true },
        );
      } catch (e) {
        if (e instanceof NotFound)
          throw fail(`zone ${z.name} not found on the PowerDNS server at ${baseUrl.origin}`);
        if (e instanceof Rejected) {
          // PowerDNS names the RRset: "RRset NAME IN TLSA: Conflicts with pre-existing RRset".
          const named = /RRset (\S+) IN TLSA/i.exec(e.detail)?.[1]?.toLowerCase();
          const owner =
            named && owners.includes(named) ? named : owners.length === 1 ? owners[0] : undefined;
          if (/Conflicts with pre-existing RRset/i.test(e.detail)) {
            throw fail(
              owner
                ? cnameMessage(owner, z)
                : `one of ${owners.join(', ')} has a CNAME in zone ${z.name} (HTTP ${e.status}: ${e.detail}); TLSA records cannot sit beside it`,
            );
          }
          throw fail(
            owners.length === 1
              ? `PowerDNS rejected the TLSA RRset at ${owners[0]} in zone ${z.name} (HTTP ${e.status}): ${e.detail}`
              : `PowerDNS rejected the TLSA RRsets of ${owners.length} names in zone ${z.name} (HTTP ${e.status}): ${e.detail}`,
          );
        }
        throw e;
      }
    }
    return batches.length;
  }

  const cnameMessage = (owner: string, z: Zone, target?: string) =>
    `${owner} has a CNAME${target ? ` (to ${target})` : ''} in zone ${z.name}; TLSA records cannot sit beside it, and tlsa does not overwrite it: move the TLSA records to the CNAME's target or remove the CNAME`;

  /** A CNAME at any of these owners fails the whole batch, naming each, before any write. */
  function checkCnames(z: Zone, wants: Want[], state: ZoneState): void {
    const found = wants.flatMap((w) => {
      const target = state.names.get(w.owner)?.cname;
      return target === undefined ? [] : [{ owner: w.owner, target }];
    });
    const first = found[0];
    if (!first) return;
    const more =
      found.length > 1
        ? `; CNAMEs also at ${found
            .slice(1)
            .map((c) => `${c.owner} (to ${c.target})`)
            .join(', ')}`
        : '';
    throw fail(`${cnameMessage(first.owner, z, first.target)}${more}`);
  }

  const checkOwners = (owner: string, change: TlsaChange): void =>
    checkChangeOwners(name, owner, change);

  /** The new set: every record not named in remove, ours added (a disabled copy is enabled). */
  function compute(w: Want, current: PdnsRecord[]): PdnsRecord[] {
    const out = current.filter((r) => !w.removeKeys.has(contentKey(r.content)));
    for (const k of w.addKeys) {
      const i = out.findIndex((r) => contentKey(r.content) === k);
      if (i < 0) out.push({ content: k, disabled: false });
      else if (out[i]!.disabled) out[i] = { content: out[i]!.content, disabled: false };
    }
    return out;
  }
  function same(a: PdnsRecord[], b: PdnsRecord[]): boolean {
    const ka = a.map((r) => `${contentKey(r.content)}|${r.disabled}`).sort();
    const kb = b.map((r) => `${contentKey(r.content)}|${r.disabled}`).sort();
    return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
  }
  /** Did our write survive, and did it not erase what was there before it? */
  function settled(w: Want, after: PdnsRecord[], before: PdnsRecord[]): boolean {
    const present = new Map(after.map((r) => [contentKey(r.content), r.disabled]));
    return (
      w.addKeys.every((k) => present.get(k) === false) &&
      [...w.removeKeys].every((k) => !present.has(k)) &&
      before.every(
        (r) => w.removeKeys.has(contentKey(r.content)) || present.has(contentKey(r.content)),
      )
    );
  }

  /** Read-modify-write of several owners of one zone: one read, one PATCH, one read-back, and
   *  repair rounds for just the owners the read-back shows lost or incomplete. */
  async function applyZone(z: Zone, wants: Want[]): Promise<void> {
    let pending = wants;
    let state = await readZone(z, new Set(pending.map((w) => w.owner)));
    checkCnames(z, pending, state);
    let failedWrites = 0;
    for (let round = 1; round <= MAX_ROUNDS; ) {
      const writes: Write[] = [];
      for (const want of pending) {
        const rrset = state.names.get(want.owner)?.tlsa;
        const before = rrset?.records ?? [];
        const records = compute(want, before);
        if (!same(before, records))
          writes.push({
            want,
            before,
            records,
            ttl: want.adds ? want.ttl : (rrset?.ttl ?? want.ttl),
          });
      }
      if (!writes.length) return;
      let sent: number;
      try {
        sent = await write(z, writes);
      } catch (e) {
        // 5xx/429/network on the write: wait, then read again (the write may even have landed).
        if (!(e instanceof Transient)) throw e;
        if (++failedWrites >= ATTEMPTS)
          throw fail(`${e.message} (gave up after ${ATTEMPTS} attempts)`);
        await sleep(
          Math.min(
            30_000,
            e.retryAfterMs ??
              Math.round(Math.random() * Math.min(5_000, 200 * 2 ** (failedWrites - 1))),
          ),
        );
        state = await readZone(z, new Set(pending.map((w) => w.owner)));
        checkCnames(z, pending, state);
        continue;
      }
      // Read back after a pause, once for every owner written. While the zone's serial shows
      // other writes (it rose by more than our PATCHes), look again after another pause: a
      // writer that read before our write may not have written yet.
      const written = new Set(writes.map((w) => w.want.owner));
      let serial = state.serial;
      let lost: Want[] = [];
      for (let look = 0; look < MAX_ROUNDS; look++) {
        await sleep(Math.round(settleMs * (0.5 + Math.random())));
        state = await readZone(z, written);
        checkCnames(
          z,
          writes.map((w) => w.want),
          state,
        );
        lost = writes
          .filter(
            (w) => !settled(w.want, state.names.get(w.want.owner)?.tlsa?.records ?? [], w.before),
          )
          .map((w) => w.want);
        const quiet =
          serial === undefined ||
          state.serial === undefined ||
          state.serial - serial <= (look === 0 ? sent : 0);
        serial = state.serial;
        if (lost.length || quiet) break;
      }
      if (!lost.length) return;
      // Another writer changed these RRsets between our read and our read-back: write them
      // again, on what the read-back saw.
      pending = lost;
      round++;
    }
    const names = pending.map((w) => w.owner);
    throw fail(
      `${names.length === 1 ? names[0] : names.join(', ')}: other writers kept changing the TLSA RRset${names.length === 1 ? '' : 's'} in zone ${z.name}; gave up after ${MAX_ROUNDS} read-modify-write rounds (nothing is lost that a re-run will not repair)`,
    );
  }

  /** Owners grouped by zone, in the order first seen. */
  async function byZone<T>(
    items: T[],
    ownerOf: (t: T) => string,
  ): Promise<Map<string, { z: Zone; items: T[] }>> {
    const out = new Map<string, { z: Zone; items: T[] }>();
    for (const t of items) {
      const z = await zoneFor(ownerOf(t));
      const entry = out.get(z.id);
      if (entry) entry.items.push(t);
      else out.set(z.id, { z, items: [t] });
    }
    return out;
  }

  const provider: DnsProvider = {
    name,
    async list(ownerIn) {
      const owner = normaliseName(ownerIn);
      const z = await zoneFor(owner);
      const state = await readZone(z, new Set([owner]), owner);
      return enabledRecords(owner, state.names.get(owner));
    },
    async listMany(ownersIn) {
      const out = new Map<string, TlsaRecord[]>();
      const owners = [...new Set(ownersIn.map((o) => normaliseName(o)))];
      for (const { z, items } of (await byZone(owners, (o) => o)).values()) {
        const state = await readZone(z, new Set(items), items.length === 1 ? items[0] : undefined);
        for (const o of items) out.set(o, enabledRecords(o, state.names.get(o)));
      }
      // Also under the caller's spelling, when it was not the normal form.
      for (const o of ownersIn) if (!out.has(o)) out.set(o, out.get(normaliseName(o)) ?? []);
      return out;
    },
    async apply(ownerIn, change, ttl) {
      await provider.applyMany!(
        [{ owner: ownerIn, add: change.add, remove: change.remove }],
        () => ttl,
      );
    },
    async applyMany(changes, ttlOf) {
      // One Want per owner (changes for the same owner are merged); empty changes cost nothing.
      const wants = new Map<string, Want>();
      for (const c of changes) {
        const owner = normaliseName(c.owner);
        checkOwners(owner, c);
        let w = wants.get(owner);
        if (!w) {
          w = { owner, addKeys: [], removeKeys: new Set(), ttl: ttlOf(c.owner), adds: false };
          wants.set(owner, w);
        }
        for (const r of c.remove) w.removeKeys.add(rdataText(r));
        for (const r of c.add) if (!w.addKeys.includes(rdataText(r))) w.addKeys.push(rdataText(r));
        w.adds ||= c.add.length > 0;
      }
      // A record both added and removed stays (add wins, as the provider contract says).
      for (const w of wants.values()) for (const k of w.addKeys) w.removeKeys.delete(k);
      const todo = [...wants.values()].filter((w) => w.addKeys.length || w.removeKeys.size);
      for (const { z, items } of (await byZone(todo, (w) => w.owner)).values())
        await applyZone(z, items);
    },
  };
  return provider;
};
