/**
 * End to end (issue 9, point 1): a rollover waits for the TTL that caches may really hold, not
 * only tlsa's own. Same lab as rollover.test.ts, all on loopback, all started here:
 *
 *   pebble ──HTTP-01──▶ certbot ──deploy hook──▶ tlsa ──zonefile──▶ Knot (signed example.test.)
 *     ◀── unbound (validating, cache-max-ttl 120) ◀── posttls-finger -l dane, polled ~1/s
 *   tlsa staged install ──▶ Postfix (second instance), reloaded by tlsa.
 *
 * tlsa's TTL is 10 s. Another writer keeps a TLSA record of its own at the owner name (a
 * "foreign" record). Knot serves one TTL per RRset, the one of the RRset's last line in the zone
 * file, so whoever writes last sets it: before the renewal the other writer leaves the RRset at
 * TTL 30, and tlsa's write brings it back to 10, which is all the servers show afterwards.
 * Just before tlsa's write (in the deploy hook's wrapper) unbound's cache is flushed and
 * primed: it holds the RRset without the new records for 30 s. The renewal comes from a
 * restarted pebble (new intermediate), so the new chain matches none of the old records.
 * Counting 2×10 s from propagation installs the new chain ~20 s after the write, while unbound
 * still serves the old RRset for ~28 s: posttls-finger says Untrusted for several seconds. The
 * wait must count from the 30 s that were served before the write.
 *
 *   case 1: a foreign record at TTL 30 is added by the other writer after tlsa's first write;
 *   case 2: the existing foreign record's TTL is raised from 10 to 30 after tlsa's writes.
 *
 * Then case 1 again with PowerDNS (API, whole-RRset writes: the same reset) in place of Knot.
 *
 * Needs root (Postfix, mount namespaces), a free 127.0.53.x:53 and the Debian packages knot
 * knot-dnsutils pdns-server pdns-backend-sqlite3 sqlite3 unbound pebble certbot postfix
 * openssl; takes about 8 minutes.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT, requireBuiltCli } from '../helpers/cli.js';
import { makeCertbot, type Certbot, type CertbotRun } from '../lab/certbot.js';
import { query, rdataOf } from '../lab/dig.js';
import { startKnot } from '../lab/knot.js';
import {
  freeLoopback53,
  labDescribe,
  makeTempDir,
  shellQuote,
  sleep,
  stopAll,
  toolPath,
} from '../lab/lab.js';
import { startPebble, type PebbleServer } from '../lab/pebble.js';
import { POWERDNS_TOOLS, startPowerDns } from '../lab/powerdns.js';
import { startPostfix, type PostfixServer } from '../lab/postfix.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';
import { DanePoller, makeDaneFinger } from './dane-finger.js';

const ZONE = 'example.test.';
const HOST = 'mx.example.test';
const TTL = 10;
const FOREIGN_TTL = 30;
const HOOK = join(REPO_ROOT, 'hooks', 'certbot-deploy');

interface Run {
  argv: string[];
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}
const showRun = (r: Run): string =>
  `$ ${r.argv.join(' ')}\nexit ${r.code} after ${r.ms} ms\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

/** Spawn without blocking the event loop (the poller keeps running). */
function runAsync(
  argv: string[],
  env: Record<string, string> = {},
  timeoutMs = 90_000,
): Promise<Run> {
  const started = Date.now();
  return new Promise((resolveRun) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ argv, code, stdout, stderr, ms: Date.now() - started });
    });
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const pemCerts = (text: string): X509Certificate[] =>
  (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );
/** The `3 1 1` of the leaf and the `2 1 1` of its issuer. */
function chainRecords(fullchainPem: string): { ee: string; ta: string } {
  const [leaf, issuer] = pemCerts(fullchainPem);
  if (!leaf || !issuer) throw new Error('chain without leaf and issuer');
  const spki = (c: X509Certificate) =>
    sha256(c.publicKey.export({ type: 'spki', format: 'der' }) as Buffer);
  return { ee: `3 1 1 ${spki(leaf)}`, ta: `2 1 1 ${spki(issuer)}` };
}

/** The authoritative side: Knot with tlsa's zonefile provider, or PowerDNS with its API. */
interface Authoritative {
  host: string;
  port: number;
  dsRecords(): string[];
  /** YAML lines of tlsa's provider "auth" (under providers:, indented by 4). */
  providerYaml: string[];
  /** The other writer: its record at `ttl`; afterwards the servers serve the RRset at `ttl`. */
  otherWriterSets(owner: string, rdata: string, ttl: number): Promise<void>;
}

async function knotAuthoritative(dir: string): Promise<Authoritative> {
  const fragmentPath = join(dir, 'tlsa.fragment');
  writeFileSync(fragmentPath, '');
  const zoneFile = join(dir, 'example.test.zone');
  writeFileSync(
    zoneFile,
    [
      `$ORIGIN ${ZONE}`,
      '$TTL 300',
      `@ 300 IN SOA ns1.${ZONE} hostmaster.${ZONE} 1 3600 600 86400 60`,
      `@ 300 IN NS ns1.${ZONE}`,
      'ns1 300 IN A 127.0.0.1',
      'mx 300 IN A 127.0.0.1',
      `$INCLUDE ${fragmentPath}`,
      '',
    ].join('\n'),
  );
  const knot = await startKnot({ zones: [{ name: ZONE, zoneFilePath: zoneFile, dnssec: true }] });
  return {
    host: knot.host,
    port: knot.port,
    dsRecords: () => knot.dsRecords(ZONE),
    providerYaml: [
      'type: zonefile',
      `path: ${JSON.stringify(fragmentPath)}`,
      `reload: ${JSON.stringify(knot.reloadCommand(ZONE))}`,
    ],
    // Knot serves the RRset with the TTL of its last line in the zone file: the other writer's
    // script deletes its line and appends it again.
    async otherWriterSets(o, rdata, ttl) {
      const lines = readFileSync(fragmentPath, 'utf8')
        .split('\n')
        .filter((l) => l && !l.includes(rdata));
      writeFileSync(
        fragmentPath,
        `${[...lines, `${o} ${ttl} IN TLSA ${rdata} ; the other writer's`].join('\n')}\n`,
      );
      knot.reload(ZONE);
    },
  };
}

async function powerDnsAuthoritative(): Promise<Authoritative> {
  const pdns = await startPowerDns({ zones: [{ name: ZONE, dnssec: true }] });
  const patch = async (rrsets: unknown[]) => {
    const r = await pdns.api('PATCH', `/zones/${ZONE}`, { rrsets });
    if (r.status !== 204) throw new Error(`pdns PATCH: HTTP ${r.status} ${r.text}`);
  };
  await patch([
    {
      name: `mx.${ZONE}`,
      type: 'A',
      ttl: 300,
      changetype: 'REPLACE',
      records: [{ content: '127.0.0.1', disabled: false }],
    },
  ]);
  return {
    host: pdns.host,
    port: pdns.dnsPort,
    dsRecords: () => pdns.dsRecords(ZONE),
    providerYaml: [
      'type: powerdns',
      `url: ${JSON.stringify(pdns.apiUrl)}`,
      `api_key: ${JSON.stringify(pdns.apiKey)}`,
      `zone: ${ZONE}`,
    ],
    // Through the API an RRset has one TTL: the other writer replaces it with its record added.
    async otherWriterSets(o, rdata, ttl) {
      const zone = (await pdns.api('GET', `/zones/${ZONE}`)).body as {
        rrsets: { name: string; type: string; records: { content: string; disabled: boolean }[] }[];
      };
      const current = zone.rrsets.find((x) => x.name === o && x.type === 'TLSA')?.records ?? [];
      const norm = (c: string) => c.toLowerCase().replace(/\s+/g, ' ');
      const records = [
        ...current.filter((x) => norm(x.content) !== rdata),
        { content: rdata, disabled: false },
      ];
      await patch([{ name: o, type: 'TLSA', ttl, changetype: 'REPLACE', records }]);
    },
  };
}

interface StateJson {
  records: { usage: number; selector: number; matching: number; data: string; status: string }[];
  ttls?: Record<string, { ttl: number; source: string; served: string; foreign?: boolean }[]>;
}

const COMMON_TOOLS = [
  ['kdig', 'knot-dnsutils'],
  ['unbound', 'unbound'],
  ['unbound-control', 'unbound'],
  ['unbound-checkconf', 'unbound'],
  ['pebble', 'pebble'],
  ['certbot', 'certbot'],
  ['postfix', 'postfix'],
  ['postconf', 'postfix'],
  ['posttls-finger', 'postfix'],
  ['setsid', 'util-linux'],
  ['unshare', 'util-linux'],
  ['openssl', 'openssl'],
] as const;

function ttlSuite(kind: 'Knot' | 'PowerDNS', cases: (1 | 2)[]): void {
  labDescribe(
    `e2e (${kind}): the rollover waits for the TTL caches may hold (foreign record at a higher TTL), posttls-finger throughout`,
    [
      ...COMMON_TOOLS,
      ...(kind === 'Knot'
        ? ([
            ['knotd', 'knot'],
            ['knotc', 'knot'],
            ['keymgr', 'knot'],
          ] as const)
        : POWERDNS_TOOLS),
    ],
    () => {
      const suiteStart = Date.now();
      let dir: string;
      let auth: Authoritative;
      let unbound: UnboundServer;
      let pebble: PebbleServer;
      let certbot: Certbot;
      let postfix: PostfixServer;
      let poller: DanePoller;
      let owner: string;
      let cfgPath: string;
      let stateDir: string;
      let installDir: string;
      let hookWrapper: string;
      const note = (s: string): void =>
        console.log(`[${kind} ${((Date.now() - suiteStart) / 1000).toFixed(1)} s] ${s}`);
      const foreign1 = `3 1 1 ${sha256(Buffer.from("the other writer's first record"))}`;
      const foreign2 = `3 1 1 ${sha256(Buffer.from("the other writer's second record"))}`;

      const tlsa = (args: string[]): Promise<Run> =>
        runAsync([process.execPath, CLI_PATH, '--config', cfgPath, ...args], { TLSA_DEBUG: '1' });
      const readState = (): StateJson =>
        JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateJson;
      const livePem = (): string =>
        readFileSync(join(certbot.liveDir('mx'), 'fullchain.pem'), 'utf8');
      const installedPem = (): string | undefined => {
        const f = join(installDir, 'mx', 'current', 'fullchain.pem');
        return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
      };
      const isInstalled = (): boolean => installedPem() === livePem();
      /** What the authoritative server serves at the owner: the RDATA and the RRset's TTL. */
      const onAuth = async (): Promise<{ rdata: string[]; ttl: number }> => {
        const r = await query({
          server: auth.host,
          port: auth.port,
          name: owner,
          type: 'TLSA',
          recurse: false,
          timeoutS: 2,
          retries: 1,
        });
        const tlsaRrs = r.records.filter((x) => x.type === 'TLSA');
        return {
          rdata: rdataOf(r, 'TLSA')
            .map((x) => x.toLowerCase().replace(/\s+/g, ' '))
            .sort(),
          ttl: Math.max(0, ...tlsaRrs.map((x) => x.ttl)),
        };
      };
      const foreignOnes = new Set<string>();

      async function otherWriterSets(rdata: string, ttl: number): Promise<void> {
        await auth.otherWriterSets(owner, rdata, ttl);
        foreignOnes.add(rdata);
        expect((await onAuth()).ttl, `${kind} serves the RRset with the other writer's TTL`).toBe(
          ttl,
        );
      }

      /** Installed = certbot's chain; the state and the server hold exactly its records (and the
       *  other writer's), all published. */
      async function converged(): Promise<boolean> {
        if (!isInstalled()) return false;
        const { ee, ta } = chainRecords(livePem());
        const st = readState();
        if (st.records.length !== 2 || st.records.some((r) => r.status !== 'published'))
          return false;
        if (
          ![ee, ta].every((x) =>
            st.records.some(
              (r) => `${r.usage} ${r.selector} ${r.matching} ${r.data.toLowerCase()}` === x,
            ),
          )
        )
          return false;
        return (
          JSON.stringify((await onAuth()).rdata) === JSON.stringify([ee, ta, ...foreignOnes].sort())
        );
      }

      /** `tlsa daemon --once` about once a second until converged. */
      async function drive(label: string, timeoutMs: number): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const r = await tlsa(['daemon', '--once']);
          if (r.code !== 0)
            note(
              `${label}: daemon --once exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
            );
          if (await converged()) return;
          if (Date.now() > deadline)
            throw new Error(
              `${label}: not converged after ${timeoutMs} ms\n${showRun(r)}\n--- served ---\n${(await onAuth()).rdata.join('\n')}`,
            );
          await sleep(1000);
        }
      }

      const theHook = (r: CertbotRun) => {
        expect(r.hooks.length, r.output).toBe(1);
        return r.hooks[0]!;
      };

      /** pebble restarted (new intermediate), unbound primed just before tlsa's write, renewal;
       *  then the daemon until converged. Every poll of the case must verify. */
      async function rolloverWithPrimedCache(label: string): Promise<void> {
        poller.scenario = label;
        const before = chainRecords(livePem());
        expect(
          (await onAuth()).ttl,
          `before the renewal, ${kind} serves the RRset with the higher TTL`,
        ).toBe(FOREIGN_TTL);
        await pebble.restart();
        const account = await certbot.resetAccount();
        const r = await certbot.renew({
          certName: 'mx',
          reuseKey: false,
          account,
          deployHook: hookWrapper,
          env: { TLSA_CONFIG: cfgPath },
        });
        expect(r.code, r.output).toBe(0);
        const hook = theHook(r);
        expect(hook.code, r.output).toBe(0);
        const after = chainRecords(livePem());
        expect(after.ta, 'a new intermediate').not.toBe(before.ta);
        expect(isInstalled(), 'staged: nothing live matches the new chain').toBe(false);
        note(`${label}: renewed; hook ${hook.ms} ms: ${hook.stdout.replace(/\n/g, ' | ')}`);
        // tlsa's write reset the RRset's TTL: afterwards the servers show only tlsa's.
        const served = await onAuth();
        expect(served.rdata).toEqual(expect.arrayContaining([after.ee, after.ta]));
        expect(served.ttl).toBe(TTL);
        // unbound still holds the RRset it cached just before the write, without the new records.
        const cached = await query({
          server: unbound.host,
          port: unbound.port,
          name: owner,
          type: 'TLSA',
          dnssec: true,
        });
        const cachedRdata = rdataOf(cached, 'TLSA').map((x) =>
          x.toLowerCase().replace(/\s+/g, ' '),
        );
        expect(
          cachedRdata,
          'the cache primed before the write lacks the new records',
        ).not.toContain(after.ee);
        note(
          `${label}: unbound's cached RRset: TTL left ${cached.records.find((x) => x.type === 'TLSA')?.ttl} s`,
        );

        // The engine remembered the TTL served before its write, and status says so (soft: the
        // rollover goes on, so that a failure here still shows what DANE clients saw).
        const facts = readState().ttls?.[owner] ?? [];
        expect.soft(facts).toContainEqual(
          expect.objectContaining({
            ttl: FOREIGN_TTL,
            source: 'before-write',
            served: 'rrset',
            foreign: true,
          }),
        );
        const status = await tlsa(['status', '--json']);
        expect(status.code, showRun(status)).toBe(0);
        const pending = (
          JSON.parse(status.stdout) as {
            records: { rdata: string; phase: string; wait?: { ttl: number; why: string } | null }[];
          }
        ).records.filter((x) => x.rdata.toLowerCase() === after.ee);
        expect
          .soft(
            pending.map((x) => [x.phase, x.wait?.ttl]),
            status.stdout,
          )
          .toEqual([['pending', FOREIGN_TTL]]);
        expect
          .soft(pending[0]?.wait?.why)
          .toBe(
            `the RRset was served with TTL ${FOREIGN_TTL} before tlsa's write (foreign record)`,
          );

        const t0 = Date.now();
        await drive(label, 180_000);
        note(`${label}: converged ${((Date.now() - t0) / 1000).toFixed(1)} s after the hook`);
        const polls = poller.of(label);
        note(
          `${label}: ${polls.length} posttls-finger polls, ${polls.filter((x) => !x.verified).length} not verified`,
        );
        expect(polls.length).toBeGreaterThan(20);
        expect(
          polls
            .filter((x) => !x.verified)
            .map((x) => `${x.at.toISOString()} ${x.trust ?? '-'}:\n${x.output}`),
        ).toEqual([]);
      }

      beforeAll(async () => {
        requireBuiltCli();
        dir = makeTempDir('e2e-ttl');
        chmodSync(dir, 0o755);
        stateDir = join(dir, 'state');
        installDir = join(dir, 'installed');
        cfgPath = join(dir, 'tlsa.yaml');

        const openssl = toolPath('openssl', 'openssl');
        const tmpKey = join(dir, 'throwaway-key.pem');
        const tmpCert = join(dir, 'throwaway-cert.pem');
        execFileSync(
          openssl,
          [
            'req',
            '-x509',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:P-256',
            '-nodes',
            '-keyout',
            tmpKey,
            '-out',
            tmpCert,
            '-days',
            '2',
            '-subj',
            `/CN=${HOST}`,
          ],
          { stdio: 'ignore' },
        );
        postfix = await startPostfix({
          chains: [{ keyPath: tmpKey, fullchainPath: tmpCert }],
          hostname: HOST,
        });
        const port = postfix.smtpPort;
        owner = `_${port}._tcp.${HOST}.`;
        execFileSync(toolPath('postconf', 'postfix'), [
          '-c',
          postfix.configDir,
          '-e',
          `smtpd_tls_chain_files = ${join(installDir, 'mx', 'current', 'combined.pem')}`,
        ]);
        const postfixReload = `${shellQuote(toolPath('postfix', 'postfix'))} -c ${shellQuote(postfix.configDir)} reload`;

        auth = kind === 'Knot' ? await knotAuthoritative(dir) : await powerDnsAuthoritative();
        const glibcResolver = await freeLoopback53();
        unbound = await startUnbound({
          stubs: [{ zone: ZONE, port: auth.port }],
          trustAnchors: auth.dsRecords(),
          extraListen: glibcResolver,
          cacheMaxTtl: 120,
          cacheMaxNegativeTtl: 2,
        });
        pebble = await startPebble({ dnsServer: `127.0.0.1:${unbound.port}` });
        certbot = makeCertbot({
          directoryUrl: pebble.directoryUrl,
          caBundle: pebble.tlsCaPath,
          httpPort: pebble.httpPort,
          dir: join(dir, 'certbot'),
        });

        // The deploy hook, with unbound's cache flushed and primed right before tlsa starts.
        hookWrapper = join(dir, 'certbot-deploy-priming');
        const control = `${shellQuote(toolPath('unbound-control', 'unbound'))} -c ${shellQuote(unbound.confPath)}`;
        writeFileSync(
          hookWrapper,
          [
            '#!/bin/sh',
            `${control} flush_zone ${ZONE} >/dev/null && ${control} flush_requestlist >/dev/null`,
            `${shellQuote(toolPath('kdig', 'knot-dnsutils'))} @127.0.0.1 -p ${unbound.port} +dnssec ${owner} TLSA >/dev/null`,
            `exec ${shellQuote(HOOK)} "$@"`,
            '',
          ].join('\n'),
          { mode: 0o755 },
        );

        writeFileSync(
          cfgPath,
          [
            `state_dir: ${JSON.stringify(stateDir)}`,
            `ttl: ${TTL}`,
            'verify:',
            `  resolver: "127.0.0.1:${unbound.port}"`,
            `  authoritative_port: ${auth.port}`,
            '  propagation: true',
            '  probe: true',
            '  timeout_s: 3',
            'providers:',
            '  auth:',
            ...auth.providerYaml.map((l) => `    ${l}`),
            'services:',
            '  mx:',
            `    host: ${HOST}`,
            `    ports: [${port}]`,
            '    protocol: smtp',
            '    provider: auth',
            `    ttl: ${TTL}`,
            '    issuers: none',
            '    certificates:',
            `      - lineage: ${JSON.stringify(certbot.liveDir('mx'))}`,
            '    install:',
            `      dir: ${JSON.stringify(installDir)}`,
            `      reload: ${JSON.stringify(postfixReload)}`,
            '',
          ].join('\n'),
        );
        const finger = makeDaneFinger({ dir, zone: ZONE, resolverAddress: glibcResolver });
        poller = new DanePoller(finger, HOST, port, 1000);
        await otherWriterSets(foreign1, TTL);
        note(
          `lab up: ${kind} :${auth.port}, unbound :${unbound.port} + ${glibcResolver}:53, pebble :${pebble.port}, Postfix :${port}; owner ${owner}`,
        );
      }, 120_000);

      afterAll(async () => {
        await poller?.stop();
        await postfix?.stop();
        await stopAll();
      }, 60_000);

      it('first issuance: published beside the foreign record and installed; every poll verifies', async () => {
        poller.scenario = 'first';
        const r = await certbot.certonly({
          certName: 'mx',
          domains: [HOST],
          keyType: 'ecdsa',
          deployHook: HOOK,
          env: { TLSA_CONFIG: cfgPath },
        });
        expect(r.code, r.output).toBe(0);
        expect(theHook(r).code, r.output).toBe(0);
        expect(isInstalled()).toBe(true);
        poller.start();
        await drive('first', 60_000);
        expect(
          poller
            .of('first')
            .filter((x) => !x.verified)
            .map((x) => x.output),
        ).toEqual([]);
      }, 240_000);

      if (cases.includes(1))
        it("case 1: a foreign record at TTL 30 joined the RRset after tlsa's first write; renewal with a new intermediate: 0 failed polls", async () => {
          await otherWriterSets(foreign2, FOREIGN_TTL);
          await sleep(FOREIGN_TTL * 1000); // caches holding the TTL-10 RRset are gone
          await rolloverWithPrimedCache('case 1');
        }, 400_000);

      if (cases.includes(2))
        it("case 2: the foreign record's TTL is raised from 10 to 30 after tlsa's writes; renewal: 0 failed polls", async () => {
          expect((await onAuth()).ttl, "tlsa's writes reset the RRset to its own TTL").toBe(TTL);
          await otherWriterSets(foreign1, FOREIGN_TTL);
          await sleep(TTL * 1000);
          await rolloverWithPrimedCache('case 2');
        }, 400_000);

      it('the foreign records survived; every posttls-finger poll of the whole run verified', async () => {
        await poller.stop();
        const served = await onAuth();
        expect(served.rdata).toEqual(expect.arrayContaining([...foreignOnes]));
        const bad = poller.results.filter((x) => !x.verified);
        note(`posttls-finger: ${poller.results.length} polls, ${bad.length} not verified`);
        expect(bad.map((x) => `[${x.scenario}] ${x.at.toISOString()} ${x.trust ?? '-'}`)).toEqual(
          [],
        );
      }, 60_000);
    },
  );
}

ttlSuite('Knot', [1, 2]);
ttlSuite('PowerDNS', [1]);
