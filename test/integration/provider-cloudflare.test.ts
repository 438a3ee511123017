/**
 * The cloudflare provider (Cloudflare's TypeScript SDK, `baseURL` pointed at the fake) against
 * cloudflare-api-fake (the shared contract runs in provider-contract.test.ts), and what is
 * particular to Cloudflare:
 * per-record writes (one read and at most one write per apply: a single POST/DELETE, or one
 * batch), the `comment` that marks our records, paging with a small per_page (and no extra
 * empty-page request), 429 with retry-after, token and zone errors, and writers racing
 * between our read and our write.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createProvider, MANAGED_COMMENT } from '../../providers/cloudflare.js';
import type { DnsProvider, OwnerChange } from '../../providers/contract.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { CloudflareApiFake, type CfRecord } from '../fakes/cloudflare-api-fake.js';

const ZONE = 'cf.example.test.';
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (owner: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data: hex(`${s}${owner}`),
});
const cfData = (r: TlsaRecord): CfRecord['data'] => ({
  usage: r.usage,
  selector: r.selector,
  matching_type: r.matching,
  certificate: r.data,
});
let n = 0;
const owner = (label: string) => `_25._tcp.${label}-${++n}.${ZONE}`;
const sorted = (rs: TlsaRecord[]) => rs.map(recordKey).sort();

describe('cloudflare provider against cloudflare-api-fake', () => {
  let fake: CloudflareApiFake;
  let zoneId: string;
  const ctx = {
    instance: 'cf',
    baseDir: process.cwd(),
    optionError: (k: string, m: string) => new Error(`option ${k}: ${m}`),
  };
  const make = (extra: Record<string, unknown> = {}): DnsProvider =>
    createProvider({ api_token: fake.token, base_url: fake.baseUrl, ...extra }, ctx);
  const log = () =>
    fake.requests.map(
      (r) =>
        `${r.method} ${r.path.replace(zoneId, 'Z').replace(/dns_records\/[0-9a-f]{32}$/, 'dns_records/ID')}${r.status === 200 ? '' : ` ${r.status}:${(r.codes ?? []).join(',')}`}`,
    );
  const direct = (o: string) =>
    fake.records(o, 'TLSA').map(
      (r) =>
        ({
          owner: o,
          usage: r.data!.usage,
          selector: r.data!.selector,
          matching: r.data!.matching_type,
          data: r.data!.certificate,
        }) as TlsaRecord,
    );

  beforeAll(async () => {
    fake = await CloudflareApiFake.start();
    zoneId = fake.addZone(ZONE);
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(() => {
    fake.maxPerPage = 5_000_000;
    fake.clearLog();
  });

  it('one read and at most one write per apply: a single POST or DELETE, several changes in one batch', async () => {
    const o = owner('log');
    const p = make({ zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records', 'POST /zones/Z/dns_records']);
    expect(fake.requests[0]!.query).toMatchObject({
      'name.exact': o.slice(0, -1),
      per_page: '100',
    });

    fake.clearLog();
    await p.apply(o, { add: [rec(o, 'b'), rec(o, 'c')], remove: [rec(o, 'a')] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records', 'POST /zones/Z/dns_records/batch']);
    expect(fake.requests[1]!.detail).toBe('BATCH deletes=1 patches=0 puts=0 posts=2');

    fake.clearLog();
    await p.apply(o, { add: [], remove: [rec(o, 'b')] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records', 'DELETE /zones/Z/dns_records/ID']);

    fake.clearLog();
    await p.apply(o, { add: [rec(o, 'c')], remove: [rec(o, 'never-there')] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records']); // nothing to change: no write
    expect(sorted(direct(o))).toEqual(sorted([rec(o, 'c')]));
  });

  it('finds the zone by name once per provider instance (walking up from the owner name)', async () => {
    const p = make();
    const o1 = owner('disc');
    await p.apply(o1, { add: [rec(o1, 'a')], remove: [] }, 300);
    const lookups = fake.requests.filter((r) => r.path === '/zones').map((r) => r.query.name);
    expect(lookups).toEqual([
      o1.slice(0, -1),
      o1.slice(0, -1).split('.').slice(1).join('.'),
      o1.slice(0, -1).split('.').slice(2).join('.'),
      'cf.example.test',
    ]);
    fake.clearLog();
    const o2 = owner('disc');
    await p.apply(o2, { add: [rec(o2, 'a')], remove: [] }, 300);
    expect(fake.requests.filter((r) => r.path === '/zones').map((r) => r.query.name)).toEqual([
      o2.slice(0, -1),
      o2.slice(0, -1).split('.').slice(1).join('.'),
      o2.slice(0, -1).split('.').slice(2).join('.'),
    ]);
  });

  it('marks its records with the comment and leaves foreign ones as they are', async () => {
    const o = owner('comment');
    fake.addRecord(o, 'TLSA', { data: cfData(rec(o, 'foreign')), ttl: 3600 });
    const p = make({ zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    const stored = fake.records(o, 'TLSA');
    const ours = stored.find((r) => r.data!.certificate === rec(o, 'ours').data)!;
    const foreign = stored.find((r) => r.data!.certificate === rec(o, 'foreign').data)!;
    expect(ours.comment).toBe(MANAGED_COMMENT);
    expect(ours.ttl).toBe(300);
    expect(ours.content).toBe(`3 1 1 ${rec(o, 'ours').data}`);
    expect(foreign.comment).toBeNull();
    expect(foreign.ttl).toBe(3600);
    expect(sorted(await p.list(o))).toEqual(sorted([rec(o, 'foreign'), rec(o, 'ours')]));
  });

  it('pages through a small per_page by result_info.total_pages, without an extra empty page', async () => {
    fake.maxPerPage = 2;
    const o = owner('paging');
    const foreign = ['1', '2', '3', '4', '5'].map((s) => rec(o, s));
    for (const r of foreign) fake.addRecord(o, 'TLSA', { data: cfData(r) });
    const p = make({ zone_id: zoneId });
    expect(sorted(await p.list(o))).toEqual(sorted(foreign));
    expect(fake.requests.map((r) => r.query.page ?? '1')).toEqual(['1', '2', '3']);
    fake.clearLog();
    await p.apply(o, { add: [rec(o, 'ours')], remove: [rec(o, '5')] }, 300);
    expect(log()).toEqual([
      'GET /zones/Z/dns_records',
      'GET /zones/Z/dns_records',
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records/batch',
    ]);
    expect(sorted(direct(o))).toEqual(sorted([...foreign.slice(0, 4), rec(o, 'ours')]));
  });

  it('429: waits what retry-after says, then succeeds', async () => {
    const o = owner('429');
    const p = make({ zone_id: zoneId });
    fake.throttleOnce(1);
    const t0 = Date.now();
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(log()).toEqual([
      'GET /zones/Z/dns_records 429:971',
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records',
    ]);
  });

  it('429 with a retry-after beyond a minute fails at once with a clear message', async () => {
    const o = owner('429-long');
    fake.throttleOnce(300);
    const err = await make({ zone_id: zoneId })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(
      /rate limited by Cloudflare \(1,200 requests per 5 minutes per token\), retry after 300 s/,
    );
    expect(log()).toEqual(['GET /zones/Z/dns_records 429:971']);
  });

  it('5xx is retried with backoff', async () => {
    const o = owner('5xx');
    fake.failOnce(502);
    await make({ zone_id: zoneId }).apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    expect(log()).toEqual([
      'GET /zones/Z/dns_records 502:1000',
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records',
    ]);
  });

  it('401: "API token rejected or lacks Zone.DNS:Edit on ZONE", without the token, no retry', async () => {
    const bad = 'cf-not-a-valid-token-for-this-fake-000';
    const o = owner('401');
    const err = await make({ zone_id: zoneId, api_token: bad })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(`API token rejected or lacks Zone.DNS:Edit on zone ${zoneId}`);
    expect(err!.message).toContain('9109');
    expect(err!.message).not.toContain(bad);
    expect(log()).toEqual(['GET /zones/Z/dns_records 401:9109']);
  });

  it('403: a read-only token can list but not write, and the message names the zone and the permission', async () => {
    const ro = 'cf-read-only-token-0000000000000000';
    fake.addToken(ro, { dnsEdit: false, zoneRead: true });
    const o = owner('403');
    const p = make({ api_token: ro });
    expect(await p.list(o)).toEqual([]);
    const err = await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err!.message).toContain(
      `API token rejected or lacks Zone.DNS:Edit on zone cf.example.test (${zoneId})`,
    );
    expect(err!.message).toContain('10000 Authentication error');
    expect(fake.records(o, 'TLSA')).toEqual([]);
  });

  it('a token without Zone:Read cannot look the zone up: the message says so (or set zone_id)', async () => {
    const dnsOnly = 'cf-dns-only-token-00000000000000000';
    fake.addToken(dnsOnly, { dnsEdit: true, zoneRead: false, zones: [zoneId] });
    const o = owner('zoneread');
    const err = await make({ api_token: dnsOnly })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err!.message).toMatch(
      /no Cloudflare zone found for .*set zone_id, or give the token Zone → Zone → Read/,
    );
    await make({ api_token: dnsOnly, zone_id: zoneId }).apply(
      o,
      { add: [rec(o, 'a')], remove: [] },
      300,
    );
    expect(direct(o)).toHaveLength(1);
  });

  it('an unknown zone_id is named (7003)', async () => {
    const bogus = 'f'.repeat(32);
    const o = owner('nozone');
    const err = await make({ zone_id: bogus })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(`zone ${bogus} is unknown to Cloudflare`);
    expect(err!.message).toContain('7003');
  });

  it('a racing writer deletes a record our batch deletes: the batch fails (81044), we re-read and finish', async () => {
    const o = owner('race-del');
    const p = make({ zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'old'), rec(o, 'keep')], remove: [] }, 300);
    const oldId = fake
      .records(o, 'TLSA')
      .find((r) => r.data!.certificate === rec(o, 'old').data)!.id;
    fake.clearLog();
    // Another host's hook removes 'old' and adds its own record between our read and our write.
    fake.onceBeforeWrite(() => {
      fake.removeRecord(oldId);
      fake.addRecord(o, 'TLSA', { data: cfData(rec(o, 'theirs')), comment: MANAGED_COMMENT });
    });
    await p.apply(o, { add: [rec(o, 'new')], remove: [rec(o, 'old')] }, 300);
    expect(log()).toEqual([
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records/batch 404:81044',
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records',
    ]);
    expect(sorted(direct(o))).toEqual(sorted([rec(o, 'keep'), rec(o, 'theirs'), rec(o, 'new')]));
  });

  it('a racing writer posts the record our batch posts: the batch fails (81058), we re-read and finish', async () => {
    const o = owner('race-post');
    const p = make({ zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'old')], remove: [] }, 300);
    fake.clearLog();
    fake.onceBeforeWrite(() => fake.addRecord(o, 'TLSA', { data: cfData(rec(o, 'new')) }));
    await p.apply(o, { add: [rec(o, 'new')], remove: [rec(o, 'old')] }, 300);
    expect(log()).toEqual([
      'GET /zones/Z/dns_records',
      'POST /zones/Z/dns_records/batch 400:81058',
      'GET /zones/Z/dns_records',
      'DELETE /zones/Z/dns_records/ID',
    ]);
    expect(sorted(direct(o))).toEqual(sorted([rec(o, 'new')]));
  });

  it('single writes are idempotent: a record already gone or already there counts as done', async () => {
    const o = owner('idem');
    const p = make({ zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    const id = fake.records(o, 'TLSA')[0]!.id;
    fake.clearLog();
    // Someone deletes it between our read and our DELETE.
    fake.onceBeforeWrite(() => fake.removeRecord(id));
    await p.apply(o, { add: [], remove: [rec(o, 'a')] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records', 'DELETE /zones/Z/dns_records/ID 404:81044']);
    fake.clearLog();
    // Someone adds the identical record between our read and our POST.
    fake.onceBeforeWrite(() => fake.addRecord(o, 'TLSA', { data: cfData(rec(o, 'b')) }));
    await p.apply(o, { add: [rec(o, 'b')], remove: [] }, 300);
    expect(log()).toEqual(['GET /zones/Z/dns_records', 'POST /zones/Z/dns_records 400:81058']);
    expect(sorted(direct(o))).toEqual(sorted([rec(o, 'b')]));
  });

  it('a CNAME appearing between our read and our POST is reported (81054), not overwritten', async () => {
    const o = owner('cname-race');
    fake.onceBeforeWrite(() => fake.addRecord(o, 'CNAME', { content: 'target.example.net' }));
    const err = await make({ zone_id: zoneId })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/has a CNAME.*81054/);
    expect(fake.records(o, 'TLSA')).toEqual([]);
    expect(fake.records(o, 'CNAME')).toHaveLength(1);
  });

  it('clamps the TTL to what Cloudflare accepts (60..86400)', async () => {
    const o = owner('ttl');
    await make({ zone_id: zoneId }).apply(o, { add: [rec(o, 'short')], remove: [] }, 30);
    await make({ zone_id: zoneId }).apply(o, { add: [rec(o, 'long')], remove: [] }, 604800);
    expect(
      fake
        .records(o, 'TLSA')
        .map((r) => r.ttl)
        .sort((a, b) => a - b),
    ).toEqual([60, 86400]);
  });

  describe('batch methods (listMany, applyMany)', () => {
    const N = 50;
    let b = 0;
    /** N owner names, each seeded with a foreign TLSA record. */
    function seeded(count = N): string[] {
      const bn = ++b;
      const os = Array.from({ length: count }, (_, i) => `_25._tcp.b${bn}-${i}.${ZONE}`);
      for (const o of os) fake.addRecord(o, 'TLSA', { data: cfData(rec(o, 'foreign')) });
      return os;
    }
    /** Every owner gets "ours"; 0-9 lose "foreign" (replaced); 40-49 only lose it. */
    const changesFor = (os: string[]): OwnerChange[] =>
      os.map((o, i) =>
        i >= 40
          ? { owner: o, add: [], remove: [rec(o, 'foreign')] }
          : { owner: o, add: [rec(o, 'ours')], remove: i < 10 ? [rec(o, 'foreign')] : [] },
      );
    const expected = (o: string, i: number): TlsaRecord[] =>
      i >= 40 ? [] : i < 10 ? [rec(o, 'ours')] : [rec(o, 'foreign'), rec(o, 'ours')];

    it('applyMany over 50 owners: one TLSA read, one CNAME read, ONE batch', async () => {
      const os = seeded();
      const p = make({ zone_id: zoneId });
      fake.clearLog();
      await p.applyMany!(changesFor(os), () => 300);
      expect(log()).toEqual([
        'GET /zones/Z/dns_records',
        'GET /zones/Z/dns_records',
        'POST /zones/Z/dns_records/batch',
      ]);
      expect(fake.requests.map((r) => r.query.type)).toEqual(['TLSA', 'CNAME', undefined]);
      expect(fake.requests[2]!.detail).toBe('BATCH deletes=20 patches=0 puts=0 posts=40');
      os.forEach((o, i) => expect(sorted(direct(o))).toEqual(sorted(expected(o, i))));
      const ours = fake.records(os[0]!, 'TLSA')[0]!;
      expect(ours.comment).toBe(MANAGED_COMMENT);
      expect(ours.ttl).toBe(300);

      fake.clearLog();
      await p.applyMany!(changesFor(os), () => 300); // already as asked: the reads only
      expect(log()).toEqual(['GET /zones/Z/dns_records', 'GET /zones/Z/dns_records']);
    });

    it("listMany reads the zone's TLSA records once (all pages), a single name as list does", async () => {
      const os = seeded();
      const p = make({ zone_id: zoneId });
      await p.applyMany!(changesFor(os), () => 300);
      fake.clearLog();
      const got = await p.listMany!(os);
      expect(log()).toEqual(['GET /zones/Z/dns_records']);
      expect(fake.requests[0]!.query).toMatchObject({ type: 'TLSA' });
      os.forEach((o, i) => expect(sorted(got.get(o) ?? [])).toEqual(sorted(expected(o, i))));

      // Small pages: one page after the other by result_info.total_pages, same answer.
      fake.maxPerPage = 40;
      fake.clearLog();
      const paged = await p.listMany!(os);
      const pages = fake.requests.map((r) => r.query.page ?? '1');
      expect(pages.length).toBeGreaterThan(1);
      expect(pages).toEqual(pages.map((_, i) => String(i + 1)));
      os.forEach((o, i) => expect(sorted(paged.get(o) ?? [])).toEqual(sorted(expected(o, i))));

      fake.clearLog();
      const one = await p.listMany!([os[0]!]);
      expect(fake.requests.map((r) => r.query)).toEqual([
        expect.objectContaining({ 'name.exact': os[0]!.slice(0, -1) }),
      ]);
      expect(sorted(one.get(os[0]!)!)).toEqual(sorted(expected(os[0]!, 0)));
    });

    it('more than 200 operations are split into batches of 200, every post before every delete', async () => {
      const os = seeded(120);
      fake.clearLog();
      await make({ zone_id: zoneId }).applyMany!(
        os.map((o) => ({ owner: o, add: [rec(o, 'ours')], remove: [rec(o, 'foreign')] })),
        () => 300,
      );
      expect(fake.requests.filter((r) => r.method === 'POST').map((r) => r.detail)).toEqual([
        'BATCH deletes=80 patches=0 puts=0 posts=120',
        'BATCH deletes=40 patches=0 puts=0 posts=0',
      ]);
      for (const o of os) expect(sorted(direct(o))).toEqual(sorted([rec(o, 'ours')]));
    });

    it('when the second of those batches fails, every owner still has its old or its new record', async () => {
      const os = seeded(120);
      const heal = fake.failWritesFrom(2);
      const err = await make({ zone_id: zoneId }).applyMany!(
        os.map((o) => ({ owner: o, add: [rec(o, 'ours')], remove: [rec(o, 'foreign')] })),
        () => 300,
      ).then(
        () => undefined,
        (e: Error) => e,
      );
      heal();
      expect(err?.name).toBe('ProviderError');
      const emptied = os.filter((o) => direct(o).length === 0);
      expect(emptied, 'owners left without a TLSA record').toEqual([]);
      for (const o of os)
        expect(sorted([rec(o, 'foreign'), rec(o, 'ours')])).toEqual(
          expect.arrayContaining(sorted(direct(o))),
        );
    });

    it('a CNAME at one of several owners is reported naming it, and nothing is written', async () => {
      const os = seeded(10);
      const bad = `_25._tcp.cname-${++n}.${ZONE}`;
      fake.addRecord(bad, 'CNAME', { content: 'target.example.net' });
      fake.clearLog();
      const err = await make({ zone_id: zoneId }).applyMany!(
        [...changesFor(os), { owner: bad, add: [rec(bad, 'ours')], remove: [] }],
        () => 300,
      ).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toContain(`${bad} has a CNAME in zone ${zoneId}`);
      expect(fake.requests.filter((r) => r.method !== 'GET')).toEqual([]);
      for (const o of os) expect(sorted(direct(o))).toEqual(sorted([rec(o, 'foreign')]));
      expect(fake.records(bad, 'CNAME')).toHaveLength(1);
    });

    it('a writer racing on one owner between the read and the batch: 81044, re-read, finished', async () => {
      const os = seeded();
      const hit = os[3]!; // its foreign record is one we delete
      const foreignId = fake.records(hit, 'TLSA')[0]!.id;
      fake.onceBeforeWrite(() => {
        fake.removeRecord(foreignId);
        fake.addRecord(hit, 'TLSA', { data: cfData(rec(hit, 'theirs')) });
      });
      fake.clearLog();
      await make({ zone_id: zoneId }).applyMany!(changesFor(os), () => 300);
      expect(log()).toEqual([
        'GET /zones/Z/dns_records',
        'GET /zones/Z/dns_records',
        'POST /zones/Z/dns_records/batch 404:81044',
        'GET /zones/Z/dns_records',
        'GET /zones/Z/dns_records',
        'POST /zones/Z/dns_records/batch',
      ]);
      os.forEach((o, i) =>
        expect(sorted(direct(o))).toEqual(
          sorted(o === hit ? [rec(o, 'ours'), rec(o, 'theirs')] : expected(o, i)),
        ),
      );
    });
  });

  it('checks its options', () => {
    expect(() => createProvider({}, ctx)).toThrow(/option api_token: cloudflare needs "api_token"/);
    expect(() =>
      createProvider({ api_token: 'x'.repeat(40), zone_id: 'example.org' }, ctx),
    ).toThrow(/option zone_id: "zone_id" is the 32-character hex id/);
    expect(() =>
      createProvider({ api_token: 'x'.repeat(40), base_url: 'api.cloudflare.com' }, ctx),
    ).toThrow(/option base_url/);
    expect(() => createProvider({ api_token: 'x'.repeat(40), token: 'y' }, ctx)).toThrow(
      /option token: cloudflare has no option/,
    );
  });
});
