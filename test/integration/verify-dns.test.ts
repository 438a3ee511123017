/**
 * DNS verification against real servers: Knot (authoritative, online signing) and unbound
 * (validating, and one that only iterates), with kdig as the independent check.
 *
 * The lab is a small signed tree under a trust anchor for `test.`:
 *   test.          signed; delegates (NS + glue) to the zones below, DS for example.test.,
 *                  a DS that matches no key for bogus.test., no DS for insecure.test. and
 *                  island.test.
 *   example.test.  signed; NS ns1 (127.0.0.1) and ns2 (127.0.0.2), mx A, alias CNAME mx,
 *                  three TLSA records at _25._tcp.mx
 *   insecure.test. not signed
 *   bogus.test.    signed, but the DS in test. does not match its key
 *   island.test.   signed, no DS in test. (an island of security)
 * One Knot on 127.0.0.1:P serves them all; a second Knot on 127.0.0.2:P (same port: a
 * delegation has no port) serves an older copy of example.test. without the newest TLSA
 * record: the lagging secondary that queryAuthoritative + compareRrsets must catch.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rdataText, type TlsaRecord } from '../../src/tlsa/record.js';
import { DnsNetworkError, query } from '../../src/verify/dns.js';
import {
  UNVALIDATED_MESSAGE,
  resolveHostForDane,
  validatedLookup,
} from '../../src/verify/dnssec.js';
import {
  compareRrsets,
  findZone,
  queryAuthoritative,
  waitForRecords,
  type WaitProgress,
} from '../../src/verify/authoritative.js';
import { query as kdig, rdataOf } from '../lab/dig.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, runningDaemons, stopAll } from '../lab/lab.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';

const Z = 'example.test.';
const OWNER = `_25._tcp.mx.${Z}`;
const rec = (usage: 2 | 3, byte: number): TlsaRecord => ({
  owner: OWNER,
  usage,
  selector: 1,
  matching: 1,
  data: Buffer.alloc(32, byte).toString('hex'),
});
const OLD_EE = rec(3, 0x11);
const ISSUER = rec(2, 0x22);
const NEW_EE = rec(3, 0x33); // the newest record: the secondary does not have it yet
const ALL = [OLD_EE, ISSUER, NEW_EE];
const sortRd = (xs: string[]): string[] => xs.map((x) => x.toLowerCase()).sort();

function exampleZone(records: TlsaRecord[]): string {
  return [
    '$TTL 300',
    `${Z} 300 IN SOA ns1.${Z} hostmaster.${Z} 1 3600 600 86400 60`,
    `${Z} 300 IN NS ns1.${Z}`,
    `${Z} 300 IN NS ns2.${Z}`,
    `ns1.${Z} 300 IN A 127.0.0.1`,
    `ns2.${Z} 300 IN A 127.0.0.2`,
    `mx.${Z} 300 IN A 127.0.0.1`,
    `alias.${Z} 300 IN CNAME mx.${Z}`,
    ...records.map((r) => `${OWNER} 300 IN TLSA ${rdataText(r)}`),
    '',
  ].join('\n');
}

const PARENT = [
  '$TTL 300',
  'test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60',
  'test. 300 IN NS ns.test.',
  'ns.test. 300 IN A 127.0.0.1',
  `${Z} 300 IN NS ns1.${Z}`,
  `${Z} 300 IN NS ns2.${Z}`,
  `ns1.${Z} 300 IN A 127.0.0.1`,
  `ns2.${Z} 300 IN A 127.0.0.2`,
  ...['insecure', 'bogus', 'island'].flatMap((z) => [
    `${z}.test. 300 IN NS ns.${z}.test.`,
    `ns.${z}.test. 300 IN A 127.0.0.1`,
  ]),
  '',
].join('\n');

labDescribe(
  'DNS verification: Knot primary + lagging secondary, validating and non-validating unbound',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
  ],
  () => {
    let primary: KnotServer;
    let secondary: KnotServer;
    let validating: UnboundServer;
    let iterating: UnboundServer;
    const resolver = () => ({ host: validating.host, port: validating.port });
    const viaKdig = (u: UnboundServer, name: string, type: string, cd = false) =>
      kdig({ server: u.host, port: u.port, name, type, dnssec: true, cd });

    beforeAll(async () => {
      primary = await startKnot({
        zones: [
          { name: 'test.', zoneFileText: PARENT, dnssec: true },
          { name: Z, zoneFileText: exampleZone(ALL), dnssec: true },
          {
            name: 'insecure.test.',
            zoneFileText: minimalZone('insecure.test.', 'mx.insecure.test. 300 IN A 127.0.0.1'),
            dnssec: false,
          },
          {
            name: 'bogus.test.',
            zoneFileText: minimalZone('bogus.test.', 'mx.bogus.test. 300 IN A 127.0.0.1'),
            dnssec: true,
          },
          {
            name: 'island.test.',
            zoneFileText: minimalZone('island.test.', 'mx.island.test. 300 IN A 127.0.0.1'),
            dnssec: true,
          },
        ],
      });
      // The chain of trust: DS records into the parent, one of them wrong.
      const wrongDs = primary
        .dsRecords('bogus.test.')
        .map((l) => l.replace(/[0-9a-f]+$/i, (d) => '0'.repeat(d.length)));
      appendFileSync(
        primary.zoneFiles['test.']!,
        [...primary.dsRecords(Z), ...wrongDs].map((l) => `${l}\n`).join(''),
      );
      primary.reload('test.');

      const stubs = ['test.', Z, 'insecure.test.', 'bogus.test.', 'island.test.'].map((zone) => ({
        zone,
        port: primary.port,
        host: primary.host,
      }));
      const anchors = primary.dsRecords('test.');
      [secondary, validating, iterating] = await Promise.all([
        startKnot({
          host: '127.0.0.2',
          port: primary.port,
          zones: [{ name: Z, zoneFileText: exampleZone([OLD_EE, ISSUER]), dnssec: false }],
        }),
        startUnbound({ stubs, trustAnchors: anchors }),
        startUnbound({ stubs, trustAnchors: anchors, moduleConfig: 'iterator' }),
      ]);
    });

    afterAll(async () => {
      await stopAll();
      expect(runningDaemons()).toEqual([]);
    });

    it('secure: the TLSA RRset validates (AD) and comes out in the record model; kdig agrees', async () => {
      const r = await validatedLookup(resolver(), OWNER, 'TLSA');
      expect(r.status, r.message).toBe('secure');
      expect(r.authenticated).toBe(true);
      expect(r.signer).toBe(Z);
      expect(r.records.map(rdataText).sort()).toEqual(ALL.map(rdataText).sort());
      expect(r.records.every((x) => x.owner === OWNER)).toBe(true);

      const k = await viaKdig(validating, OWNER, 'TLSA');
      expect(k.flags).toContain('ad');
      expect(sortRd(rdataOf(k, 'TLSA'))).toEqual(r.records.map(rdataText).sort());
    });

    it('insecure: an unsigned zone under a signed parent (no DS); kdig sees no AD either', async () => {
      const a = await validatedLookup(resolver(), 'mx.insecure.test.', 'A');
      expect(a.status, a.message).toBe('insecure');
      expect(a.signed).toBe(false);
      expect(a.records).toEqual(['127.0.0.1']);
      const t = await validatedLookup(resolver(), '_25._tcp.mx.insecure.test.', 'TLSA');
      expect(t.status).toBe('nxdomain');
      expect(t.security).toBe('insecure');
      expect(t.message).toMatch(/denial is insecure/);
      const k = await viaKdig(validating, 'mx.insecure.test.', 'A');
      expect(k.rcode).toBe('NOERROR');
      expect(k.flags).not.toContain('ad');

      const host = await resolveHostForDane(resolver(), 'mx.insecure.test.');
      expect(host.status).toBe('insecure');
      expect(host.addresses.v4).toEqual(['127.0.0.1']);
    });

    it('insecure, not unvalidated: a signed zone whose parent has no DS (island of security)', async () => {
      const r = await validatedLookup(resolver(), 'mx.island.test.', 'A');
      expect(r.status, r.message).toBe('insecure');
      expect(r.signed).toBe(true);
      expect(r.message).toMatch(/island\.test\. is signed but its parent has no DS record/);
      const k = await viaKdig(validating, 'mx.island.test.', 'A');
      expect(k.flags).not.toContain('ad');
      expect(k.records.some((x) => x.type === 'RRSIG')).toBe(true);
    });

    it("bogus: SERVFAIL that CD turns into an answer, with unbound's reason; kdig agrees", async () => {
      // A fresh validation: from its cache unbound gives only EDE 6 (DNSSEC Bogus), no reason.
      await validating.flush('bogus.test.');
      const r = await validatedLookup(resolver(), 'mx.bogus.test.', 'A');
      expect(r.status, r.message).toBe('bogus');
      expect(r.records).toEqual([]);
      expect(r.ede.length).toBeGreaterThan(0);
      expect(r.message).toMatch(/DS hash mismatches key/);
      expect((await viaKdig(validating, 'mx.bogus.test.', 'A')).rcode).toBe('SERVFAIL');
      const cd = await viaKdig(validating, 'mx.bogus.test.', 'A', true);
      expect(cd.rcode).toBe('NOERROR');
      expect(rdataOf(cd, 'A')).toEqual(['127.0.0.1']);

      const host = await resolveHostForDane(resolver(), 'mx.bogus.test.');
      expect(host.status).toBe('bogus');
    });

    it('NXDOMAIN, securely denied; kdig agrees', async () => {
      const r = await validatedLookup(resolver(), `nx.${Z}`, 'A');
      expect(r.status).toBe('nxdomain');
      expect(r.security).toBe('secure');
      const k = await viaKdig(validating, `nx.${Z}`, 'A');
      expect(k.rcode).toBe('NXDOMAIN');
      expect(k.flags).toContain('ad');
    });

    it('the CNAME chain is followed: alias -> mx, secure, so the TLSA base is the target', async () => {
      const host = await resolveHostForDane(resolver(), `alias.${Z}`);
      expect(host.status, host.message).toBe('secure');
      expect(host.addresses).toEqual({ v4: ['127.0.0.1'], v6: [] });
      expect(host.cnameChain).toEqual([`alias.${Z}`, `mx.${Z}`]);
      expect(host.tlsaBase).toBe(`mx.${Z}`);
      expect(host.aaaa.status).toBe('nodata');
      expect(host.aaaa.security).toBe('secure');

      const k = await viaKdig(validating, `alias.${Z}`, 'A');
      expect(k.records.filter((x) => x.type === 'CNAME').map((x) => x.rdata)).toEqual([`mx.${Z}`]);
      expect(k.flags).toContain('ad');
    });

    it('a resolver that does not validate (module-config "iterator"): unvalidated, not insecure', async () => {
      const r = await validatedLookup(
        { host: iterating.host, port: iterating.port },
        OWNER,
        'TLSA',
      );
      expect(r.status, r.message).toBe('unvalidated');
      expect(r.message).toContain(UNVALIDATED_MESSAGE);
      expect(r.records).toHaveLength(3);
      const host = await resolveHostForDane(
        { host: iterating.host, port: iterating.port },
        `mx.${Z}`,
      );
      expect(host.status).toBe('unvalidated');

      const k = await viaKdig(iterating, OWNER, 'TLSA');
      expect(k.flags).not.toContain('ad');
      expect(k.records.some((x) => x.type === 'RRSIG')).toBe(true);
    });

    it('findZone: example.test. with ns1 and ns2 and their addresses', async () => {
      const zone = await findZone(resolver(), OWNER);
      expect(zone).toEqual({
        zone: Z,
        nameservers: [
          { name: `ns1.${Z}`, addresses: ['127.0.0.1'] },
          { name: `ns2.${Z}`, addresses: ['127.0.0.2'] },
        ],
      });
      expect((await findZone(resolver(), `alias.${Z}`)).zone).toBe(Z);
      // The zone of a broken (bogus) zone is still found: discovery asks with CD.
      expect((await findZone(resolver(), 'mx.bogus.test.')).zone).toBe('bogus.test.');
    });

    it('queryAuthoritative + compareRrsets: ns2 (127.0.0.2) lags and misses the newest record; kdig agrees', async () => {
      const zone = await findZone(resolver(), OWNER);
      const answers = await queryAuthoritative(zone, OWNER, 'TLSA', { port: primary.port });
      expect(answers.map((a) => [a.server, a.address, a.aa, a.rcode])).toEqual([
        [`ns1.${Z}`, '127.0.0.1', true, 'NOERROR'],
        [`ns2.${Z}`, '127.0.0.2', true, 'NOERROR'],
      ]);
      expect(answers[0]!.signed).toBe(true);
      expect(answers[1]!.signed).toBe(false);

      const cmp = compareRrsets(ALL, answers);
      expect(cmp.inSync).toBe(false);
      expect(cmp.synced.map((s) => s.address)).toEqual(['127.0.0.1']);
      expect(cmp.lagging.map((s) => [s.server, s.address, s.missing, s.extra])).toEqual([
        [`ns2.${Z}`, '127.0.0.2', [NEW_EE], []],
      ]);
      expect(cmp.summary).toContain(`ns2.${Z} (127.0.0.2) lags: missing 3 1 1 3333`);
      // What the secondary has is a subset: 'contains' of the old set is in sync everywhere.
      expect(compareRrsets([OLD_EE, ISSUER], answers, 'contains').inSync).toBe(true);
      expect(
        compareRrsets([OLD_EE, ISSUER], answers, 'exact').lagging.map((s) => [s.address, s.extra]),
      ).toEqual([['127.0.0.1', [NEW_EE]]]);

      for (const [host, want] of [
        ['127.0.0.1', ALL],
        ['127.0.0.2', [OLD_EE, ISSUER]],
      ] as const) {
        const k = await kdig({
          server: host,
          port: primary.port,
          name: OWNER,
          type: 'TLSA',
          recurse: false,
        });
        expect(k.flags).toContain('aa');
        expect(sortRd(rdataOf(k, 'TLSA'))).toEqual(want.map(rdataText).sort());
      }
    });

    it('queryAuthoritative: a server that does not answer or refuses is a failure, not "in sync"', async () => {
      const zone = {
        zone: Z,
        nameservers: [
          { name: `ns1.${Z}`, addresses: ['127.0.0.1'] },
          { name: `ns3.${Z}`, addresses: ['127.0.0.3'] },
        ],
      };
      const answers = await queryAuthoritative(zone, OWNER, 'TLSA', {
        port: primary.port,
        timeoutMs: 300,
        retries: 0,
      });
      expect(answers[1]!.error).toMatch(/refused/);
      const cmp = compareRrsets(ALL, answers);
      expect(cmp.failed.map((s) => s.address)).toEqual(['127.0.0.3']);
      expect(cmp.inSync).toBe(false);
      await expect(
        query({ host: '127.0.0.3', port: primary.port }, OWNER, 'TLSA', { timeoutMs: 300 }),
      ).rejects.toBeInstanceOf(DnsNetworkError);
    });

    it('waitForRecords: times out while ns2 lags (progress names it), then succeeds once ns2 catches up', async () => {
      const zone = await findZone(resolver(), OWNER);
      const progress: WaitProgress[] = [];
      const stuck = await waitForRecords(zone, OWNER, ALL, {
        port: primary.port,
        timeoutMs: 400,
        intervalMs: 100,
        onProgress: (p) => progress.push(p),
      });
      expect(stuck.ok).toBe(false);
      expect(progress.length).toBeGreaterThanOrEqual(2);
      expect(
        progress.every((p) => p.pending.length === 1 && p.pending[0] === `ns2.${Z} (127.0.0.2)`),
      ).toBe(true);
      expect(stuck.comparison.lagging[0]!.missing).toEqual([NEW_EE]);

      // The secondary gets the record (as a zone transfer would bring it) a moment later.
      const file = secondary.zoneFiles[Z]!;
      setTimeout(() => {
        writeFileSync(
          file,
          `${readFileSync(file, 'utf8')}${OWNER} 300 IN TLSA ${rdataText(NEW_EE)}\n`,
        );
        secondary.reload(Z);
      }, 300);
      const seen: string[][] = [];
      const done = await waitForRecords(zone, OWNER, ALL, {
        port: primary.port,
        timeoutMs: 10_000,
        intervalMs: 100,
        onProgress: (p) => seen.push(p.pending),
      });
      expect(done.ok).toBe(true);
      expect(done.comparison.synced).toHaveLength(2);
      expect(seen[0]).toEqual([`ns2.${Z} (127.0.0.2)`]);
      expect(seen[seen.length - 1]).toEqual([]);
      expect(done.rounds).toBeGreaterThan(1);
    });
  },
);
