/**
 * posttls-finger as an independent DANE client, resolving through the lab's validating unbound.
 *
 * glibc's resolver (which posttls-finger uses) cannot be given a port, so unbound has a second
 * listener on port 53 of a loopback address (freeLoopback53) and each posttls-finger runs in a private mount namespace with its
 * own resolv.conf bind-mounted over /etc/resolv.conf (the machine's file is never touched):
 *   unshare --mount --propagation private sh -c 'mount --bind F /etc/resolv.conf && exec posttls-finger …'
 * Its MAIL_CONFIG main.cf has `smtp_dns_support_level = dnssec` and `dnssec_probe = ns:ZONE`
 * (the default probe asks for the root, which the lab's unbound refuses). The TLSA owner name
 * follows the port: `[mx.example.test]:2525` looks up `_2525._tcp.mx.example.test`.
 *
 * posttls-finger exits 0 whatever happened: the verdict is in its output ("Verified TLS
 * connection established", "Matched DANE EE/TA certificate at depth N").
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolPath } from './lab.js';

export interface DaneFingerOptions {
  /** Where the client's main.cf, resolv.conf and OpenSSL configs go. */
  dir: string;
  /** The DNSSEC zone to probe (dnssec_probe = ns:ZONE). */
  zone: string;
  /** Address of the resolver listening on port 53 (unbound's extra listener). */
  resolverAddress: string;
}

export interface DaneFingerCheck {
  host: string;
  port: number;
  /** Offer only RSA or only ECDSA signature algorithms (picks the certificate of a dual-cert server). */
  keyType?: 'rsa' | 'ecdsa';
  /** Implicit TLS (SMTPS) instead of STARTTLS. */
  wrapper?: boolean;
  /** posttls-finger's -L (default routine,certmatch,summary). */
  logOptions?: string;
  timeoutMs?: number;
}

export interface DaneFingerResult {
  at: Date;
  ms: number;
  keyType: 'rsa' | 'ecdsa' | 'any';
  /** "Verified TLS connection established" was printed. */
  verified: boolean;
  /** Verified / Trusted / Untrusted / Anonymous, when a TLS connection was made. */
  trust?: string;
  /** "EE" or "TA" (what matched), depth included, e.g. "EE 0". */
  matched?: string;
  /** SHA-256 of the peer's public key (hex, lower case), when printed. */
  pkeySha256?: string;
  output: string;
}

const SIGALGS = {
  rsa: 'RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:RSA+SHA256:RSA+SHA384:RSA+SHA512',
  ecdsa: 'ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512',
} as const;

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export interface DaneFinger {
  readonly configDir: string;
  readonly resolvConf: string;
  check(c: DaneFingerCheck): Promise<DaneFingerResult>;
}

export function makeDaneFinger(opts: DaneFingerOptions): DaneFinger {
  const finger = toolPath('posttls-finger', 'postfix');
  const unshare = toolPath('unshare', 'util-linux');
  toolPath('mount', 'mount');
  const configDir = join(opts.dir, 'finger-conf');
  mkdirSync(configDir, { recursive: true });
  const resolvConf = join(opts.dir, 'finger-resolv.conf');
  writeFileSync(
    resolvConf,
    `nameserver ${opts.resolverAddress}\noptions trust-ad edns0 attempts:2 timeout:2\n`,
  );
  writeFileSync(
    join(configDir, 'main.cf'),
    [
      'compatibility_level = 3.6',
      'inet_protocols = ipv4',
      'smtp_dns_support_level = dnssec',
      `dnssec_probe = ns:${opts.zone.replace(/\.$/, '')}`,
      'smtp_tls_loglevel = 1',
      '',
    ].join('\n'),
  );
  for (const kt of ['rsa', 'ecdsa'] as const) {
    writeFileSync(
      join(configDir, `sigalgs-${kt}.cnf`),
      [
        'tlsa_lab = tlsa_lab_settings',
        '[tlsa_lab_settings]',
        'ssl_conf = tlsa_lab_ssl',
        '[tlsa_lab_ssl]',
        'system_default = tlsa_lab_sigalgs',
        '[tlsa_lab_sigalgs]',
        `SignatureAlgorithms = ${SIGALGS[kt]}`,
        '',
      ].join('\n'),
    );
  }

  return {
    configDir,
    resolvConf,
    check(c) {
      const log = c.logOptions ?? 'routine,certmatch,summary';
      const args = ['-c', '-l', 'dane', '-L', log, '-d', 'sha256', ...(c.wrapper ? ['-w'] : [])];
      if (c.keyType)
        args.push(
          '-o',
          `tls_config_file=${join(configDir, `sigalgs-${c.keyType}.cnf`)}`,
          '-o',
          'tls_config_name=tlsa_lab',
        );
      args.push(`[${c.host}]:${c.port}`);
      const script = `mount --bind ${q(resolvConf)} /etc/resolv.conf && exec ${q(finger)} ${args.map(q).join(' ')}`;
      const started = Date.now();
      const at = new Date();
      return new Promise((resolveCheck) => {
        const child = spawn(unshare, ['--mount', '--propagation', 'private', 'sh', '-c', script], {
          env: { ...process.env, MAIL_CONFIG: configDir },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          output += d;
        });
        child.stderr.setEncoding('utf8').on('data', (d: string) => {
          output += d;
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), c.timeoutMs ?? 20_000);
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          if (code !== 0) output += `\n(exit ${code ?? signal})`;
          const est = /(\w+) TLS connection established to /.exec(output);
          const matched = /Matched DANE (EE|TA) (?:public key|certificate) at depth (\d+)/.exec(
            output,
          );
          const pkey = /pkey_fingerprint=([0-9A-F:]+)/.exec(output);
          const r: DaneFingerResult = {
            at,
            ms: Date.now() - started,
            keyType: c.keyType ?? 'any',
            verified: /Verified TLS connection established/.test(output),
            output,
          };
          if (est) r.trust = est[1]!;
          if (matched) r.matched = `${matched[1]} ${matched[2]}`;
          if (pkey) r.pkeySha256 = pkey[1]!.replace(/:/g, '').toLowerCase();
          resolveCheck(r);
        });
      });
    },
  };
}

/** Runs checks back to back (about every `intervalMs`) until stopped; keeps every result. */
export class DanePoller {
  readonly results: (DaneFingerResult & { scenario: string })[] = [];
  scenario = 'setup';
  /** Key types to cycle through, one per poll. */
  keyTypes: ('rsa' | 'ecdsa' | 'any')[] = ['any'];
  private running = false;
  private loop: Promise<void> | undefined;
  private n = 0;

  constructor(
    private readonly finger: DaneFinger,
    private readonly host: string,
    private readonly port: number,
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        const kt = this.keyTypes[this.n++ % this.keyTypes.length]!;
        const r = await this.finger.check({
          host: this.host,
          port: this.port,
          ...(kt === 'any' ? {} : { keyType: kt }),
        });
        this.results.push({ ...r, scenario: this.scenario });
        const left = this.intervalMs - (Date.now() - started);
        if (left > 0 && this.running) await new Promise((res) => setTimeout(res, left));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  of(scenario: string): (DaneFingerResult & { scenario: string })[] {
    return this.results.filter((r) => r.scenario === scenario);
  }
}
