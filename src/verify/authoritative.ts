/**
 * The authoritative side (the rollover rule: a record is live only once every authoritative
 * server of the zone, each address, serves it): find the zone cut and its name servers
 * through a resolver, ask every server address directly (RD clear, AA required), compare the
 * RRsets with the expected set, and poll until they agree.
 *
 * Discovery asks the resolver with CD set: the point is to find the servers even of a zone
 * whose DNSSEC is broken; the DNSSEC verdict is `validatedLookup`'s job.
 */
import type { RecordType } from 'dns-packet';
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import {
  DnsError,
  DnsTimeoutError,
  canonicalName,
  followCnames,
  isSubdomain,
  parentName,
  query,
  rdataString,
  serverLabel,
  tlsaFromAnswers,
  type DnsResponse,
  type DnsServer,
} from './dns.js';

export interface NameserverInfo {
  /** NS target, absolute lower case. */
  name: string;
  /** Its A and AAAA addresses (sorted, v4 first); empty when none could be found. */
  addresses: string[];
  /** Why there are no addresses, when that is so. */
  error?: string;
}

export interface ZoneInfo {
  /** The zone apex, absolute lower case. */
  zone: string;
  nameservers: NameserverInfo[];
}

export interface DiscoveryOptions {
  timeoutMs?: number;
  retries?: number;
  signal?: AbortSignal;
}

/** A name's zone could not be found (resolver failures on the way up). */
export class ZoneDiscoveryError extends DnsError {
  constructor(server: DnsServer, qname: string, qtype: string, message: string) {
    super(message, server, qname, qtype);
    this.name = 'ZoneDiscoveryError';
  }
}

async function ask(
  resolver: DnsServer,
  name: string,
  type: RecordType,
  opts: DiscoveryOptions,
): Promise<DnsResponse> {
  return query(resolver, name, type, {
    recursionDesired: true,
    checkingDisabled: true,
    timeoutMs: opts.timeoutMs,
    retries: opts.retries,
    signal: opts.signal,
  });
}

/**
 * The apex of the zone that holds `owner`: ask SOA at the name; a SOA in the answer at the
 * name is the apex; a negative answer names the zone in its authority SOA; an alias (CNAME
 * or DNAME in the answer) or an answer without a usable SOA moves one label up.
 */
export async function findZoneApex(
  resolver: DnsServer,
  owner: string,
  opts: DiscoveryOptions = {},
): Promise<string> {
  let name: string | undefined = canonicalName(owner);
  const failures: string[] = [];
  while (name !== undefined) {
    let r: DnsResponse;
    try {
      r = await ask(resolver, name, 'SOA', opts);
    } catch (e) {
      if (!(e instanceof DnsTimeoutError)) throw e;
      failures.push(`${name}: timeout`);
      name = parentName(name);
      continue;
    }
    if (r.rcode === 'NOERROR' || r.rcode === 'NXDOMAIN') {
      const current: string = name;
      const soa = r.answers.find((a) => a.type === 'SOA' && canonicalName(a.name) === current);
      if (soa) return current;
      const aliased = r.answers.some(
        (a) => (a.type === 'CNAME' || a.type === 'DNAME') && canonicalName(a.name) === current,
      );
      const auth = r.authorities.find((a) => a.type === 'SOA');
      if (!aliased && auth && isSubdomain(current, auth.name)) return canonicalName(auth.name);
    } else {
      failures.push(`${name}: ${r.rcode}`);
    }
    name = parentName(name);
  }
  throw new ZoneDiscoveryError(
    resolver,
    canonicalName(owner),
    'SOA',
    `cannot find the zone of ${canonicalName(owner)} through ${serverLabel(resolver)}${failures.length ? ` (${failures.join('; ')})` : ''}`,
  );
}

/**
 * The zone of `owner` and its name servers with their addresses, all through `resolver`
 * (NS at the apex, then A and AAAA of each server).
 */
export async function findZone(
  resolver: DnsServer,
  owner: string,
  opts: DiscoveryOptions = {},
): Promise<ZoneInfo> {
  const zone = await findZoneApex(resolver, owner, opts);
  const ns = await ask(resolver, zone, 'NS', opts);
  const names = [
    ...new Set(
      ns.answers
        .filter((a) => a.type === 'NS' && canonicalName(a.name) === zone)
        .map((a) => rdataString(a)),
    ),
  ].sort();
  if (ns.rcode !== 'NOERROR' || names.length === 0) {
    throw new ZoneDiscoveryError(
      resolver,
      zone,
      'NS',
      `no NS records for ${zone} through ${serverLabel(resolver)} (${ns.rcode})`,
    );
  }
  const nameservers = await Promise.all(
    names.map(async (name): Promise<NameserverInfo> => {
      const errors: string[] = [];
      const lookups = await Promise.all(
        (['A', 'AAAA'] as const).map(async (type) => {
          try {
            const r = await ask(resolver, name, type, opts);
            // An NS target must not be an alias (RFC 2181 §10.3); take what the resolver resolved anyway.
            const chain = followCnames(r.answers, name);
            const target = chain[chain.length - 1]!;
            const found = r.answers
              .filter((a) => a.type === type && canonicalName(a.name) === target)
              .map((a) => rdataString(a));
            if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN') errors.push(`${type}: ${r.rcode}`);
            return found.sort();
          } catch (e) {
            errors.push(`${type}: ${(e as Error).message}`);
            return [];
          }
        }),
      );
      const addresses = [...lookups[0]!, ...lookups[1]!];
      return addresses.length
        ? { name, addresses }
        : {
            name,
            addresses,
            error: `no address for ${name}${errors.length ? ` (${errors.join('; ')})` : ''}`,
          };
    }),
  );
  return { zone, nameservers };
}

// ---------------------------------------------------------------------------------------------
// Per-server answers

export interface AuthoritativeAnswer {
  /** NS name of the server. */
  server: string;
  /** The address asked ('' when the server has none). */
  address: string;
  /** The server answered with AA: it is authoritative for the zone. */
  aa: boolean;
  rcode?: string;
  /** The RRset at the owner (empty for NXDOMAIN/NODATA), set only when the server answered
   *  authoritatively with NOERROR or NXDOMAIN. TLSA only. */
  records?: TlsaRecord[];
  /** RDATA of the answer RRset in presentation form (any type), same condition as records. */
  rdata?: string[];
  /** TLSA RDATA the record model cannot hold: counted as extra records. */
  unsupported?: string[];
  /** The answer came with RRSIGs. */
  signed?: boolean;
  /** How long a resolver may cache this answer, same condition as records: the RRset's TTL, a
   *  CNAME's at the name, or for no RRset the negative TTL (min of the SOA's TTL and MINIMUM). */
  ttl?: { seconds: number; of: 'rrset' | 'negative' | 'cname' };
  /** Why there are no records: timeout, refused, not authoritative, ... */
  error?: string;
}

export interface AuthoritativeOptions {
  /** Port of every name server (default 53; the lab runs all its servers on another port). */
  port?: number;
  /** Per attempt (default 2000 ms) and retries (default 1). */
  timeoutMs?: number;
  retries?: number;
  signal?: AbortSignal;
}

/** "ns1.example.org. (192.0.2.1)" */
export function answerLabel(a: Pick<AuthoritativeAnswer, 'server' | 'address'>): string {
  return a.address ? `${a.server} (${a.address})` : a.server;
}

/**
 * Ask every address of every name server of the zone for `owner`/`type` directly, RD clear,
 * DO set, in parallel. Never throws for a server's failure: it lands in `error`.
 */
export async function queryAuthoritative(
  zone: ZoneInfo,
  owner: string,
  type: RecordType = 'TLSA',
  opts: AuthoritativeOptions = {},
): Promise<AuthoritativeAnswer[]> {
  const name = canonicalName(owner);
  const port = opts.port ?? 53;
  const targets: { server: string; address: string }[] = [];
  const out: AuthoritativeAnswer[] = [];
  for (const ns of zone.nameservers) {
    if (ns.addresses.length === 0)
      out.push({
        server: ns.name,
        address: '',
        aa: false,
        error: ns.error ?? `no address for ${ns.name}`,
      });
    for (const address of ns.addresses) targets.push({ server: ns.name, address });
  }
  const answers = await Promise.all(
    targets.map(async ({ server, address }): Promise<AuthoritativeAnswer> => {
      let r: DnsResponse;
      try {
        r = await query({ host: address, port }, name, type, {
          recursionDesired: false,
          dnssec: true,
          timeoutMs: opts.timeoutMs ?? 2000,
          retries: opts.retries ?? 1,
          signal: opts.signal,
        });
      } catch (e) {
        if (e instanceof DnsError) return { server, address, aa: false, error: e.message };
        throw e;
      }
      const base = { server, address, aa: r.flags.aa, rcode: r.rcode };
      if (r.rcode !== 'NOERROR' && r.rcode !== 'NXDOMAIN') {
        return {
          ...base,
          error: `${serverLabel(r.server)} answered ${r.rcode}${r.rcode === 'REFUSED' ? ' (it does not serve the zone)' : ''}`,
        };
      }
      if (!r.flags.aa) {
        return {
          ...base,
          error: `${serverLabel(r.server)} answered without the AA bit: it is not authoritative for ${zone.zone} (lame delegation or a referral)`,
        };
      }
      const data = r.answers.filter((a) => a.type === type && canonicalName(a.name) === name);
      const signed =
        r.answers.some((a) => a.type === 'RRSIG') || r.authorities.some((a) => a.type === 'RRSIG');
      const result: AuthoritativeAnswer = { ...base, rdata: data.map(rdataString).sort(), signed };
      const alias = r.answers.find((a) => a.type === 'CNAME' && canonicalName(a.name) === name);
      if (alias && type !== 'CNAME')
        result.error = `${name} is a CNAME (to ${rdataString(alias)}) on this server`;
      const cacheTtl = answerTtl(data, alias, r.authorities);
      if (cacheTtl) result.ttl = cacheTtl;
      if (type === 'TLSA') {
        const { records, unsupported } = tlsaFromAnswers(data);
        result.records = records;
        if (unsupported.length) result.unsupported = unsupported;
      }
      return result;
    }),
  );
  out.push(...answers);
  return out.sort((x, y) => x.server.localeCompare(y.server) || x.address.localeCompare(y.address));
}

function answerTtl(
  data: DnsResponse['answers'],
  alias: DnsResponse['answers'][number] | undefined,
  authorities: DnsResponse['authorities'],
): AuthoritativeAnswer['ttl'] {
  const ttlOf = (a: DnsResponse['answers'][number]): number => ('ttl' in a ? (a.ttl ?? 0) : 0);
  if (data.length) return { seconds: Math.max(...data.map(ttlOf)), of: 'rrset' };
  if (alias) return { seconds: ttlOf(alias), of: 'cname' };
  const soa = authorities.find((a) => a.type === 'SOA');
  if (soa && soa.type === 'SOA')
    return { seconds: Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0), of: 'negative' };
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Comparison

export type CompareMode = 'exact' | 'contains';

export interface ServerComparison {
  server: string;
  address: string;
  status: 'in-sync' | 'lagging' | 'failed';
  /** Expected records this server does not serve. */
  missing: TlsaRecord[];
  /** Records it serves that are not expected (in 'contains' mode they do not make it lag). */
  extra: TlsaRecord[];
  /** RDATA the record model cannot hold, served by this server (counted as extra). */
  unsupported: string[];
  error?: string;
}

export interface RrsetComparison {
  mode: CompareMode;
  /** Every server address answered and agrees with the expected set. */
  inSync: boolean;
  servers: ServerComparison[];
  synced: ServerComparison[];
  lagging: ServerComparison[];
  failed: ServerComparison[];
  /** One line per lagging or failed server, or "all N servers in sync". */
  summary: string;
}

const keyOf = (r: TlsaRecord): string =>
  recordKey({ ...r, owner: canonicalName(r.owner), data: r.data.toLowerCase() });

/**
 * Compare each server's RRset with `expected`, as sets (order and duplicates do not matter).
 * 'exact': a server is in sync when it serves exactly the expected records; 'contains': when
 * it serves at least them. A server without an answer is `failed` (never in sync).
 */
export function compareRrsets(
  expected: readonly TlsaRecord[],
  perServer: readonly AuthoritativeAnswer[],
  mode: CompareMode = 'exact',
): RrsetComparison {
  const want = new Map(expected.map((r) => [keyOf(r), r]));
  const servers = perServer.map((s): ServerComparison => {
    const base = { server: s.server, address: s.address, unsupported: s.unsupported ?? [] };
    if (s.records === undefined || s.error !== undefined) {
      return {
        ...base,
        status: 'failed',
        missing: [...want.values()],
        extra: [],
        error: s.error ?? 'no answer',
      };
    }
    const have = new Map(s.records.map((r) => [keyOf(r), r]));
    const missing = [...want.entries()].filter(([k]) => !have.has(k)).map(([, r]) => r);
    const extra = [...have.entries()].filter(([k]) => !want.has(k)).map(([, r]) => r);
    const lagging =
      missing.length > 0 || (mode === 'exact' && (extra.length > 0 || base.unsupported.length > 0));
    return { ...base, status: lagging ? 'lagging' : 'in-sync', missing, extra };
  });
  const synced = servers.filter((s) => s.status === 'in-sync');
  const lagging = servers.filter((s) => s.status === 'lagging');
  const failed = servers.filter((s) => s.status === 'failed');
  const inSync = servers.length > 0 && synced.length === servers.length;
  const rd = (r: TlsaRecord): string =>
    `${r.usage} ${r.selector} ${r.matching} ${r.data.slice(0, 16)}...`;
  const lines = [
    ...lagging.map(
      (s) =>
        `${answerLabel(s)} lags: ${[
          s.missing.length ? `missing ${s.missing.map(rd).join(', ')}` : '',
          s.extra.length ? `extra ${s.extra.map(rd).join(', ')}` : '',
          s.unsupported.length ? `unsupported ${s.unsupported.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join('; ')}`,
    ),
    ...failed.map((s) => `${answerLabel(s)} failed: ${s.error}`),
  ];
  const summary =
    servers.length === 0
      ? 'no authoritative server to compare'
      : inSync
        ? `all ${servers.length} server address${servers.length === 1 ? '' : 'es'} in sync`
        : lines.join('\n');
  return { mode, inSync, servers, synced, lagging, failed, summary };
}

// ---------------------------------------------------------------------------------------------
// Waiting for propagation

export interface WaitProgress {
  round: number;
  elapsedMs: number;
  comparison: RrsetComparison;
  /** Labels ("ns2.example.org. (192.0.2.2)") of the addresses still lagging or failing. */
  pending: string[];
}

export interface WaitOptions extends Omit<AuthoritativeOptions, 'timeoutMs'> {
  /** Give up after this long (the last round may finish a little later). */
  timeoutMs: number;
  /** Between rounds (default 2000 ms). */
  intervalMs?: number;
  mode?: CompareMode;
  onProgress?: (p: WaitProgress) => void;
  /** Per-query timeout (default 2000 ms). `timeoutMs` here is the overall budget. */
  queryTimeoutMs?: number;
}

export interface WaitResult {
  /** True when every address served the expected records in the last round. */
  ok: boolean;
  rounds: number;
  elapsedMs: number;
  comparison: RrsetComparison;
}

/**
 * Poll every authoritative address of the zone until all serve `expected` at `owner` (exactly,
 * or at least, per `mode`) or the time is up. Never throws for a lagging or failing server: the
 * result says `ok: false` with the last comparison. An aborted `signal` rejects.
 */
export async function waitForRecords(
  zone: ZoneInfo,
  owner: string,
  expected: readonly TlsaRecord[],
  opts: WaitOptions,
): Promise<WaitResult> {
  const started = Date.now();
  const interval = opts.intervalMs ?? 2000;
  const mode = opts.mode ?? 'exact';
  for (let round = 1; ; round++) {
    const answers = await queryAuthoritative(zone, owner, 'TLSA', {
      port: opts.port,
      timeoutMs: opts.queryTimeoutMs ?? 2000,
      retries: opts.retries ?? 0,
      signal: opts.signal,
    });
    const comparison = compareRrsets(expected, answers, mode);
    const elapsedMs = Date.now() - started;
    opts.onProgress?.({
      round,
      elapsedMs,
      comparison,
      pending: [...comparison.lagging, ...comparison.failed].map(answerLabel),
    });
    if (comparison.inSync) return { ok: true, rounds: round, elapsedMs, comparison };
    if (elapsedMs + interval > opts.timeoutMs)
      return { ok: false, rounds: round, elapsedMs, comparison };
    await sleep(interval, opts.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason ?? new Error('aborted'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
