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
 *              `GET /zones/ZONE` per zone (whole, so that a write can start from it, below).
 *              A batch that writes to several zones listMany() has just read (the engine plans
 *              from that read, then writes) writes each on that read instead of reading it
 *              again, when one `GET /zones` for the batch shows the zone's serial unchanged
 *              since (powerdns-bases.ts: the list vouches for a second; zones whose soa_edit_api
 *              is not DEFAULT, INCREASE or SOA-EDIT-INCREASE, whose serial moved, a lone zone
 *              and reads over a minute old are read again before the write).
 *              A batch that wrote to two zones or more reads none of them back: one `GET /zones`
 *              after the last write (and the settle pause; in a long batch, after every 50 zones)
 *              confirms each zone still at the serial its PATCH answered (`X-PDNS-New-Serial`, powerdns-confirm.ts, powerdns-serials.ts);
 *              a zone not at it is read back (below).
 * Requests:    (plus `GET /zones` once per provider instance to find the zones.) list: 1 GET.
 *              listMany: 1 GET per zone. apply: 1 GET, 1 PATCH, 1 GET to read back. applyMany of
 *              N names in one zone: the same 3 requests whatever N (names already as asked cost
 *              only the first GET); each repair round adds 1 PATCH of just the names that need
 *              it and 1 GET. A naive loop over N names costs 3·N requests and N settle pauses.
 *              applyMany over K ≥ 2 zones: per zone 1 GET and 1 PATCH, and 1 `GET /zones` to
 *              confirm them all (2 + 1/K per zone); after listMany, with zones unchanged since:
 *              1 `GET /zones`, per zone 1 PATCH, 1 `GET /zones` (1 + 2/K per zone). A zone whose
 *              confirmation fails adds its read-back (1 GET).
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
 *              The batch's zone list stands in for that read-back only where it shows the same:
 *              with soa_edit_api DEFAULT, INCREASE or SOA-EDIT-INCREASE every PATCH moves the
 *              serial, in its own transaction, to a value the zone never had, and PowerDNS reads
 *              the serial it raises after applying the PATCH's RRsets, so a write that changed
 *              ours after it (which must run after ours committed) leaves a serial other than
 *              the one our PATCH answered (sqlite3 lets one writer in at a time; the SQL
 *              backends read committed data by default). The zone still at our serial holds
 *              exactly what our PATCH made: the read-back would find every check passed. A
 *              serial our PATCH alone does not explain (another write came between our read and
 *              our write: the read-back would have looked again) is read back too. EPOCH leaves
 *              one serial for two writes in a second, SOA-EDIT and NONE may leave it unchanged:
 *              such zones are always read back. Writes that bypass the API (pdnsutil, SQL) do
 *              not move the serial: the list does not see one that lands on our records after
 *              our PATCH (a read-back in that settle pause would have), nor before it; the next
 *              run's listing does.
 *              Residual race: if another writer read the RRset before our write and writes its
 *              stale set only after our read-back, our records are lost and neither side sees
 *              it. The window is that writer's read-to-write time, usually one round trip (a
 *              write on a listMany() read: at most the second the serials were read before);
 *              `settle_ms` covers it in the common case, and while the zone's SOA serial shows
 *              other writes during our read-back (`soa_edit_api` raises it on every PATCH) we
 *              look again after another pause. Measured on a loaded 2-core machine against
 *              pdns 4.7/sqlite3, all writers starting at once on one RRset: settle_ms 0 lost a
 *              record in 7 of 40 races of 3 writers (14 of 40 without the serial check);
 *              settle_ms 100 in 0 of 60 races of 5 writers; 250 in 0 of 80 (5 writers). The
 *              engine's own runs are serialised by its state lock, and a lost record is seen
 *              (list, DNS checks) and re-published by the next run.
 * TXT:         (ACME DNS-01, powerdns-txt.ts) the same read-modify-write of the owner's TXT
 *              RRset: values not named stay, a CNAME is refused, a read-back checks the write.
 * Limits:      PowerDNS has no request limits of its own: listMany reads up to 4 zones at a time
 *              (kit.ts Pacer; the server's work per read, ≈ 2.4 ms of CPU for a small zone on
 *              sqlite3, is mostly fixed, so more at a time gains nothing on a busy 2-core host).
 *              Its webserver serves one request per TCP connection (a thread each) and answers
 *              every one with `Connection: close` (webserver.cc of 4.7.3, as of master), so
 *              every request costs a connection of its own: the keep-alive http.ts asks for
 *              cannot be had here. applyMany writes one zone at a time (a sqlite3 backend lets one
 *              writer in: 1,000 zones written 4 at a time gave up on "database is locked"). 429 and 5xx (the sqlite3 backend
 *              answers 500 "database is locked" when writes collide) and network errors are
 *              retried with backoff (5 attempts); a failed write is not re-sent as it was (by
 *              then it may be stale): the zone is read again and the sets recomputed. Errors:
 *              401 (plain text "Unauthorized") means the key is wrong; 404 (plain "Not Found") an unknown zone or server_id; 422 has a
 *              JSON body `{"error": "..."}`.
 */
import { normaliseName } from '../src/tlsa/record.js';
import { redact } from '../src/util/redact.js';
import {
  type DnsProvider,
  type OwnerChange,
  ProviderError,
  type ProviderFactory,
} from './contract.js';
import {
  cnameError,
  groupBy,
  listByZone,
  mergeChanges,
  Pacer,
  type OwnerWant,
  parseRecords,
  refuseCnames,
} from './kit.js';

/** Zones read side by side (the server sets no limit); written one at a time, since a sqlite3
 *  backend answers "database is locked" to colliding writes. */
const READ_PACE = { concurrency: 4 };
import { type SetWrite, verifiedWrites } from './kit-rrset.js';
import { listedBases } from './powerdns-bases.js';
import { type ConfirmBy, writeAndConfirm } from './powerdns-confirm.js';
import { newSerialOf, ownSerial } from './powerdns-serials.js';
import { readOptions } from './options.js';
import { POWERDNS_OPTIONS } from './powerdns-options.js';
import { powerdnsTxt } from './powerdns-txt.js';
import {
  ATTEMPTS,
  NotFound,
  powerdnsApi,
  Rejected,
  type Zone,
  type ZoneState,
} from './powerdns-api.js';

/** Largest PATCH body sent at once; the webserver's default webserver-max-bodysize is 2 MiB. */
const MAX_BODY = 1 << 20;

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
  const fail = (message: string): ProviderError => new ProviderError(name, redact(message));
  const { request, send, zoneFor, zonePath, readZone, zoneSerials, server } = powerdnsApi({
    baseUrl,
    serverId,
    apiKey,
    timeoutMs,
    fixedZone,
    fail,
  });
  const bases = listedBases(zoneSerials);

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
   *  Returns the serial each PATCH left (`X-PDNS-New-Serial`; undefined without soa_edit_api). */
  async function write(z: Zone, writes: SetWrite[]): Promise<Array<number | undefined>> {
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
    const serials: Array<number | undefined> = [];
    for (const batch of batches) {
      const owners = batch.map((w) => w.want.owner);
      const where = owners.length === 1 ? `${owners[0]} TLSA` : `TLSA at ${owners.length} names`;
      const body = { rrsets: batch.map(rrsetOf) };
      const sent = await send(
        'PATCH',
        zonePath(z),
        `writing ${where} in zone ${z.name}`,
        body,
        true,
      ).catch((e: unknown) => {
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
      });
      serials.push(newSerialOf(sent.headers));
    }
    return serials;
  }

  /** Read-modify-write of several owners of one zone (kit-rrset.ts verifiedWrites): one read
   *  (or listMany's, while still current: powerdns-bases.ts), one PATCH, then the batch's zone
   *  list confirms it (powerdns-confirm.ts) or one read-back; while the zone's serial rose by
   *  more than our PATCHes, another writer may not have written yet, so the read-back looks
   *  again. */
  async function applyZone(z: Zone, wants: OwnerWant[], confirmBy: ConfirmBy): Promise<void> {
    let base = await bases.take(
      z,
      wants.map((w) => w.owner),
    );
    /** The serial the zone has while nobody else writes to it after our last write. */
    let ours: number | undefined;
    await verifiedWrites<ZoneState>(wants, {
      async read(owners) {
        const state = base ?? (await readZone(z, new Set(owners.map((w) => w.owner))));
        base = undefined;
        const found = owners.flatMap((w) => {
          const target = state.names.get(w.owner)?.cname;
          return target === undefined ? [] : [{ owner: w.owner, target }];
        });
        refuseCnames(name, found, `zone ${z.name}`, owners);
        return state;
      },
      rrset: (state, w) => state.names.get(w.owner)?.tlsa,
      async write(writes, before) {
        bases.wrote(z);
        const serials = await write(z, writes);
        ours = ownSerial(before.soaEditApi, before.serial, serials, Date.now());
        let serial = before.serial;
        let sent = serials.length;
        return (after) => {
          const quiet =
            serial === undefined || after.serial === undefined || after.serial - serial <= sent;
          serial = after.serial;
          sent = 0;
          return quiet;
        };
      },
      confirm: () => confirmBy(ours),
      settleMs,
      attempts: ATTEMPTS,
      fail,
      where: `in zone ${z.name}`,
    });
  }

  /** The changes merged per owner, grouped by zone; zones written one at a time, confirmed by
   *  one zone list after the last (powerdns-confirm.ts). */
  async function applyMany(
    changes: OwnerChange[],
    ttlOf: (owner: string) => number,
  ): Promise<void> {
    const zones = await groupBy(
      mergeChanges(name, changes, ttlOf),
      (w) => zoneFor(w.owner),
      (z) => z.id,
    );
    bases.batch(zones.map((g) => g.group.id));
    await writeAndConfirm(
      zones,
      (g) => g.group.id,
      (g, confirmBy) => applyZone(g.group, g.items, confirmBy),
      zoneSerials,
      settleMs,
    );
  }

  const reads = new Pacer(READ_PACE);
  const provider: DnsProvider = {
    name,
    txt: powerdnsTxt({
      zoneFor,
      readZone,
      request,
      zonePath,
      settleMs,
      fail,
      normalise: normaliseName,
      provider: name,
    }),
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
          const state = await readZone(z, new Set(items));
          bases.keep(z, items, state);
          return new Map(items.map((o) => [o, enabledRecords(o, state)]));
        },
        reads,
      ),
    applyMany,
    apply: (owner, change, ttl) => applyMany([{ owner, ...change }], () => ttl),
  };
  return provider;
};
