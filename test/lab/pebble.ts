/**
 * pebble (2.4, Debian package "pebble") as the lab's ACME CA, on loopback.
 *
 * Facts this relies on (checked on Debian 12, pebble 2.4.0):
 *  - Its HTTPS listener (ACME and management) needs a certificate we make: a small CA and a
 *    server certificate for 127.0.0.1/localhost are made with the openssl CLI; clients
 *    (certbot) trust it through REQUESTS_CA_BUNDLE = `tlsCaPath`.
 *  - Every start makes a new root and a new RSA intermediate (one intermediate signs RSA and
 *    ECDSA leaves alike), forgets every account and order; leaves are valid 157766400 s
 *    (5 years). `restart()` keeps the ports and the TLS certificate, so certbot's `--server`
 *    stays valid, but its account must be registered again.
 *  - `-dnsserver HOST:PORT` makes the VA resolve through the lab's resolver (otherwise the
 *    machine's); `httpPort` in the config is the port the VA connects to for HTTP-01.
 *  - `PEBBLE_VA_NOSLEEP=1` removes the random validation sleeps; by default it rejects 5 % of
 *    good nonces (`PEBBLE_WFE_NONCEREJECT`, set to 0 here: certbot retries a badNonce only once)
 *    and reuses authorizations half of the time (`PEBBLE_AUTHZREUSE`).
 *  - The management port serves `/roots/0` and `/intermediates/0` (PEM).
 *  - `certificateValidityPeriod` (seconds) sets the leaves' lifetime.
 *  - `externalAccountBindingRequired` with `externalAccountMACKeys` {kid: base64url HMAC key}
 *    makes it refuse a newAccount without a valid External Account Binding.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { minimalZone, startKnot } from './knot.js';
import {
  freePort,
  makeTempDir,
  startDaemon,
  toolPath,
  type Daemon,
  type ToolRequirement,
} from './lab.js';

export const PEBBLE_TOOLS: readonly ToolRequirement[] = [
  ['pebble', 'pebble'],
  ['openssl', 'openssl'],
];

export interface PebbleOptions {
  /** The resolver pebble's VA uses, `HOST:PORT` (e.g. the lab's unbound). */
  dnsServer: string;
  /** Port the VA connects to for HTTP-01 (default: a free one); certbot's --http-01-port. */
  httpPort?: number;
  /** Lifetime of the certificates it issues, in seconds (default 5 years). */
  certificateValiditySeconds?: number;
  /** External Account Binding required, with these key ids and HMAC keys (base64url). */
  eabKeys?: Record<string, string>;
  /** Extra environment (PEBBLE_CHAIN_LENGTH, PEBBLE_ALTERNATE_ROOTS, ...). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export interface PebbleServer {
  readonly host: string;
  /** ACME port. */
  readonly port: number;
  readonly managementPort: number;
  /** HTTP-01 validation port. */
  readonly httpPort: number;
  /** ACME directory URL, for certbot --server. */
  readonly directoryUrl: string;
  /** The CA of pebble's HTTPS certificate (REQUESTS_CA_BUNDLE for certbot). */
  readonly tlsCaPath: string;
  readonly dir: string;
  /** The running process (changes on restart). */
  readonly daemon: Daemon;
  /** How many times pebble has been started (1 after startPebble). */
  readonly generation: number;
  /** PEM of the current root / intermediate (management interface). */
  root(): Promise<string>;
  intermediate(): Promise<string>;
  /** Stop and start again on the same ports: a new root and intermediate, no accounts. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function makeTlsCert(dir: string): { ca: string; cert: string; key: string } {
  const openssl = toolPath('openssl', 'openssl');
  const run = (args: string[]) =>
    execFileSync(openssl, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ca = join(dir, 'tls-ca.pem');
  const caKey = join(dir, 'tls-ca.key');
  const key = join(dir, 'tls-key.pem');
  const csr = join(dir, 'tls.csr');
  const cert = join(dir, 'tls-cert.pem');
  const ext = join(dir, 'tls-ext.cnf');
  run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-days',
    '30',
    '-subj',
    '/CN=tlsa lab pebble TLS CA',
  ]);
  run([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    '/CN=localhost',
  ]);
  writeFileSync(
    ext,
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n',
  );
  run([
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '30',
    '-extfile',
    ext,
  ]);
  return { ca, cert, key };
}

function httpsGet(
  url: string,
  ca: string,
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolveGet, reject) => {
    const req = request(url, { ca, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

export async function startPebble(opts: PebbleOptions): Promise<PebbleServer> {
  const pebble = toolPath('pebble', 'pebble');
  const host = '127.0.0.1';
  const dir = makeTempDir('pebble');
  const port = await freePort(host);
  const managementPort = await freePort(host);
  const httpPort = opts.httpPort ?? (await freePort(host));
  const tlsPort = await freePort(host);
  const tls = makeTlsCert(dir);
  const caPem = readFileSync(tls.ca, 'utf8');
  const configPath = join(dir, 'pebble-config.json');
  writeFileSync(
    configPath,
    `${JSON.stringify(
      {
        pebble: {
          listenAddress: `${host}:${port}`,
          managementListenAddress: `${host}:${managementPort}`,
          certificate: tls.cert,
          privateKey: tls.key,
          httpPort,
          tlsPort,
          ocspResponderURL: '',
          externalAccountBindingRequired: !!opts.eabKeys,
          ...(opts.eabKeys ? { externalAccountMACKeys: opts.eabKeys } : {}),
          ...(opts.certificateValiditySeconds
            ? { certificateValidityPeriod: opts.certificateValiditySeconds }
            : {}),
        },
      },
      null,
      2,
    )}\n`,
  );
  const directoryUrl = `https://${host}:${port}/dir`;
  const mgmt = (path: string) => `https://${host}:${managementPort}${path}`;

  let generation = 0;
  const start = async (): Promise<Daemon> => {
    generation++;
    return startDaemon({
      name: `pebble-${generation}`,
      argv: [pebble, '-config', configPath, '-dnsserver', opts.dnsServer],
      cwd: dir,
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', ...opts.env },
      timeoutMs: opts.timeoutMs ?? 15_000,
      ready: async () => {
        const d = await httpsGet(directoryUrl, caPem, 1000);
        if (d.status !== 200 || !d.body.includes('newOrder')) return false;
        const r = await httpsGet(mgmt('/intermediates/0'), caPem, 1000);
        return r.status === 200 && r.body.includes('BEGIN CERTIFICATE');
      },
    });
  };
  let daemon = await start();

  const pem = async (path: string): Promise<string> => {
    const r = await httpsGet(mgmt(path), caPem);
    if (r.status !== 200)
      throw new Error(`pebble ${path}: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
    return r.body;
  };

  return {
    host,
    port,
    managementPort,
    httpPort,
    directoryUrl,
    tlsCaPath: tls.ca,
    dir,
    get daemon() {
      return daemon;
    },
    get generation() {
      return generation;
    },
    root: () => pem('/roots/0'),
    intermediate: () => pem('/intermediates/0'),
    async restart() {
      await daemon.stop();
      daemon = await start();
    },
    stop: () => daemon.stop(),
  };
}

/** A Knot on loopback that answers mx.example.org A 127.0.0.1: pebble's `dnsServer`, so that
 *  its VA fetches HTTP-01 tokens from loopback. Returns "127.0.0.1:PORT". */
export async function startVaResolver(): Promise<string> {
  const knot = await startKnot({
    zones: [
      {
        name: 'example.org.',
        zoneFileText: minimalZone('example.org.', 'mx.example.org. 300 IN A 127.0.0.1'),
        dnssec: false,
      },
    ],
  });
  return `127.0.0.1:${knot.port}`;
}
