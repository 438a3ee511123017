/**
 * `tlsa check` (the built CLI) against real servers, with two independent DANE clients giving
 * their verdict on the same server in the same test:
 *
 *  - posttls-finger `-c -l dane` (Postfix's own DANE client) in a private mount namespace whose
 *    /etc/resolv.conf points at a port-53 listener of the lab's unbound, `dnssec_probe = ns:test`,
 *    `smtp_dns_support_level = dnssec` (test/lab/dane-finger.ts writes that main.cf);
 *  - `openssl s_client -dane_tlsa_domain … -dane_tlsa_rrdata … -verify_return_error`, given the
 *    TLSA records that kdig got from the same resolver WITH the AD bit (openssl does no DNS; kdig
 *    is its DNSSEC half, so an insecure, bogus or unvalidated RRset gives it no records).
 *
 * The lab: Knot serves a signed `test.` (the only trust anchor) and its children
 *   sec.test.       signed, DS in test.: mx A 127.0.0.1, TLSA at _P._tcp.mx (P = Postfix's
 *                   STARTTLS port): 3 1 1 of the RSA leaf + 2 1 1 of the ECDSA issuer; the same
 *                   RRset at the wrappermode port and at the ports of three broken fake servers;
 *                   plain.sec.test. A 127.0.0.1 without any TLSA
 *   wrong.test.     signed, DS: TLSA for another key and another issuer (mismatch)
 *   insecure.test.  unsigned, no DS: the right TLSA, but DNSSEC does not cover it
 *   bogus.test.     signed, a DS that matches no key: the right TLSA, validation fails
 *   lag.test.       signed, DS, NS ns1 (127.0.0.1) and ns2 (127.0.0.2): a second Knot on
 *                   127.0.0.2 (same port) serves an older copy without the 2 1 1 record
 * unbound validates (trust anchor: the DS of test.); a second unbound only iterates. Postfix
 * smtpd serves an RSA and an ECDSA chain at once.
 *
 * The port-53 listeners are NOT 127.0.0.2:53 (test/e2e/rollover.test.ts binds that one and
 * vitest runs files in parallel): each unbound gets a free 127.0.53.x:53.
 */
import { spawn } from 'node:child_process';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { outputSchema } from '../../src/cli/json-contract.js';
import { CLI_PATH, requireBuiltCli, stackLines } from '../helpers/cli.js';
import {
  makeCa,
  makeLeaf,
  opensslSpkiSha256,
  type CaHandle,
  type LeafHandle,
} from '../helpers/pki.js';
import { makeDaneFinger, type DaneFinger } from '../lab/dane-finger.js';
import { query as kdig, rdataOf } from '../lab/dig.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import {
  freeLoopback53,
  freePort,
  labDescribe,
  makeTempDir,
  runningDaemons,
  stopAll,
  toolPath,
} from '../lab/lab.js';
import { POSTFIX_TOOLS, startPostfix, type PostfixServer } from '../lab/postfix.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';

// ---------------------------------------------------------------------------------------------
// Helpers

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  all: string;
  ms: number;
}

/** The built CLI as a child process, asynchronously (so the other clients can run alongside). */
function tlsa(args: string[], timeoutMs = 30_000): Promise<Run> {
  return spawnRun(process.execPath, [CLI_PATH, ...args], {}, timeoutMs);
}

function spawnRun(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<Run> {
  const env2: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete env2.TLSA_CONFIG;
  delete env2.TLSA_DEBUG;
  delete env2.NODE_OPTIONS;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(file, args, { env: env2, stdio: ['ignore', 'pipe', 'pipe'] });
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
      resolve({ code, stdout, stderr, all: stdout + stderr, ms: Date.now() - started });
    });
  });
}

const show = (r: Run): string =>
  `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

interface ProbeRowJson {
  address: string;
  keyType: 'rsa' | 'ecdsa';
  ok: boolean;
  notServed?: boolean;
  matched?: string;
  leaf?: string;
  problems: string[];
}
interface ReportJson {
  host: string;
  port: number;
  owner: string;
  dnssec: { tlsa: string; address: string; message: string };
  records: string[];
  authoritative: { inSync: boolean; summary: string; lagging: string[] };
  probes: ProbeRowJson[];
  failures: string[];
  warnings: string[];
  ok: boolean;
}
/** `check --json`'s envelope, valid against its schema (docs/json/check.schema.json). */
function checkJson(r: Run): { ok: boolean; exitCode: number; reports: ReportJson[] } {
  let parsed: { ok: boolean; exitCode: number; reports: ReportJson[] };
  try {
    parsed = JSON.parse(r.stdout) as typeof parsed;
  } catch {
    throw new Error(`tlsa check --json printed no JSON\n${show(r)}`);
  }
  const valid = outputSchema('check').safeParse(parsed);
  expect(valid.success, `${valid.error?.message}\n${show(r)}`).toBe(true);
  expect(parsed, show(r)).toMatchObject({ command: 'check', exitCode: r.code });
  return parsed;
}
function reportOf(r: Run): ReportJson {
  const parsed = checkJson(r);
  expect(parsed.reports, show(r)).toHaveLength(1);
  return parsed.reports[0]!;
}

/** A throwaway TCP server on 127.0.0.1 that misbehaves in one way. */
async function fakeServer(port: number, onConnection: (s: Socket) => void): Promise<Server> {
  const srv = createTcpServer((s) => {
    s.on('error', () => {
      /* the client goes away */
    });
    onConnection(s);
  });
  await new Promise<void>((res, rej) => {
    srv.once('error', rej);
    srv.listen({ host: '127.0.0.1', port }, () => res());
  });
  return srv;
}

/** A minimal SMTP dialogue: greeting, EHLO (with or without STARTTLS), then `onStarttls`. */
function smtpFake(offerStarttls: boolean, onStarttls: (s: Socket) => void): (s: Socket) => void {
  return (s) => {
    s.write('220 fake.test ESMTP fake\r\n');
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO')
          s.write(
            offerStarttls
              ? '250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n'
              : '250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n',
          );
        else if (verb === 'STARTTLS' && offerStarttls) onStarttls(s);
        else if (verb === 'QUIT') s.end('221 bye\r\n');
        else s.write('502 5.5.2 not implemented\r\n');
      }
    });
  };
}

const SIGALGS = {
  rsa: 'RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512',
  ecdsa: 'ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512',
} as const;
type KeyType = keyof typeof SIGALGS;
const KEY_TYPES: KeyType[] = ['rsa', 'ecdsa'];

interface Verdict {
  verified: boolean;
  detail: string;
  output: string;
}

/** posttls-finger -c -l dane in a private mount namespace (its own resolv.conf), optionally -w. */
function finger(
  f: DaneFinger,
  host: string,
  port: number,
  keyType: KeyType,
  wrapper = false,
): Promise<Verdict> {
  const bin = toolPath('posttls-finger', 'postfix');
  const args = ['-c', '-l', 'dane', '-L', 'routine,certmatch,summary', '-d', 'sha256'];
  if (wrapper) args.push('-w');
  args.push(
    '-o',
    `tls_config_file=${join(f.configDir, `sigalgs-${keyType}.cnf`)}`,
    '-o',
    'tls_config_name=tlsa_lab',
    `[${host}]:${port}`,
  );
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `mount --bind ${q(f.resolvConf)} /etc/resolv.conf && exec ${q(bin)} ${args.map(q).join(' ')}`;
  return spawnRun(
    toolPath('unshare', 'util-linux'),
    ['--mount', '--propagation', 'private', 'sh', '-c', script],
    { MAIL_CONFIG: f.configDir },
    30_000,
  ).then((r) => {
    const est = /(\w+) TLS connection established to /.exec(r.all);
    const m = /Matched DANE (EE|TA) (?:public key|certificate) at depth (\d+)/.exec(r.all);
    const verified = /Verified TLS connection established/.test(r.all);
    const lookup = /Name service error for name=\S+ type=(\w+): ([^\n]+)/.exec(r.all);
    const detail = verified
      ? `Verified${m ? ` (${m[1]} at depth ${m[2]})` : ''}`
      : est
        ? est[1]!
        : lookup
          ? `no connection: ${lookup[1]} lookup: ${lookup[2]}`
          : 'no TLS connection';
    return { verified, detail, output: r.all };
  });
}

/** The TLSA RDATA at `owner` from `resolver` through kdig, only when the answer has AD. */
async function adTlsa(
  resolver: UnboundServer,
  owner: string,
): Promise<{ records: string[]; why: string }> {
  const k = await kdig({
    server: resolver.host,
    port: resolver.port,
    name: owner,
    type: 'TLSA',
    dnssec: true,
  });
  if (k.rcode !== 'NOERROR') return { records: [], why: k.rcode };
  if (!k.flags.includes('ad')) return { records: [], why: 'no AD' };
  const records = rdataOf(k, 'TLSA').map((r) => r.toLowerCase());
  return { records, why: records.length ? `${records.length} AD` : 'NODATA' };
}

/** openssl s_client as a DANE client with the given records (exit 0 = verified). */
async function opensslDane(
  port: number,
  domain: string,
  records: string[],
  keyType: KeyType,
  starttls: boolean,
): Promise<Verdict> {
  // Without records (none came with AD) openssl cannot do DANE at all; like a DANE client that
  // found no usable TLSA it then verifies PKIX only, against the system store, with the name.
  const dane = records.length
    ? ['-dane_tlsa_domain', domain, ...records.flatMap((r) => ['-dane_tlsa_rrdata', r])]
    : ['-verify_hostname', domain];
  const args = [
    's_client',
    '-connect',
    `127.0.0.1:${port}`,
    ...(starttls ? ['-starttls', 'smtp'] : []),
    '-servername',
    domain,
    ...dane,
    '-verify_return_error',
    '-sigalgs',
    SIGALGS[keyType],
    '-brief',
  ];
  const r = await spawnRun(
    toolPath('openssl', 'openssl'),
    args,
    { OPENSSL_CONF: '/dev/null' },
    20_000,
  );
  const m = /DANE TLSA (\d) (\d) (\d) \S+ matched (EE|TA) certificate at depth (\d+)/.exec(r.all);
  const err = /verify error:[^\n]*/.exec(r.all)?.[0] ?? /error:[^\n]*/.exec(r.all)?.[0] ?? '';
  return {
    verified: r.code === 0,
    detail:
      r.code === 0
        ? `exit 0${m ? ` (${m[4]} at depth ${m[5]})` : ''}`
        : `exit ${r.code}${err ? `: ${err.slice(0, 80)}` : ''}`,
    output: r.all,
  };
}

// ---------------------------------------------------------------------------------------------
// The lab

const ZONES = ['sec.test.', 'wrong.test.', 'insecure.test.', 'bogus.test.', 'lag.test.'] as const;
const mx = (zone: string): string => `mx.${zone.replace(/\.$/, '')}`;

interface AgreementRow {
  case: string;
  exit: number | null;
  keyType: KeyType;
  tlsa: string;
  finger: string;
  openssl: string;
}
const table: AgreementRow[] = [];

labDescribe(
  'tlsa check against Knot (DNSSEC) + unbound + Postfix (RSA + ECDSA), with posttls-finger and openssl as judges',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ['openssl', 'openssl'],
    ['unshare', 'util-linux'],
    ['mount', 'mount'],
    ...POSTFIX_TOOLS,
  ],
  () => {
    let pf: PostfixServer;
    let knot: KnotServer;
    let secondary: KnotServer;
    let validating: UnboundServer;
    let iterating: UnboundServer;
    let fingerV: DaneFinger;
    let fingerI: DaneFinger;
    let validatingAddr = '';
    let iteratingAddr = '';
    const fakes: Server[] = [];
    const fakePort = { garbage: 0, nostarttls: 0, drop: 0 };
    const rd = { ee: '', ta: '', otherEe: '', otherTa: '' };
    const chains = { rsa: '', ecdsa: '' };

    const args = (resolver: UnboundServer, ...rest: string[]): string[] => [
      'check',
      '--resolver',
      `${resolver.host}:${resolver.port}`,
      '--auth-port',
      String(knot.port),
      '--timeout',
      '3',
      ...rest,
    ];

    beforeAll(async () => {
      requireBuiltCli();
      const dir = makeTempDir('check-pki');
      // Chains as Let's Encrypt issues them: leaf + intermediate; the leaf names every mx host.
      const sans = [...ZONES.map(mx), 'plain.sec.test', 'cache.sec.test'];
      const rsaRoot = makeCa(dir, { name: 'Check Root X1', key: 'rsa2048' });
      const rsaInt: CaHandle = makeCa(dir, { name: 'Check R1', key: 'rsa2048', issuer: rsaRoot });
      const ecRoot = makeCa(dir, { name: 'Check Root X2', key: 'p384' });
      const ecInt: CaHandle = makeCa(dir, { name: 'Check E1', key: 'p384', issuer: ecRoot });
      const rsaLeaf: LeafHandle = makeLeaf(dir, {
        ca: rsaInt,
        cn: 'mx.sec.test',
        sans,
        key: 'rsa2048',
      });
      const ecLeaf: LeafHandle = makeLeaf(dir, { ca: ecInt, cn: 'mx.sec.test', sans, key: 'p256' });
      // Another key and another issuer, for the mismatch case.
      const otherLeaf = makeLeaf(dir, { ca: rsaInt, cn: 'mx.sec.test', sans, key: 'rsa2048' });
      const otherEc = makeCa(dir, { name: 'Check E2', key: 'p256', issuer: ecRoot });
      rd.ee = `3 1 1 ${opensslSpkiSha256(rsaLeaf.certPath)}`;
      rd.ta = `2 1 1 ${opensslSpkiSha256(ecInt.certPath)}`;
      rd.otherEe = `3 1 1 ${opensslSpkiSha256(otherLeaf.certPath)}`;
      rd.otherTa = `2 1 1 ${opensslSpkiSha256(otherEc.certPath)}`;
      const fullchain = (leaf: LeafHandle, ca: CaHandle, name: string): string => {
        const p = join(dir, `${name}-fullchain.pem`);
        writeFileSync(p, `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
        return p;
      };

      for (const k of Object.keys(fakePort) as (keyof typeof fakePort)[])
        fakePort[k] = await freePort();
      fakes.push(
        // Not TLS, not SMTP: a line of noise, then binary garbage.
        await fakeServer(fakePort.garbage, (s) =>
          s.end(
            Buffer.concat([
              Buffer.from('HELLO? this is not SMTP\r\n'),
              Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a]),
            ]),
          ),
        ),
        // SMTP without STARTTLS.
        await fakeServer(
          fakePort.nostarttls,
          smtpFake(false, () => undefined),
        ),
        // Accepts STARTTLS and hangs up.
        await fakeServer(
          fakePort.drop,
          smtpFake(true, (s) => {
            s.write('220 2.0.0 Ready to start TLS\r\n', () => s.destroy());
          }),
        ),
      );

      chains.rsa = fullchain(rsaLeaf, rsaInt, 'rsa');
      chains.ecdsa = fullchain(ecLeaf, ecInt, 'ecdsa');
      [pf, validatingAddr, iteratingAddr] = await Promise.all([
        startPostfix({
          hostname: 'mx.sec.test',
          chains: [
            { keyPath: rsaLeaf.keyPath, fullchainPath: chains.rsa },
            { keyPath: ecLeaf.keyPath, fullchainPath: chains.ecdsa },
          ],
        }),
        freeLoopback53(),
        freeLoopback53(),
      ]);
      if (validatingAddr === iteratingAddr) iteratingAddr = await freeLoopback53([validatingAddr]);

      const tlsaAt = (zone: string, ports: number[], records: string[]): string[] =>
        ports.flatMap((p) => records.map((r) => `_${p}._tcp.${mx(zone)}. 300 IN TLSA ${r}`));
      const good = [rd.ee, rd.ta];
      const secExtra = [
        `${mx('sec.test.')}. 300 IN A 127.0.0.1`,
        'plain.sec.test. 300 IN A 127.0.0.1',
        'cache.sec.test. 300 IN A 127.0.0.1',
        ...[rd.ee, rd.ta].map((r) => `_${pf.smtpPort}._tcp.cache.sec.test. 300 IN TLSA ${r}`),
        ...tlsaAt(
          'sec.test.',
          [pf.smtpPort, pf.smtpsPort, fakePort.garbage, fakePort.nostarttls, fakePort.drop],
          good,
        ),
      ].join('\n');
      const child = (zone: string, records: string[]): string =>
        minimalZone(
          zone,
          [`${mx(zone)}. 300 IN A 127.0.0.1`, ...tlsaAt(zone, [pf.smtpPort], records)].join('\n'),
        );
      const lagZone = (records: string[]): string =>
        [
          '$TTL 300',
          'lag.test. 300 IN SOA ns1.lag.test. hostmaster.lag.test. 1 3600 600 86400 60',
          'lag.test. 300 IN NS ns1.lag.test.',
          'lag.test. 300 IN NS ns2.lag.test.',
          'ns1.lag.test. 300 IN A 127.0.0.1',
          'ns2.lag.test. 300 IN A 127.0.0.2',
          'mx.lag.test. 300 IN A 127.0.0.1',
          ...tlsaAt('lag.test.', [pf.smtpPort], records),
          '',
        ].join('\n');
      const parent = [
        '$TTL 300',
        'test. 300 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60',
        'test. 300 IN NS ns.test.',
        'ns.test. 300 IN A 127.0.0.1',
        ...['sec', 'wrong', 'insecure', 'bogus'].flatMap((z) => [
          `${z}.test. 300 IN NS ns.${z}.test.`,
          `ns.${z}.test. 300 IN A 127.0.0.1`,
        ]),
        'lag.test. 300 IN NS ns1.lag.test.',
        'lag.test. 300 IN NS ns2.lag.test.',
        'ns1.lag.test. 300 IN A 127.0.0.1',
        'ns2.lag.test. 300 IN A 127.0.0.2',
        '',
      ].join('\n');
      knot = await startKnot({
        zones: [
          { name: 'test.', zoneFileText: parent, dnssec: true },
          { name: 'sec.test.', zoneFileText: minimalZone('sec.test.', secExtra), dnssec: true },
          {
            name: 'wrong.test.',
            zoneFileText: child('wrong.test.', [rd.otherEe, rd.otherTa]),
            dnssec: true,
          },
          { name: 'insecure.test.', zoneFileText: child('insecure.test.', good), dnssec: false },
          { name: 'bogus.test.', zoneFileText: child('bogus.test.', good), dnssec: true },
          { name: 'lag.test.', zoneFileText: lagZone(good), dnssec: true },
        ],
      });
      const wrongDs = knot
        .dsRecords('bogus.test.')
        .map((l) => l.replace(/[0-9a-f]+$/i, (d) => '0'.repeat(d.length)));
      const ds = [
        ...knot.dsRecords('sec.test.'),
        ...knot.dsRecords('wrong.test.'),
        ...knot.dsRecords('lag.test.'),
        ...wrongDs,
      ];
      writeFileSync(knot.zoneFiles['test.']!, `${parent}${ds.map((l) => `${l}\n`).join('')}`);
      knot.reload('test.');

      const stubs = ['test.', ...ZONES].map((zone) => ({ zone, port: knot.port, host: knot.host }));
      const anchors = knot.dsRecords('test.');
      [secondary, validating, iterating] = await Promise.all([
        // The lagging second server: an older copy of lag.test. (only the 3 1 1 record yet).
        startKnot({
          host: '127.0.0.2',
          port: knot.port,
          zones: [{ name: 'lag.test.', zoneFileText: lagZone([rd.ee]), dnssec: false }],
        }),
        startUnbound({ stubs, trustAnchors: anchors, extraListen: validatingAddr }),
        startUnbound({
          stubs,
          trustAnchors: anchors,
          extraListen: iteratingAddr,
          moduleConfig: 'iterator',
        }),
      ]);
      fingerV = makeDaneFinger({
        dir: makeTempDir('check-finger-v'),
        zone: 'test',
        resolverAddress: validatingAddr,
      });
      fingerI = makeDaneFinger({
        dir: makeTempDir('check-finger-i'),
        zone: 'test',
        resolverAddress: iteratingAddr,
      });
    });

    afterAll(async () => {
      for (const s of fakes) s.close();
      await pf?.stop();
      await stopAll();
      expect(runningDaemons()).toEqual([]);
      if (table.length) {
        const lines = [
          '| case | tlsa exit | key | tlsa probe | posttls-finger | openssl s_client |',
          '|---|---|---|---|---|---|',
          ...table.map(
            (r) =>
              `| ${r.case} | ${r.exit} | ${r.keyType} | ${r.tlsa} | ${r.finger} | ${r.openssl} |`,
          ),
        ];
        console.log(`tlsa check agreement table:\n${lines.join('\n')}`);
      }
      void secondary;
    });

    /**
     * One case: `tlsa check --json` and, per key type, posttls-finger and openssl, all at once.
     * Asserts that the three agree per key type, and returns the report.
     */
    async function agree(
      name: string,
      o: {
        host: string;
        port?: number;
        resolver?: 'validating' | 'iterating';
        wrapper?: boolean;
        verified: boolean;
        exit: 0 | 1;
      },
    ): Promise<ReportJson> {
      const port = o.port ?? pf.smtpPort;
      const resolver = o.resolver === 'iterating' ? iterating : validating;
      const f = o.resolver === 'iterating' ? fingerI : fingerV;
      const owner = `_${port}._tcp.${o.host}.`;
      const dnsForOpenssl = await adTlsa(resolver, owner);
      const [run, ...judges] = await Promise.all([
        tlsa(
          args(resolver, '--json', '--protocol', o.wrapper ? 'tls' : 'smtp', `${o.host}:${port}`),
        ),
        ...KEY_TYPES.flatMap((kt) => [
          finger(f, o.host, port, kt, o.wrapper),
          opensslDane(port, o.host, dnsForOpenssl.records, kt, !o.wrapper),
        ]),
      ]);
      const report = reportOf(run!);
      expect(stackLines(run!.all), show(run!)).toEqual([]);
      KEY_TYPES.forEach((kt, i) => {
        const fv = judges[2 * i]!;
        const ov = judges[2 * i + 1]!;
        // No row at all: no address to probe (a bogus A RRset); that is "not verified" too.
        const row = report.probes.find((p) => p.keyType === kt && p.address === '127.0.0.1');
        if (o.verified) expect(row, show(run!)).toBeDefined();
        table.push({
          case: name,
          exit: run!.code,
          keyType: kt,
          tlsa: !row
            ? 'no probe (no secure address)'
            : row.ok
              ? `ok (${row.matched?.replace(/^.*… /, '') ?? ''})`
              : `NOT ok: ${row.problems.join('; ').slice(0, 60)}`,
          finger: fv.detail,
          openssl: `${ov.detail} [kdig: ${dnsForOpenssl.why}]`,
        });
        const where = `${name} ${kt}\n${show(run!)}\n--- posttls-finger ---\n${fv.output}\n--- openssl ---\n${ov.output}`;
        expect(
          { tlsa: row?.ok ?? false, finger: fv.verified, openssl: ov.verified },
          where,
        ).toEqual({ tlsa: o.verified, finger: o.verified, openssl: o.verified });
      });
      expect(run!.code, show(run!)).toBe(o.exit);
      return report;
    }

    it('secure zone: RSA matched by 3 1 1 at depth 0, ECDSA by 2 1 1 at depth 1; posttls-finger and openssl agree', async () => {
      const r = await agree('secure (sec.test)', { host: 'mx.sec.test', verified: true, exit: 0 });
      expect(r.ok).toBe(true);
      expect(r.dnssec).toMatchObject({ tlsa: 'secure', address: 'secure' });
      expect(r.records.sort()).toEqual([rd.ee, rd.ta].sort());
      expect(r.authoritative.inSync).toBe(true);
      const rows = Object.fromEntries(r.probes.map((p) => [p.keyType, p]));
      expect(r.probes).toHaveLength(2);
      expect(rows.rsa).toMatchObject({ address: '127.0.0.1', ok: true });
      expect(rows.rsa!.matched).toMatch(/^3 1 1 .* at depth 0$/);
      expect(rows.rsa!.leaf).toMatch(/RSA/i);
      expect(rows.ecdsa).toMatchObject({ address: '127.0.0.1', ok: true });
      expect(rows.ecdsa!.matched).toMatch(/^2 1 1 .* at depth 1$/);
      expect(rows.ecdsa!.leaf).toMatch(/EC/i);
      expect(r.failures).toEqual([]);
      const fingerDetail = table
        .filter((t) => t.case.startsWith('secure'))
        .map((t) => [t.keyType, t.finger]);
      expect(fingerDetail).toEqual([
        ['rsa', 'Verified (EE at depth 0)'],
        ['ecdsa', 'Verified (TA at depth 1)'],
      ]);
    });

    it('secure zone, the wrappermode (implicit TLS) port: both key types verified; posttls-finger -w and openssl agree', async () => {
      const r = await agree('secure, wrappermode port', {
        host: 'mx.sec.test',
        port: pf.smtpsPort,
        wrapper: true,
        verified: true,
        exit: 0,
      });
      expect(r.probes.map((p) => [p.keyType, p.ok, p.matched?.replace(/^.*at /, 'at ')])).toEqual([
        ['rsa', true, 'at depth 0'],
        ['ecdsa', true, 'at depth 1'],
      ]);
    });

    it('mismatch: TLSA for another key and another issuer: nobody verifies', async () => {
      const r = await agree('mismatch (wrong.test)', {
        host: 'mx.wrong.test',
        verified: false,
        exit: 1,
      });
      expect(r.dnssec.tlsa).toBe('secure');
      for (const p of r.probes) expect(p.problems.join(' ')).toMatch(/no usable record matches/);
      expect(r.failures.join('\n')).toMatch(/127\.0\.0\.1 rsa: .*no usable record matches/);
    });

    it('insecure zone (no DS): the right records, but DNSSEC does not cover them: nobody verifies', async () => {
      const r = await agree('insecure (no DS)', {
        host: 'mx.insecure.test',
        verified: false,
        exit: 1,
      });
      expect(r.dnssec).toMatchObject({ tlsa: 'insecure', address: 'insecure' });
      expect(r.failures.join('\n')).toMatch(/insecure/);
      for (const p of r.probes)
        expect(p.problems.join(' ')).toMatch(
          /the TLSA records are insecure, not secure: DANE clients do not use them \(they would match: /,
        );
      for (const p of r.probes) expect(p.matched).toBeUndefined();
    });

    it('bogus zone (wrong DS): nobody verifies, and the report says bogus', async () => {
      const r = await agree('bogus (wrong DS)', {
        host: 'mx.bogus.test',
        verified: false,
        exit: 1,
      });
      expect(r.dnssec).toMatchObject({ tlsa: 'bogus', address: 'bogus' });
      expect(r.failures.join('\n')).toMatch(/bogus/);
      // No address survives validation, so there is nothing to probe.
      expect(r.probes).toEqual([]);
      expect(r.failures.join('\n')).toMatch(/mx\.bogus\.test has no address to probe/);
      // The (only) authoritative server is not "lagging" just because the resolver has no RRset.
      expect(r.authoritative.inSync, r.authoritative.summary).toBe(true);
    });

    it('lagging second server: the probes verify (as for posttls-finger and openssl), but check fails and names ns2 (127.0.0.2)', async () => {
      const r = await agree('lagging ns2 (lag.test)', {
        host: 'mx.lag.test',
        verified: true,
        exit: 1,
      });
      expect(r.authoritative.inSync).toBe(false);
      expect(r.authoritative.lagging).toEqual(['ns2.lag.test. (127.0.0.2)']);
      expect(r.failures.join('\n')).toMatch(
        /ns2\.lag\.test\. \(127\.0\.0\.2\) lags: missing 2 1 1/,
      );
      expect(r.failures).toHaveLength(1);
    });

    it('no TLSA records at the name: nobody verifies; the report says DANE is not in effect', async () => {
      const r = await agree('no TLSA (plain.sec.test)', {
        host: 'plain.sec.test',
        verified: false,
        exit: 1,
      });
      expect(r.records).toEqual([]);
      expect(r.failures.join('\n')).toMatch(
        /no TLSA records at _\d+\._tcp\.plain\.sec\.test\. \(securely denied\): DANE is not in effect for this port/,
      );
    });

    it('a resolver that does not validate ("iterator"): unvalidated, so nobody verifies', async () => {
      const r = await agree('unvalidated resolver', {
        host: 'mx.sec.test',
        resolver: 'iterating',
        verified: false,
        exit: 1,
      });
      expect(r.dnssec).toMatchObject({ tlsa: 'unvalidated', address: 'unvalidated' });
      expect(r.failures.join('\n')).toMatch(/unvalidated: the resolver does not validate/);
      for (const p of r.probes)
        expect(p.problems.join(' ')).toMatch(/the TLSA records are unvalidated, not secure/);
    });

    it('--config: every service × port, each with its own protocol (STARTTLS and wrappermode), all verified', async () => {
      const dir = makeTempDir('check-config');
      const cfg = join(dir, 'tlsa.yaml');
      writeFileSync(
        cfg,
        [
          `state_dir: ${join(dir, 'state')}`,
          'verify:',
          `  resolver: "${validating.host}:${validating.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  timeout_s: 3',
          'providers:',
          '  local:',
          '    type: zonefile',
          `    path: ${join(dir, 'unused.zone')}`,
          'services:',
          ...(
            [
              ['starttls', pf.smtpPort, 'smtp'],
              ['smtps', pf.smtpsPort, 'tls'],
            ] as const
          ).flatMap(([name, port, protocol]) => [
            `  ${name}:`,
            '    host: mx.sec.test',
            `    ports: [${port}]`,
            `    protocol: ${protocol}`,
            '    provider: local',
            '    issuers: none',
            '    certificates:',
            `      - fullchain: ${chains.rsa}`,
            `      - fullchain: ${chains.ecdsa}`,
          ]),
          '',
        ].join('\n'),
      );
      const r = await tlsa(['check', '--config', cfg, '--json']);
      expect(stackLines(r.all)).toEqual([]);
      expect(r.code, show(r)).toBe(0);
      const all = checkJson(r);
      expect(
        all.reports.map((x) => [
          x.port,
          x.ok,
          x.probes.map((p) => `${p.keyType}:${p.ok}`).join(' '),
        ]),
      ).toEqual([
        [pf.smtpPort, true, 'rsa:true ecdsa:true'],
        [pf.smtpsPort, true, 'rsa:true ecdsa:true'],
      ]);
    });

    it('the resolver has an older RRset cached than every authoritative server serves: a warning, not "out of sync"', async () => {
      const target = `cache.sec.test:${pf.smtpPort}`;
      const before = reportOf(await tlsa(args(validating, '--json', '--protocol', 'smtp', target)));
      expect(before.ok, before.failures.join('\n')).toBe(true); // unbound caches the RRset now
      const file = knot.zoneFiles['sec.test.']!;
      writeFileSync(
        file,
        `${readFileSync(file, 'utf8')}_${pf.smtpPort}._tcp.cache.sec.test. 300 IN TLSA ${rd.otherEe}\n`,
      );
      knot.reload('sec.test.');
      const run = await tlsa(args(validating, '--json', '--protocol', 'smtp', target));
      const r = reportOf(run);
      expect(r.records).toHaveLength(2); // the cached copy
      expect(r.authoritative, show(run)).toMatchObject({ inSync: true, lagging: [] });
      expect(r.warnings.join('\n')).toMatch(
        /every authoritative server of sec\.test\. serves the same TLSA RRset at _\d+\._tcp\.cache\.sec\.test\., but the resolver answered another one/,
      );
      expect(run.code, show(run)).toBe(0);
      await validating.flush('sec.test.');
      const after = reportOf(await tlsa(args(validating, '--json', '--protocol', 'smtp', target)));
      expect(after.records).toHaveLength(3);
      expect(after.warnings.join('\n')).not.toMatch(/resolver answered another one/);
      expect(after.warnings.join('\n')).toMatch(/3 1 1 .*matches no chain any address serves/);
    });

    // -------------------------------------------------------------------------------------------
    // Bad input: exit 1, one clear message in the (human) report, no stack trace.

    async function human(...rest: string[]): Promise<Run> {
      const r = await tlsa(args(validating, ...rest));
      expect(stackLines(r.all), show(r)).toEqual([]);
      expect(r.stderr, show(r)).not.toMatch(/internal error/);
      return r;
    }

    it('unknown host (NXDOMAIN): exit 1, "does not exist"', async () => {
      const r = await human('--protocol', 'smtp', `nx.sec.test:${pf.smtpPort}`);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(/^FAIL nx\.sec\.test:/);
      expect(r.stdout).toMatch(
        /^ {5}failure: nx\.sec\.test does not exist \(NXDOMAIN, secure denial\): no address to probe$/m,
      );
      expect(r.stdout.match(/failure:/g)).toHaveLength(1);
    });

    it('a port that does not speak SMTP or TLS (garbage): exit 1, the probe says what it got', async () => {
      const smtp = await human('--protocol', 'smtp', `mx.sec.test:${fakePort.garbage}`);
      expect(smtp.code, show(smtp)).toBe(1);
      expect(smtp.stdout).toMatch(
        /malformed greeting reply line from mx\.sec\.test\[127\.0\.0\.1\]:\d+: "HELLO\? this is not SMTP"/,
      );
      const tls = await human('--protocol', 'tls', `mx.sec.test:${fakePort.garbage}`);
      expect(tls.code, show(tls)).toBe(1);
      expect(tls.stdout).toMatch(
        /RSA\s+NOT verified: (TLS handshake with mx\.sec\.test\[127\.0\.0\.1\]:\d+ failed|mx\.sec\.test\[127\.0\.0\.1\]:\d+ closed the connection during the TLS handshake)/,
      );
    });

    it('an SMTP (STARTTLS) port probed as TLS from the first byte: "wrong version number" suggests --protocol smtp (issue 14)', async () => {
      // Postfix's STARTTLS port is not 25, so without --protocol it is probed with implicit TLS.
      const r = await human(`mx.sec.test:${pf.smtpPort}`);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(/wrong version number/);
      expect(r.stdout).toContain(`run "tlsa check --protocol smtp mx.sec.test:${pf.smtpPort}"`);
      const right = await human('--protocol', 'smtp', `mx.sec.test:${pf.smtpPort}`);
      expect(right.code, show(right)).toBe(0);
    });

    it('an SMTP server without STARTTLS: exit 1, "does not offer STARTTLS"', async () => {
      const r = await human('--protocol', 'smtp', `mx.sec.test:${fakePort.nostarttls}`);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(/RSA\s+NOT verified: .*STARTTLS/);
      expect(r.stdout).toMatch(/ECDSA\s+NOT verified: .*STARTTLS/);
    });

    it('a server that drops the connection after STARTTLS: exit 1, "closed the connection after accepting STARTTLS"', async () => {
      const r = await human('--protocol', 'smtp', `mx.sec.test:${fakePort.drop}`);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(
        /RSA\s+NOT verified: mx\.sec\.test\[127\.0\.0\.1\]:\d+ closed the connection after accepting STARTTLS/,
      );
    });

    it('a resolver that does not validate, human output: "unvalidated" is named', async () => {
      const r = await tlsa(args(iterating, '--protocol', 'smtp', `mx.sec.test:${pf.smtpPort}`));
      expect(stackLines(r.all)).toEqual([]);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(/TLSA unvalidated, addresses unvalidated/);
      expect(r.stdout).toMatch(/the resolver does not validate/);
    });

    it('a resolver that does not answer (closed port): exit 1, "cannot be asked", no stack trace', async () => {
      const port = await freePort();
      const r = await tlsa([
        'check',
        '--resolver',
        `127.0.0.1:${port}`,
        '--timeout',
        '1',
        '--protocol',
        'smtp',
        `mx.sec.test:${pf.smtpPort}`,
      ]);
      expect(stackLines(r.all)).toEqual([]);
      expect(r.code, show(r)).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(`failure: the resolver 127\\.0\\.0\\.1:${port} cannot be asked: .*refused`),
      );
    });

    it('check with no arguments and no config: exit 2, one line saying what is missing', async () => {
      const r = await tlsa(['check'], 10_000);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(
        /^tlsa: check needs HOST\[:PORT\] arguments or a --config with services\n$/,
      );
      expect(r.stdout).toBe('');
    });
  },
);
