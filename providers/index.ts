/**
 * The DNS provider contract and the registry. Providers are loaded lazily (dynamic import)
 * so that an unused SDK costs nothing at start-up: a certbot hook is a cold process.
 * A provider knows nothing about rollover: it lists and applies exactly what it is told.
 */
import { EXIT } from '../src/errors.js';
import { normaliseName, type TlsaRecord } from '../src/tlsa/record.js';

export interface TlsaChange {
  add: TlsaRecord[];
  remove: TlsaRecord[];
}

export interface OwnerChange extends TlsaChange {
  owner: string;
}

export interface DnsProvider {
  readonly name: string;
  /** TLSA records now at the owner name, as the provider sees them (ours and foreign ones). */
  list(owner: string): Promise<TlsaRecord[]>;
  /** Apply exactly these additions and removals at one owner name; records not named stay. */
  apply(owner: string, change: TlsaChange, ttl: number): Promise<void>;
  /** Optional: list several owner names at once (one zone read where the API has one). */
  listMany?(owners: string[]): Promise<Map<string, TlsaRecord[]>>;
  /** Optional: apply the changes of several owner names in one write where the API allows
   *  (one PATCH, one UPDATE message); all or nothing where the API is transactional. */
  applyMany?(changes: OwnerChange[], ttl: (owner: string) => number): Promise<void>;
  /** Optional: the TTL the provider will really publish for `ttl` (deSEC raises TTLs below a
   *  domain minimum); the engine's waits count from it. */
  effectiveTtl?(owner: string, ttl: number): Promise<number>;
  /** Optional provider-side "change is live" signal. The engine does not trust it alone. */
  waitUntilApplied?(): Promise<void>;
  /** Optional: make applied changes take effect (reload a server). Called once at the end of
   *  every reconcile, also when nothing changed, so that an interrupted reload is retried. */
  flush?(): Promise<void>;
}

/** What every provider factory receives: its options block from the config, already validated
 *  for shape by the provider itself, and where the config file lives (relative paths). */
export interface ProviderContext {
  /** The name the config gives this provider instance (`providers.<name>`). */
  instance: string;
  /** Directory of the config file; relative paths in options resolve against it. */
  baseDir: string;
  /** Report an option error at its place in the config (file, line, key). */
  optionError(key: string, message: string): Error;
}

export type ProviderFactory = (options: Record<string, unknown>, ctx: ProviderContext) => DnsProvider;

type Loader = () => Promise<{ createProvider: ProviderFactory }>;

const registry: Record<string, Loader> = {
  zonefile: () => import('./zonefile.js'),
  exec: () => import('./exec.js'),
  rfc2136: () => import('./rfc2136.js'),
  route53: () => import('./route53.js'),
  cloudflare: () => import('./cloudflare.js'),
  powerdns: () => import('./powerdns.js'),
  desec: () => import('./desec.js'),
};

export function knownProviderTypes(): string[] {
  return Object.keys(registry).sort();
}

export async function loadProviderFactory(type: string): Promise<ProviderFactory | undefined> {
  const load = registry[type];
  if (!load) return undefined;
  return (await load()).createProvider;
}

/** A provider failure (network, API, reload command): exit code 3, state left consistent. */
export class ProviderError extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    readonly provider: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${provider}: ${message}`, options);
    this.name = 'ProviderError';
  }
}

/** Every record of a change must belong to the owner name it is applied at: a guard against a
 *  caller's mix-up, the same for every provider. */
export function checkChangeOwners(provider: string, owner: string, change: TlsaChange): void {
  const o = normaliseName(owner);
  for (const r of [...change.add, ...change.remove]) {
    if (normaliseName(r.owner) !== o) throw new ProviderError(provider, `record for ${r.owner} passed to apply(${o})`);
  }
}
