/**
 * BIND 9 (named 9.18) as a lab authoritative server: own directory, config, key directory,
 * pid and lock files and port; `dnssec-policy` with one CSK (ecdsap256sha256) signs the zones;
 * RFC 2136 through `update-policy` for a TSIG key.
 *
 * Facts: with `update-policy` the zone is dynamic, and BIND 9.18 signs a dynamic zone under
 * `dnssec-policy` without `inline-signing` (it writes a journal `<zonefile>.jnl` beside the
 * file). `controls { };` keeps rndc's port 953 closed; `recursion no; notify no;`. `named -g`
 * stays in the foreground and logs to stderr (the `logging` block is ignored); named's own
 * pid-file, lock-file, session key and managed-keys files all go into the temp dir, so several
 * instances can run side by side.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseName } from '../../src/tlsa/record.js';
import { query } from './dig.js';
import { minimalZone } from './knot.js';
import { freePort, makeTempDir, startDaemon, toolPath, type Daemon } from './lab.js';

export interface BindZone {
  /** Zone apex, e.g. 'example.test.'. */
  name: string;
  /** Zone file contents (default: SOA, NS and A for the name server). */
  zoneFileText?: string;
  /** Sign with `dnssec-policy` (one CSK, ecdsap256sha256). */
  dnssec: boolean;
}

export interface BindTsig {
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha512';
  /** Base64 secret. */
  secret: string;
}

export interface BindOptions {
  zones: BindZone[];
  /** The key that may update every zone (`update-policy`); without it the zones are static. */
  tsig?: BindTsig;
  /** The rules inside `update-policy { ... }` (default `grant "<key>" zonesub ANY;`), e.g.
   *  `grant "<key>" zonesub TLSA;` for least privilege. */
  updatePolicy?: string;
  /** Listen address (default 127.0.0.1) and port (default: a free one). */
  host?: string;
  port?: number;
  timeoutMs?: number;
}

export interface BindServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly confPath: string;
  /** Zone apex -> zone file path. */
  readonly zoneFiles: Record<string, string>;
  readonly daemon: Daemon;
  /** DS records of a signed zone (presentation form, SHA-256, from `dnssec-dsfromkey -2`). */
  dsRecords(zone: string): string[];
  stop(): Promise<void>;
}

const q = (s: string): string => JSON.stringify(s);

export async function startBind(opts: BindOptions): Promise<BindServer> {
  const named = toolPath('named', 'bind9');
  const checkconf = toolPath('named-checkconf', 'bind9-utils');
  const dsfromkey = toolPath('dnssec-dsfromkey', 'bind9-utils');
  toolPath('kdig', 'knot-dnsutils');
  if (opts.zones.length === 0) throw new Error('startBind: no zones');

  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dir = makeTempDir('bind');
  const keyDir = join(dir, 'keys');
  mkdirSync(keyDir);
  const confPath = join(dir, 'named.conf');

  const conf: string[] = [
    'options {',
    `  directory ${q(dir)};`,
    `  pid-file ${q(join(dir, 'named-self.pid'))};`,
    `  lock-file ${q(join(dir, 'named.lock'))};`,
    `  session-keyfile ${q(join(dir, 'session.key'))};`,
    `  managed-keys-directory ${q(dir)};`,
    `  listen-on port ${port} { ${host}; };`,
    '  listen-on-v6 { none; };',
    '  recursion no;',
    '  notify no;',
    '  dnssec-validation no;',
    '  allow-transfer { none; };',
    '  minimal-responses yes;',
    '};',
    'controls { };',
    'dnssec-policy "lab" {',
    '  keys { csk key-directory lifetime unlimited algorithm ecdsap256sha256; };',
    '  dnskey-ttl 60;',
    '  max-zone-ttl 300;',
    '  zone-propagation-delay 0;',
    '  parent-propagation-delay 0;',
    '  publish-safety 0;',
    '  retire-safety 0;',
    '};',
  ];
  if (opts.tsig) {
    conf.push(
      `key ${q(opts.tsig.name)} {`,
      `  algorithm ${opts.tsig.algorithm};`,
      `  secret ${q(opts.tsig.secret)};`,
      '};',
    );
  }
  const zoneFiles: Record<string, string> = {};
  for (const z of opts.zones) {
    const name = normaliseName(z.name);
    const file = join(dir, `${name}zone`);
    writeFileSync(file, z.zoneFileText ?? minimalZone(name));
    zoneFiles[name] = file;
    conf.push(
      `zone ${q(name.slice(0, -1))} {`,
      '  type primary;',
      `  file ${q(file)};`,
      `  key-directory ${q(keyDir)};`,
    );
    if (z.dnssec) conf.push('  dnssec-policy "lab";');
    if (opts.tsig)
      conf.push(
        `  update-policy { ${opts.updatePolicy ?? `grant ${q(opts.tsig.name)} zonesub ANY;`} };`,
      );
    conf.push('};');
  }
  writeFileSync(confPath, `${conf.join('\n')}\n`);

  try {
    execFileSync(checkconf, [confPath], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(
      `startBind: invalid config ${confPath}: ${err.stderr ?? ''}${err.stdout ?? ''}`,
    );
  }

  const daemon = await startDaemon({
    name: 'named',
    // -g: foreground, log to stderr; -4: IPv4 only; -n 1: one worker thread.
    argv: [named, '-g', '-4', '-n', '1', '-c', confPath],
    cwd: dir,
    timeoutMs: opts.timeoutMs ?? 20_000,
    ready: async () => {
      for (const z of opts.zones) {
        const r = await query({
          server: host,
          port,
          name: z.name,
          type: 'SOA',
          dnssec: true,
          recurse: false,
          timeoutS: 1,
          retries: 0,
        });
        if (r.rcode !== 'NOERROR' || !r.flags.includes('aa')) return false;
        if (z.dnssec && !r.records.some((a) => a.type === 'RRSIG')) return false;
      }
      return true;
    },
  });

  return {
    host,
    port,
    dir,
    confPath,
    zoneFiles,
    daemon,
    dsRecords(zone) {
      const apex = normaliseName(zone);
      const prefix = `K${apex}+`;
      const ds: string[] = [];
      for (const f of readdirSync(keyDir)) {
        if (!f.startsWith(prefix) || !f.endsWith('.key')) continue;
        const path = join(keyDir, f);
        // The CSK has flags 257 (SEP); dnssec-dsfromkey refuses keys without it anyway.
        if (!/\sDNSKEY\s+257\s/.test(readFileSync(path, 'utf8'))) continue;
        const out = execFileSync(dsfromkey, ['-2', path], {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        ds.push(
          ...out
            .split('\n')
            .map((l) => l.trim().replace(/\s+/g, ' '))
            .filter((l) => /\sDS\s/.test(l)),
        );
      }
      if (ds.length === 0) throw new Error(`no DS for ${apex}: no key with flags 257 in ${keyDir}`);
      return ds;
    },
    stop: () => daemon.stop(),
  };
}
