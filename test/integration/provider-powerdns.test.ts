/** The powerdns provider against a real pdns_server (sqlite3 backend, DNSSEC) on loopback: the
 *  shared contract runs in provider-contract.test.ts; this is what is particular to PowerDNS. */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { rdataText, type TlsaRecord } from '../../src/tlsa/record.js';
import { query } from '../lab/dig.js';
import { type HttpTap, startHttpTap } from '../lab/http-tap.js';
import { freePort, labDescribe, stopAll } from '../lab/lab.js';
import { POWERDNS_TOOLS, startPowerDns, type PowerDnsServer } from '../lab/powerdns.js';
import {
  PDNS_ZONE,
  pdnsProvider,
  pdnsReplace,
  pdnsRRset,
  readTlsaOverDns,
} from './contract/powerdns.js';

const SUB_ZONE = `sub.${PDNS_ZONE}`;
let n = 0;
const owner = (label: string, zone = PDNS_ZONE) => `_25._tcp.${label}-${++n}.${zone}`;
const rec = (o: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner: o,
  usage,
  selector: 1,
  matching: 1,
  data: createHash('sha256').update(`${s}${o}`).digest('hex'),
});
const keys = (rs: TlsaRecord[]) => rs.map(rdataText).sort();

labDescribe('powerdns provider (real pdns_server)', POWERDNS_TOOLS, () => {
  let server: PowerDnsServer;
  /** A loopback proxy in front of the API: sees and disturbs what a provider sends. */
  let tap: HttpTap;
  beforeAll(async () => {
    server = await startPowerDns({
      zones: [
        { name: PDNS_ZONE, dnssec: true },
        { name: SUB_ZONE, dnssec: true },
      ],
    });
    tap = await startHttpTap(server.apiUrl);
  }, 60_000);
  afterAll(async () => {
    await tap?.close();
    await stopAll();
  });
  afterEach(() => {
    vi.restoreAllMocks();
    tap.stopRecording();
    tap.intercept();
  });
  const tapped = () => pdnsProvider(server, { url: tap.url });

  it('wrong API key: says the key was rejected (401) and never prints it', async () => {
    const badKey = `not-the-key-${server.apiKey.slice(0, 6)}-zz`;
    const p = pdnsProvider(server, { api_key: badKey });
    const o = owner('badkey');
    for (const call of [
      () => p.list(o),
      () => p.apply(o, { add: [rec(o, 'x')], remove: [] }, 300),
    ]) {
      const err = await call().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toMatch(/API key rejected \(HTTP 401/);
      expect(err!.message).not.toContain(badKey);
      expect(err!.message).not.toContain(server.apiKey);
    }
    expect(await readTlsaOverDns(server, o)).toEqual([]);
  });

  it('DNSSEC: after apply the server answers the TLSA RRset with an RRSIG over it', async () => {
    const o = owner('signed');
    await pdnsProvider(server).apply(o, { add: [rec(o, 'a'), rec(o, 'b', 2)], remove: [] }, 300);
    const r = await query({
      server: server.host,
      port: server.dnsPort,
      name: o,
      type: 'TLSA',
      dnssec: true,
      recurse: false,
    });
    expect(r.rcode).toBe('NOERROR');
    expect(r.flags).toContain('aa');
    expect(r.records.filter((a) => a.type === 'TLSA')).toHaveLength(2);
    const sigs = r.records.filter((a) => a.type === 'RRSIG' && a.owner === o);
    expect(sigs.length).toBeGreaterThan(0);
    expect(sigs.every((s) => s.rdata.split(' ')[0] === 'TLSA')).toBe(true);
    // Signed by the zone's key, and the signature carries the RRset's TTL.
    expect(sigs[0]!.rdata.split(' ')).toEqual(expect.arrayContaining([PDNS_ZONE, '300']));
  });

  it("keeps a foreign record's disabled flag and the RRset's comments", async () => {
    const o = owner('disabled');
    const foreignOn = rec(o, 'foreign-on');
    const foreignOff = rec(o, 'foreign-off');
    const comments = [{ content: 'ops: keep these', account: 'ops' }];
    await pdnsReplace(
      server,
      PDNS_ZONE,
      o,
      'TLSA',
      600,
      [{ content: rdataText(foreignOn) }, { content: rdataText(foreignOff), disabled: true }],
      comments,
    );
    const p = pdnsProvider(server);
    expect(keys(await p.list(o))).toEqual(keys([foreignOn]));

    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    let set = (await pdnsRRset(server, PDNS_ZONE, o, 'TLSA'))!;
    expect(set.records.find((r) => r.content === rdataText(foreignOff))?.disabled).toBe(true);
    expect(set.records.find((r) => r.content === rdataText(foreignOn))?.disabled).toBe(false);
    expect(set.records.find((r) => r.content === rdataText(rec(o, 'ours')))?.disabled).toBe(false);
    expect(set.comments.map(({ content, account }) => ({ content, account }))).toEqual(comments);
    expect(set.ttl).toBe(300);
    expect(keys(await readTlsaOverDns(server, o))).toEqual(keys([foreignOn, rec(o, 'ours')]));

    await p.apply(o, { add: [], remove: [rec(o, 'ours')] }, 300);
    set = (await pdnsRRset(server, PDNS_ZONE, o, 'TLSA'))!;
    expect(set.records).toHaveLength(2);
    expect(set.records.find((r) => r.content === rdataText(foreignOff))?.disabled).toBe(true);
    expect(set.comments).toHaveLength(1);
  });

  it('removing the last record deletes the RRset', async () => {
    const o = owner('last');
    const p = pdnsProvider(server);
    await p.apply(o, { add: [rec(o, 'only')], remove: [] }, 300);
    expect(await pdnsRRset(server, PDNS_ZONE, o, 'TLSA')).toBeDefined();
    await p.apply(o, { add: [], remove: [rec(o, 'only')] }, 300);
    expect(await pdnsRRset(server, PDNS_ZONE, o, 'TLSA')).toBeUndefined();
    expect(await p.list(o)).toEqual([]);
  });

  it('reports a CNAME at the name before writing anything', async () => {
    const o = owner('cname');
    await pdnsReplace(server, PDNS_ZONE, o, 'CNAME', 300, [{ content: `target.${PDNS_ZONE}` }]);
    const calls = tap.record();
    const err = await tapped()
      .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/has a CNAME \(to target\.example\.test\.\)/);
    expect(calls.length).toBeGreaterThan(0);
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(0);
  });

  it('repairs its records when another writer overwrites them with a stale set after our write', async () => {
    const o = owner('lost');
    const base = rec(o, 'base');
    await pdnsReplace(server, PDNS_ZONE, o, 'TLSA', 300, [{ content: rdataText(base) }]);
    let patches = 0;
    tap.record({
      after: async (c) => {
        // The other writer read {base} before our write and writes it back now (straight to
        // the API, not through the tap): our record is lost.
        if (c.method === 'PATCH' && ++patches === 1)
          await pdnsReplace(server, PDNS_ZONE, o, 'TLSA', 300, [{ content: rdataText(base) }]);
      },
    });
    await tapped().apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    tap.stopRecording();
    expect(patches).toBe(2);
    expect(keys(await readTlsaOverDns(server, o))).toEqual(keys([base, rec(o, 'ours')]));
  });

  it('after a 5xx on its write (sqlite3 "database is locked" gives 500) reads again, never re-sends a stale set', async () => {
    const o = owner('retry');
    let failed = 0;
    tap.intercept(async (c) => {
      if (c.method !== 'PATCH' || failed > 0) return undefined;
      failed++;
      // Meanwhile another writer adds its record: a re-sent body would delete it.
      await pdnsReplace(server, PDNS_ZONE, o, 'TLSA', 300, [
        { content: rdataText(rec(o, 'meanwhile')) },
      ]);
      return {
        status: 500,
        body: 'Internal Server Error',
        headers: { 'Content-Type': 'text/plain' },
      };
    });
    await tapped().apply(o, { add: [rec(o, 'r')], remove: [] }, 300);
    tap.intercept();
    expect(failed).toBe(1);
    expect(keys(await readTlsaOverDns(server, o))).toEqual(
      keys([rec(o, 'meanwhile'), rec(o, 'r')]),
    );
  });

  it('gives up after 5 failed writes, saying what failed', async () => {
    const o = owner('down');
    const calls = tap.record();
    tap.intercept((c) =>
      c.method === 'PATCH' ? { status: 500, body: 'Internal Server Error' } : undefined,
    );
    const err = await tapped()
      .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(
      /PowerDNS API writing .* HTTP 500 Internal Server Error \(gave up after 5 attempts\)/,
    );
    expect(calls.filter((c) => c.method === 'PATCH')).toHaveLength(5);
  }, 30_000);

  it('writes into the longest matching zone', async () => {
    const o = owner('deep', SUB_ZONE);
    await pdnsProvider(server).apply(o, { add: [rec(o, 'sub')], remove: [] }, 300);
    expect((await pdnsRRset(server, SUB_ZONE, o, 'TLSA'))?.records).toHaveLength(1);
    expect(await pdnsRRset(server, PDNS_ZONE, o, 'TLSA')).toBeUndefined();
    expect(keys(await readTlsaOverDns(server, o))).toEqual(keys([rec(o, 'sub')]));
  });

  it('with the option "zone": names a zone the server lacks, and refuses names outside it', async () => {
    const o = owner('opt');
    const missing = await pdnsProvider(server, { zone: 'missing.test' })
      .apply(
        `_25._tcp.mx.missing.test.`,
        { add: [rec('_25._tcp.mx.missing.test.', 'x')], remove: [] },
        300,
      )
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(missing?.message).toMatch(/zone missing\.test\. not found on the PowerDNS server/);
    const outside = await pdnsProvider(server, { zone: SUB_ZONE })
      .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(outside?.message).toMatch(/is not in zone sub\.example\.test\./);
    await pdnsProvider(server, { zone: PDNS_ZONE }).apply(
      o,
      { add: [rec(o, 'x')], remove: [] },
      300,
    );
    expect(keys(await readTlsaOverDns(server, o))).toEqual(keys([rec(o, 'x')]));
  });

  it('rejects bad options at their config key', () => {
    const make = (o: Record<string, unknown>) => () => pdnsProvider(server, o);
    expect(make({ api_key: undefined })).toThrow(/^api_key: /);
    expect(make({ url: 'ftp://x' })).toThrow(/^url: /);
    expect(make({ zone: 'bad..name' })).toThrow(/^zone: /);
    expect(make({ apikey: 'x' })).toThrow(/^apikey: powerdns has no option "apikey"/);
  });

  it('a redirect is not followed (the API key would go with it): it fails at once, naming where it points', async () => {
    const o = owner('redirect');
    const calls = tap.record();
    tap.intercept(() => ({
      status: 301,
      headers: { Location: `https://pdns.example.net/api/v1/servers/localhost/zones` },
    }));
    const err = await tapped()
      .list(o)
      .then(
        () => undefined,
        (e: Error & { exitCode?: number }) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect((err as { exitCode?: number }).exitCode).toBe(3);
    expect(err!.message).toContain(
      `the PowerDNS API at ${new URL(tap.url).origin} (listing zones): HTTP 301, a redirect to https://pdns.example.net/api/v1/servers/localhost/zones; not followed`,
    );
    expect(calls).toHaveLength(1); // not asked again: a redirect is no passing failure
  });

  it('a write whose connection drops is not re-sent as it was: read again, and after 5 such writes it gives up naming the cause', async () => {
    const o = owner('drop');
    const calls = tap.record();
    tap.intercept((c) => (c.method === 'PATCH' ? { drop: true } : undefined));
    const err = await tapped()
      .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/cannot reach the PowerDNS API at .*: ECONNRESET/);
    const methods = calls.map((c) => c.method);
    expect(methods.filter((m) => m === 'PATCH')).toHaveLength(5);
    // Every PATCH comes after a fresh read of the zone.
    methods.forEach((m, i) => {
      if (m === 'PATCH') expect(methods[i - 1]).toBe('GET');
    });
    expect(await pdnsRRset(server, PDNS_ZONE, o, 'TLSA')).toBeUndefined();
  }, 30_000);
});

describe('powerdns provider without a server', () => {
  it('says it cannot reach the API, naming the address, after retrying', async () => {
    const { createProvider } = await import('../../providers/powerdns.js');
    const port = await freePort();
    const p = createProvider(
      { url: `http://127.0.0.1:${port}`, api_key: 'k-unreachable', timeout_s: 2 },
      { instance: 't', baseDir: '/', optionError: (k, m) => new Error(`${k}: ${m}`) },
    );
    const err = await p.list('_25._tcp.mx.example.test.').then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(
      `cannot reach the PowerDNS API at http://127.0.0.1:${port} (listing zones): ECONNREFUSED (gave up after 5 attempts)`,
    );
  }, 20_000);
});
