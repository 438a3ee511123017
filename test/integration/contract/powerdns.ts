/** Contract target: the powerdns provider against a real pdns_server (sqlite3 backend, DNSSEC)
 *  on loopback. Seeding goes through the HTTP API directly (fetch, not the provider); reading
 *  back goes over DNS with kdig to the server's DNS port, so neither depends on the provider. */
import { rmSync } from 'node:fs';
import { createProvider } from '../../../providers/powerdns.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import { query } from '../../lab/dig.js';
import { type HttpTap, startHttpTap } from '../../lab/http-tap.js';
import { POWERDNS_TOOLS, startPowerDns, type PowerDnsServer } from '../../lab/powerdns.js';
import type { ContractTarget } from './suite.js';

export const PDNS_ZONE = 'example.test.';

/** A provider instance for a lab server (fresh each call: concurrent writers get their own). */
export function pdnsProvider(
  server: PowerDnsServer,
  options: Record<string, unknown> = {},
  instance = 'contract',
) {
  return createProvider(
    { url: server.apiUrl, api_key: server.apiKey, settle_ms: 100, ...options },
    { instance, baseDir: server.dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
  );
}

/** The TLSA records at `owner` as the server answers them over DNS (kdig prints upper-case hex). */
export async function readTlsaOverDns(
  server: PowerDnsServer,
  owner: string,
): Promise<TlsaRecord[]> {
  const r = await query({
    server: server.host,
    port: server.dnsPort,
    name: owner,
    type: 'TLSA',
    recurse: false,
    timeoutS: 2,
    retries: 1,
  });
  if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN')
    throw new Error(`kdig ${owner} TLSA: ${r.rcode}\n${r.raw}`);
  return r.records
    .filter((a) => a.type === 'TLSA' && a.owner === owner.toLowerCase())
    .map((a) => ({ owner, ...parseRdata(a.rdata) }));
}

/** PATCH one RRset through the API directly (REPLACE with these records, or DELETE). */
export async function pdnsReplace(
  server: PowerDnsServer,
  zone: string,
  owner: string,
  type: string,
  ttl: number,
  records: { content: string; disabled?: boolean }[],
  comments?: { content: string; account: string }[],
): Promise<void> {
  const rrset = records.length
    ? {
        name: owner,
        type,
        ttl,
        changetype: 'REPLACE',
        records: records.map((r) => ({ content: r.content, disabled: r.disabled ?? false })),
        ...(comments ? { comments } : {}),
      }
    : { name: owner, type, changetype: 'DELETE' };
  const res = await server.api('PATCH', `/zones/${zone}`, { rrsets: [rrset] });
  if (res.status !== 204)
    throw new Error(`pdns PATCH ${owner} ${type}: HTTP ${res.status} ${res.text}`);
}

/** The RRset as the API has it (records with their disabled flags, comments). */
export async function pdnsRRset(
  server: PowerDnsServer,
  zone: string,
  owner: string,
  type: string,
): Promise<
  | {
      ttl: number;
      records: { content: string; disabled: boolean }[];
      comments: { content: string; account: string }[];
    }
  | undefined
> {
  const res = await server.api('GET', `/zones/${zone}`);
  if (res.status !== 200) throw new Error(`pdns GET zone ${zone}: HTTP ${res.status} ${res.text}`);
  const rrsets = (
    res.body as {
      rrsets: {
        name: string;
        type: string;
        ttl: number;
        records: { content: string; disabled: boolean }[];
        comments: { content: string; account: string }[];
      }[];
    }
  ).rrsets;
  return rrsets.find((r) => r.name === owner && r.type === type);
}

/** Fault injection for providers that talk through `tap`: from the n-th write request (not
 *  GET) on, the connection is dropped before the request reaches the server, as when the
 *  server goes away in the middle of a change. Returns the function that ends it. */
export function failWritesThrough(tap: HttpTap, n: number): () => void {
  let seen = 0;
  tap.intercept((c) => (c.method !== 'GET' && ++seen >= n ? { drop: true } : undefined));
  return () => tap.intercept();
}

export const powerdnsTarget: ContractTarget = {
  name: 'powerdns (real pdns_server, sqlite3)',
  tools: POWERDNS_TOOLS,
  async setup() {
    const server = await startPowerDns({ zones: [{ name: PDNS_ZONE, dnssec: true }] });
    // The providers talk through a proxy, where writes can be made to fail.
    const tap = await startHttpTap(server.apiUrl);
    const url = tap.url;
    const wrongKey = `wrong-${server.apiKey}-x`;
    return {
      zone: PDNS_ZONE,
      provider: () => pdnsProvider(server, { url }),
      badCredentials: () => pdnsProvider(server, { url, api_key: wrongKey }),
      unknownZone: () => ({
        provider: pdnsProvider(server, { url }),
        owner: '_25._tcp.mx.nowhere.invalid.',
      }),
      async addForeign(owner: string, record: TlsaRecord, ttl: number) {
        const existing = (await pdnsRRset(server, PDNS_ZONE, owner, 'TLSA'))?.records ?? [];
        await pdnsReplace(server, PDNS_ZONE, owner, 'TLSA', ttl, [
          ...existing,
          { content: rdataText(record) },
        ]);
      },
      async addCname(owner: string, target: string) {
        await pdnsReplace(server, PDNS_ZONE, owner, 'CNAME', 300, [{ content: target }]);
      },
      readDirect: (owner: string) => readTlsaOverDns(server, owner),
      async readTtls(owner: string) {
        const set = await pdnsRRset(server, PDNS_ZONE, owner, 'TLSA');
        return new Map(
          (set?.records ?? []).map((r) => [rdataText(parseRdata(r.content)), set!.ttl] as const),
        );
      },
      failWritesFrom: (n: number) => failWritesThrough(tap, n),
      secrets: [server.apiKey, wrongKey],
      async teardown() {
        await tap.close();
        await server.stop();
        if (process.env.TLSA_LAB_KEEP !== '1') rmSync(server.dir, { recursive: true, force: true });
      },
    };
  },
};
