/**
 * PowerDNS Authoritative (pdns_server 4.7, Debian pdns-server + pdns-backend-sqlite3) as a lab
 * server: its own config dir, sqlite database, socket dir, DNS port and API port, all on
 * 127.0.0.1, in the foreground (guardian=no, daemon=no), stopped by its pid.
 *
 * What it took to get right:
 *  - the database is created from the schema the backend package ships
 *    (/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql; the copy in
 *    /usr/share/doc/pdns-backend-sqlite3/ is the same file);
 *  - every cache is off (`cache-ttl`, `query-cache-ttl`, `negquery-cache-ttl`,
 *    `dnssec-key-cache-ttl`, `zone-metadata-cache-ttl` = 0) so a change made through the API is
 *    answered over DNS at once, and a zone made `"dnssec": true` is signed at once;
 *  - `security-poll-suffix=` (empty) stops the start-up "security status" DNS query to the
 *    internet;
 *  - sqlite lets one writer in at a time: concurrent PATCHes can get `500 Internal Server
 *    Error` ("database is locked" in the log); clients must retry 5xx.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normaliseName } from '../../src/tlsa/record.js';
import { query } from './dig.js';
import {
  freePort,
  makeTempDir,
  startDaemon,
  toolPath,
  type Daemon,
  type ToolRequirement,
} from './lab.js';

/** What a test needs installed to start this server (and query it). */
export const POWERDNS_TOOLS: ToolRequirement[] = [
  ['pdns_server', 'pdns-server'],
  ['pdnsutil', 'pdns-server'],
  ['sqlite3', 'sqlite3'],
  ['kdig', 'knot-dnsutils'],
];

const SCHEMA_CANDIDATES = [
  '/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql',
  '/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql',
];

export interface PowerDnsZone {
  /** Zone apex, e.g. 'example.test.'. */
  name: string;
  /** Sign the zone (PowerDNS live-signing: a CSK/KSK+ZSK made by the API). */
  dnssec: boolean;
}

export interface PowerDnsOptions {
  zones?: PowerDnsZone[];
  /** The API key (default: a random one). */
  apiKey?: string;
  timeoutMs?: number;
}

export interface PowerDnsServer {
  readonly host: string;
  /** DNS port (UDP and TCP). */
  readonly dnsPort: number;
  /** HTTP API port. */
  readonly apiPort: number;
  /** `http://127.0.0.1:<apiPort>`: the `url` option of the powerdns provider. */
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly serverId: string;
  readonly dir: string;
  readonly daemon: Daemon;
  /** One API call with the right key; returns the status and the parsed JSON body (if any). */
  api(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; text: string }>;
  /** Create a zone with an NS record at `ns.<zone>` and wait until it answers (signed if asked). */
  createZone(zone: PowerDnsZone): Promise<void>;
  /** DS records of a signed zone (`pdnsutil export-zone-ds`), presentation form. */
  dsRecords(zone: string): string[];
  stop(): Promise<void>;
}

function randomKey(): string {
  return `lab-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

export async function startPowerDns(opts: PowerDnsOptions = {}): Promise<PowerDnsServer> {
  const pdnsServer = toolPath('pdns_server', 'pdns-server');
  const pdnsutil = toolPath('pdnsutil', 'pdns-server');
  const sqlite3 = toolPath('sqlite3', 'sqlite3');
  toolPath('kdig', 'knot-dnsutils');
  const schema = SCHEMA_CANDIDATES.find((p) => existsSync(p));
  if (!schema)
    throw new Error(
      `lab: the sqlite3 schema of PowerDNS is missing (${SCHEMA_CANDIDATES.join(' or ')}); install the Debian package "pdns-backend-sqlite3"`,
    );

  const host = '127.0.0.1';
  const dnsPort = await freePort(host);
  const apiPort = await freePort(host);
  const dir = makeTempDir('pdns');
  const db = join(dir, 'pdns.sqlite3');
  execFileSync(sqlite3, [db], {
    input: readFileSync(schema, 'utf8'),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const apiKey = opts.apiKey ?? randomKey();
  const serverId = 'localhost';

  const conf = [
    'launch=gsqlite3',
    `gsqlite3-database=${db}`,
    'gsqlite3-dnssec=yes',
    'api=yes',
    `api-key=${apiKey}`,
    'webserver=yes',
    `webserver-address=${host}`,
    `webserver-port=${apiPort}`,
    'webserver-allow-from=127.0.0.0/8',
    'webserver-loglevel=none',
    `local-address=${host}`,
    `local-port=${dnsPort}`,
    'dnssec-key-cache-ttl=0',
    'zone-metadata-cache-ttl=0',
    'query-cache-ttl=0',
    'negquery-cache-ttl=0',
    'cache-ttl=0',
    'guardian=no',
    'daemon=no',
    `socket-dir=${dir}`,
    'disable-syslog=yes',
    'security-poll-suffix=',
    'primary=no',
    'secondary=no',
    'receiver-threads=1',
    'distributor-threads=1',
    'loglevel=4',
  ];
  writeFileSync(join(dir, 'pdns.conf'), `${conf.join('\n')}\n`, { mode: 0o600 });

  const base = `http://${host}:${apiPort}/api/v1/servers/${serverId}`;
  const api: PowerDnsServer['api'] = async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        'X-API-Key': apiKey,
        Accept: 'application/json',
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, text };
  };

  const daemon = await startDaemon({
    name: 'pdns_server',
    argv: [pdnsServer, `--config-dir=${dir}`],
    cwd: dir,
    timeoutMs: opts.timeoutMs ?? 15_000,
    ready: async () => {
      const r = await api('GET', '');
      if (r.status !== 200) return false;
      // Any answer (REFUSED for a name it does not serve) shows the DNS listener is up.
      const probe = await query({
        server: host,
        port: dnsPort,
        name: 'lab-probe.invalid',
        type: 'SOA',
        recurse: false,
        timeoutS: 1,
        retries: 0,
      });
      return Boolean(probe.rcode);
    },
  });

  const createZone = async (zone: PowerDnsZone): Promise<void> => {
    const name = normaliseName(zone.name);
    const r = await api('POST', '/zones', {
      name,
      kind: 'Native',
      dnssec: zone.dnssec,
      nameservers: [`ns.${name}`],
      rrsets: [
        {
          name: `ns.${name}`,
          type: 'A',
          ttl: 300,
          records: [{ content: '127.0.0.1', disabled: false }],
        },
      ],
    });
    if (r.status !== 201)
      throw new Error(`lab: pdns: creating zone ${name} failed: HTTP ${r.status} ${r.text}`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const a = await query({
        server: host,
        port: dnsPort,
        name,
        type: 'SOA',
        dnssec: true,
        recurse: false,
        timeoutS: 1,
        retries: 0,
      });
      if (
        a.rcode === 'NOERROR' &&
        a.flags.includes('aa') &&
        (!zone.dnssec || a.records.some((x) => x.type === 'RRSIG'))
      )
        return;
      if (Date.now() > deadline)
        throw new Error(
          `lab: pdns: zone ${name} not served after 10 s:\n${a.raw}\n--- log ---\n${daemon.logTail()}`,
        );
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  for (const z of opts.zones ?? []) await createZone(z);

  return {
    host,
    dnsPort,
    apiPort,
    apiUrl: `http://${host}:${apiPort}`,
    apiKey,
    serverId,
    dir,
    daemon,
    api,
    createZone,
    dsRecords(zone) {
      const out = execFileSync(
        pdnsutil,
        [`--config-dir=${dir}`, 'export-zone-ds', normaliseName(zone)],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const ds = out
        .split('\n')
        .map((l) => l.trim().replace(/\s+/g, ' '))
        .filter((l) => /\sDS\s/.test(l));
      if (ds.length === 0)
        throw new Error(`pdnsutil export-zone-ds ${zone} printed no DS record: ${out}`);
      return ds;
    },
    stop: () => daemon.stop(),
  };
}
