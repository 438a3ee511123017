// Wall-clock benchmark: `tlsa check` of one host against running posttls-finger once per case.
//
// The lab (loopback only, every server a child of this process, stopped by its pid):
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
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
const CLI = join(ROOT, 'dist/src/cli/main.js');
const RESULTS = join(ROOT, 'bench/results-check.md');
const SECTION = '## tlsa check vs posttls-finger';
const ZONE = 'bench.test.';
const HOST = 'mx.bench.test';
const ADDRESSES = ['127.0.0.1', '127.0.0.2'] as const;
const KEY_TYPES = ['rsa', 'ecdsa'] as const;
type KeyType = (typeof KEY_TYPES)[number];
const FINGER_SIGALGS: Record<KeyType, string> = {
  rsa: 'RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512',
  ecdsa: 'ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512',
};

// ---------------------------------------------------------------------------------------------
// Small utilities

function tool(name: string, pkg: string): string {
  for (const dir of [
    ...(process.env.PATH ?? '').split(':'),
    '/usr/sbin',
    '/usr/bin',
    '/sbin',
    '/bin',
  ]) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`"${name}" not found: apt-get install ${pkg}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function run(file: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(file, args, { encoding: 'utf8', env });
  if (r.status !== 0)
    throw new Error(`${file} ${args.join(' ')}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A child process and its output, asynchronously. */
function runAsync(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ code: number | null; out: string; ms: number }> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Number(process.hrtime.bigint() - start) / 1e6 });
    });
  });
}

async function tcpFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => res(true)));
  });
}

async function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createSocket('udp4');
    s.once('error', () => res(false));
    s.bind({ address: host, port, exclusive: true }, () => s.close(() => res(true)));
  });
}

const taken = new Set<number>();
/** A port free for TCP and UDP on 127.0.0.1 and for TCP on 127.0.0.2. */
async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise<number>((res, rej) => {
      const s = createServer();
      s.once('error', rej);
      s.listen({ host: '127.0.0.1', port: 0 }, () => {
        const a = s.address();
        s.close(() => res(typeof a === 'object' && a ? a.port : 0));
      });
    });
    if (!port || taken.has(port)) continue;
    if (!(await udpFree('127.0.0.1', port)) || !(await tcpFree('127.0.0.2', port))) continue;
    taken.add(port);
    return port;
  }
  throw new Error('no free loopback port');
}

/** 127.0.53.x with port 53 free (not 127.0.0.2:53: the e2e tests bind that one). */
async function freeAddress53(): Promise<string> {
  for (let i = 0; i < 60; i++) {
    const addr = `127.0.53.${10 + Math.floor(Math.random() * 240)}`;
    if ((await tcpFree(addr, 53)) && (await udpFree(addr, 53))) return addr;
  }
  throw new Error('no free 127.0.53.x:53');
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
// Daemons (pids kept; stopped by pid, never by name)

interface Daemon {
  name: string;
  child: ChildProcess;
  exited: boolean;
}
const daemons: Daemon[] = [];

function startDaemon(name: string, argv: string[], cwd: string): Daemon {
  const log = join(cwd, `${name}.log`);
  const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const d: Daemon = { name, child, exited: false };
  let text = '';
  child.stdout!.on('data', (b: Buffer) => {
    text += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    text += b.toString();
  });
  child.on('exit', () => {
    d.exited = true;
    writeFileSync(log, text);
  });
  daemons.push(d);
  return d;
}

async function waitFor(
  what: string,
  d: Daemon | undefined,
  ready: () => Promise<boolean> | boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d?.exited) throw new Error(`${what} exited before it was ready`);
    try {
      if (await ready()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.exited || d.child.pid === undefined) return;
  const gone = new Promise<void>((r) => d.child.once('exit', () => r()));
  try {
    process.kill(d.child.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
  if (await Promise.race([gone.then(() => true), sleep(3000).then(() => false)])) return;
  try {
    process.kill(d.child.pid, 'SIGKILL');
  } catch {
    /* gone */
  }
  await gone;
}

/** Pids of this Postfix instance's children (their environment holds MAIL_CONFIG=dir). */
function instancePids(configDir: string): number[] {
  const needle = Buffer.from(`MAIL_CONFIG=${configDir}\0`);
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (
        readFileSync(`/proc/${e}/environ`).includes(needle) &&
        !/\) Z /.test(readFileSync(`/proc/${e}/stat`, 'utf8'))
      )
        out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
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
  fingerAddr: string;
  ports: { starttls1: number; starttls2: number; wrapper: number };
  pfConfig: string;
  fingerConfig: string;
  resolvConf: string;
  tlsaConfig: string;
  stop(): Promise<void>;
}

async function startLab(): Promise<Lab> {
  const knotd = tool('knotd', 'knot');
  const keymgr = tool('keymgr', 'knot');
  const kdig = tool('kdig', 'knot-dnsutils');
  const unbound = tool('unbound', 'unbound');
  const postconf = tool('postconf', 'postfix');
  tool('posttls-finger', 'postfix');
  const setsid = tool('setsid', 'util-linux');
  tool('unshare', 'util-linux');
  if (process.getuid?.() !== 0)
    throw new Error("run as root: Postfix's master and `unshare --mount` need it");

  const dir = mkdtempSync(join(tmpdir(), 'tlsa-bench-check-'));
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
  const ports = free
    ? wellKnown
    : { starttls1: await freePort(), starttls2: await freePort(), wrapper: await freePort() };
  const knotPort = await freePort();
  const unboundPort = await freePort();
  const fingerAddr = await freeAddress53();
  let pfConfig = '';
  const stop = async (): Promise<void> => {
    for (const d of [...daemons].reverse()) await stopDaemon(d);
    if (pfConfig)
      for (const pid of instancePids(pfConfig)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    if (process.env.BENCH_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Knot: one signed zone, its own trust anchor.
    const kdir = join(dir, 'knot');
    mkdirSync(join(kdir, 'storage'), { recursive: true });
    mkdirSync(join(kdir, 'run'));
    const zoneFile = join(kdir, 'bench.test.zone');
    writeFileSync(
      zoneFile,
      [
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
    );
    const knotConf = join(kdir, 'knot.conf');
    const q = (s: string): string => JSON.stringify(s);
    writeFileSync(
      knotConf,
      [
        'server:',
        `    rundir: ${q(join(kdir, 'run'))}`,
        `    listen: 127.0.0.1@${knotPort}`,
        '    udp-workers: 1',
        '    tcp-workers: 1',
        '    background-workers: 1',
        'database:',
        `    storage: ${q(join(kdir, 'storage'))}`,
        'control:',
        `    listen: ${q(join(kdir, 'run', 'knot.sock'))}`,
        'log:',
        '  - target: stderr',
        '    any: info',
        'policy:',
        '  - id: bench',
        '    algorithm: ecdsap256sha256',
        '    single-type-signing: on',
        '    dnskey-ttl: 60',
        '    zone-max-ttl: 300',
        '    propagation-delay: 0',
        'template:',
        '  - id: default',
        `    storage: ${q(kdir)}`,
        '    zonefile-sync: -1',
        'zone:',
        `  - domain: ${q(ZONE)}`,
        `    file: ${q(zoneFile)}`,
        '    dnssec-signing: on',
        '    dnssec-policy: bench',
        '',
      ].join('\n'),
    );
    const knot = startDaemon('knotd', [knotd, '-c', knotConf], kdir);
    await waitFor('knotd', knot, () =>
      /RRSIG/.test(
        spawnSync(
          kdig,
          [
            `@127.0.0.1`,
            '-p',
            String(knotPort),
            ZONE,
            'SOA',
            '+dnssec',
            '+norecurse',
            '+timeout=1',
            '+retry=0',
          ],
          { encoding: 'utf8' },
        ).stdout,
      ),
    );
    const ds = run(keymgr, ['-c', knotConf, ZONE, 'ds'])
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /\sDS\s/.test(l));
    if (!ds.length) throw new Error('keymgr printed no DS');

    // unbound: validating, two listeners.
    const udir = join(dir, 'unbound');
    mkdirSync(udir);
    writeFileSync(join(udir, 'ta.txt'), ds.map((l) => `${l}\n`).join(''));
    writeFileSync(
      join(udir, 'unbound.conf'),
      [
        'server:',
        `    directory: ${q(udir)}`,
        '    chroot: ""',
        '    username: ""',
        `    pidfile: ${q(join(udir, 'unbound.pid'))}`,
        '    use-syslog: no',
        '    do-daemonize: no',
        '    num-threads: 1',
        '    so-reuseport: no',
        '    verbosity: 1',
        `    interface: 127.0.0.1@${unboundPort}`,
        `    interface: ${fingerAddr}@53`,
        `    port: ${unboundPort}`,
        '    access-control: 127.0.0.0/8 allow',
        '    do-not-query-localhost: no',
        '    module-config: "validator iterator"',
        `    trust-anchor-file: ${q(join(udir, 'ta.txt'))}`,
        '    trust-anchor-signaling: no',
        '    root-key-sentinel: no',
        '    cache-max-ttl: 30',
        '    cache-max-negative-ttl: 5',
        '    qname-minimisation: no',
        '    local-zone: "test." nodefault',
        '    local-zone: "." refuse',
        `    local-zone: ${q(ZONE)} transparent`,
        'remote-control:',
        '    control-enable: no',
        'stub-zone:',
        `    name: ${q(ZONE)}`,
        `    stub-addr: 127.0.0.1@${knotPort}`,
        '',
      ].join('\n'),
    );
    const ub = startDaemon('unbound', [unbound, '-d', '-c', join(udir, 'unbound.conf')], udir);
    await waitFor('unbound', ub, () =>
      / ad[ ;]/.test(
        spawnSync(
          kdig,
          [
            '@127.0.0.1',
            '-p',
            String(unboundPort),
            `${HOST}.`,
            'A',
            '+dnssec',
            '+timeout=1',
            '+retry=0',
          ],
          { encoding: 'utf8' },
        ).stdout,
      ),
    );

    // Postfix: RSA + ECDSA chains, on both addresses, two STARTTLS ports and a wrappermode port.
    const master = join(run(postconf, ['-d', '-h', 'daemon_directory']).trim(), 'master');
    const pdir = join(dir, 'postfix');
    pfConfig = join(pdir, 'conf');
    const queue = join(pdir, 'queue');
    const uid = Number(run('id', ['-u', 'postfix']).trim());
    const gid = Number(run('id', ['-g', 'postfix']).trim());
    const postdrop = Number(run('getent', ['group', 'postdrop']).split(':')[2]);
    const mk = (p: string, u: number, g: number, mode: number): void => {
      mkdirSync(p, { recursive: true });
      chownSync(p, u, g);
      chmodSync(p, mode);
    };
    mk(pdir, 0, 0, 0o755);
    mk(pfConfig, 0, 0, 0o755);
    mk(queue, 0, 0, 0o755);
    mk(join(queue, 'pid'), 0, 0, 0o755);
    for (const s of [
      'active',
      'bounce',
      'corrupt',
      'defer',
      'deferred',
      'flush',
      'hold',
      'incoming',
      'private',
      'saved',
      'trace',
    ])
      mk(join(queue, s), uid, gid, 0o700);
    mk(join(queue, 'maildrop'), uid, postdrop, 0o730);
    mk(join(queue, 'public'), uid, postdrop, 0o710);
    mk(join(pdir, 'data'), uid, gid, 0o700);
    const main: Record<string, string> = {
      compatibility_level: '3.6',
      queue_directory: queue,
      data_directory: join(pdir, 'data'),
      mail_owner: 'postfix',
      setgid_group: 'postdrop',
      // "127.0.0.1, 127.0.0.2" is fatal here (127.0.0.2 is no interface's address, the master
      // exits at once); the listeners in master.cf name both addresses, so nothing else is bound.
      inet_interfaces: 'all',
      inet_protocols: 'ipv4',
      myhostname: HOST,
      mydomain: 'bench.test',
      mydestination: '',
      relay_domains: '',
      local_recipient_maps: '',
      alias_maps: '',
      alias_database: '',
      mynetworks: '127.0.0.0/8',
      biff: 'no',
      maillog_file: join(pdir, 'maillog'),
      maillog_file_prefixes: pdir,
      smtpd_banner: '$myhostname ESMTP tlsa-bench',
      smtpd_tls_security_level: 'may',
      smtpd_tls_chain_files: [
        certs.rsa.key,
        certs.rsa.fullchain,
        certs.ecdsa.key,
        certs.ecdsa.fullchain,
      ].join(', '),
      smtpd_tls_loglevel: '0',
      smtpd_tls_received_header: 'no',
    };
    writeFileSync(
      join(pfConfig, 'main.cf'),
      `${Object.entries(main)
        .map(([k, v]) => `${k} = ${v}`)
        .join('\n')}\n`,
    );
    writeFileSync(
      join(pfConfig, 'master.cf'),
      [
        ...ADDRESSES.flatMap((a) => [
          `${a}:${ports.starttls1} inet n - n - - smtpd`,
          `${a}:${ports.starttls2} inet n - n - - smtpd`,
          `${a}:${ports.wrapper} inet n - n - - smtpd`,
          '  -o smtpd_tls_wrappermode=yes',
          '  -o smtpd_tls_security_level=encrypt',
        ]),
        'cleanup unix n - n - 0 cleanup',
        'rewrite unix - - n - - trivial-rewrite',
        'tlsmgr unix - - n 1000? 1 tlsmgr',
        'anvil unix - - n - 1 anvil',
        'postlog unix-dgram n - n - 1 postlogd',
        '',
      ].join('\n'),
    );
    run(postconf, ['-c', pfConfig, '-n']);
    const pf = startDaemon('postfix-master', [setsid, master, '-c', pfConfig, '-d'], pdir);
    const greets = (host: string, port: number, tls: boolean): Promise<boolean> =>
      new Promise((res) => {
        const s = tls
          ? tlsConnect({ host, port, rejectUnauthorized: false })
          : netConnect({ host, port });
        let buf = '';
        s.setTimeout(2000, () => {
          s.destroy();
          res(false);
        });
        s.on('data', (d: Buffer) => {
          buf += d.toString('latin1');
          if (/^220 /m.test(buf)) {
            s.write('QUIT\r\n');
            s.end();
            s.destroy();
            res(true);
          }
        });
        s.on('error', () => res(false));
      });
    await waitFor('postfix', pf, async () => {
      for (const a of ADDRESSES) {
        if (
          !(await greets(a, ports.starttls1, false)) ||
          !(await greets(a, ports.starttls2, false)) ||
          !(await greets(a, ports.wrapper, true))
        )
          return false;
      }
      return true;
    });

    // posttls-finger's client config and resolv.conf.
    const fingerConfig = join(dir, 'finger');
    mkdirSync(fingerConfig);
    writeFileSync(
      join(fingerConfig, 'main.cf'),
      [
        'compatibility_level = 3.6',
        'inet_protocols = ipv4',
        'smtp_dns_support_level = dnssec',
        `dnssec_probe = ns:${ZONE.replace(/\.$/, '')}`,
        'smtp_tls_loglevel = 1',
        '',
      ].join('\n'),
    );
    for (const kt of KEY_TYPES) {
      writeFileSync(
        join(fingerConfig, `sigalgs-${kt}.cnf`),
        [
          'tlsa_lab = tlsa_lab_settings',
          '[tlsa_lab_settings]',
          'ssl_conf = tlsa_lab_ssl',
          '[tlsa_lab_ssl]',
          'system_default = tlsa_lab_sigalgs',
          '[tlsa_lab_sigalgs]',
          `SignatureAlgorithms = ${FINGER_SIGALGS[kt]}`,
          '',
        ].join('\n'),
      );
    }
    const resolvConf = join(dir, 'resolv.conf');
    writeFileSync(
      resolvConf,
      `nameserver ${fingerAddr}\noptions trust-ad edns0 attempts:2 timeout:2\n`,
    );

    // tlsa's config: two services (what the ports speak differs), the lab's resolver and port.
    const tlsaConfig = join(dir, 'tlsa.yaml');
    writeFileSync(
      tlsaConfig,
      [
        `state_dir: ${join(dir, 'state')}`,
        'verify:',
        `  resolver: "127.0.0.1:${unboundPort}"`,
        `  authoritative_port: ${knotPort}`,
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
      knotPort,
      unboundPort,
      fingerAddr,
      ports,
      pfConfig,
      fingerConfig,
      resolvConf,
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
  const env = { ...process.env };
  delete env.TLSA_CONFIG;
  delete env.NODE_OPTIONS;
  const args = form === 'args' ? argsForm(lab)! : ['check', '--config', lab.tlsaConfig];
  const r = await runAsync(process.execPath, [CLI, ...args, '--json'], env);
  let report: TlsaReport;
  try {
    report = JSON.parse(r.out.slice(r.out.indexOf('{'))) as TlsaReport;
  } catch {
    throw new Error(`tlsa check printed no JSON (exit ${r.code}):\n${r.out}`);
  }
  const cases = report.reports.flatMap((x) =>
    x.probes.filter((p) => p.ok).map((p) => `${p.address} ${p.keyType} ${x.port}`),
  );
  return { ms: r.ms, cases, report, out: r.out };
}

async function finger(
  lab: Lab,
  port: number,
  keyType: KeyType,
  wrapper: boolean,
): Promise<{ ms: number; verified: boolean; address?: string; out: string }> {
  const bin = tool('posttls-finger', 'postfix');
  const args = [
    '-c',
    '-l',
    'dane',
    '-L',
    'summary',
    ...(wrapper ? ['-w'] : []),
    '-o',
    `tls_config_file=${join(lab.fingerConfig, `sigalgs-${keyType}.cnf`)}`,
    '-o',
    'tls_config_name=tlsa_lab',
    `[${HOST}]:${port}`,
  ];
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const script = `mount --bind ${q(lab.resolvConf)} /etc/resolv.conf && exec ${q(bin)} ${args.map(q).join(' ')}`;
  const r = await runAsync(
    tool('unshare', 'util-linux'),
    ['--mount', '--propagation', 'private', 'sh', '-c', script],
    { ...process.env, MAIL_CONFIG: lab.fingerConfig },
  );
  const m = /Verified TLS connection established to [^[]+\[([0-9.]+)\]/.exec(r.out);
  return { ms: r.ms, verified: !!m, ...(m ? { address: m[1]! } : {}), out: r.out };
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
  process.stderr.write(`bench/check: ${(e as Error).message ?? String(e)}\n`);
  for (const d of daemons)
    if (!d.exited && d.child.pid) {
      try {
        process.kill(d.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  process.exitCode = 1;
});
