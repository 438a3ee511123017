/** The engine's calls to DNS providers: every failure leaves as a ProviderError (exit 3) unless
 *  it is already one of the typed errors. */
import { ProviderError, type DnsProvider } from '../../providers/index.js';
import { InputError } from '../errors.js';
import type { TlsaRecord } from '../tlsa/record.js';
import { recentStrings } from '../util/string-pool.js';

export function asProviderError(name: string, e: unknown): Error {
  if (e instanceof ProviderError || e instanceof InputError) return e;
  return new ProviderError(name, (e as Error).message ?? String(e), { cause: e });
}

export async function calling<T>(provider: DnsProvider, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    throw asProviderError(provider.name, e);
  }
}

/** What each provider lists at its owner names (in one call where the provider can). A run
 *  keeps the listings to its end: each listed record is given the owner name string it was
 *  asked for and, for its digest, an equal string `shareData` has (a fleet lists a few digests
 *  over and over; a parsed answer or a zone line is a copy each time, and may hold on to the
 *  whole answer or file it was cut from: 40,000 of them at 10,000 services). Equal values:
 *  only the copies go. */
export async function listAll(
  providers: Map<string, DnsProvider>,
  owners: Map<string, Set<string>>,
  shareData: (data: string) => string = recentStrings(16),
): Promise<Map<string, Map<string, TlsaRecord[]>>> {
  const out = new Map<string, Map<string, TlsaRecord[]>>();
  for (const [name, set] of owners) {
    const provider = providers.get(name)!;
    const listed = new Map<string, TlsaRecord[]>();
    const keep = (owner: string, records: TlsaRecord[]) => {
      for (const r of records) {
        if (r.owner === owner) r.owner = owner;
        r.data = shareData(r.data);
      }
      listed.set(owner, records);
    };
    await calling(provider, async () => {
      if (provider.listMany && set.size > 1) {
        const many = await provider.listMany([...set]);
        for (const owner of set) keep(owner, many.get(owner) ?? []);
      } else {
        for (const owner of set) keep(owner, await provider.list(owner));
      }
    });
    out.set(name, listed);
  }
  return out;
}

export async function flushAll(providers: Map<string, DnsProvider>): Promise<void> {
  for (const provider of providers.values())
    await calling(provider, async () => provider.flush?.());
}
