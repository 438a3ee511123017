/** What the engine observes in the world, behind two small interfaces so the rollover logic
 *  stays testable: propagation on the authoritative servers, and the chains live servers send. */
import { X509Certificate } from 'node:crypto';
import type { LoadedConfig } from '../config/load.js';
import { NetworkError } from '../errors.js';
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import {
  answerLabel,
  findZone,
  queryAuthoritative,
  type AuthoritativeAnswer,
  type ZoneInfo,
} from '../verify/authoritative.js';
import { serverLabel, type DnsServer } from '../verify/dns.js';
import { resolveHostForDane, type DaneHostResult } from '../verify/dnssec.js';
import { probe, type ProbeKeyType } from '../verify/probe.js';
import { probeProtocol } from '../verify/probe-protocol.js';
import { resolverFrom } from '../verify/resolver.js';
import type { PortProtocol } from '../config/ports.js';
import { NO_PROGRESS, waitTracker, type WaitTracker } from '../util/waiting.js';
import { keyTest } from './record-index.js';

/** What the authoritative servers answer at an owner name and how long a resolver may cache it. */
export interface ServedTtl {
  /** The largest TTL over the server addresses that answered. */
  ttl: number;
  of: 'rrset' | 'negative' | 'cname';
  /** The TLSA records served (any server). */
  records: TlsaRecord[];
}

export interface PropagationView {
  /** Which of `records` every address of every authoritative server serves at `owner`, and the
   *  TTL they serve the RRset with. Rejects with a NetworkError when the resolver or an
   *  authoritative server does not answer. */
  propagated(
    owner: string,
    records: TlsaRecord[],
  ): Promise<{ seen: TlsaRecord[]; lagging: string[]; ttl?: ServedTtl }>;
  /** What the servers answer at `owner` now (asked before tlsa writes there); undefined when
   *  no server answered. */
  servedTtl?(owner: string): Promise<ServedTtl | undefined>;
}

function servedTtlOf(answers: AuthoritativeAnswer[]): ServedTtl | undefined {
  let best: ServedTtl | undefined;
  const records = new Map<string, TlsaRecord>();
  for (const a of answers) {
    for (const r of a.records ?? []) records.set(recordKey(r), r);
    if (a.ttl && (!best || a.ttl.seconds > best.ttl))
      best = { ttl: a.ttl.seconds, of: a.ttl.of, records: [] };
  }
  return best && { ...best, records: [...records.values()] };
}

export interface ServedChains {
  /** Every chain seen, per address, port and key type. */
  chains: { address: string; port: number; keyType: ProbeKeyType; chain: X509Certificate[] }[];
  /** Addresses or probes that could not be checked: the engine then keeps records. */
  errors: string[];
}

export interface LiveView {
  /** Rejects with a NetworkError when the resolver cannot give the host's addresses; probes
   *  that fail are `errors`. */
  servedChains(host: string, ports: PortProtocol[]): Promise<ServedChains>;
}

/** One DNS question's tries: short enough that a lost datagram is retried within the budget. */
const ATTEMPT_MS = 2000;

/** verify.timeout_s bounds one look: at an owner name's authoritative servers (zone discovery
 *  included), or at a host's live servers (its addresses included). */
function budget(config: LoadedConfig): { timeoutMs: number; retries: number; signal: AbortSignal } {
  const total = config.raw.verify.timeout_s * 1000;
  const attempt = Math.min(ATTEMPT_MS, total);
  return {
    timeoutMs: attempt,
    retries: Math.max(2, Math.ceil(total / attempt)),
    signal: AbortSignal.timeout(total),
  };
}

/** Progress for one look, its time counted from the look's start against its budget. */
function lookProgress(config: LoadedConfig, progress?: (line: string) => void): WaitTracker {
  return progress
    ? waitTracker(progress, { limitMs: config.raw.verify.timeout_s * 1000 })
    : NO_PROGRESS;
}

const resolverName = (r: DnsServer): string => `the validating resolver ${serverLabel(r)}`;

function resolverHint(r: DnsServer, setting: string): string {
  return `is ${resolverName(r)} running and answering?${setting === 'system' ? ' (taken from /etc/resolv.conf)' : ''} set verify.resolver`;
}

export function dnsPropagation(
  config: LoadedConfig,
  progress?: (line: string) => void,
): PropagationView {
  const zones = new Map<string, Promise<ZoneInfo>>();
  const v = config.raw.verify;
  const ask = async (owner: string): Promise<AuthoritativeAnswer[]> => {
    const resolver = resolverFrom(v.resolver);
    const q = budget(config);
    const waits = lookProgress(config, progress);
    const zoneKey = owner.split('.').slice(2).join('.');
    let zone = zones.get(zoneKey);
    if (!zone) {
      zone = findZone(resolver, owner, q);
      zones.set(zoneKey, zone);
    }
    let info: ZoneInfo;
    try {
      info = await waits.track(resolverName(resolver), zone);
    } catch (e) {
      throw new NetworkError(
        `cannot find the authoritative servers of ${owner} through ${resolverName(resolver)}: ${(e as Error).message}`,
        resolverHint(resolver, v.resolver),
        { cause: e },
      );
    }
    const answers = await waits.track(
      `the authoritative servers of ${info.zone}`,
      queryAuthoritative(info, owner, 'TLSA', { port: v.authoritative_port, ...q }),
    );
    // A server that answers without the records lags (wait); one that does not answer at all
    // keeps the records from ever counting as live: that is for the operator to fix.
    const silent = answers.filter((a) => a.error !== undefined && a.rcode === undefined);
    if (silent.length) {
      throw new NetworkError(
        `${owner}: no answer from ${silent.length === answers.length ? 'any' : `${silent.length} of ${answers.length}`} authoritative server address(es) of ${info.zone} on port ${v.authoritative_port}: ${silent.map((a) => `${answerLabel(a)}: ${a.error}`).join('; ')}`,
        `are the authoritative servers running and reachable from here on port ${v.authoritative_port}? set verify.authoritative_port (or verify.propagation: false to stop checking them)`,
      );
    }
    return answers;
  };
  return {
    async servedTtl(owner) {
      return servedTtlOf(await ask(owner));
    },
    async propagated(owner, records) {
      const answers = await ask(owner);
      const lagging = answers
        .filter((a) => a.records === undefined || a.error)
        .map((a) => `${answerLabel(a)}: ${a.error ?? 'no answer'}`);
      const holds = answers.map((a) => (a.records ? keyTest(a.records) : undefined));
      const seen = records.filter(
        (r) => answers.length > 0 && holds.every((has) => has?.(r) ?? false),
      );
      answers.forEach((a, i) => {
        const has = holds[i];
        const missing = has ? records.filter((r) => !has(r)) : [];
        if (missing.length) lagging.push(`${answerLabel(a)} lacks ${missing.length} record(s)`);
      });
      const ttl = servedTtlOf(answers);
      return { seen, lagging, ...(ttl ? { ttl } : {}) };
    },
  };
}

export function liveProbe(config: LoadedConfig, progress?: (line: string) => void): LiveView {
  const v = config.raw.verify;
  return {
    async servedChains(host, portList) {
      const ports = portList.map((p) => p.port);
      const protocolOf = new Map(portList.map((p) => [p.port, p.protocol]));
      const resolver = resolverFrom(v.resolver);
      const errors: string[] = [];
      const started = Date.now();
      const q = budget(config);
      const waits = lookProgress(config, progress);
      let found: DaneHostResult;
      try {
        found = await waits.track(resolverName(resolver), resolveHostForDane(resolver, host, q));
      } catch (e) {
        throw new NetworkError(
          `cannot resolve ${host} through ${resolverName(resolver)}: ${(e as Error).message}`,
          resolverHint(resolver, v.resolver),
          { cause: e },
        );
      }
      if (found.status === 'timeout' || found.status === 'servfail' || found.status === 'error') {
        throw new NetworkError(
          `cannot resolve ${host} through ${resolverName(resolver)}: ${found.message}`,
          resolverHint(resolver, v.resolver),
        );
      }
      const addresses = [...found.addresses.v4, ...found.addresses.v6];
      if (!addresses.length)
        return { chains: [], errors: [`${host}: no address (${found.message})`] };
      const jobs = addresses.flatMap((address) =>
        ports.flatMap((port) =>
          (['rsa', 'ecdsa'] as const).map((keyType) => ({ address, port, keyType })),
        ),
      );
      const probeMs = Math.max(1, v.timeout_s * 1000 - (Date.now() - started));
      const results = await waits.track(
        `TLS probes of ${host}`,
        Promise.all(
          jobs.map((j) =>
            probe({
              host,
              address: j.address,
              port: j.port,
              keyType: j.keyType,
              protocol: probeProtocol(j.port, protocolOf.get(j.port)),
              timeoutMs: probeMs,
            }),
          ),
        ),
      );
      const chains: ServedChains['chains'] = [];
      jobs.forEach((j, i) => {
        const r = results[i]!;
        if (r.ok) chains.push({ ...j, chain: r.chain.map((der) => new X509Certificate(der)) });
      });
      // A server with one key type refuses the other's handshake: that is not an error as
      // long as every address and port answered one of them.
      for (const address of addresses) {
        for (const port of ports) {
          if (chains.some((c) => c.address === address && c.port === port)) continue;
          const failed = jobs
            .map((j, i) => ({ j, r: results[i]! }))
            .filter(({ j }) => j.address === address && j.port === port);
          errors.push(
            `${address} port ${port}: ${failed.map(({ j, r }) => `${j.keyType}: ${r.ok ? 'ok' : r.error.message}`).join('; ')}`,
          );
        }
      }
      return { chains, errors };
    },
  };
}
