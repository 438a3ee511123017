// Wall-clock benchmark: `tlsa check` of one host against running posttls-finger once per case.
//
// The lab (test/lab; loopback only, every server a child of this process, stopped by its pid):
//   Knot      bench.test., signed online; mx.bench.test. A 127.0.0.1 and A 127.0.0.2; the TLSA
//             RRset (3 1 1 of the RSA leaf, 2 1 1 of the ECDSA issuer) at three ports
//   unbound   validating (trust anchor: the DS of bench.test.), on 127.0.0.1:PORT for tlsa and
//             on a free 127.0.53.x:53 for posttls-finger (glibc cannot be given a port)
//   Postfix   one RSA and one ECDSA chain at once, listening on 127.0.0.1 and 127.0.0.2 (each
//             master.cf service names its address): two STARTTLS ports and one wrappermode port
// Cases: 2 addresses × 2 key types × 3 ports = 12.
//   tlsa:           ONE cold process: `tlsa check HOST:25 HOST:587 HOST:465 --json` when those
//                   ports are free on both addresses (the protocol follows the port), and
//                   `tlsa check --config F --json` (two services, protocol smtp / tls) always;
//                   it also checks DNSSEC, the authoritative server and the next renewal.
//   posttls-finger: 12 runs in sequence, `-c -l dane` (+ `-w` on the wrappermode port), the key
//                   type forced by an OpenSSL SignatureAlgorithms config, each in a private mount
//                   namespace with its own resolv.conf (unshare + mount --bind, a few ms each).
//                   posttls-finger cannot be told which address of a name to use: each run
//                   verifies the first address it reaches (which ones, is reported).
// Before timing, both sides must say verified for every case, or the bench aborts.
// Run: npx tsc -p . && node dist/bench/check.js   (root, Debian packages knot knot-dnsutils
// unbound postfix openssl util-linux). BENCH_CHECK_RUNS=N timed rounds (default 10).
import { spawnSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDaneFinger, type DaneFinger } from '../test/lab/dane-finger.js';
import { startKnot } from '../test/lab/knot.js';
import {
  freeLoopback53,
  freePort,
  makeTempDir,
  stopAll,
  tcpFree,
  toolPath,
} from '../test/lab/lab.js';
import { startPostfix, type PostfixServer } from '../test/lab/postfix.js';
import { runAsync } from '../test/lab/run.js';
import { startUnbound } from '../test/lab/unbound.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
const CLI = join(ROOT, 'dist/src/cli/main.cjs');
const RESULTS = join(ROOT, 'bench/results-check.md');
const SECTION = '## tlsa check vs posttls-finger';
const ZONE = 'bench.test.';
const HOST = 'mx.bench.test';
const ADDRESSES = ['127.0.0.1', '127.0.0.2'] as const;
const KEY_TYPES = ['rsa', 'ecdsa'] as const;
type KeyType = (typeof KEY_TYPES)[number];

// ---------------------------------------------------------------------------------------------
// Small utilities

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(file, args, { encoding: 'utf8', env });
  if (r.status !== 0)
    throw new Error(`${file} ${args.join(' ')}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
function p90(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
}

// ---------------------------------------------------------------------------------------------
// PKI (openssl CLI)

function pki(dir: string): {
  rsa: { key: string; fullchain: string };
  ecdsa: { key: string; fullchain: string };
  ee: string;
  ta: string;
} {
  mkdirSync(dir, { recursive: true });
  const ossl = (args: string[]): string =>
    run('openssl', args, { ...process.env, OPENSSL_CONF: '/dev/null' });
  const key = (name: string, type: KeyType): string => {
    const p = join(dir, `${name}.key`);
    ossl([
      'genpkey',
      ...(type === 'rsa'
        ? ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']
        : ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']),
      '-out',
      p,
    ]);
    return p;
  };
  const cnf = (name: string, lines: string[]): string => {
    const p = join(dir, `${name}.cnf`);
    writeFileSync(
      p,
      ['[req]', 'distinguished_name = dn', '[dn]', '[ext]', ...lines, ''].join('\n'),
    );
    return p;
  };
  const caExt = [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
    'subjectKeyIdentifier=hash',
    'authorityKeyIdentifier=keyid:always',
  ];
  const issue = (
    name: string,
    cn: string,
    k: string,
    lines: string[],
    ca?: { cert: string; key: string },
  ): string => {
    const cert = join(dir, `${name}.crt`);
    const conf = cnf(name, lines);
    if (!ca) {
      ossl([
        'req',
        '-x509',
        '-new',
        '-key',
        k,
        '-subj',
        `/CN=${cn}`,
        '-days',
        '30',
        '-sha256',
        '-config',
        conf,
        '-extensions',
        'ext',
        '-out',
        cert,
      ]);
    } else {
      const csr = join(dir, `${name}.csr`);
      ossl(['req', '-new', '-key', k, '-subj', `/CN=${cn}`, '-config', conf, '-out', csr]);
      const serial = `0x${createHash('sha256').update(`${name} ${Date.now()}`).digest('hex').slice(0, 16)}`;
      ossl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-set_serial',
        serial,
        '-days',
        '30',
        '-sha256',
        '-extfile',
        conf,
        '-extensions',
        'ext',
        '-out',
        cert,
      ]);
    }
    return cert;
  };
  const chain = (type: KeyType) => {
    const rk = key(`${type}-root`, type);
    const rc = issue(`${type}-root`, `Bench Root ${type}`, rk, caExt);
    const ik = key(`${type}-int`, type);
    const ic = issue(`${type}-int`, `Bench ${type} CA`, ik, caExt, { cert: rc, key: rk });
    const lk = key(`${type}-leaf`, type);
    const lc = issue(
      `${type}-leaf`,
      HOST,
      lk,
      [
        'basicConstraints=critical,CA:FALSE',
        `keyUsage=critical,digitalSignature${type === 'rsa' ? ',keyEncipherment' : ''}`,
        'extendedKeyUsage=serverAuth',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid:always',
        `subjectAltName=DNS:${HOST}`,
      ],
      { cert: ic, key: ik },
    );
    const fullchain = join(dir, `${type}-fullchain.pem`);
    writeFileSync(fullchain, readFileSync(lc, 'utf8') + readFileSync(ic, 'utf8'));
    return { key: lk, fullchain, leaf: lc, int: ic };
  };
  const spki = (certPath: string): string =>
    createHash('sha256')
      .update(
        new X509Certificate(readFileSync(certPath)).publicKey.export({
          type: 'spki',
          format: 'der',
        }),
      )
      .digest('hex');
  const rsa = chain('rsa');
  const ecdsa = chain('ecdsa');
  for (const k of [rsa.key, ecdsa.key]) chmodSync(k, 0o600);
  return { rsa, ecdsa, ee: `3 1 1 ${spki(rsa.leaf)}`, ta: `2 1 1 ${spki(ecdsa.int)}` };
}

// ---------------------------------------------------------------------------------------------
// The lab

interface Lab {
  dir: string;
  knotPort: number;
  unboundPort: number;
  ports: { starttls1: number; starttls2: number; wrapper: number };
  finger: DaneFinger;
  tlsaConfig: string;
  stop(): Promise<void>;
}

async function startLab(): Promise<Lab> {
  toolPath('unshare', 'util-linux');
  if (process.getuid?.() !== 0)
    throw new Error("run as root: Postfix's master and `unshare --mount` need it");

  const dir = makeTempDir('bench-check');
  chmodSync(dir, 0o755);
  const certs = pki(join(dir, 'pki'));
  // The real ports (25 and 587 STARTTLS, 465 implicit TLS) when they are free on both
  // addresses: then `tlsa check HOST:25 HOST:587 HOST:465` needs no config (the protocol
  // follows the port). Otherwise (or BENCH_CHECK_PORTS=random) free ports, and only the
  // --config form can say what each port speaks.
  const wellKnown = { starttls1: 25, starttls2: 587, wrapper: 465 };
  let free = process.env.BENCH_CHECK_PORTS !== 'random';
  for (const p of Object.values(wellKnown))
    for (const a of ADDRESSES) if (free && !(await tcpFree(a, p))) free = false;
  const otherAddresses = ADDRESSES.filter((a) => a !== '127.0.0.1');
  const ports = free
    ? wellKnown
    : {
        starttls1: await freePort('127.0.0.1', otherAddresses),
        starttls2: await freePort('127.0.0.1', otherAddresses),
        wrapper: await freePort('127.0.0.1', otherAddresses),
      };
  let postfix: PostfixServer | undefined;
  const stop = async (): Promise<void> => {
    await postfix?.stop();
    await stopAll();
  };
  try {
    // Knot: one signed zone, its own trust anchor.
    const knot = await startKnot({
      zones: [
        {
          name: ZONE,
          dnssec: true,
          zoneFileText: [
            '$TTL 300',
            `${ZONE} 300 IN SOA ns.${ZONE} hostmaster.${ZONE} 1 3600 600 86400 60`,
            `${ZONE} 300 IN NS ns.${ZONE}`,
            `ns.${ZONE} 300 IN A 127.0.0.1`,
            ...ADDRESSES.map((a) => `${HOST}. 300 IN A ${a}`),
            ...Object.values(ports).flatMap((p) =>
              [certs.ee, certs.ta].map((r) => `_${p}._tcp.${HOST}. 300 IN TLSA ${r}`),
            ),
            '',
          ].join('\n'),
        },
      ],
    });
    // unbound: validating, on 127.0.0.1:PORT for tlsa and 127.0.53.x:53 for posttls-finger.
    const fingerAddr = await freeLoopback53();
    const unbound = await startUnbound({
      stubs: [{ zone: ZONE, port: knot.port }],
      trustAnchors: knot.dsRecords(ZONE),
      extraListen: fingerAddr,
      cacheMaxTtl: 30,
      cacheMaxNegativeTtl: 5,
    });

    // Postfix: RSA + ECDSA chains, on both addresses, two STARTTLS ports and a wrappermode port.
    postfix = await startPostfix({
      chains: [
        { keyPath: certs.rsa.key, fullchainPath: certs.rsa.fullchain },
        { keyPath: certs.ecdsa.key, fullchainPath: certs.ecdsa.fullchain },
      ],
      hostname: HOST,
      listeners: ADDRESSES.flatMap((address) => [
        { address, port: ports.starttls1 },
        { address, port: ports.starttls2 },
        { address, port: ports.wrapper, wrapper: true },
      ]),
      main: { smtpd_tls_loglevel: '0' },
    });
    const finger = makeDaneFinger({ dir, zone: ZONE, resolverAddress: fingerAddr });

    // tlsa's config: two services (what the ports speak differs), the lab's resolver and port.
    const tlsaConfig = join(dir, 'tlsa.yaml');
    writeFileSync(
      tlsaConfig,
      [
        `state_dir: ${join(dir, 'state')}`,
        'verify:',
        `  resolver: "127.0.0.1:${unbound.port}"`,
        `  authoritative_port: ${knot.port}`,
        '  timeout_s: 5',
        'providers:',
        '  local:',
        '    type: zonefile',
        `    path: ${join(dir, 'unused.zone')}`,
        'services:',
        ...(
          [
            ['starttls', [ports.starttls1, ports.starttls2], 'smtp'],
            ['wrapper', [ports.wrapper], 'tls'],
          ] as const
        ).flatMap(([name, ps, proto]) => [
          `  ${name}:`,
          `    host: ${HOST}`,
          `    ports: [${ps.join(', ')}]`,
          `    protocol: ${proto}`,
          '    provider: local',
          '    issuers: none',
          '    certificates:',
          `      - fullchain: ${certs.rsa.fullchain}`,
          `      - fullchain: ${certs.ecdsa.fullchain}`,
        ]),
        '',
      ].join('\n'),
    );
    return {
      dir,
      knotPort: knot.port,
      unboundPort: unbound.port,
      ports,
      finger,
      tlsaConfig,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The two sides

/** The check as a command line: the protocol follows the port (25, 587: STARTTLS; 465: TLS). */
function argsForm(lab: Lab): string[] | undefined {
  if (lab.ports.starttls1 !== 25) return undefined;
  return [
    'check',
    '--resolver',
    `127.0.0.1:${lab.unboundPort}`,
    '--auth-port',
    String(lab.knotPort),
    ...Object.values(lab.ports).map((p) => `${HOST}:${p}`),
  ];
}

interface TlsaReport {
  ok: boolean;
  reports: {
    port: number;
    ok: boolean;
    failures: string[];
    probes: { address: string; keyType: KeyType; ok: boolean; matched?: string }[];
  }[];
}

async function tlsaCheck(
  lab: Lab,
  form: 'args' | 'config',
): Promise<{ ms: number; cases: string[]; report: TlsaReport; out: string }> {
  const args = form === 'args' ? argsForm(lab)! : ['check', '--config', lab.tlsaConfig];
  const r = await runAsync([process.execPath, CLI, ...args, '--json'], {
    env: { TLSA_CONFIG: '', NODE_OPTIONS: '' },
    timeoutMs: 30_000,
  });
  let report: TlsaReport;
  try {
    report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as TlsaReport;
  } catch {
    throw new Error(`tlsa check printed no JSON (exit ${r.code}):\n${r.stdout}${r.stderr}`);
  }
  const cases = report.reports.flatMap((x) =>
    x.probes.filter((p) => p.ok).map((p) => `${p.address} ${p.keyType} ${x.port}`),
  );
  return { ms: r.ms, cases, report, out: `${r.stdout}${r.stderr}` };
}

async function finger(
  lab: Lab,
  port: number,
  keyType: KeyType,
  wrapper: boolean,
): Promise<{ ms: number; verified: boolean; address?: string; out: string }> {
  const r = await lab.finger.check({
    host: HOST,
    port,
    keyType,
    wrapper,
    logOptions: 'summary',
    timeoutMs: 30_000,
  });
  const m = /Verified TLS connection established to [^[]+\[([0-9.]+)\]/.exec(r.output);
  return { ms: r.ms, verified: !!m, ...(m ? { address: m[1]! } : {}), out: r.output };
}

const fingerCases = (lab: Lab) =>
  ADDRESSES.flatMap((address) =>
    KEY_TYPES.flatMap((keyType) =>
      [lab.ports.starttls1, lab.ports.starttls2, lab.ports.wrapper].map((port) => ({
        address,
        keyType,
        port,
        wrapper: port === lab.ports.wrapper,
      })),
    ),
  );

async function fingerAll(
  lab: Lab,
): Promise<{ ms: number; results: Awaited<ReturnType<typeof finger>>[] }> {
  const start = process.hrtime.bigint();
  const results = [];
  for (const c of fingerCases(lab)) results.push(await finger(lab, c.port, c.keyType, c.wrapper));
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, results };
}

// ---------------------------------------------------------------------------------------------

function writeSection(text: string): string {
  writeFileSync(RESULTS, `# tlsa benchmark: check\n\n${text.trimEnd()}\n`);
  return RESULTS;
}

async function main(): Promise<void> {
  const raw = process.env.BENCH_CHECK_RUNS;
  const runs = raw ? Number(raw) : 10;
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`BENCH_CHECK_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run npx tsc -p . first`);
  const loadBefore = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  const labStart = Date.now();
  const lab = await startLab();
  const labMs = Date.now() - labStart;
  try {
    if (process.env.BENCH_CHECK_HOLD === '1') {
      // For profiling by hand: keep the lab up until SIGINT.
      process.stdout.write(
        `lab up: node ${CLI} ${(argsForm(lab) ?? ['check', '--config', lab.tlsaConfig]).join(' ')} --json; Ctrl-C stops it\n`,
      );
      await new Promise<void>((r) => process.once('SIGINT', () => r()));
      return;
    }
    // Both sides must say "verified" for every case before anything is timed.
    const forms: ('args' | 'config')[] = argsForm(lab) ? ['args', 'config'] : ['config'];
    const want = fingerCases(lab)
      .map((c) => `${c.address} ${c.keyType} ${c.port}`)
      .sort();
    for (const form of forms) {
      const t = await tlsaCheck(lab, form);
      if (!t.report.ok || JSON.stringify([...t.cases].sort()) !== JSON.stringify(want)) {
        throw new Error(`tlsa check (${form}) did not verify all 12 cases:\n${t.out}`);
      }
      const depths = t.report.reports.flatMap((x) =>
        x.probes.map((p) => `${p.keyType}:${p.matched?.replace(/^.* at depth /, '')}`),
      );
      if (!depths.every((d) => d === 'rsa:0' || d === 'ecdsa:1'))
        throw new Error(`unexpected matches: ${depths.join(', ')}`);
    }
    const f = await fingerAll(lab);
    const bad = f.results.filter((r) => !r.verified);
    if (bad.length)
      throw new Error(`posttls-finger did not verify ${bad.length} case(s):\n${bad[0]!.out}`);

    // Timed rounds, interleaved; one warm-up round first.
    const tlsaMs: Record<'args' | 'config', number[]> = { args: [], config: [] };
    const fingerMs: number[] = [];
    const perFinger: number[] = [];
    const reached = new Map<string, number>();
    for (let i = 0; i <= runs; i++) {
      const a: Partial<Record<'args' | 'config', number>> = {};
      for (const form of forms) {
        const t = await tlsaCheck(lab, form);
        if (!t.report.ok) throw new Error(`tlsa check (${form}) failed in round ${i}:\n${t.out}`);
        a[form] = t.ms;
      }
      const b = await fingerAll(lab);
      if (b.results.some((r) => !r.verified))
        throw new Error(`posttls-finger failed in round ${i}`);
      if (i === 0) continue;
      for (const form of forms) tlsaMs[form].push(a[form]!);
      fingerMs.push(b.ms);
      for (const r of b.results) {
        perFinger.push(r.ms);
        reached.set(r.address ?? '?', (reached.get(r.address ?? '?') ?? 0) + 1);
      }
    }
    const fmt = (x: number): string => x.toFixed(1);
    const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout.trim();
    const postfix = spawnSync('postconf', ['-d', '-h', 'mail_version'], {
      encoding: 'utf8',
    }).stdout.trim();
    const text = [
      SECTION,
      '',
      `\`node dist/bench/check.js\` (bench/check.ts): one host, ${HOST}, with 2 addresses (127.0.0.1, 127.0.0.2) × 2 key types (RSA, ECDSA) × 3 ports`,
      `(STARTTLS ${lab.ports.starttls1} and ${lab.ports.starttls2}, wrappermode ${lab.ports.wrapper}) = 12 cases, against a real Knot (DNSSEC) + validating unbound + Postfix on loopback.`,
      'tlsa: one cold process per run, `tlsa check HOST:PORT… --json` and/or `tlsa check --config F --json` (two services: what each',
      'port speaks), each also checking DNSSEC, the authoritative server and the next renewal. posttls-finger: 12 runs in sequence,',
      '`-c -l dane` (`-w` on the wrappermode port), each in a private mount namespace (unshare + bind-mounted resolv.conf).',
      'Both sides verified all 12 cases before timing (tlsa: RSA at depth 0 by 3 1 1, ECDSA at depth 1 by 2 1 1).',
      '',
      '| machine | |',
      '|---|---|',
      `| date | ${new Date().toISOString()} |`,
      `| nproc | ${availableParallelism()} |`,
      `| CPU | ${cpus()[0]?.model ?? '?'} |`,
      `| node | ${process.version} |`,
      `| openssl / postfix | ${openssl} / ${postfix} |`,
      `| load average before / after | ${loadBefore} / ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} |`,
      `| runs | 1 warm-up + ${runs} timed rounds, interleaved (tlsa, then the 12 posttls-finger runs) |`,
      `| lab start | ${(labMs / 1000).toFixed(1)} s (not timed) |`,
      `| addresses posttls-finger reached | ${[...reached.entries()].map(([k, v]) => `${k}: ${v}`).join(', ')} (it cannot be told which address of a name to use) |`,
      '',
      '| command | median ms | p90 ms |',
      '|---|---:|---:|',
      ...forms.map(
        (form) =>
          `| ${form === 'args' ? `tlsa check ${HOST}:${lab.ports.starttls1} :${lab.ports.starttls2} :${lab.ports.wrapper}` : 'tlsa check --config F'} (12 cases) | ${fmt(median(tlsaMs[form]))} | ${fmt(p90(tlsaMs[form]))} |`,
      ),
      `| posttls-finger × 12, in sequence | ${fmt(median(fingerMs))} | ${fmt(p90(fingerMs))} |`,
      `| posttls-finger, one run | ${fmt(median(perFinger))} | ${fmt(p90(perFinger))} |`,
      '',
      '| comparison (medians) | value | target | result |',
      '|---|---:|---|---|',
      ...forms.map((form) => {
        const ratio = median(tlsaMs[form]) / median(fingerMs);
        return `| ${form === 'args' ? 'tlsa check HOST:PORT…' : 'tlsa check --config F'} / posttls-finger × 12 | ${ratio.toFixed(2)}× | ≤ 0.5× | **${ratio <= 0.5 ? 'met' : 'not met'}** |`;
      }),
      '',
    ].join('\n');
    process.stdout.write(`${text}\n`);
    if (process.env.BENCH_CHECK_NO_WRITE === '1') return;
    process.stdout.write(`(written to ${writeSection(text)})\n`);
  } finally {
    await lab.stop();
  }
}

main().catch((e: unknown) => {
  // The lab's exit hook SIGKILLs its servers.
  process.stderr.write(`bench/check: ${(e as Error).message ?? String(e)}\n`);
  process.exitCode = 1;
});
