/**
 * certbot (2.1, Debian package "certbot") against the lab's pebble, without /etc/letsencrypt:
 * every run gets `--config-dir/--work-dir/--logs-dir` in a temp dir, `--server` = pebble's
 * directory, `REQUESTS_CA_BUNDLE` = pebble's TLS CA, and HTTP-01 through `--standalone` on
 * 127.0.0.1 and pebble's `httpPort`.
 *
 * Facts this relies on (checked on Debian 12, certbot 2.1.0):
 *  - `certbot renew` sleeps up to 8 minutes unless `--no-random-sleep-on-renew`.
 *  - The deploy hook (`--deploy-hook CMD`) runs through the shell after `live/NAME` already
 *    points at the new files, with RENEWED_LINEAGE and RENEWED_DOMAINS and certbot's own
 *    environment (so TLSA_CONFIG passes through); certbot stores it as `renew_hook` in
 *    `renewal/NAME.conf`, so a later `renew` without the option runs it too. The hook's stdout
 *    is printed as "Hook 'deploy-hook' ran with output:", its stderr (tlsa's progress lines) as
 *    a WARNING "... ran with error output:" even when it succeeded; a non-zero exit only adds
 *    "Hook 'deploy-hook' reported error code N" (137 for a hook script whose process got
 *    SIGKILL: `sh -c` reports 128+9) and certbot itself still exits 0.
 *  - With --logs-dir, certbot 2.1 kept appending to one letsencrypt.log across runs here: each
 *    run's log is what it appended (`CertbotRun.log`).
 *  - `--reuse-key` is stored in the renewal file (`reuse_key = True`) and applies to every later
 *    renewal until `--no-reuse-key`.
 *  - The default key type of certbot 2.x is ECDSA (P-256); `--key-type rsa` gives RSA 2048.
 *  - After pebble restarts it no longer knows the account: the stored account must be
 *    replaced (`resetAccount()`: delete `accounts/`, `register`) and the renewal run with
 *    `--account NEWID` (a command-line value wins over the renewal file's `account`).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, toolPath, type ToolRequirement } from './lab.js';

export const CERTBOT_TOOLS: readonly ToolRequirement[] = [['certbot', 'certbot']];

export interface CertbotOptions {
  /** pebble's ACME directory URL. */
  directoryUrl: string;
  /** CA bundle for the ACME server's HTTPS certificate (REQUESTS_CA_BUNDLE). */
  caBundle: string;
  /** Port for --http-01-port (pebble's httpPort). */
  httpPort: number;
  /** Base dir (default: a fresh temp dir). */
  dir?: string;
}

export interface CertbotRun {
  argv: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr + the tail of certbot's own log, for failure messages. */
  output: string;
  /** certbot's log of this run (what it appended to letsencrypt.log). */
  log: string;
  ms: number;
  /** Deploy hook runs found in the log, in order. */
  hooks: HookRun[];
}

/** One deploy-hook run as certbot logged it. certbot's own exit status stays 0 when a deploy
 *  hook fails (it logs "Hook 'deploy-hook' reported error code N", -9 for SIGKILL). */
export interface HookRun {
  command: string;
  /** Exit code as certbot reports it (0 when it logged no error code). */
  code: number;
  /** When certbot started it (its log's timestamp, ms since the epoch, local clock). */
  startedAt: number;
  /** From "Running deploy-hook command" to certbot's report of it (log timestamps, ms). */
  ms: number;
  stdout: string;
  stderr: string;
}

const LOG_LINE = /^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}):(\w+):([\w.]+):(.*)$/;

/** Deploy hook runs in a certbot log. */
export function parseHookRuns(log: string): HookRun[] {
  // Entries span lines: a new entry starts with a timestamp.
  const entries: { t: number; msg: string }[] = [];
  for (const line of log.split('\n')) {
    const m = LOG_LINE.exec(line);
    if (m)
      entries.push({ t: new Date(`${m[1]!.replace(' ', 'T')}.${m[2]}`).getTime(), msg: m[5]! });
    else if (entries.length) entries[entries.length - 1]!.msg += `\n${line}`;
  }
  // A hook runs synchronously: the entry after "Running deploy-hook command" is logged when it
  // has finished (its report when it failed or printed anything, else whatever certbot does next).
  const runs: HookRun[] = [];
  for (let i = 0; i < entries.length; i++) {
    const start = /^Running deploy-hook command: (.*)$/.exec(entries[i]!.msg);
    if (!start) continue;
    const run: HookRun = {
      command: start[1]!,
      code: 0,
      startedAt: entries[i]!.t,
      ms: (entries[i + 1]?.t ?? entries[i]!.t) - entries[i]!.t,
      stdout: '',
      stderr: '',
    };
    for (let j = i + 1; j < entries.length; j++) {
      const msg = entries[j]!.msg;
      const code = /^Hook 'deploy-hook' reported error code (-?\d+)/.exec(msg);
      const out = /^(?:Notifying user: )?Hook 'deploy-hook' ran with output:\n([\s\S]*)$/.exec(msg);
      const err = /^Hook 'deploy-hook' ran with error output:\n([\s\S]*)$/.exec(msg);
      if (code) run.code = Number(code[1]);
      else if (out) run.stdout = out[1]!.replace(/^ /gm, '').trim();
      else if (err) run.stderr = err[1]!.replace(/^ /gm, '').trim();
      else break;
    }
    runs.push(run);
  }
  return runs;
}

export interface CertonlyOptions {
  certName: string;
  domains: string[];
  keyType?: 'rsa' | 'ecdsa';
  deployHook?: string;
  env?: Record<string, string>;
  extra?: string[];
}

export interface RenewOptions {
  certName?: string;
  /** Default true: pebble's certificates are valid for 5 years. */
  forceRenewal?: boolean;
  /** true → --reuse-key, false → --no-reuse-key, undefined → as stored. */
  reuseKey?: boolean;
  deployHook?: string;
  account?: string;
  env?: Record<string, string>;
  extra?: string[];
}

export interface Certbot {
  readonly dir: string;
  readonly configDir: string;
  readonly workDir: string;
  readonly logsDir: string;
  /** live/NAME: the lineage directory tlsa reads. */
  liveDir(certName: string): string;
  /** How many versions of the lineage exist (archive/NAME/certN.pem). */
  versions(certName: string): number;
  /** certbot with the common options (dirs, server, non-interactive) before `args`. */
  run(args: string[], env?: Record<string, string>): Promise<CertbotRun>;
  register(): Promise<string>;
  /** Forget the local account and register a new one (after a pebble restart); its id. */
  resetAccount(): Promise<string>;
  /** The id of the (single) local account, if any. */
  accountId(): string | undefined;
  certonly(o: CertonlyOptions): Promise<CertbotRun>;
  renew(o?: RenewOptions): Promise<CertbotRun>;
}

function findAccountIds(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: string[];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    if (entries.includes('regr.json') && entries.includes('private_key.json')) {
      out.push(d.split('/').at(-1)!);
      return;
    }
    for (const e of entries) {
      const p = join(d, e);
      try {
        if (statSync(p).isDirectory()) walk(p);
      } catch {
        /* gone */
      }
    }
  };
  walk(dir);
  return out;
}

export function makeCertbot(opts: CertbotOptions): Certbot {
  const certbot = toolPath('certbot', 'certbot');
  const dir = opts.dir ?? makeTempDir('certbot');
  const configDir = join(dir, 'config');
  const workDir = join(dir, 'work');
  const logsDir = join(dir, 'logs');
  for (const d of [configDir, workDir, logsDir]) mkdirSync(d, { recursive: true });
  const common = [
    '--non-interactive',
    '--config-dir',
    configDir,
    '--work-dir',
    workDir,
    '--logs-dir',
    logsDir,
    '--server',
    opts.directoryUrl,
  ];
  const http01 = [
    '--standalone',
    '--preferred-challenges',
    'http',
    '--http-01-address',
    '127.0.0.1',
    '--http-01-port',
    String(opts.httpPort),
  ];

  const run = (args: string[], env: Record<string, string> = {}): Promise<CertbotRun> => {
    const argv = [...args, ...common];
    const started = Date.now();
    // certbot appends to letsencrypt.log across runs (here it did not rotate): read only what
    // this run adds.
    const logFile = join(logsDir, 'letsencrypt.log');
    let logOffset = 0;
    try {
      logOffset = statSync(logFile).size;
    } catch {
      /* first run */
    }
    return new Promise((resolveRun) => {
      const child = spawn(certbot, argv, {
        cwd: dir,
        env: { ...process.env, REQUESTS_CA_BUNDLE: opts.caBundle, ...env },
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
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        let log = '';
        try {
          const all = readFileSync(logFile);
          log = all.subarray(all.length >= logOffset ? logOffset : 0).toString('utf8');
        } catch {
          /* no log */
        }
        const logTail = log.split('\n').slice(-40).join('\n');
        resolveRun({
          argv: [certbot, ...argv],
          code,
          signal,
          stdout,
          stderr,
          log,
          output: `$ certbot ${argv.join(' ')}\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}\n--- letsencrypt.log (tail) ---\n${logTail}`,
          ms: Date.now() - started,
          hooks: parseHookRuns(log),
        });
      });
    });
  };

  const accountId = (): string | undefined => findAccountIds(join(configDir, 'accounts'))[0];
  const register = async (): Promise<string> => {
    const r = await run(['register', '--agree-tos', '--register-unsafely-without-email']);
    const id = accountId();
    if (r.code !== 0 || !id) throw new Error(`certbot register failed:\n${r.output}`);
    return id;
  };

  return {
    dir,
    configDir,
    workDir,
    logsDir,
    liveDir: (name) => join(configDir, 'live', name),
    versions(name) {
      const archive = join(configDir, 'archive', name);
      if (!existsSync(archive)) return 0;
      return readdirSync(archive).filter((f) => /^cert\d+\.pem$/.test(f)).length;
    },
    run,
    register,
    accountId,
    async resetAccount() {
      rmSync(join(configDir, 'accounts'), { recursive: true, force: true });
      return register();
    },
    certonly(o) {
      return run(
        [
          'certonly',
          ...http01,
          '--agree-tos',
          '--register-unsafely-without-email',
          '--cert-name',
          o.certName,
          ...o.domains.flatMap((d) => ['-d', d]),
          '--key-type',
          o.keyType ?? 'ecdsa',
          ...(o.deployHook ? ['--deploy-hook', o.deployHook] : []),
          ...(o.extra ?? []),
        ],
        o.env,
      );
    },
    renew(o = {}) {
      return run(
        [
          'renew',
          ...http01,
          '--no-random-sleep-on-renew',
          ...(o.certName ? ['--cert-name', o.certName] : []),
          ...(o.forceRenewal === false ? [] : ['--force-renewal']),
          ...(o.reuseKey === true
            ? ['--reuse-key']
            : o.reuseKey === false
              ? ['--no-reuse-key']
              : []),
          ...(o.account ? ['--account', o.account] : []),
          ...(o.deployHook ? ['--deploy-hook', o.deployHook] : []),
          ...(o.extra ?? []),
        ],
        o.env,
      );
    },
  };
}
