/** The batch methods (listMany, applyMany) of the read-modify-write providers, on a real
 *  pdns_server (sqlite3, DNSSEC) and on desec-api-fake: one write request for many owner names,
 *  one read for listing them, repair of an owner another writer touched between our write and
 *  our read-back, and a CNAME at one owner reported by name before anything is written.
 *  The providers talk through a loopback HTTP proxy (test/lab/http-tap.ts) that logs their
 *  requests; the deSEC fake also counts accepted writes itself (a bulk request once, as deSEC's
 *  write limit does). */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { OwnerChange } from '../../providers/contract.js';
import { rdataText, type TlsaRecord } from '../../src/tlsa/record.js';
import { startDesecApiFake, type DesecApiFake } from '../fakes/desec-api-fake.js';
import { type HttpTap, startHttpTap, type TapCall } from '../lab/http-tap.js';
import { labDescribe, stopAll } from '../lab/lab.js';
import { POWERDNS_TOOLS, startPowerDns, type PowerDnsServer } from '../lab/powerdns.js';
import { desecProvider, readFake } from './contract/desec.js';
import { PDNS_ZONE, pdnsProvider, pdnsReplace, readTlsaOverDns } from './contract/powerdns.js';

const N = 50;
let batch = 0;
const rec = (o: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner: o,
  usage,
  selector: 1,
  matching: 1,
  data: createHash('sha256').update(`${s}${o}`).digest('hex'),
});
const keys = (rs: TlsaRecord[]) => rs.map(rdataText).sort();
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

/** N fresh owner names in `zone` (with a trailing dot). */
function owners(label: string, zone: string): string[] {
  const b = ++batch;
  return Array.from({ length: N }, (_, i) => `_25._tcp.${label}${b}-${i}.${zone}`);
}

/** The changes used throughout: every owner gets "ours"; owners 0-9 also lose their foreign
 *  record (it is replaced), owners 40-49 get nothing new and lose it (the RRset goes away). */
function changesFor(os: string[]): OwnerChange[] {
  return os.map((o, i) =>
    i >= 40
      ? { owner: o, add: [], remove: [rec(o, 'foreign')] }
      : { owner: o, add: [rec(o, 'ours')], remove: i < 10 ? [rec(o, 'foreign')] : [] },
  );
}

/** What each owner should hold after changesFor() on a name seeded with "foreign". */
function expected(o: string, i: number): string[] {
  if (i >= 40) return [];
  return keys(i < 10 ? [rec(o, 'ours')] : [rec(o, 'foreign'), rec(o, 'ours')]);
}

type Call = TapCall;

/** Every request the provider makes through `tap` from now on is logged (path relative to
 *  `strip`); `after` runs once a request's answer is in, before the provider sees it. */
function countRequests(tap: HttpTap, strip: string, after?: (c: Call) => Promise<void>): Call[] {
  return tap.record({ strip, ...(after ? { after } : {}) });
}

/** More zones, for batches that span several (one owner in each). */
const OTHER_ZONES = ['a.batch.test.', 'b.batch.test.', 'c.batch.test.'];

labDescribe('batch writes: powerdns (real pdns_server)', POWERDNS_TOOLS, () => {
  let server: PowerDnsServer;
  let tap: HttpTap;
  let base: string;
  const zonePath = `/zones/${PDNS_ZONE}`;
  beforeAll(async () => {
    server = await startPowerDns({
      zones: [PDNS_ZONE, ...OTHER_ZONES].map((name) => ({ name, dnssec: true })),
    });
    tap = await startHttpTap(server.apiUrl);
    base = `/api/v1/servers/${server.serverId}`;
  }, 60_000);
  afterAll(async () => {
    await tap?.close();
    await stopAll();
  });
  afterEach(() => {
    tap.stopRecording();
    vi.useRealTimers();
  });
  /** The provider, talking through the tap. */
  const provider = () => pdnsProvider(server, { url: tap.url });

  /** A foreign record at every owner, in one PATCH straight to the API. */
  async function seed(os: string[]): Promise<void> {
    const res = await server.api('PATCH', zonePath, {
      rrsets: os.map((o) => ({
        name: o,
        type: 'TLSA',
        ttl: 600,
        changetype: 'REPLACE',
        records: [{ content: rdataText(rec(o, 'foreign')), disabled: false }],
      })),
    });
    if (res.status !== 204) throw new Error(`seeding: HTTP ${res.status} ${res.text}`);
  }

  /** owner → TLSA records, as the API has them (one GET, not through the provider). */
  async function zoneNow(): Promise<Map<string, { ttl: number; records: string[] }>> {
    const res = await server.api('GET', zonePath);
    const rrsets = (
      res.body as {
        rrsets: { name: string; type: string; ttl: number; records: { content: string }[] }[];
      }
    ).rrsets;
    return new Map(
      rrsets
        .filter((r) => r.type === 'TLSA')
        .map((r) => [r.name, { ttl: r.ttl, records: r.records.map((x) => x.content).sort() }]),
    );
  }

  it(`listMany reads the zone once; applyMany over ${N} owners sends one PATCH and reads back once`, async () => {
    const os = owners('pdns', PDNS_ZONE);
    await seed(os);
    const p = provider();
    const calls = countRequests(tap, base);

    const listed = await p.listMany!(os);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /zones?dnssec=false',
      `GET ${zonePath}`,
    ]); // finding the zone (once per instance), then the one read
    for (const o of os) expect(keys(listed.get(o)!)).toEqual(keys([rec(o, 'foreign')]));

    calls.length = 0;
    await p.applyMany!(changesFor(os), (o) => (os.indexOf(o) % 2 ? 300 : 900));
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      `GET ${zonePath}`,
      `PATCH ${zonePath}`,
      `GET ${zonePath}`,
    ]);
    const rrsets = (calls[1]!.body as { rrsets: { name: string; changetype: string }[] }).rrsets;
    expect(rrsets.map((r) => r.name).sort()).toEqual([...os].sort());
    expect(
      rrsets
        .filter((r) => r.changetype === 'DELETE')
        .map((r) => r.name)
        .sort(),
    ).toEqual(os.slice(40).sort());

    const now = await zoneNow();
    os.forEach((o, i) => {
      expect(now.get(o)?.records ?? [], o).toEqual(expected(o, i));
      if (i < 40) expect(now.get(o)!.ttl, o).toBe(i % 2 ? 300 : 900);
    });
    expect(keys(await readTlsaOverDns(server, os[3]!))).toEqual(expected(os[3]!, 3));

    // Nothing left to do (same records, same TTLs): one read, no write.
    calls.length = 0;
    await p.applyMany!(changesFor(os), (o) => (os.indexOf(o) % 2 ? 300 : 900));
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([`GET ${zonePath}`]);
    const again = await p.listMany!(os);
    os.forEach((o, i) => expect(keys(again.get(o)!)).toEqual(expected(o, i)));
  });

  it('repairs the one owner another writer overwrote between our write and our read-back', async () => {
    const os = owners('pdnsrace', PDNS_ZONE);
    await seed(os);
    const victim = os[7]!;
    const extra = rec(victim, 'other-writer');
    let patches = 0;
    // The other writer read {foreign} before our write and writes {foreign, its own} after it.
    const calls = countRequests(tap, base, async (c) => {
      if (c.method === 'PATCH' && ++patches === 1)
        await pdnsReplace(server, PDNS_ZONE, victim, 'TLSA', 600, [
          { content: rdataText(rec(victim, 'foreign')) },
          { content: rdataText(extra) },
        ]);
    });
    await provider().applyMany!(changesFor(os), () => 300);
    tap.stopRecording();
    expect(calls.map((c) => c.method)).toEqual(['GET', 'GET', 'PATCH', 'GET', 'PATCH', 'GET']); // zones, read, write, read back, repair, read back
    const repair = (
      calls[4]!.body as { rrsets: { name: string; records: { content: string }[] }[] }
    ).rrsets;
    expect(repair.map((r) => r.name)).toEqual([victim]);
    const now = await zoneNow();
    os.forEach((o, i) => {
      // The other writer's record stays; ours is back; the foreign one stays removed (owners 0-9).
      const want = o === victim ? [...expected(o, i), rdataText(extra)].sort() : expected(o, i);
      expect(now.get(o)?.records ?? [], o).toEqual(want);
    });
  });

  /** One fresh owner in each of OTHER_ZONES, seeded with a foreign record. */
  async function ownerPerZone(label: string): Promise<string[]> {
    const os = OTHER_ZONES.map((z) => owners(label, z)[0]!);
    for (const [i, o] of os.entries())
      await pdnsReplace(server, OTHER_ZONES[i]!, o, 'TLSA', 600, [
        { content: rdataText(rec(o, 'foreign')) },
      ]);
    return os;
  }
  const addOurs = (os: string[]): OwnerChange[] =>
    os.map((o) => ({ owner: o, add: [rec(o, 'ours')], remove: [] }));

  it('after listMany, a batch over several zones writes each on the read it listed: one PATCH per zone, one zone list before the writes and one after them that confirms each', async () => {
    const os = await ownerPerZone('pdnsbases');
    // The zone list vouches for the zones written within a second of it: a frozen clock keeps
    // a loaded machine from making this a different test (the timing is unit-tested).
    vi.useFakeTimers({ toFake: ['Date'] });
    const p = provider();
    await p.listMany!(os);
    const calls = countRequests(tap, base);
    await p.applyMany!(addOurs(os), () => 300);
    const paths = OTHER_ZONES.map((z) => `/zones/${z}`);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /zones?dnssec=false', // every zone's serial: none changed since listMany read them
      ...paths.map((z) => `PATCH ${z}`),
      'GET /zones?dnssec=false', // every zone still at the serial its PATCH answered: no read-back
    ]);
    for (const o of os)
      expect(keys(await readTlsaOverDns(server, o))).toEqual(
        keys([rec(o, 'foreign'), rec(o, 'ours')]),
      );
    // Used once: the next batch reads each zone before writing it (and confirms the writes
    // with one list).
    calls.length = 0;
    await p.applyMany!(
      os.map((o) => ({ owner: o, add: [], remove: [rec(o, 'ours')] })),
      () => 300,
    );
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      ...paths.flatMap((z) => [`GET ${z}`, `PATCH ${z}`]),
      'GET /zones?dnssec=false',
    ]);
    for (const o of os)
      expect(keys(await readTlsaOverDns(server, o))).toEqual(keys([rec(o, 'foreign')]));
  });

  it("a record another writer adds between listMany and applyMany is not lost: that zone's serial moved, so it is read again", async () => {
    const os = await ownerPerZone('pdnsbasesrace');
    vi.useFakeTimers({ toFake: ['Date'] });
    const p = provider();
    await p.listMany!(os);
    // Another writer, after our read and before our write, at the owner in the second zone.
    const victim = os[1]!;
    const theirs = rec(victim, 'other-writer');
    await pdnsReplace(server, OTHER_ZONES[1]!, victim, 'TLSA', 600, [
      { content: rdataText(rec(victim, 'foreign')) },
      { content: rdataText(theirs) },
    ]);
    const calls = countRequests(tap, base);
    await p.applyMany!(addOurs(os), () => 300);
    expect(keys(await readTlsaOverDns(server, victim))).toEqual(
      keys([rec(victim, 'foreign'), theirs, rec(victim, 'ours')]),
    );
    const [z0, z1, z2] = OTHER_ZONES.map((z) => `/zones/${z}`);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /zones?dnssec=false',
      `PATCH ${z0}`,
      `GET ${z1}`, // its serial moved since listMany: read afresh
      `PATCH ${z1}`,
      `PATCH ${z2}`,
      'GET /zones?dnssec=false',
    ]);
  });

  /** listMany, then applyMany over one owner per zone while a stale writer (it read the first
   *  owner's RRset, {foreign}, before our write) writes {foreign, its own} right after our first
   *  PATCH is in. Checks that its record stays and ours is there; returns our requests. */
  async function staleWriterAfterFirstPatch(label: string): Promise<Call[]> {
    const os = await ownerPerZone(label);
    const p = provider();
    await p.listMany!(os);
    const victim = os[0]!;
    let patches = 0;
    const calls = countRequests(tap, base, async (c) => {
      if (c.method === 'PATCH' && ++patches === 1)
        await pdnsReplace(server, OTHER_ZONES[0]!, victim, 'TLSA', 600, [
          { content: rdataText(rec(victim, 'foreign')) },
          { content: rdataText(rec(victim, 'other-writer')) },
        ]);
    });
    await p.applyMany!(addOurs(os), () => 300);
    tap.stopRecording();
    expect(keys(await readTlsaOverDns(server, victim))).toEqual(
      keys([rec(victim, 'foreign'), rec(victim, 'other-writer'), rec(victim, 'ours')]),
    );
    for (const o of os.slice(1))
      expect(keys(await readTlsaOverDns(server, o))).toEqual(
        keys([rec(o, 'foreign'), rec(o, 'ours')]),
      );
    // The repair: our second PATCH of that zone, of just the victim.
    const [, repair] = calls.filter(
      (c) => c.method === 'PATCH' && c.path === `/zones/${OTHER_ZONES[0]}`,
    );
    const repaired = (repair?.body as { rrsets: { name: string }[] } | undefined)?.rrsets;
    expect(repaired?.map((r) => r.name)).toEqual([victim]);
    return calls;
  }

  it("a writer that overwrites our records between our PATCH and the batch's confirming list is seen: that zone's serial is past ours, so it is read back and repaired", async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const calls = await staleWriterAfterFirstPatch('pdnsconfirmrace');
    const [z0, z1, z2] = OTHER_ZONES.map((z) => `/zones/${z}`);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /zones?dnssec=false',
      `PATCH ${z0}`,
      `PATCH ${z1}`,
      `PATCH ${z2}`,
      'GET /zones?dnssec=false', // z1, z2 confirmed; z0's serial moved past the one our PATCH left
      `GET ${z0}`, // read back: our record is gone
      `PATCH ${z0}`, // written again, on what the read-back saw
      `GET ${z0}`,
    ]);
  });

  it('under soa_edit_api EPOCH (two writes in one second leave one serial) nothing is confirmed by serial: each zone is read back, and a record overwritten right after our PATCH is repaired', async () => {
    const setKind = async (kind: string) => {
      for (const z of OTHER_ZONES) {
        const r = await server.api('PUT', `/zones/${z}`, { soa_edit_api: kind });
        expect(r.status, r.text).toBe(204);
      }
    };
    await setKind('EPOCH');
    try {
      const calls = await staleWriterAfterFirstPatch('pdnsepoch');
      const [z0, z1, z2] = OTHER_ZONES.map((z) => `/zones/${z}`);
      expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
        `GET ${z0}`, // no listMany base either: an unchanged EPOCH serial proves nothing
        `PATCH ${z0}`,
        `GET ${z0}`,
        `PATCH ${z0}`,
        `GET ${z0}`,
        ...[z1, z2].flatMap((z) => [`GET ${z}`, `PATCH ${z}`, `GET ${z}`]),
      ]);
    } finally {
      await setKind('DEFAULT');
    }
  });

  it("a zone's first write of the day (DEFAULT: the serial jumps to YYYYMMDD01) is confirmed like any other", async () => {
    const os = await ownerPerZone('pdnsdayfirst');
    // Serials from an older day, set with soa_edit_api NONE (which leaves a PATCHed SOA as sent).
    for (const z of OTHER_ZONES) {
      expect((await server.api('PUT', `/zones/${z}`, { soa_edit_api: 'NONE' })).status).toBe(204);
      const zone = (await server.api('GET', `/zones/${z}`)).body as {
        rrsets: { type: string; records: { content: string }[] }[];
      };
      const soa = zone.rrsets.find((r) => r.type === 'SOA')!.records[0]!.content.split(' ');
      soa[2] = '2020010105';
      await pdnsReplace(server, z, z, 'SOA', 3600, [{ content: soa.join(' ') }]);
      expect((await server.api('PUT', `/zones/${z}`, { soa_edit_api: 'DEFAULT' })).status).toBe(
        204,
      );
    }
    vi.useFakeTimers({ toFake: ['Date'] });
    const p = provider();
    await p.listMany!(os);
    const calls = countRequests(tap, base);
    await p.applyMany!(addOurs(os), () => 300);
    const paths = OTHER_ZONES.map((z) => `/zones/${z}`);
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      'GET /zones?dnssec=false',
      ...paths.map((z) => `PATCH ${z}`),
      'GET /zones?dnssec=false',
    ]);
    const listed = (await server.api('GET', '/zones')).body as { name: string; serial: number }[];
    for (const z of OTHER_ZONES)
      expect(String(listed.find((x) => x.name === z)!.serial)).toMatch(/^20\d{6}01$/);
  });

  it('a CNAME at one owner is reported naming it, and nothing is written', async () => {
    const os = owners('pdnscname', PDNS_ZONE).slice(0, 5);
    await seed(os);
    const culprit = os[2]!;
    await pdnsReplace(server, PDNS_ZONE, culprit, 'TLSA', 600, []);
    await pdnsReplace(server, PDNS_ZONE, culprit, 'CNAME', 300, [
      { content: `target.${PDNS_ZONE}` },
    ]);
    const calls = countRequests(tap, base);
    const err = await errorOf(
      provider().applyMany!(
        os.map((o) => ({ owner: o, add: [rec(o, 'x')], remove: [] })),
        () => 300,
      ),
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(
      `${culprit} has a CNAME (to target.${PDNS_ZONE}) in zone ${PDNS_ZONE}`,
    );
    expect(calls.filter((c) => c.method !== 'GET')).toEqual([]);
    const now = await zoneNow();
    for (const o of os)
      if (o !== culprit) expect(now.get(o)?.records, o).toEqual([rdataText(rec(o, 'foreign'))]);
  });
});

describe('batch writes: desec (desec-api-fake)', () => {
  const DOMAIN = 'example.test';
  let fake: DesecApiFake;
  beforeAll(async () => {
    fake = await startDesecApiFake({
      domains: [{ name: DOMAIN, minimum_ttl: 3600 }, { name: 'other.test' }],
    });
  });
  afterAll(async () => {
    await fake.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const sub = (o: string) => o.slice(0, -(DOMAIN.length + 2));
  const seed = (os: string[]) => {
    for (const o of os) fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [rdataText(rec(o, 'foreign'))]);
  };
  const rrsetReads = (from: number) =>
    fake.requests
      .slice(from)
      .filter((r) => r.method === 'GET' && r.path.startsWith(`/api/v1/domains/${DOMAIN}/rrsets/`));

  it(`listMany reads once; applyMany over ${N} owners is one write (one bulk PATCH) and one read-back`, async () => {
    const os = owners('desec', `${DOMAIN}.`);
    seed(os);
    const p = desecProvider(fake);
    let from = fake.requests.length;
    const listed = await p.listMany!(os);
    expect(fake.requests.slice(from).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'GET /api/v1/domains/ 200', // the account's domains, once for the batch (not one owns_qname per name)
      `GET /api/v1/domains/${DOMAIN}/rrsets/?type=TLSA&cursor= 200`,
    ]);
    for (const o of os) expect(keys(listed.get(o)!)).toEqual(keys([rec(o, 'foreign')]));

    const writes = fake.writes;
    from = fake.requests.length;
    await p.applyMany!(changesFor(os), (o) => (os.indexOf(o) % 2 ? 3600 : 7200));
    expect(fake.writes - writes).toBe(1);
    expect(fake.requests.slice(from).map((r) => r.method)).toEqual(['GET', 'PATCH', 'GET']);
    expect(rrsetReads(from)).toHaveLength(2);
    os.forEach((o, i) => {
      expect(keys(readFake(fake, o)), o).toEqual(expected(o, i));
      if (i < 40) expect(fake.rrset(DOMAIN, sub(o), 'TLSA')!.ttl, o).toBe(i % 2 ? 3600 : 7200);
    });

    // Nothing left to do (same records, same TTLs): one read, no write.
    from = fake.requests.length;
    await p.applyMany!(changesFor(os), (o) => (os.indexOf(o) % 2 ? 3600 : 7200));
    expect(fake.writes - writes).toBe(1);
    expect(fake.requests.slice(from).map((r) => r.method)).toEqual(['GET']);
  });

  it('follows cursor pages when the domain has more RRsets than a page', async () => {
    const small = await startDesecApiFake({
      domains: [{ name: DOMAIN, minimum_ttl: 3600 }],
      pageSize: 20,
    });
    try {
      const os = owners('paged', `${DOMAIN}.`);
      for (const o of os) small.seed(DOMAIN, sub(o), 'TLSA', 3600, [rdataText(rec(o, 'foreign'))]);
      const p = desecProvider(small, { domain: DOMAIN });
      await p.listMany!(os.slice(0, 2)); // the domain, once
      const from = small.requests.length;
      const listed = await p.listMany!(os);
      expect(small.requests.slice(from).map((r) => r.status)).toEqual([200, 200, 200]); // ⌈50 / 20⌉ pages, no 400 first
      for (const o of os) expect(keys(listed.get(o)!)).toEqual(keys([rec(o, 'foreign')]));
      await p.applyMany!(changesFor(os), () => 3600);
      expect(small.writes).toBe(1);
      os.forEach((o, i) => expect(keys(readFake(small, o)), o).toEqual(expected(o, i)));
    } finally {
      await small.close();
    }
  });

  it('repairs the one owner another writer overwrote between our write and our read-back', async () => {
    const os = owners('desecrace', `${DOMAIN}.`);
    seed(os);
    const victim = os[7]!;
    const extra = rdataText(rec(victim, 'other-writer'));
    // The other writer read {foreign} before our write and writes {foreign, its own} after it.
    fake.afterNextWrite(() =>
      fake.seed(DOMAIN, sub(victim), 'TLSA', 3600, [rdataText(rec(victim, 'foreign')), extra]),
    );
    const tap = await startHttpTap(fake.url);
    let calls: Call[];
    const writes = fake.writes;
    try {
      calls = countRequests(tap, '');
      await desecProvider(fake, { api_url: tap.url }).applyMany!(changesFor(os), () => 3600);
    } finally {
      await tap.close();
    }
    expect(fake.writes - writes).toBe(2);
    const patches = calls
      .filter((c) => c.method === 'PATCH')
      .map((c) => c.body as { subname: string }[]);
    expect(patches.map((b) => b.length)).toEqual([N, 1]);
    expect(patches[1]!.map((r) => r.subname)).toEqual([sub(victim)]);
    os.forEach((o, i) => {
      const want = o === victim ? [...expected(o, i), extra].sort() : expected(o, i);
      expect(keys(readFake(fake, o)), o).toEqual(want);
    });
  });

  it('a CNAME at one owner is reported naming it, and nothing is written', async () => {
    const os = owners('desecname', `${DOMAIN}.`).slice(0, 5);
    seed(os);
    const culprit = os[2]!;
    fake.seed(DOMAIN, sub(culprit), 'TLSA', 3600, []);
    fake.seed(DOMAIN, sub(culprit), 'CNAME', 3600, [`target.${DOMAIN}.`]);
    const from = fake.requests.length;
    const writes = fake.writes;
    const err = await errorOf(
      desecProvider(fake).applyMany!(
        os.map((o) => ({ owner: o, add: [rec(o, 'x')], remove: [] })),
        () => 3600,
      ),
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(
      `${culprit} has a CNAME (to target.${DOMAIN}.) in deSEC domain ${DOMAIN}`,
    );
    expect(fake.writes).toBe(writes);
    expect(fake.requests.slice(from).filter((r) => r.method !== 'GET')).toEqual([]);
    for (const o of os)
      if (o !== culprit) expect(keys(readFake(fake, o)), o).toEqual(keys([rec(o, 'foreign')]));
  });
});
