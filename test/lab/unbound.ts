/**
 * unbound (1.17) as the lab's validating resolver: stub zones to the lab's authoritative
 * servers, trust anchors from their DS records, nothing else resolvable.
 *
 * Facts: `do-not-query-localhost: no` is required for loopback stubs; `local-zone: "test."
 * nodefault` removes the RFC 6761 NXDOMAIN; `local-zone: "." refuse` blocks stray queries,
 * and because local zones win over stub zones, every stub zone also needs its own
 * `local-zone: "<zone>" transparent`. An empty trust-anchor file starts fine but gives no AD
 * bit; a wrong DS gives SERVFAIL.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseName } from '../../src/tlsa/record.js';
import { query } from './dig.js';
import { freePort, makeTempDir, startDaemon, toolPath, type Daemon } from './lab.js';

export interface UnboundStub {
  zone: string;
  port: number;
  host?: string;
}

export interface UnboundOptions {
  stubs: UnboundStub[];
  /** DS (or DNSKEY) records in presentation form; [] = no trust anchor (no AD bit). */
  trustAnchors: string[];
  /** An extra listener for glibc clients, `ADDR` (port 53) or `ADDR@PORT`, e.g. '127.0.0.2'. */
  extraListen?: string;
  /** cache-max-ttl (default 30) and cache-max-negative-ttl (default 5). */
  cacheMaxTtl?: number;
  cacheMaxNegativeTtl?: number;
  timeoutMs?: number;
  /** `module-config` (default "validator iterator"); "iterator" makes a resolver that does
   *  not validate: it never sets AD, even for a signed zone with a trust anchor. */
  moduleConfig?: string;
}

export interface UnboundServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly confPath: string;
  readonly daemon: Daemon;
  /** `unbound-control flush_zone ZONE`: drops cached rrsets, messages and keys under ZONE. */
  flush(zone: string): Promise<void>;
  /** Run unbound-control with this server's config; resolves with stdout. */
  control(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startUnbound(opts: UnboundOptions): Promise<UnboundServer> {
  const unbound = toolPath('unbound', 'unbound');
  const checkconf = toolPath('unbound-checkconf', 'unbound');
  const controlBin = toolPath('unbound-control', 'unbound');
  toolPath('kdig', 'knot-dnsutils');

  const host = '127.0.0.1';
  const port = await freePort(host);
  const dir = makeTempDir('unbound');
  const confPath = join(dir, 'unbound.conf');
  const taPath = join(dir, 'trust-anchors.txt');
  const controlSocket = join(dir, 'control.sock');
  writeFileSync(taPath, opts.trustAnchors.map((l) => `${l.trim()}\n`).join(''));

  const q = (s: string): string => JSON.stringify(s);
  const conf: string[] = [
    'server:',
    `    directory: ${q(dir)}`,
    '    chroot: ""',
    '    username: ""',
    `    pidfile: ${q(join(dir, 'unbound-self.pid'))}`,
    '    use-syslog: no',
    '    logfile: ""',
    '    log-time-ascii: yes',
    '    verbosity: 1',
    '    val-log-level: 2',
    '    do-daemonize: no',
    '    num-threads: 1',
    '    so-reuseport: no',
    `    interface: ${host}@${port}`,
  ];
  if (opts.extraListen) {
    conf.push(
      `    interface: ${opts.extraListen.includes('@') ? opts.extraListen : `${opts.extraListen}@53`}`,
    );
  }
  conf.push(
    `    port: ${port}`,
    '    access-control: 127.0.0.0/8 allow',
    '    access-control: ::1/128 allow',
    '    do-not-query-localhost: no',
    `    module-config: ${q(opts.moduleConfig ?? 'validator iterator')}`,
    `    trust-anchor-file: ${q(taPath)}`,
    '    trust-anchor-signaling: no',
    '    root-key-sentinel: no',
    `    cache-max-ttl: ${opts.cacheMaxTtl ?? 30}`,
    `    cache-max-negative-ttl: ${opts.cacheMaxNegativeTtl ?? 5}`,
    '    aggressive-nsec: no',
    '    prefetch: no',
    '    qname-minimisation: no',
    '    ede: yes',
    '    local-zone: "test." nodefault',
    '    local-zone: "." refuse',
  );
  for (const s of opts.stubs) conf.push(`    local-zone: ${q(normaliseName(s.zone))} transparent`);
  conf.push(
    'remote-control:',
    '    control-enable: yes',
    `    control-interface: ${q(controlSocket)}`,
    '    control-use-cert: no',
  );
  for (const s of opts.stubs) {
    conf.push(
      'stub-zone:',
      `    name: ${q(normaliseName(s.zone))}`,
      `    stub-addr: ${s.host ?? '127.0.0.1'}@${s.port}`,
    );
  }
  writeFileSync(confPath, `${conf.join('\n')}\n`);

  const exec = (bin: string, args: string[]): Promise<string> =>
    new Promise((resolveExec, reject) => {
      execFile(bin, args, { timeout: 20_000 }, (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `${bin} ${args.join(' ')}: ${String(stderr).trim() || String(stdout).trim() || err.message}`,
            ),
          );
        else resolveExec(String(stdout));
      });
    });

  await exec(checkconf, [confPath]).catch((e: Error) => {
    throw new Error(`startUnbound: invalid config ${confPath}: ${e.message}`);
  });

  const control = (...args: string[]): Promise<string> =>
    exec(controlBin, ['-c', confPath, ...args]);

  const daemon = await startDaemon({
    name: 'unbound',
    argv: [unbound, '-d', '-c', confPath],
    cwd: dir,
    timeoutMs: opts.timeoutMs ?? 15_000,
    ready: async () => {
      // The DNS listener answers (any rcode: `local-zone: "." refuse` answers REFUSED here)
      // and the control socket works.
      const r = await query({
        server: host,
        port,
        name: 'version.server',
        type: 'TXT',
        timeoutS: 1,
        retries: 0,
      }).catch(() => undefined);
      if (!r) return false;
      await control('status');
      return true;
    },
  });

  return {
    host,
    port,
    dir,
    confPath,
    daemon,
    async flush(zone) {
      const z = normaliseName(zone);
      await control('flush_zone', z);
      await control('flush_requestlist');
    },
    control,
    stop: () => daemon.stop(),
  };
}
