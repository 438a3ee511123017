/** DNS-01's wait: the CA may ask any authoritative server, so the challenge is answered only
 *  once every address of every name server of the zone serves every TXT value (the engine's
 *  rule for a record to be live, and the same lookups: src/verify/authoritative.ts). */
import { ProviderError } from '../errors.js';
import {
  type AuthoritativeAnswer,
  findZone,
  queryAuthoritative,
  type ZoneInfo,
} from '../verify/authoritative.js';
import type { DnsServer } from '../verify/dns.js';
import { laggingServers } from './dns01-values.js';

export interface TxtWaitOptions {
  /** Who is waiting, for the error: "acme(mx)". */
  who: string;
  resolver: DnsServer;
  /** Port of the authoritative servers (verify.authoritative_port). */
  port: number;
  timeoutMs: number;
  /** Pause between two rounds of queries. */
  intervalMs?: number;
  /** A line about what is awaited, at most once a second. */
  progress?: (line: string) => void;
  /** Asking the servers (tests give canned answers). */
  lookup?: (owner: string) => Promise<AuthoritativeAnswer[]>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The servers' answers for TXT at `owner`, the zone found once per owner (after the write,
 *  so that a resolver's negative answer from before it is not what it sees). */
function authoritativeLookup(resolver: DnsServer, port: number) {
  const zones = new Map<string, ZoneInfo>();
  return async (owner: string): Promise<AuthoritativeAnswer[]> => {
    let zone = zones.get(owner);
    if (!zone) {
      zone = await findZone(resolver, owner, { timeoutMs: 2000, retries: 1 });
      zones.set(owner, zone);
    }
    return queryAuthoritative(zone, owner, 'TXT', { port, timeoutMs: 2000, retries: 1 });
  };
}

/** Resolves once every owner's values are on every authoritative server; after `timeoutMs` a
 *  ProviderError (exit 3) names the owners and the servers that still lack them. */
export async function waitForTxt(
  wanted: ReadonlyMap<string, readonly string[]>,
  o: TxtWaitOptions,
): Promise<void> {
  const lookup = o.lookup ?? authoritativeLookup(o.resolver, o.port);
  const started = Date.now();
  let printed = 0;
  const pending = new Map(wanted);
  const lagging = new Map<string, string[]>();
  for (;;) {
    for (const [owner, values] of pending) {
      try {
        const missing = laggingServers(await lookup(owner), values);
        if (missing.length) lagging.set(owner, missing);
        else {
          pending.delete(owner);
          lagging.delete(owner);
        }
      } catch (e) {
        lagging.set(owner, [`cannot find its authoritative servers: ${(e as Error).message}`]);
      }
    }
    if (!pending.size) return;
    const elapsed = Date.now() - started;
    const text = [...lagging].map(([owner, why]) => `${owner} ${why.join('; ')}`).join('; ');
    if (elapsed >= o.timeoutMs)
      throw new ProviderError(
        o.who,
        `the DNS-01 TXT records are not on every authoritative server after ${Math.round(elapsed / 1000)} s: ${text} (dns01.propagation_timeout_s)`,
      );
    if (Date.now() - printed >= 1000) {
      printed = Date.now();
      o.progress?.(
        `waiting for the authoritative servers to serve the DNS-01 TXT records: ${text}: ${Math.floor(elapsed / 1000)} s of ${Math.round(o.timeoutMs / 1000)} s`,
      );
    }
    await sleep(Math.min(o.intervalMs ?? 1000, Math.max(0, o.timeoutMs - elapsed)));
  }
}
