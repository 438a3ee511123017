/** What the engine observes in the world, behind two small interfaces so the rollover logic
 *  stays testable: propagation on the authoritative servers, and the chains live servers send. */
import { X509Certificate } from 'node:crypto';
import type { LoadedConfig } from '../config/load.js';
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { answerLabel, findZone, queryAuthoritative, type AuthoritativeAnswer, type ZoneInfo } from '../verify/authoritative.js';
import { resolveHostForDane } from '../verify/dnssec.js';
import { probe, type ProbeKeyType, type ProbeProtocol } from '../verify/probe.js';
import { resolverFrom } from '../verify/resolver.js';
import type { Protocol } from '../tlsa/policy.js';

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
   *  TTL they serve the RRset with. */
  propagated(owner: string, records: TlsaRecord[]): Promise<{ seen: TlsaRecord[]; lagging: string[]; ttl?: ServedTtl }>;
  /** What the servers answer at `owner` now (asked before tlsa writes there); undefined when
   *  no server answered. */
  servedTtl?(owner: string): Promise<ServedTtl | undefined>;
}

function servedTtlOf(answers: AuthoritativeAnswer[]): ServedTtl | undefined {
  let best: ServedTtl | undefined;
  const records = new Map<string, TlsaRecord>();
  for (const a of answers) {
    for (const r of a.records ?? []) records.set(recordKey(r), r);
    if (a.ttl && (!best || a.ttl.seconds > best.ttl)) best = { ttl: a.ttl.seconds, of: a.ttl.of, records: [] };
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
  servedChains(host: string, ports: number[], protocol: Protocol | undefined): Promise<ServedChains>;
}

export function probeProtocol(port: number, protocol: Protocol | undefined): ProbeProtocol {
  if (protocol === 'lmtp') return 'lmtp';
  if (protocol === 'imap' || port === 143) return 'imap';
  if (protocol === 'pop3' || port === 110) return 'pop3';
  if (protocol === 'smtp' || protocol === 'submission' || port === 25 || port === 587) return 'smtp';
  return 'tls';
}

export function dnsPropagation(config: LoadedConfig): PropagationView {
  const zones = new Map<string, Promise<ZoneInfo>>();
  const v = config.raw.verify;
  const ask = async (owner: string): Promise<AuthoritativeAnswer[]> => {
    const resolver = resolverFrom(v.resolver);
    const timeoutMs = v.timeout_s * 1000;
    const zoneKey = owner.split('.').slice(2).join('.');
    let zone = zones.get(zoneKey);
    if (!zone) {
      zone = findZone(resolver, owner, { timeoutMs });
      zones.set(zoneKey, zone);
    }
    return queryAuthoritative(await zone, owner, 'TLSA', { port: v.authoritative_port, timeoutMs });
  };
  return {
    async servedTtl(owner) {
      return servedTtlOf(await ask(owner));
    },
    async propagated(owner, records) {
      const answers = await ask(owner);
      const lagging = answers.filter((a) => a.records === undefined || a.error).map((a) => `${answerLabel(a)}: ${a.error ?? 'no answer'}`);
      const seen = records.filter((r) => answers.length > 0 && answers.every((a) => a.records?.some((x) => recordKey(x) === recordKey(r))));
      for (const a of answers) {
        const missing = records.filter((r) => a.records && !a.records.some((x) => recordKey(x) === recordKey(r)));
        if (a.records && missing.length) lagging.push(`${answerLabel(a)} lacks ${missing.length} record(s)`);
      }
      const ttl = servedTtlOf(answers);
      return { seen, lagging, ...(ttl ? { ttl } : {}) };
    },
  };
}

export function liveProbe(config: LoadedConfig): LiveView {
  const v = config.raw.verify;
  return {
    async servedChains(host, ports, protocol) {
      const resolver = resolverFrom(v.resolver);
      const errors: string[] = [];
      const found = await resolveHostForDane(resolver, host, { timeoutMs: v.timeout_s * 1000 });
      const addresses = [...found.addresses.v4, ...found.addresses.v6];
      if (!addresses.length) return { chains: [], errors: [`${host}: no address (${found.message})`] };
      const jobs = addresses.flatMap((address) => ports.flatMap((port) => (['rsa', 'ecdsa'] as const).map((keyType) => ({ address, port, keyType }))));
      const results = await Promise.all(jobs.map((j) => probe({ host, address: j.address, port: j.port, keyType: j.keyType, protocol: probeProtocol(j.port, protocol), timeoutMs: v.timeout_s * 1000 })));
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
          const failed = jobs.map((j, i) => ({ j, r: results[i]! })).filter(({ j }) => j.address === address && j.port === port);
          errors.push(`${address} port ${port}: ${failed.map(({ j, r }) => `${j.keyType}: ${r.ok ? 'ok' : r.error.message}`).join('; ')}`);
        }
      }
      return { chains, errors };
    },
  };
}
