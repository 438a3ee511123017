/**
 * `tlsa renew` with DNS-01 against Debian's pebble on loopback. pebble's VA asks the lab's
 * unbound for TXT records; unbound sends example.org to ns2 (a Knot on 127.0.0.2) and
 * example.net to PowerDNS. tlsa writes the TXT records to ns1 (a Knot on 127.0.0.1, RFC 2136 +
 * TSIG) or through the PowerDNS API. ns2 gets them only from a mirror in this test, some
 * seconds late, like a lagging secondary: an order succeeds only because tlsa waits for every
 * authoritative server of the zone before it answers the challenge.
 *
 *  - Knot: issued (key and name checked with openssl), tlsa waited for ns2, the TXT records
 *    are gone afterwards on both servers, no pending record is left;
 *  - a wildcard and its base name: two values at one owner, issued;
 *  - no wait (verify.propagation: false): pebble asks ns2, which lacks the record: exit 3,
 *    the TXT removed; never on ns2: the wait times out naming ns2, exit 3, removed;
 *  - SIGTERM during the wait: the TXT removed before the process dies;
 *  - PowerDNS: issued, a foreign TXT value at the owner kept, ours removed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, requireBuiltCli } from '../helpers/cli.js';
import { query } from '../lab/dig.js';
import { startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, makeTempDir, sleep, stopAll, toolPath } from '../lab/lab.js';
import { PEBBLE_TOOLS, type PebbleServer, startPebble } from '../lab/pebble.js';
import { POWERDNS_TOOLS, type PowerDnsServer, startPowerDns } from '../lab/powerdns.js';
import { runAsync, showRun } from '../lab/run.js';
import { startUnbound } from '../lab/unbound.js';
import { KNOT_TOOLS, runUpdateTool, type UpdateKey } from './contract/rfc2136.js';
import { pdnsReplace } from './contract/powerdns.js';

const ORG = 'example.org.';
const NET = 'example.net.';

const zoneText = [
  '$TTL 60',
  `${ORG} 60 IN SOA ns1.${ORG} hostmaster.${ORG} 1 3600 600 86400 1`,
  `${ORG} 60 IN NS ns1.${ORG}`,
  `${ORG} 60 IN NS ns2.${ORG}`,
  `ns1.${ORG} 60 IN A 127.0.0.1`,
  `ns2.${ORG} 60 IN A 127.0.0.2`,
  '',
].join('\n');

type Server = { host: string; port: number };

/** The TXT values at `owner` as the server answers them (kdig, TCP, no recursion). */
async function served(server: Server, owner: string): Promise<string[]> {
  const r = await query({
    server: server.host,
    port: server.port,
    name: owner,
    type: 'TXT',
    recurse: false,
    tcp: true,
  });
  return r.records
    .filter((a) => a.type === 'TXT' && a.owner === owner)
    .map((a) => a.rdata.replace(/^"|"$/g, ''))
    .sort();
}

labDescribe(
  'tlsa renew with DNS-01: pebble, Knot (RFC 2136 + TSIG) and PowerDNS (API) on loopback',
  [...PEBBLE_TOOLS, ...KNOT_TOOLS, ...POWERDNS_TOOLS, ['unbound', 'unbound']],
  () => {
    let pebble: PebbleServer;
    let ns1: KnotServer;
    let ns2: KnotServer;
    let pdns: PowerDnsServer;
    let resolver: string;
    const key: UpdateKey = {
      name: 'tlsa-acme.',
      algorithm: 'hmac-sha256',
      secret: randomBytes(32).toString('base64'),
    };

    beforeAll(async () => {
      requireBuiltCli();
      ns1 = await startKnot({
        zones: [{ name: ORG, zoneFileText: zoneText, dnssec: false }],
        tsig: key,
      });
      ns2 = await startKnot({
        host: '127.0.0.2',
        port: ns1.port,
        zones: [{ name: ORG, zoneFileText: zoneText, dnssec: false }],
        tsig: key,
      });
      pdns = await startPowerDns({ zones: [{ name: NET, dnssec: false }] });
      const unbound = await startUnbound({
        stubs: [
          { zone: ORG, host: '127.0.0.2', port: ns1.port },
          { zone: NET, port: pdns.dnsPort },
        ],
        trustAnchors: [],
        moduleConfig: 'iterator',
        cacheMaxTtl: 1,
        cacheMaxNegativeTtl: 1,
      });
      resolver = `127.0.0.1:${unbound.port}`;
      pebble = await startPebble({ dnsServer: resolver, timeoutMs: 60_000 });
    }, 180_000);
    afterAll(() => stopAll());

    /** ns2 follows ns1's TXT values at `owner`, `delayMs` late, until stopped. */
    function mirror(owner: string, delayMs: number): { stop(): Promise<void> } {
      let stopped = false;
      let last = '';
      const copies: Promise<void>[] = [];
      const sync = async (delay: number) => {
        const values = await served(ns1, owner);
        if (values.join() === last) return;
        last = values.join();
        copies.push(
          sleep(delay).then(() =>
            runUpdateTool(
              'knsupdate',
              ns2,
              key,
              [
                `update delete ${owner} TXT`,
                ...values.map((v) => `update add ${owner} 60 TXT "${v}"`),
              ],
              ORG,
            ),
          ),
        );
      };
      const loop = (async () => {
        while (!stopped) {
          await sync(delayMs);
          await sleep(200);
        }
      })();
      return {
        // Ends with ns2 as ns1 is now (a removal just before stop() is copied too).
        async stop() {
          stopped = true;
          await loop;
          await Promise.all(copies);
          await sync(0);
          await Promise.all(copies);
        },
      };
    }

    function setup(o: {
      names: string[];
      provider: 'knot' | 'pdns';
      dns01?: string;
      propagation?: boolean;
    }): { dir: string; config: string } {
      const dir = makeTempDir('acme-dns01');
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'state_dir: state',
          'ttl: 60',
          'verify:',
          `  resolver: "${resolver}"`,
          `  authoritative_port: ${o.provider === 'knot' ? ns1.port : pdns.dnsPort}`,
          `  propagation: ${o.propagation ?? true}`,
          '  probe: false',
          'providers:',
          '  local: {type: zonefile, path: zone.db, create: true}',
          '  knot:',
          '    type: rfc2136',
          `    server: ${ns1.host}`,
          `    port: ${ns1.port}`,
          `    tsig_name: ${key.name}`,
          `    tsig_secret: ${key.secret}`,
          '  pdns:',
          '    type: powerdns',
          `    url: ${pdns.apiUrl}`,
          `    api_key: ${pdns.apiKey}`,
          'services:',
          '  web:',
          `    host: ${o.names[0]!.replace(/^\*\./, '')}`,
          '    ports: [443]',
          '    provider: local',
          '    issuers: none',
          '    records: ["3 1 1"]',
          '    certificates:',
          '      - lineage: state/acme/web/ecdsa-p256',
          '    acme:',
          `      directory: ${pebble.directoryUrl}`,
          `      names: [${o.names.map((n) => JSON.stringify(n)).join(', ')}]`,
          `      challenge: {dns01: {provider: ${o.provider}${o.dns01 ? `, ${o.dns01}` : ''}}}`,
          `      ca_bundle: ${JSON.stringify(pebble.tlsCaPath)}`,
          '',
        ].join('\n'),
      );
      return { dir, config };
    }

    const renew = (config: string, onSpawn?: (pid: number) => void) =>
      runAsync([process.execPath, CLI_PATH, '--config', config, 'renew'], {
        timeoutMs: 180_000,
        ...(onSpawn ? { onSpawn } : {}),
      });

    /** The issued leaf: its key is the lineage's key (openssl), its names are `names`. */
    function expectIssued(dir: string, names: string[]): void {
      const lineage = join(dir, 'state/acme/web/ecdsa-p256');
      const openssl = toolPath('openssl', 'openssl');
      const pub = (args: string[]) => execFileSync(openssl, args, { encoding: 'utf8' });
      expect(pub(['x509', '-in', join(lineage, 'cert.pem'), '-noout', '-pubkey'])).toBe(
        pub(['pkey', '-in', join(lineage, 'privkey.pem'), '-pubout']),
      );
      const san = pub([
        'x509',
        '-in',
        join(lineage, 'cert.pem'),
        '-noout',
        '-ext',
        'subjectAltName',
      ]);
      for (const n of names) expect(san).toContain(`DNS:${n}`);
      expect(new X509Certificate(readFileSync(join(lineage, 'cert.pem'))).subjectAltName).toBe(
        names.map((n) => `DNS:${n}`).join(', '),
      );
    }

    /** Nothing left to remove: the pending record is gone. */
    const pendingLeft = (dir: string) => existsSync(join(dir, 'state/acme/web/dns01-pending.json'));

    it('Knot over RFC 2136: waits until ns2 serves the TXT record, issues, removes it', async () => {
      const owner = `_acme-challenge.a1.${ORG}`;
      const m = mirror(owner, 3000);
      const { dir, config } = setup({ names: ['a1.example.org'], provider: 'knot' });
      const r = await renew(config);
      await m.stop();
      expect(r.code, showRun(r)).toBe(0);
      expectIssued(dir, ['a1.example.org']);
      // tlsa saw ns2 lag and waited for it before answering the challenge.
      expect(r.stderr).toMatch(
        /waiting for the authoritative servers to serve the DNS-01 TXT records: _acme-challenge\.a1\.example\.org\. ns2\.example\.org\. \(127\.0\.0\.2\) lacks 1 of 1 value/,
      );
      expect(await served(ns1, owner)).toEqual([]);
      expect(await served(ns2, owner)).toEqual([]);
      expect(pendingLeft(dir)).toBe(false);
    }, 240_000);

    it('a wildcard and its base name: two values at one owner, both validated by DNS-01', async () => {
      const owner = `_acme-challenge.w.${ORG}`;
      const m = mirror(owner, 500);
      const { dir, config } = setup({
        names: ['w.example.org', '*.w.example.org'],
        provider: 'knot',
      });
      const r = await renew(config);
      await m.stop();
      expect(r.code, showRun(r)).toBe(0);
      expect(r.stderr).toMatch(
        /DNS-01: 2 TXT value\(s\) written at _acme-challenge\.w\.example\.org\./,
      );
      expectIssued(dir, ['w.example.org', '*.w.example.org']);
      expect(await served(ns1, owner)).toEqual([]);
    }, 240_000);

    it('without the wait, pebble asks ns2, which lacks the record: exit 3, the TXT removed', async () => {
      const owner = `_acme-challenge.f1.${ORG}`;
      const { dir, config } = setup({
        names: ['f1.example.org'],
        provider: 'knot',
        propagation: false,
      });
      const r = await renew(config);
      expect(r.code, showRun(r)).toBe(3);
      expect(r.stderr).toMatch(/dns-01 challenge for f1\.example\.org failed/);
      expect(existsSync(join(dir, 'state/acme/web/ecdsa-p256'))).toBe(false);
      expect(await served(ns1, owner)).toEqual([]);
      expect(pendingLeft(dir)).toBe(false);
    }, 240_000);

    it('a record that never reaches ns2: the wait times out naming ns2, exit 3, the TXT removed', async () => {
      const owner = `_acme-challenge.t1.${ORG}`;
      const { dir, config } = setup({
        names: ['t1.example.org'],
        provider: 'knot',
        dns01: 'propagation_timeout_s: 4',
      });
      const r = await renew(config);
      expect(r.code, showRun(r)).toBe(3);
      expect(r.stderr).toMatch(
        /the DNS-01 TXT records are not on every authoritative server after \d+ s: _acme-challenge\.t1\.example\.org\. ns2\.example\.org\. \(127\.0\.0\.2\) lacks 1 of 1 value/,
      );
      expect(r.stderr).not.toMatch(/ns1\.example\.org\. \(127\.0\.0\.1\) lacks/);
      expect(existsSync(join(dir, 'state/acme/web/ecdsa-p256'))).toBe(false);
      expect(await served(ns1, owner)).toEqual([]);
      expect(pendingLeft(dir)).toBe(false);
    }, 240_000);

    it('SIGTERM during the wait: the TXT record is removed before the process dies', async () => {
      const owner = `_acme-challenge.s1.${ORG}`;
      const { dir, config } = setup({ names: ['s1.example.org'], provider: 'knot' });
      let pid = 0;
      const running = renew(config, (p) => {
        pid = p;
      });
      let seen: string[] = [];
      for (let i = 0; i < 300 && !seen.length; i++) {
        await sleep(200);
        seen = await served(ns1, owner);
      }
      expect(seen).toHaveLength(1);
      await sleep(1000);
      process.kill(pid, 'SIGTERM');
      const r = await running;
      expect(r.signal, showRun(r)).toBe('SIGTERM');
      expect(await served(ns1, owner)).toEqual([]);
      expect(pendingLeft(dir)).toBe(false);
    }, 240_000);

    it('PowerDNS over its API: issued; a foreign value at the owner kept, ours removed', async () => {
      const owner = `_acme-challenge.mx.${NET}`;
      await pdnsReplace(pdns, NET, owner, 'TXT', 60, [{ content: '"foreign-value"' }]);
      const { dir, config } = setup({ names: ['mx.example.net'], provider: 'pdns' });
      const r = await renew(config);
      expect(r.code, showRun(r)).toBe(0);
      expect(r.stderr).toMatch(
        /DNS-01: 1 TXT value\(s\) written at _acme-challenge\.mx\.example\.net\./,
      );
      expectIssued(dir, ['mx.example.net']);
      expect(await served({ host: pdns.host, port: pdns.dnsPort }, owner)).toEqual([
        'foreign-value',
      ]);
      expect(pendingLeft(dir)).toBe(false);
    }, 240_000);
  },
);
