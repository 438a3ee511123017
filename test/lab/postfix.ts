/**
 * Postfix (3.7, Debian package "postfix") as a private second instance for the lab: its own
 * config, queue and data directories in a temp dir, a STARTTLS smtpd and an implicit-TLS
 * (smtpd_tls_wrappermode=yes) smtpd on free loopback ports, one or more key + fullchain pairs
 * at once (smtpd_tls_chain_files: RSA and ECDSA side by side), logging to a file in the temp dir.
 *
 * Facts this relies on (checked on Debian 12, Postfix 3.7.11):
 *  - `master -c DIR -d` runs the master in the foreground with DIR's main.cf/master.cf; the
 *    children inherit MAIL_CONFIG=DIR. `postfix -c DIR start-fg` is no good here: it execs the
 *    master only when it is PID 1, so its pid is not the master's. As root, a non-default
 *    config dir need not be listed in the system main.cf's alternate_config_directories (that
 *    check applies to non-root callers only), and /etc/postfix/main.cf need not even exist.
 *  - The master must lead its own process group: on SIGTERM it kills its group and exits; as
 *    a member of the test runner's group it fails with "master_sigdeath: kill process group:
 *    No such process". So it is started through `setsid` (which execs: same pid).
 *  - The queue directory and its parents must be traversable by the `postfix` user (children
 *    drop privileges and chdir there): the temp dir is made 0755. Key files may be root-only
 *    0600: smtpd loads them before dropping privileges.
 *  - `postfix -c DIR reload` works too (postfix-script HUPs the pid in DIR's queue); so do
 *    `postconf -c DIR -e …` edits before it.
 *  - `maillog_file` must start with one of `maillog_file_prefixes`, and master.cf needs the
 *    `postlog unix-dgram ... postlogd` service; the master logs "daemon started" and, after
 *    SIGHUP, "reload -- version …" there.
 *  - posttls-finger reads MAIL_CONFIG's main.cf; `-l` takes a security level (may, encrypt,
 *    fingerprint, secure, dane; "verbose" is rejected), `-L` the log options (summary,verbose,
 *    …), `-w` is wrapper mode (SMTPS). It exits 0 whatever happened: read its output. Its
 *    signature algorithms can be restricted with `-o tls_config_file=F -o tls_config_name=N`
 *    (an OpenSSL config with SignatureAlgorithms), which makes Postfix pick the RSA or the
 *    ECDSA certificate.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import {
  findTool,
  freePort,
  makeTempDir,
  sleep,
  startDaemon,
  toolPath,
  type Daemon,
  type ToolRequirement,
} from './lab.js';

/** Tools the Postfix lab needs (for labDescribe). */
export const POSTFIX_TOOLS: readonly ToolRequirement[] = [
  ['postfix', 'postfix'],
  ['postconf', 'postfix'],
  ['posttls-finger', 'postfix'],
  ['setsid', 'util-linux'],
];

export interface PostfixChain {
  /** Private key (PEM). */
  keyPath: string;
  /** Leaf certificate followed by its intermediates (PEM), e.g. certbot's fullchain.pem. */
  fullchainPath: string;
}

export interface PostfixListener {
  address: string;
  port: number;
  /** Implicit TLS (smtpd_tls_wrappermode=yes) instead of STARTTLS. */
  wrapper?: boolean;
}

export interface PostfixOptions {
  /** One or more key + chain pairs, served at once (e.g. one RSA and one ECDSA). */
  chains: PostfixChain[];
  /** The smtpd listeners (default: one STARTTLS and one implicit-TLS listener on free ports of
   *  127.0.0.1); the first of each kind are smtpPort and smtpsPort. */
  listeners?: PostfixListener[];
  /** myhostname, shown in the greeting (default mx.example.test). */
  hostname?: string;
  /** Extra main.cf settings (name → value), appended last. */
  main?: Record<string, string>;
  timeoutMs?: number;
}

export interface PostfixServer {
  readonly host: string;
  /** STARTTLS listener (smtpd_tls_security_level=may). */
  readonly smtpPort: number;
  /** Implicit TLS listener (smtpd_tls_wrappermode=yes). */
  readonly smtpsPort: number;
  readonly dir: string;
  /** For `postfix -c`, `postconf -c` and MAIL_CONFIG. */
  readonly configDir: string;
  readonly queueDir: string;
  readonly maillogPath: string;
  readonly daemon: Daemon;
  /** The maillog so far. */
  maillog(): string;
  /** SIGHUP the master (re-reads main.cf and the certificate files); resolves once the master
   *  has logged the reload and accepts connections again. */
  reload(): Promise<void>;
  /** SIGTERM the master by its pid; waits for it and for every child of this instance. */
  stop(): Promise<void>;
}

function idOf(flag: '-u' | '-g', name: string): number {
  return Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
}

function groupId(name: string): number {
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`lab: postfix: no group ${name}`);
  return gid;
}

function mkdirOwned(path: string, uid: number, gid: number, mode: number): void {
  mkdirSync(path, { recursive: true });
  chownSync(path, uid, gid);
  chmodSync(path, mode);
}

/** Pids of processes whose environment holds MAIL_CONFIG=configDir (this instance's master
 *  children; the master itself got -c, not the variable). */
export function instancePids(configDir: string): number[] {
  const needle = Buffer.from(`MAIL_CONFIG=${configDir}\0`);
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`);
      if (env.includes(needle)) {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (!/\) Z /.test(stat)) out.push(Number(entry)); // zombies are already dead
      }
    } catch {
      /* gone or not ours to read */
    }
  }
  return out;
}

/** Resolves true when a 220 greeting arrives on host:port. */
function greets(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host, port });
    let buf = '';
    let greeted = false;
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!greeted && /^220 .*\r?\n/m.test(buf)) {
        greeted = true;
        s.write('QUIT\r\n');
      } else if (greeted && /^221 .*\r?\n/m.test(buf)) {
        s.end();
      }
    });
    s.on('error', () => done(false));
    s.on('close', () => done(greeted));
  });
}

/** Resolves true when a TLS handshake and then a 220 greeting complete on host:port (SMTPS). */
function handshakes(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host, port, rejectUnauthorized: false });
    let buf = '';
    let greeted = false;
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!greeted && /^220 .*\r?\n/m.test(buf)) {
        greeted = true;
        s.write('QUIT\r\n');
      } else if (greeted && /^221 .*\r?\n/m.test(buf)) {
        s.end(); // close only after smtpd answered, or it logs "lost connection after QUIT"
      }
    });
    s.on('error', () => done(false));
    s.on('close', () => done(greeted));
  });
}

export async function startPostfix(opts: PostfixOptions): Promise<PostfixServer> {
  const postconf = toolPath('postconf', 'postfix');
  toolPath('posttls-finger', 'postfix');
  const setsid = toolPath('setsid', 'util-linux');
  if (opts.chains.length === 0) throw new Error('startPostfix: no chains');
  if (process.getuid?.() !== 0)
    throw new Error(
      'lab: postfix: the master must run as root (it drops privileges to the postfix user itself)',
    );
  for (const c of opts.chains) {
    for (const p of [c.keyPath, c.fullchainPath]) {
      if (!existsSync(p)) throw new Error(`startPostfix: ${p} does not exist`);
      if (/[\s,]/.test(p))
        throw new Error(
          `startPostfix: ${p}: smtpd_tls_chain_files cannot hold paths with spaces or commas`,
        );
    }
  }
  const daemonDir = execFileSync(postconf, ['-d', '-h', 'daemon_directory'], {
    encoding: 'utf8',
  }).trim();
  const master = findTool(join(daemonDir, 'master'));
  if (!master)
    throw new Error(
      `lab: postfix: no master in ${daemonDir}; install the Debian package "postfix"`,
    );

  const host = '127.0.0.1';
  const listeners = opts.listeners ?? [
    { address: host, port: await freePort(host) },
    { address: host, port: await freePort(host), wrapper: true },
  ];
  const smtpPort = listeners.find((l) => !l.wrapper)?.port ?? 0;
  const smtpsPort = listeners.find((l) => l.wrapper)?.port ?? 0;
  const dir = makeTempDir('postfix');
  chmodSync(dir, 0o755); // the postfix user must reach the queue directory
  const configDir = join(dir, 'conf');
  const queueDir = join(dir, 'queue');
  const dataDir = join(dir, 'data');
  const maillogPath = join(dir, 'maillog');

  const uid = idOf('-u', 'postfix');
  const gid = idOf('-g', 'postfix');
  const postdrop = groupId('postdrop');
  mkdirOwned(configDir, 0, 0, 0o755);
  mkdirOwned(queueDir, 0, 0, 0o755);
  mkdirOwned(join(queueDir, 'pid'), 0, 0, 0o755);
  for (const q of [
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
  ]) {
    mkdirOwned(join(queueDir, q), uid, gid, 0o700);
  }
  mkdirOwned(join(queueDir, 'maildrop'), uid, postdrop, 0o730);
  mkdirOwned(join(queueDir, 'public'), uid, postdrop, 0o710);
  mkdirOwned(dataDir, uid, gid, 0o700);

  const hostname = opts.hostname ?? 'mx.example.test';
  const main: Record<string, string> = {
    compatibility_level: '3.6',
    queue_directory: queueDir,
    data_directory: dataDir,
    mail_owner: 'postfix',
    setgid_group: 'postdrop',
    // An address that is no interface's (127.0.0.2) is fatal in inet_interfaces: with other
    // addresses, "all", and the listeners in master.cf name theirs, so nothing else is bound.
    inet_interfaces: listeners.every((l) => l.address === host) ? host : 'all',
    inet_protocols: 'ipv4',
    myhostname: hostname,
    mydomain: hostname.replace(/^[^.]+\./, ''),
    myorigin: '$myhostname',
    mydestination: '',
    relay_domains: '',
    local_recipient_maps: '',
    alias_maps: '',
    alias_database: '',
    mynetworks: '127.0.0.0/8',
    biff: 'no',
    maillog_file: maillogPath,
    maillog_file_prefixes: dir,
    smtpd_banner: '$myhostname ESMTP tlsa-lab',
    smtpd_tls_security_level: 'may',
    smtpd_tls_chain_files: opts.chains.flatMap((c) => [c.keyPath, c.fullchainPath]).join(', '),
    smtpd_tls_loglevel: '1',
    smtpd_tls_received_header: 'no',
    ...opts.main,
  };
  writeFileSync(
    join(configDir, 'main.cf'),
    `${Object.entries(main)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n')}\n`,
  );
  writeFileSync(
    join(configDir, 'master.cf'),
    [
      '# service            type  private unpriv chroot wakeup maxproc command',
      ...listeners.flatMap((l) => [
        `${l.address}:${l.port}  inet  n       -      n      -      -       smtpd`,
        ...(l.wrapper
          ? ['  -o smtpd_tls_wrappermode=yes', '  -o smtpd_tls_security_level=encrypt']
          : []),
      ]),
      'cleanup              unix  n       -      n      -      0       cleanup',
      'rewrite              unix  -       -      n      -      -       trivial-rewrite',
      'tlsmgr               unix  -       -      n      1000?  1       tlsmgr',
      'anvil                unix  -       -      n      -      1       anvil',
      'postlog              unix-dgram n  -      n      -      1       postlogd',
      '',
    ].join('\n'),
  );

  try {
    execFileSync(postconf, ['-c', configDir, '-n'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string };
    throw new Error(
      `startPostfix: postconf rejects ${configDir}/main.cf: ${err.stderr ?? String(e)}`,
    );
  }

  const maillog = (): string => (existsSync(maillogPath) ? readFileSync(maillogPath, 'utf8') : '');
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      name: 'postfix-master',
      argv: [setsid, master, '-c', configDir, '-d'],
      cwd: dir,
      timeoutMs: opts.timeoutMs ?? 20_000,
      ready: async () => {
        for (const l of listeners)
          if (!(await (l.wrapper ? handshakes : greets)(l.address, l.port))) return false;
        return true;
      },
    });
  } catch (e) {
    throw new Error(
      `${(e as Error).message}\n--- ${maillogPath} (tail) ---\n${maillog().split('\n').slice(-20).join('\n')}`,
    );
  }

  const reloadsLogged = (): number =>
    (maillog().match(/postfix\/master\[\d+\]: reload -- /g) ?? []).length;

  let stopping: Promise<void> | undefined;
  return {
    host,
    smtpPort,
    smtpsPort,
    dir,
    configDir,
    queueDir,
    maillogPath,
    daemon,
    maillog,
    async reload() {
      const before = reloadsLogged();
      process.kill(daemon.pid, 'SIGHUP');
      const deadline = Date.now() + 10_000;
      while (reloadsLogged() <= before) {
        if (Date.now() > deadline)
          throw new Error(`postfix reload: no "reload" line in ${maillogPath} after 10 s`);
        await sleep(50);
      }
      while (!(await greets(host, smtpPort))) {
        if (Date.now() > deadline)
          throw new Error('postfix reload: smtpd does not greet after the reload');
        await sleep(50);
      }
    },
    stop() {
      stopping ??= (async () => {
        await daemon.stop();
        // The children notice the master's exit and leave by themselves; give them a moment,
        // then kill stragglers of this instance (and only those) by pid.
        const deadline = Date.now() + 3000;
        let left = instancePids(configDir);
        while (left.length > 0 && Date.now() < deadline) {
          await sleep(50);
          left = instancePids(configDir);
        }
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      })();
      return stopping;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// posttls-finger

export interface FingerOptions {
  /** MAIL_CONFIG for posttls-finger: a dir with a main.cf (e.g. PostfixServer.configDir). */
  configDir: string;
  port: number;
  host?: string;
  /** SMTPS (implicit TLS, -w) instead of STARTTLS. */
  wrapper?: boolean;
  /** Offer only RSA or only ECDSA signature algorithms (picks the certificate of a dual-cert server). */
  keyType?: 'rsa' | 'ecdsa';
  /** -l security level (default may). */
  level?: string;
  /** -L log options (default summary,verbose). */
  logopts?: string;
  /** With level "fingerprint": the certificate or public-key fingerprints to match
   *  (sha256, colon-separated hex), given after the destination. */
  match?: string[];
  timeoutMs?: number;
}

export interface FingerResult {
  /** posttls-finger's exit status (0 even when TLS failed). */
  code: number;
  /** stdout + stderr. */
  output: string;
  /** The "… TLS connection established to …" line, if any. */
  established?: string;
  /** Verified / Trusted / Untrusted / Anonymous. */
  trust?: string;
  /** SHA-256 of the peer's leaf certificate DER, lower-case hex without colons. */
  certSha256?: string;
  /** SHA-256 of the peer's leaf public key (SPKI DER), lower-case hex without colons. */
  pkeySha256?: string;
}

const FINGER_SIGALGS = {
  rsa: 'RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512',
  ecdsa: 'ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512',
} as const;

/** Run posttls-finger against [host]:port, independent of the code under test. */
export function postTlsFinger(opts: FingerOptions): Promise<FingerResult> {
  const bin = toolPath('posttls-finger', 'postfix');
  const host = opts.host ?? '127.0.0.1';
  const args = [
    '-c',
    '-l',
    opts.level ?? 'may',
    '-L',
    opts.logopts ?? 'summary,verbose',
    '-d',
    'sha256',
  ];
  if (opts.wrapper) args.push('-w');
  if (opts.keyType) {
    const cnf = join(opts.configDir, `posttls-finger-${opts.keyType}.cnf`);
    writeFileSync(
      cnf,
      [
        'tlsa_lab = tlsa_lab_settings',
        '[tlsa_lab_settings]',
        'ssl_conf = tlsa_lab_ssl',
        '[tlsa_lab_ssl]',
        'system_default = tlsa_lab_sigalgs',
        '[tlsa_lab_sigalgs]',
        `SignatureAlgorithms = ${FINGER_SIGALGS[opts.keyType]}`,
        '',
      ].join('\n'),
    );
    args.push('-o', `tls_config_file=${cnf}`, '-o', 'tls_config_name=tlsa_lab');
  }
  args.push(`[${host}]:${opts.port}`, ...(opts.match ?? []));
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      { env: { ...process.env, MAIL_CONFIG: opts.configDir }, timeout: opts.timeoutMs ?? 20_000 },
      (err, stdout, stderr) => {
        const output = `${stdout}${stderr}`;
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        const est = /^.*?(\w+) TLS connection established to .*$/m.exec(output);
        const fp = /fingerprint=([0-9A-F:]+), pkey_fingerprint=([0-9A-F:]+)/.exec(output);
        const hex = (s: string): string => s.replace(/:/g, '').toLowerCase();
        const r: FingerResult = { code, output };
        if (est) {
          r.established = est[0];
          r.trust = est[1]!;
        }
        if (fp) {
          r.certSha256 = hex(fp[1]!);
          r.pkeySha256 = hex(fp[2]!);
        }
        resolve(r);
      },
    );
  });
}
