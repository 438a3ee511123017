/**
 * Contract targets: the rfc2136 provider against real Knot DNS and real BIND on loopback, both
 * signing their zone (DNSSEC) and taking TSIG-signed updates. The server is seeded and read with
 * independent tools: knsupdate (Knot) / nsupdate (BIND) and kdig.
 *
 *  - Knot: key hmac-sha256; the provider finds the zone by SOA query; the unknown-zone case
 *    names a zone the server lacks in the provider's "zone" option (Knot answers NOTAUTH).
 *  - BIND: key hmac-sha512, given to the provider as the key block `tsig-keygen` writes (name
 *    and algorithm come from it); the unknown-zone case lets zone discovery fail (REFUSED all
 *    the way up).
 *  - The contract's provider talks to the server through dns-fault-proxy (a loopback forwarder
 *    that can answer SERVFAIL to UPDATEs from the n-th on), for the fault-injection cases.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createProvider } from '../../../providers/rfc2136.js';
import type { DnsProvider } from '../../../providers/contract.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import { startBind, type BindServer } from '../../lab/bind.js';
import { startDnsFaultProxy } from '../../lab/dns-fault-proxy.js';
import { query } from '../../lab/dig.js';
import { startKnot, type KnotServer } from '../../lab/knot.js';
import { toolPath, type ToolRequirement } from '../../lab/lab.js';
import type { ContractEnv, ContractTarget } from './suite.js';

const ZONE = 'example.test.';
const ctx = (instance: string) => ({
  instance,
  baseDir: process.cwd(),
  optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
});

export interface UpdateKey {
  name: string;
  algorithm: 'hmac-sha256' | 'hmac-sha512';
  secret: string;
}

/** Run knsupdate or nsupdate with a script on stdin (the key goes in the script, not argv). */
export function runUpdateTool(
  bin: 'knsupdate' | 'nsupdate',
  server: { host: string; port: number },
  key: UpdateKey,
  lines: string[],
  zone = ZONE,
): Promise<void> {
  const path = toolPath(bin, bin === 'knsupdate' ? 'knot-dnsutils' : 'bind9-dnsutils');
  const script = [
    `server ${server.host} ${server.port}`,
    `zone ${zone}`,
    `key ${key.algorithm}:${key.name} ${key.secret}`,
    ...lines,
    'send',
    '',
  ].join('\n');
  return new Promise((resolveRun, reject) => {
    const child = execFile(path, ['-t', '5'], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err)
        reject(
          new Error(
            `${bin} failed: ${`${stdout}${stderr}`.trim()}\n--- script ---\n${script.replace(key.secret, '***')}`,
          ),
        );
      else resolveRun();
    });
    child.stdin!.end(script);
  });
}

/** The TLSA records at `owner` as kdig reads them (TCP, no recursion). */
export async function kdigTlsa(
  server: { host: string; port: number },
  owner: string,
): Promise<TlsaRecord[]> {
  const r = await query({
    server: server.host,
    port: server.port,
    name: owner,
    type: 'TLSA',
    recurse: false,
    tcp: true,
  });
  if (r.rcode === 'NXDOMAIN') return [];
  if (r.rcode !== 'NOERROR') throw new Error(`kdig ${owner} TLSA: ${r.rcode}\n${r.raw}`);
  return r.records
    .filter((a) => a.type === 'TLSA' && a.owner === owner)
    .map((a) => {
      const [u, s, m, ...hex] = a.rdata.split(' ');
      return {
        owner,
        usage: Number(u),
        selector: Number(s),
        matching: Number(m),
        data: hex.join('').toLowerCase(),
      } as TlsaRecord;
    });
}

/** The TTL of each TLSA record at `owner` as kdig reads it. */
export async function kdigTlsaTtls(
  server: { host: string; port: number },
  owner: string,
): Promise<Map<string, number>> {
  const r = await query({
    server: server.host,
    port: server.port,
    name: owner,
    type: 'TLSA',
    recurse: false,
    tcp: true,
  });
  if (r.rcode === 'NXDOMAIN') return new Map();
  if (r.rcode !== 'NOERROR') throw new Error(`kdig ${owner} TLSA: ${r.rcode}\n${r.raw}`);
  return new Map(
    r.records
      .filter((a) => a.type === 'TLSA' && a.owner === owner)
      .map((a) => [rdataText(parseRdata(a.rdata)), a.ttl] as const),
  );
}

function seeding(
  bin: 'knsupdate' | 'nsupdate',
  server: { host: string; port: number },
  key: UpdateKey,
): Pick<ContractEnv, 'addForeign' | 'addCname' | 'readDirect' | 'readTtls'> {
  return {
    readTtls: (owner) => kdigTlsaTtls(server, owner),
    addForeign: (owner, r, ttl) =>
      runUpdateTool(bin, server, key, [
        `update add ${owner} ${ttl} TLSA ${r.usage} ${r.selector} ${r.matching} ${r.data}`,
      ]),
    addCname: (owner, target) =>
      runUpdateTool(bin, server, key, [`update add ${owner} 300 CNAME ${target}`]),
    readDirect: (owner) => kdigTlsa(server, owner),
  };
}

const wrongSecret = (s: string): string => {
  let w: string;
  do w = randomBytes(Buffer.from(s, 'base64').length).toString('base64');
  while (w === s);
  return w;
};

export const KNOT_TOOLS: ToolRequirement[] = [
  ['knotd', 'knot'],
  ['knotc', 'knot'],
  ['keymgr', 'knot'],
  ['kdig', 'knot-dnsutils'],
  ['knsupdate', 'knot-dnsutils'],
];
export const BIND_TOOLS: ToolRequirement[] = [
  ['named', 'bind9'],
  ['named-checkconf', 'bind9-utils'],
  ['dnssec-dsfromkey', 'bind9-utils'],
  ['nsupdate', 'bind9-dnsutils'],
  ['kdig', 'knot-dnsutils'],
];

/** A signed Knot zone with an update key (hmac-sha256 unless told otherwise). */
export async function knotForUpdates(
  algorithm: UpdateKey['algorithm'] = 'hmac-sha256',
  updateTypes?: string[],
): Promise<{ knot: KnotServer; key: UpdateKey }> {
  const key: UpdateKey = {
    name: 'tlsa-contract.',
    algorithm,
    secret: randomBytes(algorithm === 'hmac-sha256' ? 32 : 64).toString('base64'),
  };
  const knot = await startKnot({
    zones: [{ name: ZONE, dnssec: true }],
    tsig: { ...key, ...(updateTypes ? { updateTypes } : {}) },
  });
  return { knot, key };
}

/** A signed BIND zone with an update key (hmac-sha512 unless told otherwise). */
export async function bindForUpdates(
  algorithm: UpdateKey['algorithm'] = 'hmac-sha512',
  updatePolicy?: (keyName: string) => string,
): Promise<{ bind: BindServer; key: UpdateKey }> {
  const key: UpdateKey = {
    name: 'tlsa-contract.',
    algorithm,
    secret: randomBytes(algorithm === 'hmac-sha256' ? 32 : 64).toString('base64'),
  };
  const bind = await startBind({
    zones: [{ name: ZONE, dnssec: true }],
    tsig: key,
    ...(updatePolicy ? { updatePolicy: updatePolicy(key.name) } : {}),
  });
  return { bind, key };
}

export function rfc2136Provider(
  server: { host: string; port: number },
  key: UpdateKey,
  extra: Record<string, unknown> = {},
): DnsProvider {
  return createProvider(
    {
      server: server.host,
      port: server.port,
      tsig_name: key.name,
      tsig_algorithm: key.algorithm,
      tsig_secret: key.secret,
      timeout_s: 3,
      ...extra,
    },
    ctx('contract'),
  );
}

export const rfc2136KnotTarget: ContractTarget = {
  name: 'rfc2136 (real Knot DNS, signed zone, TSIG hmac-sha256)',
  tools: KNOT_TOOLS,
  async setup() {
    const { knot, key } = await knotForUpdates('hmac-sha256');
    const proxy = await startDnsFaultProxy(knot);
    const bad = wrongSecret(key.secret);
    return {
      zone: ZONE,
      provider: () => rfc2136Provider(proxy, key),
      badCredentials: () => rfc2136Provider(knot, { ...key, secret: bad }),
      unknownZone: () => ({
        provider: rfc2136Provider(knot, key, { zone: 'nowhere.test.' }),
        owner: `_25._tcp.mx.nowhere.test.`,
      }),
      ...seeding('knsupdate', knot, key),
      failWritesFrom: (n) => proxy.failUpdatesFrom(n),
      secrets: [key.secret, bad],
      async teardown() {
        await proxy.stop();
        await knot.stop();
        rmSync(knot.dir, { recursive: true, force: true });
      },
    };
  },
};

export const rfc2136BindTarget: ContractTarget = {
  name: 'rfc2136 (real BIND 9, signed zone, TSIG hmac-sha512)',
  tools: BIND_TOOLS,
  async setup() {
    const { bind, key } = await bindForUpdates('hmac-sha512');
    const proxy = await startDnsFaultProxy(bind);
    const bad = wrongSecret(key.secret);
    // The key as `tsig-keygen -a hmac-sha512 tlsa-contract.` writes it (a tsig_secret_file).
    const keyBlock = `key "${key.name}" {\n\talgorithm ${key.algorithm};\n\tsecret "${key.secret}";\n};\n`;
    return {
      zone: ZONE,
      provider: () =>
        createProvider(
          { server: proxy.host, port: proxy.port, tsig_secret: keyBlock, timeout_s: 3 },
          ctx('contract'),
        ),
      badCredentials: () => rfc2136Provider(bind, { ...key, secret: bad }),
      unknownZone: () => ({
        provider: rfc2136Provider(bind, key),
        owner: `_25._tcp.mx.nowhere.test.`,
      }),
      ...seeding('nsupdate', bind, key),
      failWritesFrom: (n) => proxy.failUpdatesFrom(n),
      secrets: [key.secret, bad],
      async teardown() {
        await proxy.stop();
        await bind.stop();
        rmSync(bind.dir, { recursive: true, force: true });
      },
    };
  },
};
