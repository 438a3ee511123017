/** The engine's calls to DNS providers: every failure leaves as a ProviderError (exit 3) unless
 *  it is already one of the typed errors. */
import { ProviderError, type DnsProvider } from '../../providers/index.js';
import { InputError } from '../errors.js';
import type { TlsaRecord } from '../tlsa/record.js';

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

/** What each provider lists at its owner names (in one call where the provider can). */
export async function listAll(
  providers: Map<string, DnsProvider>,
  owners: Map<string, Set<string>>,
): Promise<Map<string, Map<string, TlsaRecord[]>>> {
  const out = new Map<string, Map<string, TlsaRecord[]>>();
  for (const [name, set] of owners) {
    const provider = providers.get(name)!;
    const listed = new Map<string, TlsaRecord[]>();
    await calling(provider, async () => {
      if (provider.listMany && set.size > 1) {
        const many = await provider.listMany([...set]);
        for (const owner of set) listed.set(owner, many.get(owner) ?? []);
      } else {
        for (const owner of set) listed.set(owner, await provider.list(owner));
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
