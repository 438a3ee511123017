/**
 * `tlsa check`: for each host × port, the DNSSEC status of the TLSA RRset and the host's
 * addresses, every authoritative server in sync or not, and a live probe of each address per
 * key type matched against the RRset (RFC 7672). Plus what breaks at the next renewal.
 */
import { X509Certificate } from 'node:crypto';
import { keyTypeOf } from '../certs/key-type.js';
import type { IssuerCatalog } from '../issuers/catalog.js';
import { effectiveProtocol, isSmtp, type Protocol } from '../tlsa/policy.js';
import { ownerName, rdataText, recordKey, type TlsaRecord } from '../tlsa/record.js';
import { answerLabel, compareRrsets, findZone, queryAuthoritative } from './authoritative.js';
import { daneMatch, recordMatchesChain } from './dane.js';
import { DnsError, serverLabel, type DnsServer } from './dns.js';
import { resolveHostForDane, validatedLookup } from './dnssec.js';
import { probe, type ProbeKeyType } from './probe.js';
import { probeProtocol } from './probe-protocol.js';
import { NO_PROGRESS, type WaitTracker } from '../util/waiting.js';
import { forecastChain, type RenewalForecast, type RenewalSetup } from './next-renewal.js';

export interface CheckTarget {
  host: string;
  port: number;
  protocol?: Protocol;
  /** The service's setup, for the next-renewal forecast (default: options.catalog only). */
  setup?: RenewalSetup;
}

export interface CheckOptions {
  resolver: DnsServer;
  authoritativePort: number;
  /** The whole check of one target: every DNS question (retried within it) and the TLS probes
   *  share this budget (verify.timeout_s / --timeout). */
  timeoutMs: number;
  /** Progress while the resolver, the authoritative servers or the probes are slow. */
  waits?: WaitTracker;
  /** Catalog for targets without their own setup (plain `check HOST:PORT`). */
  catalog?: IssuerCatalog;
  cap: number;
  now: Date;
}

export interface ProbeRow {
  address: string;
  keyType: ProbeKeyType;
  ok: boolean;
  /** The server has no certificate of this key type (it answered the other one). */
  notServed?: boolean;
  matched?: string;
  leaf?: string;
  problems: string[];
}

export interface CheckReport {
  host: string;
  port: number;
  /** What the port was probed as (the configured protocol, or the port's default). */
  protocol: Protocol;
  owner: string;
  dnssec: { tlsa: string; address: string; message: string };
  records: string[];
  authoritative: { inSync: boolean; summary: string; lagging: string[] };
  /** The TTL the authoritative servers serve the TLSA RRset with (the largest), when they do. */
  servedTtl?: number;
  probes: ProbeRow[];
  /** Per served chain: what the next renewal does (the "breaks" ones are warnings too). */
  nextRenewal: RenewalForecast[];
  /** Findings that are failures. */
  failures: string[];
  /** Findings that are warnings: next renewal, cap, records nobody serves. */
  warnings: string[];
  ok: boolean;
}

/** OpenSSL's "wrong version number": a TLS handshake got plaintext, i.e. the port speaks a
 *  STARTTLS protocol but was probed with TLS from the first byte. */
export function plaintextHint(message: string, t: CheckTarget): string {
  if (
    !/wrong version number/i.test(message) ||
    !['tls', 'smtps', 'https'].includes(effectiveProtocol(t.port, t.protocol))
  )
    return '';
  return ` (the server answered in plaintext: port ${t.port} is probed as ${effectiveProtocol(t.port, t.protocol)}, TLS from the first byte; for an SMTP server with STARTTLS run "tlsa check --protocol smtp ${t.host}:${t.port}" or give the port "protocol: smtp" in the configuration)`;
}

const short = (r: TlsaRecord) => `${rdataText(r).slice(0, 24)}…`;

/** One DNS question's tries: short enough that a lost datagram is retried within the budget. */
const ATTEMPT_MS = 2000;

/** What to check when the resolver does not answer. */
export function resolverHint(resolver: DnsServer): string {
  return `is the validating resolver ${serverLabel(resolver)} running and reachable? set verify.resolver (or --resolver)`;
}

/** Records no served chain matches, except those of the catalogs' intermediates (any selector
 *  and digest: a 2 1 2 is there on purpose as much as a 2 1 1). Pure. */
export function leftOver(
  records: TlsaRecord[],
  servedChains: X509Certificate[][],
  catalogs: IssuerCatalog[],
): TlsaRecord[] {
  const catalogCerts = catalogs.flatMap((c) => c.intermediates.map((i) => i.cert));
  return records.filter(
    (r) =>
      !servedChains.some((c) => recordMatchesChain(r, c)) &&
      !(r.usage === 2 && catalogCerts.some((cert) => recordMatchesChain(r, [cert, cert]))),
  );
}

/** Never throws: a resolver that cannot be asked (at any step) is a failed report. */
export async function checkTarget(t: CheckTarget, o: CheckOptions): Promise<CheckReport> {
  try {
    return await checkOne(t, o);
  } catch (e) {
    const owner = ownerName(t.host, t.port);
    const why =
      e instanceof RangeError
        ? `"${t.host}" is not a usable DNS name: ${e.message}`
        : `the resolver ${serverLabel(o.resolver)} cannot be asked: ${(e as Error).message}${e instanceof DnsError ? `; ${resolverHint(o.resolver)}` : ''}`;
    return {
      host: t.host,
      port: t.port,
      protocol: effectiveProtocol(t.port, t.protocol),
      owner,
      dnssec: { tlsa: 'error', address: 'error', message: why },
      records: [],
      authoritative: { inSync: false, summary: 'not checked', lagging: [] },
      probes: [],
      nextRenewal: [],
      failures: [why],
      warnings: [],
      ok: false,
    };
  }
}

async function checkOne(t: CheckTarget, o: CheckOptions): Promise<CheckReport> {
  const failures: string[] = [];
  const warnings: string[] = [];
  const deadline = Date.now() + o.timeoutMs;
  // One budget for the whole target: a silent resolver costs timeoutMs, not timeoutMs per
  // question times retries times the labels of a zone walk.
  const attemptMs = Math.min(ATTEMPT_MS, o.timeoutMs);
  const q = {
    timeoutMs: attemptMs,
    retries: Math.max(2, Math.ceil(o.timeoutMs / attemptMs)),
    signal: AbortSignal.timeout(o.timeoutMs),
  };
  const waits = o.waits ?? NO_PROGRESS;
  const resolverName = `the resolver ${serverLabel(o.resolver)}`;
  const silent = `no answer from ${resolverName} within ${o.timeoutMs / 1000} s (timeout_s): ${resolverHint(o.resolver)}`;
  const host = await waits.track(resolverName, resolveHostForDane(o.resolver, t.host, q));
  if (host.status === 'nxdomain')
    failures.push(
      `${t.host} does not exist (NXDOMAIN, ${host.a.security ?? 'not validated'} denial): no address to probe`,
    );
  else if (host.status === 'timeout') failures.push(silent);
  else if (host.status !== 'secure')
    failures.push(`address records of ${t.host}: ${host.status}: ${host.message}`);
  // The probes need only the addresses: they run while the TLSA RRset and the authoritative
  // servers are asked (probe() never rejects).
  const addresses = [...host.addresses.v4, ...host.addresses.v6];
  const keyTypes: ProbeKeyType[] = ['rsa', 'ecdsa'];
  const jobs = addresses.flatMap((address) => keyTypes.map((keyType) => ({ address, keyType })));
  const probeMs = Math.max(1, deadline - Date.now());
  const probing = waits.track(
    `TLS probes of ${t.host}:${t.port}`,
    Promise.all(
      jobs.map((j) =>
        probe({
          host: t.host,
          address: j.address,
          port: t.port,
          keyType: j.keyType,
          protocol: probeProtocol(t.port, t.protocol),
          timeoutMs: probeMs,
        }),
      ),
    ),
  );
  let owner = ownerName(host.tlsaBase, t.port);
  let tlsa = await waits.track(resolverName, validatedLookup(o.resolver, owner, 'TLSA', q));
  // RFC 7672 §2.2.2: with a secure CNAME, the target's TLSA first, then the original name's.
  for (const base of host.tlsaBases.slice(1)) {
    if (tlsa.records.length) break;
    const alt = await waits.track(
      resolverName,
      validatedLookup(o.resolver, ownerName(base, t.port), 'TLSA', q),
    );
    if (alt.records.length || alt.status === 'secure') {
      owner = ownerName(base, t.port);
      tlsa = alt;
    }
  }
  const records = tlsa.records;
  const hostGone = host.status === 'nxdomain' && tlsa.status === 'nxdomain'; // said above
  if (hostGone) {
    /* one failure is enough */
  } else if (tlsa.status === 'nxdomain' || tlsa.status === 'nodata') {
    failures.push(
      `no TLSA records at ${owner}${tlsa.security === 'secure' ? ' (securely denied)' : `, and the denial is ${tlsa.security ?? 'not validated'}`}: DANE is not in effect for this port`,
    );
  } else if (tlsa.status === 'timeout') failures.push(silent);
  else if (tlsa.status !== 'secure')
    failures.push(`TLSA ${owner}: ${tlsa.status}: ${tlsa.message}`);
  // RFC 7672 §2.2: a client uses TLSA records only when they and the host's addresses are
  // DNSSEC-secure; otherwise it does not authenticate the server at all, whatever matches.
  const daneInEffect = tlsa.status === 'secure' && host.status === 'secure' && records.length > 0;
  const notInEffect =
    tlsa.status !== 'secure'
      ? `the TLSA records are ${tlsa.status}, not secure: DANE clients do not use them`
      : `the address records of ${t.host} are ${host.status}, not secure: DANE clients do not look for TLSA records`;
  if (records.length > o.cap)
    warnings.push(
      `${records.length} records at ${owner}: over ~${o.cap}, some receivers (Microsoft's) may not handle them all`,
    );

  let authoritative: CheckReport['authoritative'] = {
    inSync: false,
    summary: 'not checked',
    lagging: [],
  };
  let servedTtl: number | undefined;
  try {
    const zone = await waits.track(resolverName, findZone(o.resolver, owner, q));
    const answers = await waits.track(
      `the authoritative servers of ${zone.zone}`,
      queryAuthoritative(zone, owner, 'TLSA', { port: o.authoritativePort, ...q }),
    );
    // The servers among themselves: every one serves the union of what they all serve.
    const union = [
      ...new Map(
        answers
          .flatMap((a) => (a.error === undefined ? (a.records ?? []) : []))
          .map((r) => [recordKey(r), r]),
      ).values(),
    ];
    const among = compareRrsets(union, answers, 'exact');
    // The resolver's RRset is the reference when it has one (a stale secondary then shows as
    // lagging with its extra records); a bogus or failed lookup has none.
    const resolverView =
      tlsa.status !== 'bogus' &&
      tlsa.status !== 'servfail' &&
      tlsa.status !== 'timeout' &&
      tlsa.status !== 'error';
    let cmp = resolverView ? compareRrsets(records, answers, 'exact') : among;
    if (!cmp.inSync && among.inSync) {
      // Every server agrees; only the resolver's (cached) copy differs.
      warnings.push(
        `every authoritative server of ${zone.zone} serves the same TLSA RRset at ${owner}, but the resolver answered another one (a cached older copy, gone within the TTL${tlsa.ttl !== undefined ? ` of ${tlsa.ttl} s` : ''})`,
      );
      cmp = among;
    }
    authoritative = {
      inSync: cmp.inSync,
      summary: cmp.summary,
      lagging: [...cmp.lagging, ...cmp.failed].map((s) => answerLabel(s)),
    };
    const ttls = answers
      .map((a) => a.ttl)
      .filter((x): x is NonNullable<typeof x> => x?.of === 'rrset')
      .map((x) => x.seconds);
    if (ttls.length) servedTtl = Math.max(...ttls);
    // Each write resets the RRset's TTL: a different one means another writer (or a provider
    // minimum) set it, and caches hold the RRset that long, not for the configured ttl.
    const own = t.setup?.service?.ttl;
    if (servedTtl !== undefined && own !== undefined && servedTtl !== own) {
      warnings.push(
        `the authoritative servers serve the TLSA RRset at ${owner} with TTL ${servedTtl}, but this service's ttl is ${own}: another writer at this name (or the provider) set it, and each write resets it; give every writer the same ttl`,
      );
    }
    if (!cmp.inSync)
      failures.push(
        `authoritative servers of ${zone.zone} disagree: ${cmp.summary.replace(/\n/g, '; ')}`,
      );
  } catch (e) {
    if (q.signal.aborted) {
      authoritative.summary = `not checked: ${resolverName} did not answer in time`;
      failures.push(silent);
    } else {
      authoritative.summary = (e as Error).message;
      failures.push(`cannot check the authoritative servers: ${(e as Error).message}`);
    }
  }

  const results = await probing;
  const smtp = isSmtp(t.port, t.protocol);
  const probes: ProbeRow[] = [];
  const servedChains: X509Certificate[][] = [];
  jobs.forEach((j, i) => {
    const r = results[i]!;
    if (!r.ok) {
      const otherOk = results.some((x, k) => x.ok && jobs[k]!.address === j.address);
      const refusedKeyType = r.error.code === 'alert' || r.error.code === 'handshake';
      if (otherOk && refusedKeyType)
        probes.push({
          address: j.address,
          keyType: j.keyType,
          ok: true,
          notServed: true,
          problems: [],
        });
      else
        probes.push({
          address: j.address,
          keyType: j.keyType,
          ok: false,
          problems: [r.error.message + plaintextHint(r.error.message, t)],
        });
      return;
    }
    const chain = r.chain.map((der) => new X509Certificate(der));
    servedChains.push(chain);
    const leafType = keyTypeOf(chain[0]!.publicKey);
    const m = daneMatch({ records, chain, names: [host.tlsaBase, t.host], now: o.now, smtp });
    const row: ProbeRow = {
      address: j.address,
      keyType: j.keyType,
      ok: m.verified && daneInEffect,
      leaf: `${leafType.label}, ${chain.length} certificate(s) sent`,
      problems: [],
    };
    const matched = m.match
      ? `${rdataText(m.match.record).slice(0, 24)}… at depth ${m.match.depth}`
      : undefined;
    if (!daneInEffect && records.length)
      row.problems.push(`${notInEffect}${matched ? ` (they would match: ${matched})` : ''}`);
    else if (matched) row.matched = matched;
    else row.problems.push(...m.reasons);
    for (const u of m.unusable)
      if (u.record.usage < 2) row.problems.push(`${short(u.record)} ${u.why}`);
    probes.push(row);
  });
  if (!addresses.length && host.status !== 'nxdomain' && host.status !== 'timeout')
    failures.push(`${t.host} has no address to probe`);
  for (const p of probes)
    if (!p.ok) failures.push(`${p.address} ${p.keyType}: ${p.problems.join('; ')}`);

  // The next renewal: each served chain's plausible successors against the live records.
  const setup: RenewalSetup = t.setup ?? { catalogs: o.catalog ? [o.catalog] : [] };
  const dedup = new Map(servedChains.map((c) => [c.map((x) => x.fingerprint256).join(), c]));
  const nextRenewal = daneInEffect
    ? [...dedup.values()].map((chain) => forecastChain(chain, records, setup, o.now))
    : [];
  for (const f of nextRenewal) if (f.verdict === 'breaks') warnings.push(f.text);
  if (servedChains.length)
    for (const r of leftOver(records, servedChains, setup.catalogs))
      warnings.push(
        `${short(r)} matches no chain any address serves: published for another host sharing this name, or left over from an old certificate`,
      );
  const uniq = (xs: string[]) => [...new Set(xs)];
  return {
    host: t.host,
    port: t.port,
    protocol: effectiveProtocol(t.port, t.protocol),
    owner,
    dnssec: { tlsa: tlsa.status, address: host.status, message: tlsa.message },
    records: records.map(rdataText),
    authoritative,
    ...(servedTtl !== undefined ? { servedTtl } : {}),
    probes,
    nextRenewal,
    failures: uniq(failures),
    warnings: uniq(warnings),
    ok: failures.length === 0,
  };
}
