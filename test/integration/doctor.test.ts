/**
 * `tlsa doctor postfix` (the built CLI) against Debian's real `postconf`/`postmap`: one
 * configuration directory per finding, written here, plus a clean one that must give no
 * finding at all; `--json` output; exit 1 when an error-level finding exists, 2 for bad input.
 * Then a live second Postfix instance of the lab, with its TLSA records served by a signed
 * Knot zone through a validating unbound (and a non-validating one).
 *
 * Ground truth for every hash is the openssl CLI (test/helpers/pki.ts). No test leaves
 * loopback: the doctor runs with --offline, or is given a resolver on loopback (a lab unbound,
 * or the small MX responder below).
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runDoctor, type DoctorReport } from '../../src/doctor/doctor.js';
import type { ConfigEdit } from '../../src/doctor/findings.js';
import {
  CLI_PATH,
  makeTestPki,
  requireBuiltCli,
  stackLines,
  type TestPki,
} from '../helpers/cli.js';
import { makeLeaf, opensslSpkiSha256, type LeafHandle } from '../helpers/pki.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, makeTempDir, runningDaemons, stopAll, toolPath } from '../lab/lab.js';
import { POSTFIX_TOOLS, startPostfix, type PostfixServer } from '../lab/postfix.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** runDoctor called in this process: stdout is the report, not the CLI's envelope. */
  inProcess?: boolean;
}
interface FindingJson {
  id: string;
  level: 'error' | 'warning' | 'info';
  service: string;
  parameter: string;
  message: string;
  fix: string;
}
interface ReportJson {
  ok: boolean;
  exitCode: number;
  postfix: { version: string; configDir: string };
  services: {
    service: string;
    role: string;
    port?: number;
    tls: { securityLevel: string; wrappermode: boolean; mandatory: boolean };
    protocols?: { parameter: string; enabled: string[] };
    tlsa?: {
      owner: string;
      source: string;
      status?: string;
      records: string[];
      chains: { keyType: string; verified: boolean; matched?: string }[];
    };
  }[];
  outbound: {
    securityLevel: string;
    dnsSupportLevel: string;
    resolver?: { server: string; status: string };
  };
  findings: FindingJson[];
  skipped: { check: string; reason: string }[];
}

function doctor(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.TLSA_CONFIG;
  delete e.TLSA_DEBUG;
  delete e.NODE_OPTIONS;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, 'doctor', 'postfix', ...args], {
      env: e,
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
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: Run): string =>
  `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

function reportOf(r: Run): ReportJson {
  let parsed: ReportJson;
  try {
    parsed = JSON.parse(r.stdout) as ReportJson;
  } catch {
    throw new Error(`doctor --json printed no JSON\n${show(r)}`);
  }
  // The CLI's output is the --json envelope; a report made in this process is the report alone.
  if (!r.inProcess) expect(parsed, show(r)).toMatchObject({ command: 'doctor', exitCode: r.code });
  return parsed;
}

const ids = (r: ReportJson): string[] => r.findings.map((f) => f.id);

/** Carry out a fix the way an operator would, with Postfix's own postconf. */
function applyEdits(dir: string, edits: readonly ConfigEdit[]): void {
  const postconf = toolPath('postconf', 'postfix');
  for (const e of edits) {
    const args = e.service
      ? e.value === undefined
        ? ['-P', '-X', `${e.service}/${e.parameter}`]
        : ['-P', '-e', `${e.service}/${e.parameter}=${e.value}`]
      : e.value === undefined
        ? ['-X', e.parameter]
        : ['-e', `${e.parameter} = ${e.value}`];
    execFileSync(postconf, ['-c', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/** Errors and warnings, by what and where. */
const problems = (r: {
  findings: readonly { id: string; level: string; service: string }[];
}): string[] => r.findings.filter((f) => f.level !== 'info').map((f) => `${f.id} @ ${f.service}`);

/** A DNS responder on 127.0.0.1 (UDP) that answers MX questions from a fixed map (NXDOMAIN
 *  for other names): the MX names of the policy domains, without leaving loopback. */
async function startMxResponder(
  mx: Record<string, string[]>,
): Promise<{ address: string; close(): Promise<void> }> {
  const udp: UdpSocket = createSocket('udp4');
  const port = await new Promise<number>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(0, '127.0.0.1', () => resolve(udp.address().port));
  });
  udp.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const hosts = mx[name];
    const answers =
      hosts && question.type === 'MX'
        ? hosts.map((exchange, i) => ({
            name: question.name,
            type: 'MX' as const,
            class: 'IN' as const,
            ttl: 300,
            data: { preference: 10 * (i + 1), exchange },
          }))
        : [];
    const reply = dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (hosts ? 0 : 3),
      questions: q.questions,
      answers,
    });
    udp.send(reply, rinfo.port, rinfo.address);
  });
  return {
    address: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => udp.close(() => resolve())),
  };
}

/** `openssl s_client` as an independent client: STARTTLS (SMTP) or implicit TLS, with extra
 *  options (protocol, ciphers); the negotiated protocol and cipher, or why it failed. */
function sClient(
  port: number,
  starttls: boolean,
  extra: string[],
): { ok: boolean; protocol?: string; cipher?: string; output: string } {
  const r = spawnSync(
    toolPath('openssl', 'openssl'),
    [
      's_client',
      '-brief',
      '-connect',
      `127.0.0.1:${port}`,
      ...(starttls ? ['-starttls', 'smtp'] : []),
      ...extra,
    ],
    {
      input: '',
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const protocol = /Protocol version: (\S+)/.exec(output)?.[1];
  const cipher = /Ciphersuite: (\S+)/.exec(output)?.[1];
  return {
    ok: !!protocol,
    ...(protocol ? { protocol } : {}),
    ...(cipher ? { cipher } : {}),
    output,
  };
}

// ---------------------------------------------------------------------------------------------
// Configuration directories

const CLEAN_MASTER = [
  '# service  type  private unpriv chroot wakeup maxproc command + args',
  'smtp       inet  n       -       y       -       -       smtpd',
  'submission inet  n       -       y       -       -       smtpd',
  '  -o syslog_name=postfix/submission',
  '  -o smtpd_tls_security_level=encrypt',
  '  -o smtpd_sasl_auth_enable=yes',
  'smtps      inet  n       -       y       -       -       smtpd',
  '  -o syslog_name=postfix/smtps',
  '  -o smtpd_tls_wrappermode=yes',
  '  -o smtpd_sasl_auth_enable=yes',
  'smtp       unix  -       -       y       -       -       smtp',
];

interface Instance {
  dir: string;
  tlsaFile: string;
}

// The temp dirs (and any lab server) of this file, also when the lab suite is skipped.
afterAll(() => stopAll());

/** One PKI for both suites (RSA keys are slow to make): an RSA and an ECDSA hierarchy, leaves
 *  valid for mx.example.org (the configuration directories) and mx.test (the lab). */
interface SharedPki {
  pki: TestPki;
  rsaLeaf: LeafHandle;
  ecLeaf: LeafHandle;
}
let shared: SharedPki | undefined;
function sharedPki(): SharedPki {
  // Made again when a suite's stopAll() has removed the temp dirs.
  if (!shared || !existsSync(shared.pki.dir)) {
    const pki = makeTestPki(makeTempDir('doctor-pki'));
    const sans = ['mx.example.org', 'mx.test'];
    const leaf = (family: 'rsa' | 'ecdsa'): LeafHandle =>
      makeLeaf(pki.dir, {
        ca: pki[family].intermediate,
        cn: 'mx.example.org',
        sans,
        key: family === 'rsa' ? 'rsa2048' : 'p256',
      });
    shared = { pki, rsaLeaf: leaf('rsa'), ecLeaf: leaf('ecdsa') };
  }
  return shared;
}

labDescribe(
  'tlsa doctor postfix against real postconf (one configuration per finding)',
  [
    ['postconf', 'postfix'],
    ['postmap', 'postfix'],
    ['openssl', 'openssl'],
  ],
  () => {
    let root: string;
    let pki: TestPki;
    let rsaLeaf: LeafHandle;
    let ecLeaf: LeafHandle;
    const files = { rsaKey: '', rsaFull: '', rsaCertOnly: '', ecKey: '', ecFull: '' };
    const rd = { rsaEE: '', ecEE: '', rsaTA: '', ecTA: '', otherEE: '', rsaSpki: '' };
    const runs = new Map<string, Run>();
    /** Each configuration and how it was examined, for the fix loop. */
    const examined = new Map<string, { inst: Instance; resolver?: string; report: DoctorReport }>();
    let mxResponder: Awaited<ReturnType<typeof startMxResponder>> | undefined;
    afterAll(async () => {
      await mxResponder?.close();
    });

    function instance(
      name: string,
      o: {
        main?: Record<string, string | null>;
        master?: string[];
        tlsa?: string[];
        tlsaText?: string[];
        extra?: (dir: string) => void;
      } = {},
    ): Instance {
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      const main: Record<string, string | null> = {
        compatibility_level: '3.6',
        myhostname: 'mx.example.org',
        smtpd_tls_security_level: 'may',
        smtpd_tls_chain_files: `${files.rsaKey}, ${files.rsaFull}, ${files.ecKey}, ${files.ecFull}`,
        smtp_tls_security_level: 'dane',
        smtp_dns_support_level: 'dnssec',
        ...o.main,
      };
      writeFileSync(
        join(dir, 'main.cf'),
        `${Object.entries(main)
          .filter(([, v]) => v !== null)
          .map(([k, v]) => `${k} = ${v}`)
          .join('\n')}\n`,
      );
      writeFileSync(join(dir, 'master.cf'), `${(o.master ?? CLEAN_MASTER).join('\n')}\n`);
      const tlsaFile = join(dir, 'tlsa.zone');
      const records = o.tlsa ?? [rd.rsaEE, rd.ecTA];
      // Zone-file form as an operator would paste it: $ORIGIN, a relative owner, a blank-owner line.
      writeFileSync(
        tlsaFile,
        o.tlsaText
          ? [...o.tlsaText, ''].join('\n')
          : [
              '$ORIGIN example.org.',
              '$TTL 3600',
              ...records.map(
                (r, i) => `${i === 0 ? '_25._tcp.mx' : '           '} 3600 IN TLSA ${r}`,
              ),
              '',
            ].join('\n'),
      );
      o.extra?.(dir);
      return { dir, tlsaFile };
    }

    /** `cli: true` runs the built CLI (exit code, stdout); the others call runDoctor in this
     *  process (still the real postconf, postmap and openssl), which keeps the suite fast. */
    const cases: Record<
      string,
      () => { inst: Instance; args?: string[]; cli?: boolean; resolver?: string }
    > = {};

    beforeAll(async () => {
      requireBuiltCli();
      root = makeTempDir('doctor');
      ({ pki, rsaLeaf, ecLeaf } = sharedPki());
      const w = (n: string, text: string): string => {
        const p = join(root, n);
        writeFileSync(p, text);
        return p;
      };
      files.rsaKey = rsaLeaf.keyPath;
      files.ecKey = ecLeaf.keyPath;
      files.rsaFull = w(
        'rsa-fullchain.pem',
        `${rsaLeaf.certPem.trim()}\n${pki.rsa.intermediate.certPem.trim()}\n`,
      );
      files.ecFull = w(
        'ecdsa-fullchain.pem',
        `${ecLeaf.certPem.trim()}\n${pki.ecdsa.intermediate.certPem.trim()}\n`,
      );
      files.rsaCertOnly = w('rsa-cert.pem', `${rsaLeaf.certPem.trim()}\n`);
      rd.rsaSpki = opensslSpkiSha256(rsaLeaf.certPath);
      rd.rsaEE = `3 1 1 ${rd.rsaSpki}`;
      rd.ecEE = `3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`;
      rd.rsaTA = `2 1 1 ${opensslSpkiSha256(pki.rsa.intermediate.certPath)}`;
      rd.ecTA = `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`;
      rd.otherEE = `3 1 1 ${randomBytes(32).toString('hex')}`; // a key nobody serves
      mxResponder = await startMxResponder({
        'facebook.test': ['smtpin.vvv.facebook.test'],
        'gmail.test': ['gmail-smtp-in.l.google.test', 'alt1.gmail-smtp-in.l.google.test'],
      });
      const policyTable = (dir: string): void => {
        writeFileSync(
          join(dir, 'tls_policy'),
          [
            'facebook.test secure',
            'gmail.test secure match=nexthop:dot-nexthop',
            'verified.test verify match=hostname',
            '',
          ].join('\n'),
        );
        execFileSync(toolPath('postmap', 'postfix'), [
          '-c',
          dir,
          `hash:${join(dir, 'tls_policy')}`,
        ]);
      };

      Object.assign(cases, {
        clean: () => ({ inst: instance('clean'), cli: true }),
        cleanHuman: () => ({ inst: instance('clean-human'), args: ['--offline'], cli: true }),
        offlineWithResolver: () => ({
          inst: instance('offline-resolver'),
          args: ['--json', '--offline', '--resolver', '127.0.0.1:9'],
          cli: true,
        }),
        mismatch: () => ({ inst: instance('mismatch', { tlsa: [rd.otherEE] }), cli: true }),
        keyTypeMissing: () => ({ inst: instance('key-type', { tlsa: [rd.rsaEE] }) }),
        pkix: () => ({
          inst: instance('pkix', {
            tlsa: [`1 1 1 ${rd.rsaSpki}`, `0 1 1 ${opensslSpkiSha256(pki.rsa.root.certPath)}`],
          }),
        }),
        pkixBeside: () => ({
          inst: instance('pkix-beside', { tlsa: [rd.rsaEE, rd.ecTA, `1 1 1 ${rd.rsaSpki}`] }),
        }),
        taNotServed: () => ({
          inst: instance('ta-not-served', {
            main: {
              smtpd_tls_chain_files: null,
              smtpd_tls_cert_file: files.rsaCertOnly,
              smtpd_tls_key_file: files.rsaKey,
            },
            tlsa: [rd.rsaTA],
          }),
        }),
        wrongProtocolParam: () => ({
          inst: instance('wrong-protocol-param', {
            master: [
              ...CLEAN_MASTER.slice(0, 6),
              'smtps      inet  n       -       y       -       -       smtpd',
              '  -o smtpd_tls_wrappermode=yes',
              '  -o smtpd_tls_protocols=!TLSv1',
              CLEAN_MASTER.at(-1)!,
            ],
          }),
        }),
        clientParam: () => ({
          inst: instance('client-param', {
            master: [
              ...CLEAN_MASTER.slice(0, 5),
              '  -o smtp_tls_mandatory_protocols=>=TLSv1.2',
              ...CLEAN_MASTER.slice(5),
            ],
          }),
        }),
        mixedProtocols: () => ({
          inst: instance('mixed-protocols', {
            main: { smtpd_tls_mandatory_protocols: 'TLSv1.2, TLSv1.3, !SSLv3' },
          }),
        }),
        legacyProtocols: () => ({
          inst: instance('legacy-protocols', {
            main: { smtpd_tls_mandatory_protocols: '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1' },
          }),
        }),
        ciphers: () => ({
          inst: instance('ciphers', {
            main: {
              smtpd_tls_ciphers: 'high',
              smtpd_tls_exclude_ciphers: 'aNULL, MD5, RC4, 3DES, SHA1, AES128, AESGCM',
            },
          }),
        }),
        daneOff: () => ({
          inst: instance('dane-off', {
            main: { smtp_tls_security_level: 'may', smtp_dns_support_level: null },
          }),
          cli: true,
        }),
        daneNoDnssec: () => ({
          inst: instance('dane-no-dnssec', { main: { smtp_dns_support_level: null } }),
        }),
        policy: () => ({
          inst: instance('policy', {
            main: {
              smtp_tls_policy_maps: `hash:${join(root, 'policy', 'tls_policy')}, inline:{ {example.net = secure match=.mail.example.net} }`,
            },
            extra: (dir) => {
              writeFileSync(
                join(dir, 'tls_policy'),
                [
                  'gmail.com secure',
                  '[mx.example.com]:25 secure',
                  'example.org dane',
                  'foo.test secure match=.mail.foo.test',
                  '',
                ].join('\n'),
              );
              execFileSync(toolPath('postmap', 'postfix'), [
                '-c',
                dir,
                `hash:${join(dir, 'tls_policy')}`,
              ]);
            },
          }),
        }),
        smtpsNoWrapper: () => ({
          inst: instance('smtps-no-wrapper', {
            master: [
              ...CLEAN_MASTER.slice(0, 6),
              'smtps      inet  n       -       y       -       -       smtpd',
              '  -o smtpd_sasl_auth_enable=yes',
              CLEAN_MASTER.at(-1)!,
            ],
          }),
        }),
        port25Encrypt: () => ({
          inst: instance('port25-encrypt', { main: { smtpd_tls_security_level: 'encrypt' } }),
        }),

        // Issue 12, point 1: fixes that never weaken a listener.
        p1ClientProtocols: () => ({
          inst: instance('p1-client-protocols', {
            master: [
              ...CLEAN_MASTER.slice(0, 5),
              '  -o smtp_tls_mandatory_protocols=TLSv1',
              ...CLEAN_MASTER.slice(5),
            ],
          }),
        }),
        p1Tls10Only: () => ({
          inst: instance('p1-tls10-only', {
            master: [
              ...CLEAN_MASTER.slice(0, 5),
              '  -o smtpd_tls_mandatory_protocols=TLSv1',
              ...CLEAN_MASTER.slice(5),
            ],
          }),
        }),
        p1Smtps12Only: () => ({
          inst: instance('p1-smtps-12-only', {
            master: [
              ...CLEAN_MASTER.slice(0, 9),
              '  -o smtpd_tls_mandatory_protocols=<=TLSv1.2',
              CLEAN_MASTER.at(-1)!,
            ],
          }),
        }),
        p1MainNarrow: () => ({
          inst: instance('p1-main-narrow', { main: { smtpd_tls_protocols: 'SSLv3, TLSv1' } }),
        }),
        // Point 2: "no shared cipher" only when it is true.
        p2DualEcdsaExcluded: () => ({
          inst: instance('p2-dual-ecdsa-excluded', {
            main: {
              smtpd_tls_ciphers: 'high',
              tls_high_cipherlist: 'HIGH:!aNULL:!aECDSA:@STRENGTH',
            },
          }),
        }),
        p2ListRemovesAll: () => ({
          inst: instance('p2-list-removes-all', {
            main: {
              smtpd_tls_ciphers: 'high',
              tls_high_cipherlist: 'HIGH:!aNULL:!AESGCM:@STRENGTH',
            },
          }),
        }),
        // Point 3: outbound policy.
        p3Secure: () => ({
          inst: instance('p3-secure', {
            main: { smtp_tls_security_level: 'secure', smtp_dns_support_level: null },
          }),
        }),
        p3Encrypt: () => ({
          inst: instance('p3-encrypt', {
            main: { smtp_tls_security_level: 'encrypt', smtp_dns_support_level: null },
          }),
        }),
        p3Policy: () => ({
          inst: instance('p3-policy', {
            main: { smtp_tls_policy_maps: `hash:${join(root, 'p3-policy', 'tls_policy')}` },
            extra: policyTable,
          }),
          resolver: mxResponder!.address,
        }),
        p3PolicyOffline: () => ({
          inst: instance('p3-policy-offline', {
            main: { smtp_tls_policy_maps: `hash:${join(root, 'p3-policy-offline', 'tls_policy')}` },
            extra: policyTable,
          }),
        }),
        // Point 4: TLSA input.
        p4Cname: () => ({
          inst: instance('p4-cname', {
            tlsaText: [
              '_25._tcp.mx.example.org.  3600 IN CNAME _dane.example.net.',
              `_dane.example.net.        3600 IN TLSA ${rd.rsaEE}`,
              `_dane.example.net.        3600 IN TLSA ${rd.ecTA}`,
            ],
          }),
        }),
        p4CertOnly: () => ({
          inst: instance('p4-cert-only', {
            main: {
              smtpd_tls_chain_files: null,
              smtpd_tls_cert_file: files.rsaCertOnly,
              smtpd_tls_key_file: files.rsaKey,
            },
            tlsaText: [
              '$ORIGIN example.org.',
              ...['25', '587', '465'].map((p) => `_${p}._tcp.mx 3600 IN TLSA ${rd.rsaTA}`),
            ],
          }),
        }),
        // Point 5: wrapped tables.
        p5Proxy: () => ({
          inst: instance('p5-proxy', {
            main: {
              smtp_tls_policy_maps: `proxy:hash:${join(root, 'p5-proxy', 'tls_policy')}, unionmap:{ hash:${join(root, 'p5-proxy', 'more_policy')} }, pcre:${join(root, 'p5-proxy', 'policy.pcre')}`,
            },
            extra: (dir) => {
              writeFileSync(join(dir, 'tls_policy'), 'gmail.com secure\n');
              writeFileSync(join(dir, 'more_policy'), 'outlook.com secure\n');
              writeFileSync(join(dir, 'policy.pcre'), '/\\.example$/ secure\n');
              for (const t of ['tls_policy', 'more_policy'])
                execFileSync(toolPath('postmap', 'postfix'), ['-c', dir, `hash:${join(dir, t)}`]);
            },
          }),
        }),
      });
      await Promise.all(
        Object.entries(cases).map(async ([name, make]) => {
          const c = make();
          if (c.cli) {
            const run = await doctor([
              '--postfix-dir',
              c.inst.dir,
              '--tlsa-file',
              c.inst.tlsaFile,
              ...(c.args ?? ['--json', '--offline']),
            ]);
            runs.set(name, run);
            if (run.code !== 2 && (c.args ?? ['--json']).includes('--json'))
              examined.set(name, { inst: c.inst, report: JSON.parse(run.stdout) as DoctorReport });
            return;
          }
          try {
            const report = await runDoctor({
              configDir: c.inst.dir,
              tlsaFile: c.inst.tlsaFile,
              ...(c.resolver ? { resolver: c.resolver } : { offline: true }),
            });
            runs.set(name, {
              code: report.exitCode,
              stdout: JSON.stringify(report),
              stderr: '',
              inProcess: true,
            });
            examined.set(name, {
              inst: c.inst,
              ...(c.resolver ? { resolver: c.resolver } : {}),
              report,
            });
          } catch (e) {
            runs.set(name, { code: null, stdout: '', stderr: (e as Error).stack ?? String(e) });
          }
        }),
      );
    });

    const get = (name: string): { run: Run; report: ReportJson } => {
      const run = runs.get(name)!;
      expect(stackLines(run.stdout + run.stderr), show(run)).toEqual([]);
      return { run, report: reportOf(run) };
    };
    const finding = (r: ReportJson, id: string): FindingJson => {
      const f = r.findings.find((x) => x.id === id);
      expect(f, `no ${id} in ${JSON.stringify(r.findings, null, 2)}`).toBeDefined();
      for (const k of ['id', 'level', 'service', 'parameter', 'message', 'fix'] as const)
        expect(typeof f![k]).toBe('string');
      return f!;
    };

    it('a clean configuration: no findings, exit 0; every listener with its effective settings; both key types matched', () => {
      const { run, report } = get('clean');
      expect(report.findings, show(run)).toEqual([]);
      expect(run.code).toBe(0);
      expect(report.ok).toBe(true);
      expect(report.postfix.version).toMatch(/^3\./);
      const byName = Object.fromEntries(report.services.map((s) => [s.service, s]));
      expect(Object.keys(byName)).toEqual(['smtp/25', 'submission/587', 'smtps/465']);
      expect(byName['smtp/25']).toMatchObject({
        role: 'mx',
        tls: { securityLevel: 'may', mandatory: false },
        protocols: { parameter: 'smtpd_tls_protocols' },
      });
      expect(byName['submission/587']).toMatchObject({
        role: 'submission',
        tls: { securityLevel: 'encrypt', mandatory: true },
        protocols: { parameter: 'smtpd_tls_mandatory_protocols' },
      });
      expect(byName['smtps/465']).toMatchObject({
        role: 'smtps',
        tls: { wrappermode: true, mandatory: true },
        protocols: { parameter: 'smtpd_tls_mandatory_protocols' },
      });
      const tlsa = byName['smtp/25']!.tlsa!;
      expect(tlsa).toMatchObject({ owner: '_25._tcp.mx.example.org.', source: 'file' });
      expect(tlsa.records.sort()).toEqual([rd.rsaEE, rd.ecTA].sort());
      expect(
        tlsa.chains.map((c) => [
          c.keyType.split(' ')[0],
          c.verified,
          c.matched?.replace(/^.* at /, 'at '),
        ]),
      ).toEqual([
        ['RSA', true, 'at depth 0'],
        ['ECDSA', true, 'at depth 1'],
      ]);
      expect(report.outbound).toMatchObject({ securityLevel: 'dane', dnsSupportLevel: 'dnssec' });
      // --offline: the resolver check is skipped, and the report says so.
      expect(report.skipped.map((s) => `${s.check}: ${s.reason}`).join('\n')).toMatch(
        /validating resolver.*--offline: no DNS question/,
      );
    });

    it('human output: grouped per service, effective settings shown, exit 0', () => {
      const run = runs.get('cleanHuman')!;
      expect(run.code, show(run)).toBe(0);
      const order = ['smtp/25', 'submission/587', 'smtps/465', 'smtp client'].map((l) =>
        run.stdout.indexOf(`\n${l}  (`),
      );
      expect(
        order.every((i) => i > 0),
        run.stdout,
      ).toBe(true);
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(run.stdout).toMatch(/protocols: smtpd_tls_mandatory_protocols = >=TLSv1 /);
      expect(run.stdout).toMatch(/0 error\(s\), 0 warning\(s\), 0 note\(s\)/);
    });

    it('--offline and --resolver together: bad input (exit 2), one line', () => {
      const run = runs.get('offlineWithResolver')!;
      expect(run.code, show(run)).toBe(2);
      expect(run.stderr).toMatch(/--offline .* cannot be combined with --resolver/);
      expect(stackLines(run.stderr)).toEqual([]);
    });

    it('1. records that match nothing served: tlsa-mismatch (error), exit 1', () => {
      const { run, report } = get('mismatch');
      const f = finding(report, 'tlsa-mismatch');
      expect(f).toMatchObject({
        level: 'error',
        service: 'smtp/25',
        parameter: 'smtpd_tls_chain_files',
      });
      expect(f.message).toMatch(/RSA 2048.*ECDSA P-256/);
      expect(f.fix).toMatch(/tlsa generate --chain FULLCHAIN --host mx\.example\.org --port 25/);
      expect(run.code).toBe(1);
    });

    it('1. one of two key types without a record: tlsa-key-type-missing names ECDSA (error), exit 1', () => {
      const { run, report } = get('keyTypeMissing');
      const f = finding(report, 'tlsa-key-type-missing');
      expect(f).toMatchObject({ level: 'error', service: 'smtp/25' });
      expect(f.message).toMatch(
        /RSA 2048 is covered, but no record .* matches the ECDSA P-256 chain/,
      );
      expect(ids(report)).not.toContain('tlsa-mismatch');
      expect(run.code).toBe(1);
    });

    it('1. usages 0/1 only: tlsa-pkix-usage (error, alert 71); beside usable records only a warning', () => {
      const a = get('pkix');
      const f = finding(a.report, 'tlsa-pkix-usage');
      expect(f.level).toBe('error');
      expect(f.message).toMatch(/RFC 7672 .*alert 71/);
      expect(a.run.code).toBe(1);
      const b = get('pkixBeside');
      expect(
        b.report.findings.map((x) => [x.id, x.level]),
        show(b.run),
      ).toEqual([['tlsa-pkix-usage', 'warning']]);
      expect(b.run.code).toBe(0);
    });

    it('2. a 2 1 1 record, but cert.pem (leaf only) is served: tlsa-ta-not-served says to serve fullchain.pem', () => {
      const { run, report } = get('taNotServed');
      const f = finding(report, 'tlsa-ta-not-served');
      // The certificate comes from main.cf: one finding for main.cf, whichever listeners serve it.
      expect(f).toMatchObject({
        level: 'error',
        service: 'main.cf',
        parameter: 'smtpd_tls_cert_file',
      });
      expect(f.message).toMatch(/only the leaf/);
      expect(f.fix).toMatch(/fullchain\.pem/);
      expect(run.code).toBe(1);
    });

    it('3. -o smtpd_tls_protocols=!TLSv1 on 465 (wrappermode): the mandatory list applies, TLSv1 stays on (warning)', () => {
      const { run, report } = get('wrongProtocolParam');
      const f = finding(report, 'protocols-wrong-parameter');
      expect(f).toMatchObject({
        level: 'warning',
        service: 'smtps/465',
        parameter: 'smtpd_tls_protocols',
      });
      expect(f.message).toMatch(
        /wrappermode.*smtpd_tls_mandatory_protocols applies.*TLSv1 stays enabled/,
      );
      expect(f.fix).toMatch(
        /delete -o smtpd_tls_protocols and write -o smtpd_tls_mandatory_protocols=>=TLSv1\.2/,
      );
      expect(report.findings.filter((x) => x.level === 'error')).toEqual([]);
      expect(run.code).toBe(0);
    });

    it('3. an smtp_ (client) parameter set on an smtpd service: client-parameter-on-server', () => {
      const { report } = get('clientParam');
      const f = finding(report, 'client-parameter-on-server');
      expect(f).toMatchObject({
        level: 'warning',
        service: 'submission/587',
        parameter: 'smtp_tls_mandatory_protocols',
      });
      expect(f.fix).toMatch(/-o smtpd_tls_mandatory_protocols=>=TLSv1\.2/);
    });

    it('3. a protocol list mixing include and exclude forms: protocols-mixed-syntax, with the >= form as fix', () => {
      const { report } = get('mixedProtocols');
      const f = finding(report, 'protocols-mixed-syntax');
      expect(f).toMatchObject({
        level: 'warning',
        service: 'main.cf',
        parameter: 'smtpd_tls_mandatory_protocols',
      });
      expect(f.fix).toMatch(/">=TLSv1\.2"/);
      expect(report.findings.filter((x) => x.id === 'protocols-mixed-syntax')).toHaveLength(1); // once, not per service
    });

    it('3. the legacy exclusion form where Postfix supports >=: protocols-legacy-syntax (info), exit 0', () => {
      const { run, report } = get('legacyProtocols');
      const f = finding(report, 'protocols-legacy-syntax');
      expect(f).toMatchObject({ level: 'info', parameter: 'smtpd_tls_mandatory_protocols' });
      expect(f.fix).toBe('smtpd_tls_mandatory_protocols = >=TLSv1.2');
      expect(run.code).toBe(0);
    });

    it('4. "high" with exclusions that leave no cipher the big senders share: ciphers-no-shared-cipher on port 25 (error)', () => {
      const { run, report } = get('ciphers');
      const f = report.findings.find(
        (x) => x.id === 'ciphers-no-shared-cipher' && x.service === 'smtp/25',
      );
      expect(f, show(run)).toBeDefined();
      expect(f!.level).toBe('error');
      expect(f!.parameter).toBe('smtpd_tls_exclude_ciphers');
      expect(f!.message).toMatch(/ECDHE-RSA-AES128-GCM-SHA256.*no shared cipher/);
      expect(f!.fix).toMatch(/defaults/);
      expect(run.code).toBe(1);
    });

    it('5. outbound DANE off: dane-outbound-off (warning), exit 0', () => {
      const { run, report } = get('daneOff');
      expect(
        report.findings.map((x) => [x.id, x.level, x.service]),
        show(run),
      ).toEqual([['dane-outbound-off', 'warning', 'smtp client']]);
      expect(finding(report, 'dane-outbound-off').fix).toMatch(
        /smtp_tls_security_level = dane.*smtp_dns_support_level = dnssec/,
      );
      expect(run.code).toBe(0);
    });

    it('5. dane without smtp_dns_support_level = dnssec: dane-dnssec-off (error)', () => {
      const { run, report } = get('daneNoDnssec');
      expect(finding(report, 'dane-dnssec-off')).toMatchObject({
        level: 'error',
        service: 'smtp client',
        parameter: 'smtp_dns_support_level',
      });
      expect(run.code).toBe(1);
    });

    it('5. a "secure" policy entry without match= (hash table read with postmap): policy-secure-nexthop, only for that entry', () => {
      const { run, report } = get('policy');
      const f = report.findings.filter((x) => x.id === 'policy-secure-nexthop');
      expect(
        f.map((x) => x.message.match(/"([^"]+)"/)?.[1]),
        show(run),
      ).toEqual(['gmail.com secure']);
      expect(f[0]!.fix).toMatch(/gmail\.com dane.*match=/);
    });

    it('6. smtps on 465 without wrappermode: smtps-no-wrappermode (error)', () => {
      const { run, report } = get('smtpsNoWrapper');
      expect(finding(report, 'smtps-no-wrappermode')).toMatchObject({
        level: 'error',
        service: 'smtps/465',
        parameter: 'smtpd_tls_wrappermode',
      });
      expect(run.code).toBe(1);
    });

    it('6. smtpd_tls_security_level = encrypt on port 25: port25-encrypt (error), only on smtp/25', () => {
      const { run, report } = get('port25Encrypt');
      const f = report.findings.filter((x) => x.id === 'port25-encrypt');
      expect(
        f.map((x) => x.service),
        show(run),
      ).toEqual(['smtp/25']);
      expect(f[0]!.message).toMatch(/RFC 3207/);
      expect(run.code).toBe(1);
    });

    const service = (r: ReportJson, label: string): ReportJson['services'][number] =>
      r.services.find((x) => x.service === label)!;

    it('issue 12.1: -o smtp_tls_mandatory_protocols=TLSv1 on submission: the fix deletes it and names the list that applies there, with >=TLSv1.2, never the mistaken value', () => {
      const { run, report } = get('p1ClientProtocols');
      const f = finding(report, 'client-parameter-on-server');
      expect(f, show(run)).toMatchObject({
        level: 'warning',
        service: 'submission/587',
        parameter: 'smtp_tls_mandatory_protocols',
      });
      expect(f.fix).toMatch(
        /Delete -o smtp_tls_mandatory_protocols.*-o smtpd_tls_mandatory_protocols=>=TLSv1\.2/,
      );
      expect(f.fix).not.toMatch(/=TLSv1\b(?!\.)/);
      expect((f as FindingJson & { edits?: ConfigEdit[] }).edits).toEqual([
        { service: 'submission/inet', parameter: 'smtp_tls_mandatory_protocols' },
        {
          service: 'submission/inet',
          parameter: 'smtpd_tls_mandatory_protocols',
          value: '>=TLSv1.2',
        },
      ]);
    });

    it('issue 12.1: a TLS-1.0-only submission listener is an error (no current client can connect), its fix is >=TLSv1.2, and no "clearer form" note restates TLSv1', () => {
      const { run, report } = get('p1Tls10Only');
      const f = finding(report, 'protocols-too-narrow');
      expect(f, show(run)).toMatchObject({
        level: 'error',
        service: 'submission/587',
        parameter: 'smtpd_tls_mandatory_protocols',
      });
      expect(f.message).toMatch(/leaves TLSv1 on .*TLSv1\.2 and TLSv1\.3 are off/);
      expect(f.fix).toMatch(/-o smtpd_tls_mandatory_protocols=>=TLSv1\.2/);
      expect(
        report.findings.filter((x) => x.service === 'submission/587').map((x) => x.id),
      ).toEqual(['protocols-too-narrow']);
      expect(JSON.stringify(report.findings)).not.toMatch(/<=TLSv1\b/);
      expect(run.code).toBe(1);
    });

    it('issue 12.1: not only port 25: smtps with <=TLSv1.2 gets a warning (TLS 1.3 off); SSLv3, TLSv1 in main.cf on port 25 an error whose fix is the default, saying SSLv3 cannot come back', () => {
      const a = get('p1Smtps12Only');
      expect(
        a.report.findings.map((x) => [x.id, x.level, x.service]),
        show(a.run),
      ).toEqual([['protocols-too-narrow', 'warning', 'smtps/465']]);
      expect(a.run.code).toBe(0);
      const b = get('p1MainNarrow');
      const f = b.report.findings.filter((x) => x.id === 'protocols-too-narrow');
      expect(
        f.map((x) => [x.level, x.service]),
        show(b.run),
      ).toEqual([['error', 'smtp/25']]);
      expect(f[0]!.message).toMatch(/SSLv3 cannot be turned back on: OpenSSL \d/);
      expect((f[0] as FindingJson & { edits?: ConfigEdit[] }).edits).toEqual([
        { parameter: 'smtpd_tls_protocols' },
      ]);
      expect(f[0]!.fix).toMatch(/Delete smtpd_tls_protocols in main\.cf/);
    });

    it('issue 12.2: RSA + ECDSA served, a custom tls_high_cipherlist without ECDSA suites: no error (RSA suites remain), a note naming tls_high_cipherlist', () => {
      const { run, report } = get('p2DualEcdsaExcluded');
      expect(
        report.findings.map((x) => [x.id, x.level, x.service, x.parameter]),
        show(run),
      ).toEqual([['ciphers-key-type-unused', 'info', 'smtp/25', 'tls_high_cipherlist']]);
      expect(report.findings[0]!.message).toMatch(
        /ECDSA certificate, but the RSA certificate keeps ECDHE-RSA-AES/,
      );
      expect(report.findings[0]!.message).toMatch(/OpenSSL \d[\d.]*'s expansion/);
      expect(run.code).toBe(0);
    });

    it('issue 12.2: a custom tls_high_cipherlist that leaves no common suite for either key type: the error names tls_high_cipherlist; exclusions that do it are named one by one', () => {
      const a = get('p2ListRemovesAll');
      const f = a.report.findings.filter((x) => x.id === 'ciphers-no-shared-cipher');
      expect(
        f.map((x) => [x.level, x.service, x.parameter]),
        show(a.run),
      ).toEqual([['error', 'smtp/25', 'tls_high_cipherlist']]);
      expect(f[0]!.message).toMatch(/the RSA certificate .* or the ECDSA certificate/);
      const b = get('ciphers');
      const g = b.report.findings.find((x) => x.id === 'ciphers-no-shared-cipher')!;
      expect(g.message).toMatch(/with the exclusions AES128, AESGCM leaves none/);
    });

    it('issue 12.2: the suite count leaves out what a certificate cannot negotiate (PSK, SRP, anonymous)', () => {
      const { report } = get('clean');
      const listed = execFileSync(
        toolPath('openssl', 'openssl'),
        ['ciphers', '-v', 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH'],
        { encoding: 'utf8' },
      )
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((w) => w.length > 4 && w[1] !== 'TLSv1.3');
      const withCertificate = listed.filter(
        (w) => /^Au=(RSA|ECDSA|DSS)$/.test(w[3]!) && !/PSK|SRP/.test(w[2]!),
      );
      expect(withCertificate.length).toBeLessThan(listed.length);
      const smtp = service(report, 'smtp/25') as unknown as { ciphers: { tls12Suites: number } };
      expect(smtp.ciphers.tls12Suites).toBe(withCertificate.length);
    });

    it('issue 12.3: a global secure / encrypt level is explained for what it does, not with the text for may', () => {
      for (const [name, what] of [
        ['p3Secure', /MX names differ from the domain/],
        ['p3Encrypt', /does not offer STARTTLS defers/],
      ] as const) {
        const { run, report } = get(name);
        const f = finding(report, 'outbound-tls-mandatory');
        expect(f, show(run)).toMatchObject({
          level: 'warning',
          service: 'smtp client',
          parameter: 'smtp_tls_security_level',
        });
        expect(f.message).toMatch(what);
        expect(JSON.stringify(report.findings)).not.toMatch(/strip STARTTLS or present/);
        expect(ids(report)).not.toContain('dane-outbound-off');
      }
    });

    it("issue 12.3: secure entries are flagged only when the domain's MX names lie outside it (looked up through a loopback resolver); match= equal to the default is flagged", () => {
      const { run, report } = get('p3Policy');
      const secure = report.findings.filter((x) => x.id === 'policy-secure-nexthop');
      expect(
        secure.map((x) => x.message.match(/"([^"]+)"/)?.[1]),
        show(run),
      ).toEqual(['gmail.test secure']);
      expect(secure[0]!.message).toMatch(/gmail-smtp-in\.l\.google\.test.*lie outside gmail\.test/);
      expect(secure[0]!.message).toMatch(/match=nexthop:dot-nexthop repeats that default/);
      expect(secure[0]!.fix).toMatch(/secure match=\.l\.google\.test/);
      const dflt = report.findings.filter((x) => x.id === 'policy-match-default');
      expect(dflt.map((x) => [x.level, x.message.match(/"([^"]+)"/)?.[1]])).toEqual([
        ['info', 'verified.test verify match=hostname'],
      ]);
      // Without DNS the MX names are unknown: both secure entries are flagged, and the text says why.
      const off = get('p3PolicyOffline').report.findings.filter(
        (x) => x.id === 'policy-secure-nexthop',
      );
      expect(off.map((x) => x.message.match(/"([^"]+)"/)?.[1]).sort()).toEqual([
        'facebook.test secure',
        'gmail.test secure',
      ]);
      expect(off[0]!.message).toMatch(/not looked up: --offline/);
    });

    it('issue 12.4: a CNAME in --tlsa-file (as dig prints it) is followed to the records', () => {
      const { run, report } = get('p4Cname');
      expect(report.findings, show(run)).toEqual([]);
      const tlsa = service(report, 'smtp/25').tlsa! as NonNullable<
        ReportJson['services'][number]['tlsa']
      > & { cnameChain?: string[] };
      expect(tlsa.cnameChain).toEqual(['_25._tcp.mx.example.org.', '_dane.example.net.']);
      expect(tlsa.records.sort()).toEqual([rd.rsaEE, rd.ecTA].sort());
      expect(tlsa.chains.map((c) => c.verified)).toEqual([true, true]);
    });

    it('issue 12.4: usages 0/1 only: the text says the alert comes from the sending MTA, that Postfix senders fall back to encrypt and web.de/GMX refuse', () => {
      const f = finding(get('pkix').report, 'tlsa-pkix-usage');
      expect(f.message).toMatch(/Postfix senders treat .* as "encrypt"/);
      expect(f.message).toMatch(/web\.de and GMX, refuse/);
      expect(f.message).toMatch(/alert in your log comes from the sender/);
    });

    it('issue 12.4: cert.pem without the chain, with 2 1 1 records on three ports: one finding, not one per port and symptom', () => {
      const { run, report } = get('p4CertOnly');
      expect(
        report.findings
          .filter((x) => x.level === 'error')
          .map((x) => [x.id, x.service, x.parameter]),
        show(run),
      ).toEqual([['tlsa-ta-not-served', 'main.cf', 'smtpd_tls_cert_file']]);
    });

    it('issue 12.5: proxy:hash: and unionmap: tables are read through; only pcre stays "not checked"', () => {
      const { run, report } = get('p5Proxy');
      const flagged = report.findings
        .filter((x) => x.id === 'policy-secure-nexthop')
        .map((x) => x.message.match(/"([^"]+)"/)?.[1])
        .sort();
      expect(flagged, show(run)).toEqual(['gmail.com secure', 'outlook.com secure']);
      const notChecked = report.skipped.filter((x) => x.check.startsWith('smtp_tls_policy_maps'));
      expect(notChecked.map((x) => x.check)).toEqual([
        expect.stringMatching(/^smtp_tls_policy_maps pcre:/),
      ]);
    });

    it('every fix the doctor proposes, applied with postconf on a copy of each configuration, introduces no new error or warning', async () => {
      expect(examined.size).toBeGreaterThan(25);
      const tried: string[] = [];
      const introduced: string[] = [];
      const jobs: (() => Promise<void>)[] = [];
      let n = 0;
      for (const [name, { inst, resolver, report }] of examined) {
        const before = new Set(problems(report));
        for (const f of report.findings) {
          if (!f.edits?.length) continue;
          const copy = join(root, `fixed-${n++}-${name}`);
          jobs.push(async () => {
            cpSync(inst.dir, copy, { recursive: true });
            applyEdits(copy, f.edits!);
            const after = await runDoctor({
              configDir: copy,
              tlsaFile: join(copy, 'tlsa.zone'),
              ...(resolver ? { resolver } : { offline: true }),
            });
            tried.push(`${name}: ${f.id}`);
            for (const p of problems(after))
              if (!before.has(p))
                introduced.push(
                  `${name}: fixing ${f.id} @ ${f.service} (${JSON.stringify(f.edits)}) brought ${p}`,
                );
            // The fix did what it says: its own finding is gone.
            if (
              after.findings.some(
                (x) =>
                  x.id === f.id &&
                  x.service === f.service &&
                  x.parameter === f.parameter &&
                  x.message === f.message,
              )
            )
              introduced.push(`${name}: ${f.id} @ ${f.service} is still there after its fix`);
          });
        }
      }
      // A few at a time: the machine is shared.
      for (let i = 0; i < jobs.length; i += 4)
        await Promise.all(jobs.slice(i, i + 4).map((j) => j()));
      expect(tried.length).toBeGreaterThan(20);
      expect(introduced).toEqual([]);
    }, 300_000);

    it('bad input exits 2 with one line: no such directory, postconf missing, unknown subject', async () => {
      const [noDir, noPostconf, what] = await Promise.all([
        doctor(['--offline', '--postfix-dir', join(root, 'does-not-exist')]),
        doctor(['--offline', '--postfix-dir', join(root, 'clean')], {
          TLSA_POSTCONF: join(root, 'no-postconf-here'),
        }),
        new Promise<Run>((resolve) => {
          const child = spawn(process.execPath, [CLI_PATH, 'doctor', 'nginx'], {
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
          child.on('close', (code) => resolve({ code, stdout, stderr }));
        }),
      ]);
      expect(noDir.code, show(noDir)).toBe(2);
      expect(noDir.stderr).toMatch(/does-not-exist: Postfix configuration directory not found/);
      expect(noPostconf.code, show(noPostconf)).toBe(2);
      expect(noPostconf.stderr).toMatch(/postconf not found/);
      expect(what.code, show(what)).toBe(2);
      expect(what.stderr).toMatch(/doctor knows "postfix"/);
      for (const r of [noDir, noPostconf, what]) expect(stackLines(r.stderr)).toEqual([]);
    });
  },
);

// ---------------------------------------------------------------------------------------------
// A live second Postfix instance, its records in a signed zone, a validating resolver

labDescribe(
  'tlsa doctor postfix against a live lab Postfix, TLSA through Knot (DNSSEC) + unbound',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ['openssl', 'openssl'],
    ...POSTFIX_TOOLS,
  ],
  () => {
    let pf: PostfixServer;
    let knot: KnotServer;
    let validating: UnboundServer;
    let iterating: UnboundServer;

    beforeAll(async () => {
      requireBuiltCli();
      const { pki, rsaLeaf, ecLeaf } = sharedPki();
      const dir = pki.dir;
      const rsaInt = pki.rsa.intermediate;
      const ecInt = pki.ecdsa.intermediate;
      const full = (leaf: LeafHandle, ca: { certPem: string }, n: string): string => {
        const p = join(dir, `lab-${n}-fullchain.pem`);
        writeFileSync(p, `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
        return p;
      };
      pf = await startPostfix({
        hostname: 'mx.test',
        chains: [
          { keyPath: rsaLeaf.keyPath, fullchainPath: full(rsaLeaf, rsaInt, 'rsa') },
          { keyPath: ecLeaf.keyPath, fullchainPath: full(ecLeaf, ecInt, 'ecdsa') },
        ],
        main: {
          // Meant for the implicit-TLS listener, where the mandatory list applies instead.
          smtpd_tls_protocols: '>=TLSv1.2',
          smtp_tls_security_level: 'dane',
          smtp_dns_support_level: 'dnssec',
          dnssec_probe: 'soa:test.',
          // One connection per smtpd process: after a reload, no process started before it
          // (with the old settings) serves the next client.
          max_use: '1',
        },
      });
      const ee = `3 1 1 ${opensslSpkiSha256(rsaLeaf.certPath)}`;
      const ta = `2 1 1 ${opensslSpkiSha256(ecInt.certPath)}`;
      const zone = minimalZone(
        'test.',
        [
          'mx.test. 300 IN A 127.0.0.1',
          // STARTTLS listener: only the RSA key is covered.
          `_${pf.smtpPort}._tcp.mx.test. 300 IN TLSA ${ee}`,
          // Implicit-TLS listener: both.
          `_${pf.smtpsPort}._tcp.mx.test. 300 IN TLSA ${ee}`,
          `_${pf.smtpsPort}._tcp.mx.test. 300 IN TLSA ${ta}`,
          // An alias MX name whose TLSA owner is a CNAME to the real one (RFC 7672 §2.2).
          `_${pf.smtpPort}._tcp.alias.test. 300 IN CNAME _${pf.smtpPort}._tcp.mx.test.`,
        ].join('\n'),
      );
      knot = await startKnot({ zones: [{ name: 'test.', zoneFileText: zone, dnssec: true }] });
      const stubs = [{ zone: 'test.', port: knot.port, host: knot.host }];
      const anchors = knot.dsRecords('test.');
      [validating, iterating] = await Promise.all([
        startUnbound({ stubs, trustAnchors: anchors }),
        startUnbound({ stubs, trustAnchors: anchors, moduleConfig: 'iterator' }),
      ]);
    });

    afterAll(async () => {
      await pf?.stop();
      await stopAll();
      expect(runningDaemons()).toEqual([]);
    });

    it('reads the running instance (postconf -c): the RSA-only RRset on the STARTTLS port is found, DNSSEC secure, resolver validating', async () => {
      const run = await doctor([
        '--postfix-dir',
        pf.configDir,
        '--resolver',
        `${validating.host}:${validating.port}`,
        '--host',
        'mx.test',
        '--json',
        '--timeout',
        '3',
      ]);
      const report = reportOf(run);
      expect(stackLines(run.stdout + run.stderr)).toEqual([]);
      const starttls = report.services.find((s) => s.port === pf.smtpPort)!;
      const implicit = report.services.find((s) => s.port === pf.smtpsPort)!;
      expect(starttls.tlsa, show(run)).toMatchObject({
        owner: `_${pf.smtpPort}._tcp.mx.test.`,
        source: 'dns',
        status: 'secure',
      });
      expect(starttls.tlsa!.chains.map((c) => [c.keyType.split(' ')[0], c.verified])).toEqual([
        ['RSA', true],
        ['ECDSA', false],
      ]);
      expect(implicit.tlsa!.chains.map((c) => c.verified)).toEqual([true, true]);
      expect(implicit.tls).toMatchObject({ wrappermode: true, mandatory: true });

      const missing = report.findings.filter((f) => f.id === 'tlsa-key-type-missing');
      expect(missing.map((f) => f.service)).toEqual([`127.0.0.1:${pf.smtpPort}`]);
      expect(missing[0]!.message).toMatch(/ECDSA P-256/);
      const wrong = report.findings.find((f) => f.id === 'protocols-wrong-parameter');
      expect(wrong, show(run)).toMatchObject({
        service: `127.0.0.1:${pf.smtpsPort}`,
        parameter: 'smtpd_tls_protocols',
      });
      expect(wrong!.message).toMatch(/TLSv1, TLSv1\.1 stay enabled/);
      expect(report.outbound.resolver).toMatchObject({ status: 'secure' });
      expect(report.findings.filter((f) => f.id.startsWith('dane-'))).toEqual([]);
      expect(run.code).toBe(1);
    });

    it('issue 12.4: a TLSA owner that is a CNAME in DNS is followed (validated), and the report shows the chain', async () => {
      const run = await doctor([
        '--postfix-dir',
        pf.configDir,
        '--resolver',
        `${validating.host}:${validating.port}`,
        '--host',
        'alias.test',
        '--json',
        '--timeout',
        '3',
      ]);
      const report = reportOf(run);
      const starttls = report.services.find((s) => s.port === pf.smtpPort)!;
      const tlsa = starttls.tlsa as NonNullable<typeof starttls.tlsa> & { cnameChain?: string[] };
      expect(tlsa, show(run)).toMatchObject({
        owner: `_${pf.smtpPort}._tcp.alias.test.`,
        source: 'dns',
        status: 'secure',
      });
      expect(tlsa.cnameChain).toEqual([
        `_${pf.smtpPort}._tcp.alias.test.`,
        `_${pf.smtpPort}._tcp.mx.test.`,
      ]);
      expect(tlsa.records).toHaveLength(1);
      expect(tlsa.chains.map((c) => [c.keyType.split(' ')[0], c.verified])).toEqual([
        ['RSA', true],
        ['ECDSA', false],
      ]);
    });

    /** A TLS handshake to the implicit-TLS port, or after STARTTLS on the other one: the
     *  negotiated version, or why it failed. */
    function handshake(
      port: number,
      starttls: boolean,
      opts: { maxVersion: 'TLSv1.1' | 'TLSv1.2'; ciphers: string },
    ): Promise<string> {
      const tls = (socket?: Socket): Promise<string> =>
        new Promise((resolve) => {
          const s = tlsConnect({
            host: '127.0.0.1',
            rejectUnauthorized: false,
            minVersion: 'TLSv1',
            ...opts,
            ...(socket ? { socket } : { port }),
          });
          s.setTimeout(5000, () => {
            s.destroy();
            resolve('timeout');
          });
          s.on('secureConnect', () => {
            const v = s.getProtocol() ?? '?';
            s.destroy();
            resolve(v);
          });
          s.on('error', (e) => {
            s.destroy();
            resolve(`refused: ${e.message}`);
          });
        });
      if (!starttls) return tls();
      return new Promise((resolve) => {
        const sock = netConnect({ host: '127.0.0.1', port });
        let buf = '';
        let step = 0;
        sock.setTimeout(5000, () => {
          sock.destroy();
          resolve('timeout');
        });
        sock.on('error', (e) => resolve(`error: ${e.message}`));
        const onData = (d: Buffer): void => {
          buf += d.toString('latin1');
          if (step === 0 && /^220 .*\r\n/m.test(buf)) {
            step = 1;
            buf = '';
            sock.write('EHLO doctor.test\r\n');
          } else if (step === 1 && /^250 .*\r\n/m.test(buf)) {
            step = 2;
            buf = '';
            sock.write('STARTTLS\r\n');
          } else if (step === 2 && /^220 .*\r\n/m.test(buf)) {
            step = 3;
            sock.off('data', onData);
            sock.setTimeout(0);
            void tls(sock).then(resolve);
          }
        };
        sock.on('data', onData);
      });
    }

    it('the live listeners agree with the doctor: TLS 1.1 is refused after STARTTLS (smtpd_tls_protocols applies) but accepted on the wrappermode port (it does not)', async () => {
      // A TLS 1.1-only client (OpenSSL security level 0, so that our side allows it).
      const tls11 = { maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' } as const;
      const [implicit, starttls] = await Promise.all([
        handshake(pf.smtpsPort, false, tls11),
        handshake(pf.smtpPort, true, tls11),
      ]);
      expect(implicit, pf.maillog().split('\n').slice(-10).join('\n')).toBe('TLSv1.1');
      expect(starttls).toMatch(/^refused/);
    });

    it('cipher exclusions that remove every common sender suite: the doctor says so, and a sender offering only those suites gets no TLS', async () => {
      execFileSync(toolPath('postconf', 'postfix'), [
        '-c',
        pf.configDir,
        '-e',
        'smtpd_tls_ciphers = high',
        'smtpd_tls_exclude_ciphers = aNULL, AESGCM, CHACHA20',
      ]);
      await pf.reload();
      const common =
        'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384';
      const [run, bigSender, cbcSender] = await Promise.all([
        doctor([
          '--postfix-dir',
          pf.configDir,
          '--resolver',
          `${validating.host}:${validating.port}`,
          '--host',
          'mx.test',
          '--json',
          '--timeout',
          '3',
        ]),
        handshake(pf.smtpPort, true, { maxVersion: 'TLSv1.2', ciphers: common }),
        handshake(pf.smtpPort, true, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-SHA384' }),
      ]);
      const report = reportOf(run);
      const f = report.findings.filter(
        (x) => x.id === 'ciphers-no-shared-cipher' && x.service === `127.0.0.1:${pf.smtpPort}`,
      );
      expect(f, show(run)).toHaveLength(1);
      expect(f[0]!.message).toMatch(/the RSA certificate .* or the ECDSA certificate/);
      expect(bigSender).toMatch(/^refused/);
      expect(pf.maillog()).toMatch(/no shared cipher/);
      expect(cbcSender).toBe('TLSv1.2');
    });

    it('a resolver that does not validate: dane-resolver-not-validating (error, DANE is on), TLSA not secure', async () => {
      const run = await doctor([
        '--postfix-dir',
        pf.configDir,
        '--resolver',
        `${iterating.host}:${iterating.port}`,
        '--host',
        'mx.test',
        '--json',
        '--timeout',
        '3',
      ]);
      const report = reportOf(run);
      const f = report.findings.find((x) => x.id === 'dane-resolver-not-validating');
      expect(f, show(run)).toMatchObject({
        level: 'error',
        service: 'smtp client',
        parameter: 'dnssec_probe',
      });
      expect(f!.message).toMatch(/soa:test\. came back without the AD bit/);
      expect(report.findings.filter((x) => x.id === 'tlsa-not-secure').length).toBeGreaterThan(0);
      expect(run.code).toBe(1);
    });
  },
);

// ---------------------------------------------------------------------------------------------
// Issue 12 on a live Postfix: the doctor's claims checked with openssl s_client

labDescribe(
  'tlsa doctor postfix, issue 12 on a live lab Postfix: its fixes let refused clients in; "no shared cipher" only when true',
  [['openssl', 'openssl'], ...POSTFIX_TOOLS],
  () => {
    let pf: PostfixServer;
    const modernTls12 = ['-tls1_2'];
    const bothFamilies =
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384';
    const ecdsaOnly = 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384';
    const tail = (): string => pf.maillog().split('\n').slice(-15).join('\n');

    beforeAll(async () => {
      requireBuiltCli();
      const { pki, rsaLeaf, ecLeaf } = sharedPki();
      const full = (leaf: LeafHandle, ca: { certPem: string }, n: string): string => {
        const p = join(pki.dir, `live12-${n}-fullchain.pem`);
        writeFileSync(p, `${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
        return p;
      };
      pf = await startPostfix({
        hostname: 'mx.test',
        chains: [
          { keyPath: rsaLeaf.keyPath, fullchainPath: full(rsaLeaf, pki.rsa.intermediate, 'rsa') },
          { keyPath: ecLeaf.keyPath, fullchainPath: full(ecLeaf, pki.ecdsa.intermediate, 'ecdsa') },
        ],
        // One connection per smtpd process: after a reload no process with the old settings serves.
        main: { max_use: '1' },
      });
    });

    afterAll(async () => {
      await pf?.stop();
    });

    it('12.1: a listener left TLS-1.0-only by a client parameter "fixed" into the server list refuses current clients; after following the doctor\'s fixes they get in, and TLS 1.0 stays out', async () => {
      const listener = `127.0.0.1:${pf.smtpPort}`;
      // Where the old advice led: the client parameter, then its value copied into the server's list.
      applyEdits(pf.configDir, [
        { service: `${listener}/inet`, parameter: 'smtpd_tls_security_level', value: 'encrypt' },
        { service: `${listener}/inet`, parameter: 'smtp_tls_mandatory_protocols', value: 'TLSv1' },
        { service: `${listener}/inet`, parameter: 'smtpd_tls_mandatory_protocols', value: 'TLSv1' },
      ]);
      await pf.reload();
      const before = {
        current: sClient(pf.smtpPort, true, []),
        tls12: sClient(pf.smtpPort, true, modernTls12),
        tls10: sClient(pf.smtpPort, true, ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']),
      };
      expect(before.current.ok, before.current.output).toBe(false);
      expect(before.tls12.ok).toBe(false);
      expect(before.tls10.protocol, `${before.tls10.output}\n${tail()}`).toBe('TLSv1');

      // Follow the doctor, step by step, until it has no fix left to propose.
      const applied: string[] = [];
      let report = await runDoctor({ configDir: pf.configDir, offline: true });
      const first = report.findings
        .filter((f) => f.service === listener)
        .map((f) => [f.id, f.level]);
      expect(first).toContainEqual(['protocols-too-narrow', 'error']);
      expect(first).toContainEqual(['client-parameter-on-server', 'warning']);
      for (let round = 0; round < 5; round++) {
        const edits = report.findings.flatMap((f) => f.edits ?? []);
        if (!edits.length) break;
        applyEdits(pf.configDir, edits);
        applied.push(
          ...edits.map(
            (e) =>
              `${e.service ?? 'main.cf'} ${e.parameter}${e.value === undefined ? ' (deleted)' : `=${e.value}`}`,
          ),
        );
        report = await runDoctor({ configDir: pf.configDir, offline: true });
        // No step leaves the listener without TLS 1.2 and 1.3.
        const p = report.services.find((s) => s.service === listener)!.protocols!;
        expect(p.enabled, applied.join('\n')).toEqual(
          expect.arrayContaining(['TLSv1.2', 'TLSv1.3']),
        );
      }
      expect(
        report.findings.filter((f) => f.level !== 'info'),
        applied.join('\n'),
      ).toEqual([]);
      expect(applied).toContain(`${listener}/inet smtp_tls_mandatory_protocols (deleted)`);
      expect(applied).toContain(`${listener}/inet smtpd_tls_mandatory_protocols=>=TLSv1.2`);

      await pf.reload();
      const after = {
        current: sClient(pf.smtpPort, true, []),
        tls12: sClient(pf.smtpPort, true, modernTls12),
        tls10: sClient(pf.smtpPort, true, ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']),
      };
      expect(after.current.protocol, `${after.current.output}\n${tail()}`).toBe('TLSv1.3');
      expect(after.tls12.protocol).toBe('TLSv1.2');
      expect(after.tls10.ok).toBe(false);
    }, 120_000);

    it('12.2: RSA + ECDSA served, tls_high_cipherlist without ECDSA suites: the doctor raises no error, and a TLS 1.2 client offering both suite families negotiates ECDHE-RSA', async () => {
      const listener = `127.0.0.1:${pf.smtpsPort}`;
      applyEdits(pf.configDir, [
        { parameter: 'tls_high_cipherlist', value: 'HIGH:!aNULL:!aECDSA:@STRENGTH' },
        { service: `${listener}/inet`, parameter: 'smtpd_tls_mandatory_ciphers', value: 'high' },
      ]);
      await pf.reload();
      const report = await runDoctor({ configDir: pf.configDir, offline: true });
      const mine = report.findings.filter((f) => f.service === listener);
      expect(mine.map((f) => [f.id, f.level, f.parameter])).toEqual([
        ['ciphers-key-type-unused', 'info', 'tls_high_cipherlist'],
      ]);
      expect(report.exitCode).toBe(0);

      const both = sClient(pf.smtpsPort, false, ['-tls1_2', '-cipher', bothFamilies]);
      expect(both.protocol, `${both.output}\n${tail()}`).toBe('TLSv1.2');
      expect(both.cipher).toMatch(/^ECDHE-RSA-AES(128|256)-GCM-SHA(256|384)$/);
      // What the note says: the ECDSA certificate serves no TLS 1.2 client.
      const ecdsa = sClient(pf.smtpsPort, false, ['-tls1_2', '-cipher', ecdsaOnly]);
      expect(ecdsa.ok).toBe(false);
      expect(pf.maillog()).toMatch(/no shared cipher/);

      // And its fix brings ECDSA back for TLS 1.2.
      applyEdits(pf.configDir, mine[0]!.edits!);
      await pf.reload();
      const fixed = sClient(pf.smtpsPort, false, ['-tls1_2', '-cipher', ecdsaOnly]);
      expect(fixed.cipher, `${fixed.output}\n${tail()}`).toMatch(/^ECDHE-ECDSA-AES/);
    }, 120_000);
  },
);
