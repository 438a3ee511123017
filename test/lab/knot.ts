/**
 * Knot DNS (knotd 3.2) as the lab's authoritative server: own config, storage, control socket
 * and port; online DNSSEC signing for zones with dnssec:true; RFC 2136 with a TSIG key.
 *
 * Zone files are edited by other programs and then `knotc zone-reload` is run, so:
 *  - `zonefile-load: difference-no-serial` + `journal-content: all`: a reload applies the
 *    difference between the file and the served zone even when the file's SOA serial did not
 *    change (Knot increments the serial itself); edits inside `$INCLUDE`d files count too;
 *  - `zonefile-sync: -1`: Knot never writes the zone back into the file (the default, 0, would
 *    overwrite the file with the signed zone, dropping comments, `$INCLUDE`s and marks).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseName } from '../../src/tlsa/record.js';
import { query } from './dig.js';
import { freePort, makeTempDir, shellQuote, startDaemon, toolPath, type Daemon } from './lab.js';

export interface KnotZone {
  /** Zone apex, e.g. 'example.test.'. */
  name: string;
  /** Contents for a zone file that the lab writes to `<dir>/<zone>zone`. */
  zoneFileText?: string;
  /** An existing zone file (takes precedence over zoneFileText). */
  zoneFilePath?: string;
  /** Sign online (ecdsap256sha256, instant: propagation-delay 0). */
  dnssec: boolean;
  /** Override the template's `zonefile-load` (difference-no-serial): `difference` applies a
   *  reload only when the file's SOA serial went up, and serves the file's serial. */
  zonefileLoad?: 'whole' | 'difference' | 'difference-no-serial';
}

export interface KnotTsig {
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha512';
  /** Base64 secret. */
  secret: string;
  /** Limit the key's updates to these types (`update-type` in the ACL), e.g. ['TLSA'] for
   *  least privilege; default: any type. */
  updateTypes?: string[];
}

export interface KnotOptions {
  zones: KnotZone[];
  tsig?: KnotTsig;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Listen port (default: a free one). Give the port of another lab server to run a second
   *  Knot on another loopback address with the same port, e.g. a secondary on 127.0.0.2 (the
   *  lab's name servers must all use one port: a delegation has no port). */
  port?: number;
  timeoutMs?: number;
}

export interface KnotServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly confPath: string;
  /** Zone apex -> zone file path. */
  readonly zoneFiles: Record<string, string>;
  readonly daemon: Daemon;
  /** Shell command that reloads one zone from its file and blocks until it is loaded (exit 1
   *  when the zone file does not parse). */
  reloadCommand(zone: string): string;
  /** Run reloadCommand(zone). */
  reload(zone: string): void;
  /** DS records (presentation form, from `keymgr ZONE ds`: SHA-256 and SHA-384 digests). */
  dsRecords(zone: string): string[];
  /** Run knotc with this server's config; returns stdout. */
  knotc(...args: string[]): string;
  stop(): Promise<void>;
}

/** A minimal zone: SOA, NS and A for the name server. */
export function minimalZone(zone: string, extra = ''): string {
  const z = normaliseName(zone);
  return `${[
    '$TTL 300',
    `${z} 300 IN SOA ns.${z} hostmaster.${z} 1 3600 600 86400 60`,
    `${z} 300 IN NS ns.${z}`,
    `ns.${z} 300 IN A 127.0.0.1`,
    extra,
  ]
    .join('\n')
    .trimEnd()}\n`;
}

const q = (s: string): string => JSON.stringify(s);

export async function startKnot(opts: KnotOptions): Promise<KnotServer> {
  const knotd = toolPath('knotd', 'knot');
  const knotcBin = toolPath('knotc', 'knot');
  const keymgr = toolPath('keymgr', 'knot');
  toolPath('kdig', 'knot-dnsutils');
  if (opts.zones.length === 0) throw new Error('startKnot: no zones');

  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(host));
  const dir = makeTempDir('knot');
  const storage = join(dir, 'storage');
  const rundir = join(dir, 'run');
  mkdirSync(storage);
  mkdirSync(rundir);
  const confPath = join(dir, 'knot.conf');
  const socket = join(rundir, 'knot.sock');

  const zoneFiles: Record<string, string> = {};
  for (const z of opts.zones) {
    const name = normaliseName(z.name);
    let file = z.zoneFilePath;
    if (!file) {
      file = join(dir, `${name}zone`);
      writeFileSync(file, z.zoneFileText ?? minimalZone(name));
    } else if (!existsSync(file)) {
      throw new Error(`startKnot: zone file ${file} for ${name} does not exist`);
    }
    zoneFiles[name] = file;
  }

  const conf: string[] = [
    'server:',
    `    rundir: ${q(rundir)}`,
    `    pidfile: ${q(join(rundir, 'knotd.pid'))}`,
    `    listen: ${host}@${port}`,
    '    udp-workers: 1',
    '    tcp-workers: 1',
    '    background-workers: 1',
    'database:',
    `    storage: ${q(storage)}`,
    'control:',
    `    listen: ${q(socket)}`,
    'log:',
    '  - target: stderr',
    '    any: info',
  ];
  if (opts.tsig) {
    conf.push(
      'key:',
      `  - id: ${q(opts.tsig.name)}`,
      `    algorithm: ${opts.tsig.algorithm}`,
      `    secret: ${q(opts.tsig.secret)}`,
      'acl:',
      '  - id: lab_update',
      `    key: ${q(opts.tsig.name)}`,
      '    action: update',
    );
    if (opts.tsig.updateTypes?.length)
      conf.push(`    update-type: [${opts.tsig.updateTypes.join(', ')}]`);
  }
  conf.push(
    'policy:',
    '  - id: lab',
    '    algorithm: ecdsap256sha256',
    '    single-type-signing: on',
    '    dnskey-ttl: 60',
    '    zone-max-ttl: 300',
    '    propagation-delay: 0',
    'template:',
    '  - id: default',
    `    storage: ${q(dir)}`,
    '    zonefile-sync: -1',
    '    zonefile-load: difference-no-serial',
    '    journal-content: all',
    '    semantic-checks: on',
    'zone:',
  );
  for (const z of opts.zones) {
    const name = normaliseName(z.name);
    conf.push(`  - domain: ${q(name)}`, `    file: ${q(zoneFiles[name]!)}`);
    if (z.dnssec) conf.push('    dnssec-signing: on', '    dnssec-policy: lab');
    if (z.zonefileLoad) conf.push(`    zonefile-load: ${z.zonefileLoad}`);
    if (opts.tsig) conf.push('    acl: lab_update');
  }
  writeFileSync(confPath, `${conf.join('\n')}\n`);

  const knotc = (...args: string[]): string =>
    execFileSync(knotcBin, ['-c', confPath, '-t', '30', ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

  try {
    execFileSync(knotcBin, ['-c', confPath, 'conf-check'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    throw new Error(
      `startKnot: invalid config ${confPath}: ${err.stderr ?? ''}${err.stdout ?? ''}`,
    );
  }

  const daemon = await startDaemon({
    name: 'knotd',
    argv: [knotd, '-c', confPath],
    cwd: dir,
    timeoutMs: opts.timeoutMs ?? 15_000,
    ready: async () => {
      if (!existsSync(socket)) return false;
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
    reloadCommand: (zone) =>
      `${shellQuote(knotcBin)} -c ${shellQuote(confPath)} -t 30 -b zone-reload ${shellQuote(normaliseName(zone))}`,
    reload(zone) {
      knotc('-b', 'zone-reload', normaliseName(zone));
    },
    dsRecords(zone) {
      const out = execFileSync(keymgr, ['-c', confPath, normaliseName(zone), 'ds'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const ds = out
        .split('\n')
        .map((l) => l.trim().replace(/\s+/g, ' '))
        .filter((l) => /\sDS\s/.test(l));
      if (ds.length === 0) throw new Error(`keymgr ${zone} ds printed no DS record: ${out}`);
      return ds;
    },
    knotc,
    stop: () => daemon.stop(),
  };
}
