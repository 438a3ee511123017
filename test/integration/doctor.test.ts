/**
 * `tlsa doctor postfix` (the built CLI) against Debian's real `postconf`/`postmap`: one
 * configuration directory per finding, written here, plus a clean one that must give no
 * finding at all; `--json` output; exit 1 when an error-level finding exists, 2 for bad input.
 * Then a live second Postfix instance of the lab, with its TLSA records served by a signed
 * Knot zone through a validating unbound (and a non-validating one).
 *
 * Ground truth for every hash is the openssl CLI (test/helpers/pki.ts). No test leaves
 * loopback: the doctor is only ever given lab resolvers, and the one case with a non-loopback
 * --resolver checks that it is not asked.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { runDoctor } from '../../src/doctor/doctor.js';
import { CLI_PATH, makeTestPki, requireBuiltCli, stackLines, type TestPki } from '../helpers/cli.js';
import { makeLeaf, opensslSpkiSha256, type LeafHandle } from '../helpers/pki.js';
import { minimalZone, startKnot, type KnotServer } from '../lab/knot.js';
import { labDescribe, makeTempDir, runningDaemons, stopAll, toolPath } from '../lab/lab.js';
import { POSTFIX_TOOLS, startPostfix, type PostfixServer } from '../lab/postfix.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';

interface Run { code: number | null; stdout: string; stderr: string }
interface FindingJson { id: string; level: 'error' | 'warning' | 'info'; service: string; parameter: string; message: string; fix: string }
interface ReportJson {
  ok: boolean;
  exitCode: number;
  postfix: { version: string; configDir: string };
  services: { service: string; role: string; port?: number; tls: { securityLevel: string; wrappermode: boolean; mandatory: boolean }; protocols?: { parameter: string; enabled: string[] }; tlsa?: { owner: string; source: string; status?: string; records: string[]; chains: { keyType: string; verified: boolean; matched?: string }[] } }[];
  outbound: { securityLevel: string; dnsSupportLevel: string; resolver?: { server: string; status: string } };
  findings: FindingJson[];
  skipped: { check: string; reason: string }[];
}

function doctor(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e['TLSA_CONFIG'];
  delete e['TLSA_DEBUG'];
  delete e['NODE_OPTIONS'];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, 'doctor', 'postfix', ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

const show = (r: Run): string => `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

function reportOf(r: Run): ReportJson {
  try {
    return JSON.parse(r.stdout) as ReportJson;
  } catch {
    throw new Error(`doctor --json printed no JSON\n${show(r)}`);
  }
}

const ids = (r: ReportJson): string[] => r.findings.map((f) => f.id);

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

interface Instance { dir: string; tlsaFile: string }

// The temp dirs (and any lab server) of this file, also when the lab suite is skipped.
afterAll(() => stopAll());

/** One PKI for both suites (RSA keys are slow to make): an RSA and an ECDSA hierarchy, leaves
 *  valid for mx.example.org (the configuration directories) and mx.test (the lab). */
interface SharedPki { pki: TestPki; rsaLeaf: LeafHandle; ecLeaf: LeafHandle }
let shared: SharedPki | undefined;
function sharedPki(): SharedPki {
  if (!shared) {
    const pki = makeTestPki(makeTempDir('doctor-pki'));
    const sans = ['mx.example.org', 'mx.test'];
    const leaf = (family: 'rsa' | 'ecdsa'): LeafHandle =>
      makeLeaf(pki.dir, { ca: pki[family].intermediate, cn: 'mx.example.org', sans, key: family === 'rsa' ? 'rsa2048' : 'p256' });
    shared = { pki, rsaLeaf: leaf('rsa'), ecLeaf: leaf('ecdsa') };
  }
  return shared;
}

labDescribe('tlsa doctor postfix against real postconf (one configuration per finding)', [
  ['postconf', 'postfix'], ['postmap', 'postfix'], ['openssl', 'openssl'],
], () => {
  let root: string;
  let pki: TestPki;
  let rsaLeaf: LeafHandle;
  let ecLeaf: LeafHandle;
  const files = { rsaKey: '', rsaFull: '', rsaCertOnly: '', ecKey: '', ecFull: '' };
  const rd = { rsaEE: '', ecEE: '', rsaTA: '', ecTA: '', otherEE: '', rsaSpki: '' };
  const runs = new Map<string, Run>();

  function instance(name: string, o: { main?: Record<string, string | null>; master?: string[]; tlsa?: string[]; extra?: (dir: string) => void } = {}): Instance {
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
    writeFileSync(join(dir, 'main.cf'), `${Object.entries(main).filter(([, v]) => v !== null).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`);
    writeFileSync(join(dir, 'master.cf'), `${(o.master ?? CLEAN_MASTER).join('\n')}\n`);
    const tlsaFile = join(dir, 'tlsa.zone');
    const records = o.tlsa ?? [rd.rsaEE, rd.ecTA];
    // Zone-file form as an operator would paste it: $ORIGIN, a relative owner, a blank-owner line.
    writeFileSync(tlsaFile, ['$ORIGIN example.org.', '$TTL 3600', ...records.map((r, i) => `${i === 0 ? '_25._tcp.mx' : '           '} 3600 IN TLSA ${r}`), ''].join('\n'));
    o.extra?.(dir);
    return { dir, tlsaFile };
  }

  /** `cli: true` runs the built CLI (exit code, stdout); the others call runDoctor in this
   *  process (still the real postconf, postmap and openssl), which keeps the suite fast. */
  const cases: Record<string, () => { inst: Instance; args?: string[]; cli?: boolean }> = {};

  beforeAll(async () => {
    requireBuiltCli();
    root = makeTempDir('doctor');
    ({ pki, rsaLeaf, ecLeaf } = sharedPki());
    const w = (n: string, text: string): string => { const p = join(root, n); writeFileSync(p, text); return p; };
    files.rsaKey = rsaLeaf.keyPath;
    files.ecKey = ecLeaf.keyPath;
    files.rsaFull = w('rsa-fullchain.pem', `${rsaLeaf.certPem.trim()}\n${pki.rsa.intermediate.certPem.trim()}\n`);
    files.ecFull = w('ecdsa-fullchain.pem', `${ecLeaf.certPem.trim()}\n${pki.ecdsa.intermediate.certPem.trim()}\n`);
    files.rsaCertOnly = w('rsa-cert.pem', `${rsaLeaf.certPem.trim()}\n`);
    rd.rsaSpki = opensslSpkiSha256(rsaLeaf.certPath);
    rd.rsaEE = `3 1 1 ${rd.rsaSpki}`;
    rd.ecEE = `3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`;
    rd.rsaTA = `2 1 1 ${opensslSpkiSha256(pki.rsa.intermediate.certPath)}`;
    rd.ecTA = `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`;
    rd.otherEE = `3 1 1 ${randomBytes(32).toString('hex')}`; // a key nobody serves

    Object.assign(cases, {
      clean: () => ({ inst: instance('clean'), cli: true }),
      cleanHuman: () => ({ inst: instance('clean-human'), args: [], cli: true }),
      nonLoopbackResolver: () => ({ inst: instance('non-loopback'), args: ['--json', '--resolver', '192.0.2.53'], cli: true }),
      mismatch: () => ({ inst: instance('mismatch', { tlsa: [rd.otherEE] }), cli: true }),
      keyTypeMissing: () => ({ inst: instance('key-type', { tlsa: [rd.rsaEE] }) }),
      pkix: () => ({ inst: instance('pkix', { tlsa: [`1 1 1 ${rd.rsaSpki}`, `0 1 1 ${opensslSpkiSha256(pki.rsa.root.certPath)}`] }) }),
      pkixBeside: () => ({ inst: instance('pkix-beside', { tlsa: [rd.rsaEE, rd.ecTA, `1 1 1 ${rd.rsaSpki}`] }) }),
      taNotServed: () => ({ inst: instance('ta-not-served', {
        main: { smtpd_tls_chain_files: null, smtpd_tls_cert_file: files.rsaCertOnly, smtpd_tls_key_file: files.rsaKey },
        tlsa: [rd.rsaTA],
      }) }),
      wrongProtocolParam: () => ({ inst: instance('wrong-protocol-param', {
        master: [...CLEAN_MASTER.slice(0, 6), 'smtps      inet  n       -       y       -       -       smtpd', '  -o smtpd_tls_wrappermode=yes', '  -o smtpd_tls_protocols=!TLSv1', CLEAN_MASTER.at(-1)!],
      }) }),
      clientParam: () => ({ inst: instance('client-param', {
        master: [...CLEAN_MASTER.slice(0, 5), '  -o smtp_tls_mandatory_protocols=>=TLSv1.2', ...CLEAN_MASTER.slice(5)],
      }) }),
      mixedProtocols: () => ({ inst: instance('mixed-protocols', { main: { smtpd_tls_mandatory_protocols: 'TLSv1.2, TLSv1.3, !SSLv3' } }) }),
      legacyProtocols: () => ({ inst: instance('legacy-protocols', { main: { smtpd_tls_mandatory_protocols: '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1' } }) }),
      ciphers: () => ({ inst: instance('ciphers', { main: { smtpd_tls_ciphers: 'high', smtpd_tls_exclude_ciphers: 'aNULL, MD5, RC4, 3DES, SHA1, AES128, AESGCM' } }) }),
      daneOff: () => ({ inst: instance('dane-off', { main: { smtp_tls_security_level: 'may', smtp_dns_support_level: null } }), cli: true }),
      daneNoDnssec: () => ({ inst: instance('dane-no-dnssec', { main: { smtp_dns_support_level: null } }) }),
      policy: () => ({ inst: instance('policy', {
        main: { smtp_tls_policy_maps: `hash:${join(root, 'policy', 'tls_policy')}, inline:{ {example.net = secure match=.mail.example.net} }` },
        extra: (dir) => {
          writeFileSync(join(dir, 'tls_policy'), ['gmail.com secure', '[mx.example.com]:25 secure', 'example.org dane', 'foo.test secure match=.mail.foo.test', ''].join('\n'));
          execFileSync(toolPath('postmap', 'postfix'), ['-c', dir, `hash:${join(dir, 'tls_policy')}`]);
        },
      }) }),
      smtpsNoWrapper: () => ({ inst: instance('smtps-no-wrapper', {
        master: [...CLEAN_MASTER.slice(0, 6), 'smtps      inet  n       -       y       -       -       smtpd', '  -o smtpd_sasl_auth_enable=yes', CLEAN_MASTER.at(-1)!],
      }) }),
      port25Encrypt: () => ({ inst: instance('port25-encrypt', { main: { smtpd_tls_security_level: 'encrypt' } }) }),
    });
    await Promise.all(Object.entries(cases).map(async ([name, make]) => {
      const c = make();
      if (c.cli) {
        runs.set(name, await doctor(['--postfix-dir', c.inst.dir, '--tlsa-file', c.inst.tlsaFile, ...(c.args ?? ['--json'])]));
        return;
      }
      try {
        const report = await runDoctor({ configDir: c.inst.dir, tlsaFile: c.inst.tlsaFile, env: { ...process.env, VITEST: 'true' } });
        runs.set(name, { code: report.exitCode, stdout: JSON.stringify(report), stderr: '' });
      } catch (e) {
        runs.set(name, { code: null, stdout: '', stderr: (e as Error).stack ?? String(e) });
      }
    }));
  });

  const get = (name: string): { run: Run; report: ReportJson } => {
    const run = runs.get(name)!;
    expect(stackLines(run.stdout + run.stderr), show(run)).toEqual([]);
    return { run, report: reportOf(run) };
  };
  const finding = (r: ReportJson, id: string): FindingJson => {
    const f = r.findings.find((x) => x.id === id);
    expect(f, `no ${id} in ${JSON.stringify(r.findings, null, 2)}`).toBeDefined();
    for (const k of ['id', 'level', 'service', 'parameter', 'message', 'fix'] as const) expect(typeof f![k]).toBe('string');
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
    expect(byName['smtp/25']).toMatchObject({ role: 'mx', tls: { securityLevel: 'may', mandatory: false }, protocols: { parameter: 'smtpd_tls_protocols' } });
    expect(byName['submission/587']).toMatchObject({ role: 'submission', tls: { securityLevel: 'encrypt', mandatory: true }, protocols: { parameter: 'smtpd_tls_mandatory_protocols' } });
    expect(byName['smtps/465']).toMatchObject({ role: 'smtps', tls: { wrappermode: true, mandatory: true }, protocols: { parameter: 'smtpd_tls_mandatory_protocols' } });
    const tlsa = byName['smtp/25']!.tlsa!;
    expect(tlsa).toMatchObject({ owner: '_25._tcp.mx.example.org.', source: 'file' });
    expect(tlsa.records.sort()).toEqual([rd.rsaEE, rd.ecTA].sort());
    expect(tlsa.chains.map((c) => [c.keyType.split(' ')[0], c.verified, c.matched?.replace(/^.* at /, 'at ')])).toEqual([['RSA', true, 'at depth 0'], ['ECDSA', true, 'at depth 1']]);
    expect(report.outbound).toMatchObject({ securityLevel: 'dane', dnsSupportLevel: 'dnssec' });
    // No resolver in a test environment: the check is skipped, and the report says so.
    expect(report.skipped.map((s) => s.reason).join('\n')).toMatch(/test environment/);
  });

  it('human output: grouped per service, effective settings shown, exit 0', () => {
    const run = runs.get('cleanHuman')!;
    expect(run.code, show(run)).toBe(0);
    const order = ['smtp/25', 'submission/587', 'smtps/465', 'smtp client'].map((l) => run.stdout.indexOf(`\n${l}  (`));
    expect(order.every((i) => i > 0), run.stdout).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(run.stdout).toMatch(/protocols: smtpd_tls_mandatory_protocols = >=TLSv1 /);
    expect(run.stdout).toMatch(/0 error\(s\), 0 warning\(s\), 0 note\(s\)/);
  });

  it('a --resolver that is not on loopback is never asked in a test environment, and the report says so', () => {
    const { run, report } = get('nonLoopbackResolver');
    expect(run.code, show(run)).toBe(0);
    expect(report.outbound.resolver).toBeUndefined();
    expect(report.skipped.find((s) => /resolver/.test(s.check))?.reason).toMatch(/192\.0\.2\.53 is not on loopback/);
  });

  it('1. records that match nothing served: tlsa-mismatch (error), exit 1', () => {
    const { run, report } = get('mismatch');
    const f = finding(report, 'tlsa-mismatch');
    expect(f).toMatchObject({ level: 'error', service: 'smtp/25', parameter: 'smtpd_tls_chain_files' });
    expect(f.message).toMatch(/RSA 2048.*ECDSA P-256/);
    expect(f.fix).toMatch(/tlsa generate --chain FULLCHAIN --host mx\.example\.org --port 25/);
    expect(run.code).toBe(1);
  });

  it('1. one of two key types without a record: tlsa-key-type-missing names ECDSA (error), exit 1', () => {
    const { run, report } = get('keyTypeMissing');
    const f = finding(report, 'tlsa-key-type-missing');
    expect(f).toMatchObject({ level: 'error', service: 'smtp/25' });
    expect(f.message).toMatch(/RSA 2048 is covered, but no record .* matches the ECDSA P-256 chain/);
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
    expect(b.report.findings.map((x) => [x.id, x.level]), show(b.run)).toEqual([['tlsa-pkix-usage', 'warning']]);
    expect(b.run.code).toBe(0);
  });

  it('2. a 2 1 1 record, but cert.pem (leaf only) is served: tlsa-ta-not-served says to serve fullchain.pem', () => {
    const { run, report } = get('taNotServed');
    const f = finding(report, 'tlsa-ta-not-served');
    expect(f).toMatchObject({ level: 'error', service: 'smtp/25', parameter: 'smtpd_tls_cert_file' });
    expect(f.message).toMatch(/only the leaf/);
    expect(f.fix).toMatch(/fullchain\.pem/);
    expect(run.code).toBe(1);
  });

  it('3. -o smtpd_tls_protocols=!TLSv1 on 465 (wrappermode): the mandatory list applies, TLSv1 stays on (warning)', () => {
    const { run, report } = get('wrongProtocolParam');
    const f = finding(report, 'protocols-wrong-parameter');
    expect(f).toMatchObject({ level: 'warning', service: 'smtps/465', parameter: 'smtpd_tls_protocols' });
    expect(f.message).toMatch(/wrappermode.*smtpd_tls_mandatory_protocols applies.*TLSv1 stays enabled/);
    expect(f.fix).toMatch(/-o smtpd_tls_mandatory_protocols=>=TLSv1\.1/);
    expect(report.findings.filter((x) => x.level === 'error')).toEqual([]);
    expect(run.code).toBe(0);
  });

  it('3. an smtp_ (client) parameter set on an smtpd service: client-parameter-on-server', () => {
    const { report } = get('clientParam');
    const f = finding(report, 'client-parameter-on-server');
    expect(f).toMatchObject({ level: 'warning', service: 'submission/587', parameter: 'smtp_tls_mandatory_protocols' });
    expect(f.fix).toMatch(/-o smtpd_tls_mandatory_protocols=>=TLSv1\.2/);
  });

  it('3. a protocol list mixing include and exclude forms: protocols-mixed-syntax, with the >= form as fix', () => {
    const { report } = get('mixedProtocols');
    const f = finding(report, 'protocols-mixed-syntax');
    expect(f).toMatchObject({ level: 'warning', service: 'main.cf', parameter: 'smtpd_tls_mandatory_protocols' });
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
    const f = report.findings.find((x) => x.id === 'ciphers-no-shared-cipher' && x.service === 'smtp/25');
    expect(f, show(run)).toBeDefined();
    expect(f!.level).toBe('error');
    expect(f!.parameter).toBe('smtpd_tls_exclude_ciphers');
    expect(f!.message).toMatch(/ECDHE-RSA-AES128-GCM-SHA256.*no shared cipher/);
    expect(f!.fix).toMatch(/defaults/);
    expect(run.code).toBe(1);
  });

  it('5. outbound DANE off: dane-outbound-off (warning), exit 0', () => {
    const { run, report } = get('daneOff');
    expect(report.findings.map((x) => [x.id, x.level, x.service]), show(run)).toEqual([['dane-outbound-off', 'warning', 'smtp client']]);
    expect(finding(report, 'dane-outbound-off').fix).toMatch(/smtp_tls_security_level = dane.*smtp_dns_support_level = dnssec/);
    expect(run.code).toBe(0);
  });

  it('5. dane without smtp_dns_support_level = dnssec: dane-dnssec-off (error)', () => {
    const { run, report } = get('daneNoDnssec');
    expect(finding(report, 'dane-dnssec-off')).toMatchObject({ level: 'error', service: 'smtp client', parameter: 'smtp_dns_support_level' });
    expect(run.code).toBe(1);
  });

  it('5. a "secure" policy entry without match= (hash table read with postmap): policy-secure-nexthop, only for that entry', () => {
    const { run, report } = get('policy');
    const f = report.findings.filter((x) => x.id === 'policy-secure-nexthop');
    expect(f.map((x) => x.message.match(/"([^"]+)"/)?.[1]), show(run)).toEqual(['gmail.com secure']);
    expect(f[0]!.fix).toMatch(/gmail\.com dane.*match=/);
  });

  it('6. smtps on 465 without wrappermode: smtps-no-wrappermode (error)', () => {
    const { run, report } = get('smtpsNoWrapper');
    expect(finding(report, 'smtps-no-wrappermode')).toMatchObject({ level: 'error', service: 'smtps/465', parameter: 'smtpd_tls_wrappermode' });
    expect(run.code).toBe(1);
  });

  it('6. smtpd_tls_security_level = encrypt on port 25: port25-encrypt (error), only on smtp/25', () => {
    const { run, report } = get('port25Encrypt');
    const f = report.findings.filter((x) => x.id === 'port25-encrypt');
    expect(f.map((x) => x.service), show(run)).toEqual(['smtp/25']);
    expect(f[0]!.message).toMatch(/RFC 3207/);
    expect(run.code).toBe(1);
  });

  it('bad input exits 2 with one line: no such directory, postconf missing, unknown subject', async () => {
    const [noDir, noPostconf, what] = await Promise.all([
      doctor(['--postfix-dir', join(root, 'does-not-exist')]),
      doctor(['--postfix-dir', join(root, 'clean')], { TLSA_POSTCONF: join(root, 'no-postconf-here') }),
      new Promise<Run>((resolve) => {
        const child = spawn(process.execPath, [CLI_PATH, 'doctor', 'nginx'], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = ''; let stderr = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
        child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
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
});

// ---------------------------------------------------------------------------------------------
// A live second Postfix instance, its records in a signed zone, a validating resolver

labDescribe('tlsa doctor postfix against a live lab Postfix, TLSA through Knot (DNSSEC) + unbound', [
  ['knotd', 'knot'], ['knotc', 'knot'], ['keymgr', 'knot'], ['kdig', 'knot-dnsutils'],
  ['unbound', 'unbound'], ['unbound-control', 'unbound'], ['openssl', 'openssl'], ...POSTFIX_TOOLS,
], () => {
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
    const zone = minimalZone('test.', [
      'mx.test. 300 IN A 127.0.0.1',
      // STARTTLS listener: only the RSA key is covered.
      `_${pf.smtpPort}._tcp.mx.test. 300 IN TLSA ${ee}`,
      // Implicit-TLS listener: both.
      `_${pf.smtpsPort}._tcp.mx.test. 300 IN TLSA ${ee}`,
      `_${pf.smtpsPort}._tcp.mx.test. 300 IN TLSA ${ta}`,
    ].join('\n'));
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
    const run = await doctor(['--postfix-dir', pf.configDir, '--resolver', `${validating.host}:${validating.port}`, '--host', 'mx.test', '--json', '--timeout', '3']);
    const report = reportOf(run);
    expect(stackLines(run.stdout + run.stderr)).toEqual([]);
    const starttls = report.services.find((s) => s.port === pf.smtpPort)!;
    const implicit = report.services.find((s) => s.port === pf.smtpsPort)!;
    expect(starttls.tlsa, show(run)).toMatchObject({ owner: `_${pf.smtpPort}._tcp.mx.test.`, source: 'dns', status: 'secure' });
    expect(starttls.tlsa!.chains.map((c) => [c.keyType.split(' ')[0], c.verified])).toEqual([['RSA', true], ['ECDSA', false]]);
    expect(implicit.tlsa!.chains.map((c) => c.verified)).toEqual([true, true]);
    expect(implicit.tls).toMatchObject({ wrappermode: true, mandatory: true });

    const missing = report.findings.filter((f) => f.id === 'tlsa-key-type-missing');
    expect(missing.map((f) => f.service)).toEqual([`127.0.0.1:${pf.smtpPort}`]);
    expect(missing[0]!.message).toMatch(/ECDSA P-256/);
    const wrong = report.findings.find((f) => f.id === 'protocols-wrong-parameter');
    expect(wrong, show(run)).toMatchObject({ service: `127.0.0.1:${pf.smtpsPort}`, parameter: 'smtpd_tls_protocols' });
    expect(wrong!.message).toMatch(/TLSv1, TLSv1\.1 stay enabled/);
    expect(report.outbound.resolver).toMatchObject({ status: 'secure' });
    expect(report.findings.filter((f) => f.id.startsWith('dane-'))).toEqual([]);
    expect(run.code).toBe(1);
  });

  /** A TLS handshake to the implicit-TLS port, or after STARTTLS on the other one: the
   *  negotiated version, or why it failed. */
  function handshake(port: number, starttls: boolean, opts: { maxVersion: 'TLSv1.1' | 'TLSv1.2'; ciphers: string }): Promise<string> {
    const tls = (socket?: Socket): Promise<string> => new Promise((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', rejectUnauthorized: false, minVersion: 'TLSv1', ...opts, ...(socket ? { socket } : { port }) });
      s.setTimeout(5000, () => { s.destroy(); resolve('timeout'); });
      s.on('secureConnect', () => { const v = s.getProtocol() ?? '?'; s.destroy(); resolve(v); });
      s.on('error', (e) => { s.destroy(); resolve(`refused: ${e.message}`); });
    });
    if (!starttls) return tls();
    return new Promise((resolve) => {
      const sock = netConnect({ host: '127.0.0.1', port });
      let buf = '';
      let step = 0;
      sock.setTimeout(5000, () => { sock.destroy(); resolve('timeout'); });
      sock.on('error', (e) => resolve(`error: ${e.message}`));
      const onData = (d: Buffer): void => {
        buf += d.toString('latin1');
        if (step === 0 && /^220 .*\r\n/m.test(buf)) { step = 1; buf = ''; sock.write('EHLO doctor.test\r\n'); }
        else if (step === 1 && /^250 .*\r\n/m.test(buf)) { step = 2; buf = ''; sock.write('STARTTLS\r\n'); }
        else if (step === 2 && /^220 .*\r\n/m.test(buf)) {
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
    const [implicit, starttls] = await Promise.all([handshake(pf.smtpsPort, false, tls11), handshake(pf.smtpPort, true, tls11)]);
    expect(implicit, pf.maillog().split('\n').slice(-10).join('\n')).toBe('TLSv1.1');
    expect(starttls).toMatch(/^refused/);
  });

  it('cipher exclusions that remove every common sender suite: the doctor says so, and a sender offering only those suites gets no TLS', async () => {
    execFileSync(toolPath('postconf', 'postfix'), ['-c', pf.configDir, '-e', 'smtpd_tls_ciphers = high', 'smtpd_tls_exclude_ciphers = aNULL, AESGCM, CHACHA20']);
    await pf.reload();
    const common = 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-GCM-SHA384';
    const [run, bigSender, cbcSender] = await Promise.all([
      doctor(['--postfix-dir', pf.configDir, '--resolver', `${validating.host}:${validating.port}`, '--host', 'mx.test', '--json', '--timeout', '3']),
      handshake(pf.smtpPort, true, { maxVersion: 'TLSv1.2', ciphers: common }),
      handshake(pf.smtpPort, true, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES256-SHA384' }),
    ]);
    const report = reportOf(run);
    const f = report.findings.filter((x) => x.id === 'ciphers-no-shared-cipher' && x.service === `127.0.0.1:${pf.smtpPort}`);
    expect(f.map((x) => x.message.match(/for the (\w+) certificate/)?.[1]), show(run)).toEqual(['RSA', 'ECDSA']);
    expect(bigSender).toMatch(/^refused/);
    expect(pf.maillog()).toMatch(/no shared cipher/);
    expect(cbcSender).toBe('TLSv1.2');
  });

  it('a resolver that does not validate: dane-resolver-not-validating (error, DANE is on), TLSA not secure', async () => {
    const run = await doctor(['--postfix-dir', pf.configDir, '--resolver', `${iterating.host}:${iterating.port}`, '--host', 'mx.test', '--json', '--timeout', '3']);
    const report = reportOf(run);
    const f = report.findings.find((x) => x.id === 'dane-resolver-not-validating');
    expect(f, show(run)).toMatchObject({ level: 'error', service: 'smtp client', parameter: 'dnssec_probe' });
    expect(f!.message).toMatch(/soa:test\. came back without the AD bit/);
    expect(report.findings.filter((x) => x.id === 'tlsa-not-secure').length).toBeGreaterThan(0);
    expect(run.code).toBe(1);
  });
});
