/**
 * The route53 provider (the real AWS SDK v3, `endpoint` override, static fake credentials,
 * region us-east-1) against route53-api-fake (the shared contract runs in
 * provider-contract.test.ts), and what is
 * particular to Route 53: one conditional DELETE+CREATE batch per apply, a racing writer
 * between our read and our write (InvalidChangeBatch, re-read, retry), GetChange
 * PENDING → INSYNC, paging over more record sets than MaxItems, and the permanent errors.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DnsProvider, OwnerChange } from '../../providers/contract.js';
import { createProvider } from '../../providers/route53.js';
import { rdataText, recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { Route53ApiFake } from '../fakes/route53-api-fake.js';

const ZONE = 'r53.example.test.';
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (owner: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data: hex(`${s}${owner}`),
});
let n = 0;
const owner = (label: string) => `_25._tcp.${label}-${++n}.${ZONE}`;
const sorted = (xs: string[]) => [...xs].sort();

describe('route53 provider against route53-api-fake', () => {
  let fake: Route53ApiFake;
  let zoneId: string;
  const ctx = {
    instance: 'r53',
    baseDir: process.cwd(),
    optionError: (k: string, m: string) => new Error(`option ${k}: ${m}`),
  };
  const make = (extra: Record<string, unknown> = {}): DnsProvider =>
    createProvider(
      {
        endpoint: fake.url,
        access_key_id: fake.accessKeyId,
        secret_access_key: fake.secretAccessKey,
        ...extra,
      },
      ctx,
    );
  const ops = () => fake.requests.map((r) => (r.code ? `${r.op}:${r.code}` : r.op));

  beforeAll(async () => {
    fake = await Route53ApiFake.start();
    zoneId = fake.addZone(ZONE);
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(() => {
    fake.maxItemsCap = 300;
    fake.changeSyncMs = 0;
    fake.clearLog();
  });

  it('finds the zone once, then reads once and writes one DELETE+CREATE batch per apply', async () => {
    const o = owner('log');
    const p = make();
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    // ListHostedZonesByName walks up from the owner name to the zone, once.
    expect(ops().filter((x) => x === 'ListHostedZonesByName').length).toBeGreaterThan(0);
    expect(ops().filter((x) => x !== 'ListHostedZonesByName')).toEqual([
      'ListResourceRecordSets',
      'ChangeResourceRecordSets',
    ]);
    expect(fake.requests.at(-1)!.detail).toBe(`CREATE ${o} TLSA 300 [${rdataText(rec(o, 'a'))}]`);

    fake.clearLog();
    await p.apply(o, { add: [rec(o, 'b')], remove: [] }, 600);
    expect(ops()).toEqual(['ListResourceRecordSets', 'ChangeResourceRecordSets']);
    // Conditional: the exact old TTL and values are deleted, the new set created.
    expect(fake.requests[1]!.detail).toBe(
      `DELETE ${o} TLSA 300 [${rdataText(rec(o, 'a'))}]; CREATE ${o} TLSA 600 [${rdataText(rec(o, 'a'))} | ${rdataText(rec(o, 'b'))}]`,
    );

    fake.clearLog();
    await p.apply(o, { add: [], remove: [rec(o, 'a'), rec(o, 'b')] }, 600);
    expect(ops()).toEqual(['ListResourceRecordSets', 'ChangeResourceRecordSets']);
    expect(fake.requests[1]!.detail).toMatch(/^DELETE [^;]+$/); // DELETE alone when nothing is left
    expect(fake.values(o, 'TLSA')).toEqual([]);

    fake.clearLog();
    await p.apply(o, { add: [], remove: [rec(o, 'gone')] }, 600);
    expect(ops()).toEqual(['ListResourceRecordSets']); // nothing to change: no write
  });

  it('with hosted_zone_id there is no zone lookup at all', async () => {
    const o = owner('zoneid');
    await make({ hosted_zone_id: `/hostedzone/${zoneId}` }).apply(
      o,
      { add: [rec(o, 'a')], remove: [] },
      300,
    );
    expect(ops()).toEqual(['ListResourceRecordSets', 'ChangeResourceRecordSets']);
  });

  it('a writer racing between our read and our write: the batch fails, we re-read and keep both', async () => {
    const o = owner('race');
    const p = make({ hosted_zone_id: zoneId });
    fake.addRecord(o, 'TLSA', 300, rdataText(rec(o, 'base')));
    fake.onceBeforeChange(() => fake.addRecord(o, 'TLSA', 300, rdataText(rec(o, 'racer'))));
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect(ops()).toEqual([
      'ListResourceRecordSets',
      'ChangeResourceRecordSets:InvalidChangeBatch',
      'ListResourceRecordSets',
      'ChangeResourceRecordSets',
    ]);
    expect(sorted(fake.values(o, 'TLSA'))).toEqual(
      sorted([rec(o, 'base'), rec(o, 'racer'), rec(o, 'ours')].map(rdataText)),
    );
  });

  it('a writer creating the set between our read (empty) and our CREATE: "already exists", re-read, keep both', async () => {
    const o = owner('race-empty');
    const p = make({ hosted_zone_id: zoneId });
    fake.onceBeforeChange(() => fake.addRecord(o, 'TLSA', 900, rdataText(rec(o, 'racer'))));
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect(ops()).toEqual([
      'ListResourceRecordSets',
      'ChangeResourceRecordSets:InvalidChangeBatch',
      'ListResourceRecordSets',
      'ChangeResourceRecordSets',
    ]);
    expect(sorted(fake.values(o, 'TLSA'))).toEqual(
      sorted([rec(o, 'racer'), rec(o, 'ours')].map(rdataText)),
    );
  });

  it('a removal racing with an addition keeps the addition and removes only what was named', async () => {
    const o = owner('race-remove');
    const p = make({ hosted_zone_id: zoneId });
    await p.apply(o, { add: [rec(o, 'old'), rec(o, 'keep')], remove: [] }, 300);
    fake.clearLog();
    fake.onceBeforeChange(() => fake.addRecord(o, 'TLSA', 300, rdataText(rec(o, 'new'))));
    await p.apply(o, { add: [], remove: [rec(o, 'old')] }, 300);
    expect(ops().filter((x) => x.includes('InvalidChangeBatch'))).toHaveLength(1);
    expect(sorted(fake.values(o, 'TLSA'))).toEqual(
      sorted([rec(o, 'keep'), rec(o, 'new')].map(rdataText)),
    );
  });

  it('waitUntilApplied polls GetChange until INSYNC', async () => {
    fake.changeSyncMs = 400;
    const o = owner('insync');
    const p = make({ hosted_zone_id: zoneId, poll_interval_s: 0.1 });
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    fake.clearLog();
    await p.waitUntilApplied!();
    const polls = fake.requests.filter((r) => r.op === 'GetChange').map((r) => r.detail);
    expect(polls.at(-1)).toBe('INSYNC');
    expect(polls.filter((s) => s === 'PENDING').length).toBeGreaterThanOrEqual(1);
    fake.clearLog();
    await p.waitUntilApplied!(); // nothing pending any more
    expect(fake.requests).toEqual([]);
  });

  it('waitUntilApplied is bounded: a change that stays PENDING is a ProviderError', async () => {
    fake.changeSyncMs = 60_000;
    const o = owner('pending');
    const p = make({ hosted_zone_id: zoneId, poll_interval_s: 0.1, wait_timeout_s: 0.35 });
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    const err = await p.waitUntilApplied!().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/still PENDING after 0.35 s/);
  });

  it('pages over more record sets than MaxItems (NextRecordName/NextRecordType) and still sees the TLSA set', async () => {
    fake.maxItemsCap = 2;
    const o = owner('paging');
    for (const [type, value] of [
      ['A', '192.0.2.1'],
      ['AAAA', '2001:db8::1'],
      ['CAA', '0 issue "letsencrypt.org"'],
      ['MX', '10 mx.example.test.'],
      ['SSHFP', `4 2 ${hex('k')}`],
      ['TXT', '"v=spf1 -all"'],
    ] as const) {
      fake.addRecord(o, type, 300, value);
    }
    fake.addRecord(`a.${o}`, 'TXT', 300, '"child"');
    fake.addRecord(o, 'TLSA', 300, rdataText(rec(o, 'foreign')));
    const p = make({ hosted_zone_id: zoneId });
    expect((await p.list(o)).map(recordKey)).toEqual([recordKey(rec(o, 'foreign'))]);
    const reads = fake.requests.filter((r) => r.op === 'ListResourceRecordSets');
    expect(reads.length).toBe(3); // [A AAAA] [CAA MX] [SSHFP TLSA], next is TXT: past TLSA, stop
    expect(reads[1]!.query).toMatchObject({ name: o, type: 'CAA', maxitems: '300' });
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect(sorted(fake.values(o, 'TLSA'))).toEqual(
      sorted([rec(o, 'foreign'), rec(o, 'ours')].map(rdataText)),
    );
    expect(fake.values(o, 'TXT')).toEqual(['"v=spf1 -all"']);
  });

  it('retries Throttling, PriorRequestNotComplete and 5xx with backoff, then succeeds', async () => {
    const o = owner('retry');
    const p = make({ hosted_zone_id: zoneId });
    fake.throttleOnce('Throttling');
    fake.throttleOnce('PriorRequestNotComplete');
    fake.failOnce(503);
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    expect(ops()).toEqual([
      'ListResourceRecordSets:Throttling',
      'ListResourceRecordSets:PriorRequestNotComplete',
      'ListResourceRecordSets:ServiceUnavailable',
      'ListResourceRecordSets',
      'ChangeResourceRecordSets',
    ]);
    expect(fake.values(o, 'TLSA')).toEqual([rdataText(rec(o, 'a'))]);
  });

  it('AccessDenied fails fast and names the missing IAM action and the zone', async () => {
    const o = owner('denied');
    fake.deny('route53:ChangeResourceRecordSets');
    try {
      const err = await make({ hosted_zone_id: zoneId })
        .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toContain('route53:ChangeResourceRecordSets');
      expect(err!.message).toContain(zoneId);
      expect(ops()).toEqual(['ListResourceRecordSets', 'ChangeResourceRecordSets:AccessDenied']); // no retry
    } finally {
      fake.allow('route53:ChangeResourceRecordSets');
    }
    expect(fake.values(o, 'TLSA')).toEqual([]);
  });

  it('AccessDenied on zone discovery names route53:ListHostedZonesByName', async () => {
    fake.deny('route53:ListHostedZonesByName');
    try {
      const o = `_25._tcp.mx.other-${process.pid}.test.`;
      const err = await make()
        .list(o)
        .then(
          () => undefined,
          (e: Error) => e,
        );
      expect(err?.message).toMatch(/route53:ListHostedZonesByName/);
      expect(err?.message).toMatch(/hosted zone of/);
    } finally {
      fake.allow('route53:ListHostedZonesByName');
    }
  });

  it('NoSuchHostedZone fails fast naming the zone id', async () => {
    const o = owner('nosuch');
    const err = await make({ hosted_zone_id: 'ZNOSUCHZONE0000' })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/hosted zone ZNOSUCHZONE0000 does not exist \(NoSuchHostedZone\)/);
    expect(ops()).toEqual(['ListResourceRecordSets:NoSuchHostedZone']);
  });

  it('a wrong secret (right key id) gives SignatureDoesNotMatch as a credentials error without the secret', async () => {
    const secret = 'ThisIsTheWrongSecret/ButTheRightKeyId+42';
    const o = owner('sig');
    const err = await make({ hosted_zone_id: zoneId, secret_access_key: secret })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/credentials \(SignatureDoesNotMatch\)/);
    expect(err!.message).not.toContain(secret);
    expect(ops()).toEqual(['ListResourceRecordSets:SignatureDoesNotMatch']);
  });

  it('zone discovery: the most specific public zone wins, private zones are skipped, two public zones of one name are an error', async () => {
    const sub = `sub.${ZONE}`;
    const subId = fake.addZone(sub);
    fake.addZone(sub, { private: true });
    const o = `_25._tcp.mx.${sub}`;
    await make().apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    const write = fake.requests.find((r) => r.op === 'ChangeResourceRecordSets')!;
    expect(write.path).toBe(`/2013-04-01/hostedzone/${subId}/rrset`);

    const dup = `dup.${ZONE}`;
    fake.addZone(dup);
    fake.addZone(dup);
    const err = await make()
      .list(`_25._tcp.mx.${dup}`)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.message).toMatch(
      /2 public hosted zones are named dup\.r53\.example\.test\..*set hosted_zone_id/,
    );
  });

  it('a CNAME at the name is reported before any write', async () => {
    const o = owner('cname');
    fake.addRecord(o, 'CNAME', 300, 'target.example.net.');
    const err = await make({ hosted_zone_id: zoneId })
      .apply(o, { add: [rec(o, 'a')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.message).toMatch(/has a CNAME in hosted zone/);
    expect(ops()).toEqual(['ListResourceRecordSets']);
    expect(fake.values(o, 'CNAME')).toEqual(['target.example.net.']);
  });

  describe('batch methods (listMany, applyMany)', () => {
    const N = 50;
    let zb = 0;
    /** A fresh hosted zone with N owners, each seeded with a foreign TLSA set. */
    function seeded(count = N): { id: string; os: string[] } {
      const z = `b${++zb}.batch.${ZONE}`;
      const id = fake.addZone(z);
      const os = Array.from({ length: count }, (_, i) => `_25._tcp.mx${i}.${z}`);
      for (const o of os) fake.addRecord(o, 'TLSA', 300, rdataText(rec(o, 'foreign')));
      return { id, os };
    }
    /** Every owner gets "ours"; 0-9 lose "foreign" (replaced); 40-49 only lose it (set goes away). */
    const changesFor = (os: string[]): OwnerChange[] =>
      os.map((o, i) =>
        i >= 40
          ? { owner: o, add: [], remove: [rec(o, 'foreign')] }
          : { owner: o, add: [rec(o, 'ours')], remove: i < 10 ? [rec(o, 'foreign')] : [] },
      );
    const expected = (o: string, i: number): string[] =>
      i >= 40
        ? []
        : sorted((i < 10 ? [rec(o, 'ours')] : [rec(o, 'foreign'), rec(o, 'ours')]).map(rdataText));

    it('applyMany over 50 owners: one zone walk and ONE ChangeResourceRecordSets batch', async () => {
      const { id, os } = seeded();
      const p = make({ hosted_zone_id: id });
      fake.clearLog();
      await p.applyMany!(changesFor(os), () => 600);
      expect(ops()).toEqual(['ListResourceRecordSets', 'ChangeResourceRecordSets']);
      expect(fake.requests[0]!.query).not.toHaveProperty('name'); // the walk starts at the zone's top
      const detail = fake.requests[1]!.detail!.split('; ');
      expect(detail).toHaveLength(90); // 40 DELETE+CREATE pairs, 10 lone DELETEs
      expect(detail.filter((d) => d.startsWith('DELETE '))).toHaveLength(50);
      os.forEach((o, i) => expect(sorted(fake.values(o, 'TLSA'))).toEqual(expected(o, i)));
      expect(fake.recordSet(os[0]!, 'TLSA')!.ttl).toBe(600);

      fake.clearLog();
      await p.applyMany!(changesFor(os), () => 600); // already as asked: the read only
      expect(ops()).toEqual(['ListResourceRecordSets']);
    });

    it('listMany: one paged zone walk for many names, one read per name for a few', async () => {
      const { id, os } = seeded();
      await make({ hosted_zone_id: id }).applyMany!(changesFor(os), () => 300);
      const p = make({ hosted_zone_id: id });
      fake.maxItemsCap = 20;
      fake.clearLog();
      const got = await p.listMany!(os);
      // 2 apex sets + 40 TLSA sets = 42 sets: ceil(42/20) = 3 pages.
      expect(ops()).toEqual([
        'ListResourceRecordSets',
        'ListResourceRecordSets',
        'ListResourceRecordSets',
      ]);
      os.forEach((o, i) =>
        expect(sorted((got.get(o) ?? []).map(rdataText))).toEqual(expected(o, i)),
      );

      fake.clearLog();
      const two = await p.listMany!(os.slice(0, 2));
      expect(ops()).toEqual(['ListResourceRecordSets', 'ListResourceRecordSets']);
      expect(sorted(two.get(os[0]!)!.map(rdataText))).toEqual(expected(os[0]!, 0));

      // Zone discovery knows the zone's size: 42 sets are 1 page of 300, cheaper than 2 reads.
      fake.maxItemsCap = 300;
      const q = make();
      await q.list(os[0]!);
      fake.clearLog();
      await q.listMany!(os.slice(0, 2));
      const reads = fake.requests.filter((r) => r.op === 'ListResourceRecordSets');
      expect(reads).toHaveLength(1);
      expect(reads[0]!.query).not.toHaveProperty('name');
    });

    it('more changes than one batch holds are split between owners, never inside one', async () => {
      const { id, os } = seeded(60);
      await make({ hosted_zone_id: id }).applyMany!(
        os.map((o) => ({ owner: o, add: [rec(o, 'ours')], remove: [] })),
        () => 300,
      );
      const writes = fake.requests.filter((r) => r.op === 'ChangeResourceRecordSets');
      expect(writes).toHaveLength(2); // 120 changes: 100 + 20
      expect(writes.map((w) => w.detail!.split('; ').length)).toEqual([100, 20]);
      for (const o of os)
        expect(sorted(fake.values(o, 'TLSA'))).toEqual(
          sorted([rec(o, 'foreign'), rec(o, 'ours')].map(rdataText)),
        );
    });

    it('a CNAME at one of several owners is reported naming it, and nothing is written', async () => {
      const { id, os } = seeded(10);
      const bad = os[7]!;
      fake.addRecord(bad, 'CNAME', 300, 'target.example.net.');
      fake.clearLog();
      const err = await make({ hosted_zone_id: id }).applyMany!(changesFor(os), () => 300).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toContain(`${bad} has a CNAME in hosted zone ${id}`);
      expect(ops().filter((x) => x.startsWith('ChangeResourceRecordSets'))).toEqual([]);
      for (const o of os) expect(fake.values(o, 'TLSA')).toEqual([rdataText(rec(o, 'foreign'))]);
      expect(fake.values(bad, 'CNAME')).toEqual(['target.example.net.']);
    });

    it('a writer racing on one owner between the read and the batch: InvalidChangeBatch, re-read, both kept', async () => {
      const { id, os } = seeded();
      const hit = os[15]!;
      fake.onceBeforeChange(() => fake.addRecord(hit, 'TLSA', 300, rdataText(rec(hit, 'racer'))));
      fake.clearLog();
      await make({ hosted_zone_id: id }).applyMany!(changesFor(os), () => 300);
      expect(ops()).toEqual([
        'ListResourceRecordSets',
        'ChangeResourceRecordSets:InvalidChangeBatch',
        'ListResourceRecordSets',
        'ChangeResourceRecordSets',
      ]);
      os.forEach((o, i) => {
        const want =
          o === hit ? sorted([...expected(o, i), rdataText(rec(o, 'racer'))]) : expected(o, i);
        expect(sorted(fake.values(o, 'TLSA'))).toEqual(want);
      });
    });

    it('waitUntilApplied follows the batch change to INSYNC', async () => {
      fake.changeSyncMs = 300;
      const { id, os } = seeded(10);
      const p = make({ hosted_zone_id: id, poll_interval_s: 0.1 });
      await p.applyMany!(changesFor(os), () => 300);
      fake.clearLog();
      await p.waitUntilApplied!();
      expect(fake.requests.filter((r) => r.op === 'GetChange').at(-1)!.detail).toBe('INSYNC');
    });
  });

  it('checks its options', () => {
    expect(() => createProvider({ access_key_id: 'AKIAONLYKEY' }, ctx)).toThrow(
      /option secret_access_key: access_key_id and secret_access_key go together/,
    );
    expect(() => createProvider({ endpoint: 'localhost:4566' }, ctx)).toThrow(/option endpoint/);
    expect(() => createProvider({ wait_timeout_s: -1 }, ctx)).toThrow(/option wait_timeout_s/);
    expect(() => createProvider({ hosted_zone: 'Z1' }, ctx)).toThrow(
      /option hosted_zone: route53 has no option/,
    );
  });
});
