/**
 * The DNS provider contract and the registry. Providers are loaded lazily (dynamic import)
 * so that an unused SDK costs nothing at start-up: a certbot hook is a cold process.
 * A provider knows nothing about rollover: it lists and applies exactly what it is told.
 */
import { ProviderError } from '../src/errors.js';
import { normaliseName, rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { CLOUDFLARE_OPTIONS } from './cloudflare-options.js';
import { DESEC_OPTIONS } from './desec-options.js';
import { EXEC_OPTIONS } from './exec-options.js';
import type { ProviderOptions } from './options.js';
import { POWERDNS_OPTIONS } from './powerdns-options.js';
import { RFC2136_OPTIONS } from './rfc2136-options.js';
import { ROUTE53_OPTIONS } from './route53-options.js';
import { ZONEFILE_OPTIONS } from './zonefile-options.js';

// Declared with the other errors (one module, each with its exit code); importable from here
// too, for the adapters.
export { ProviderError };

export interface TlsaChange {
  add: TlsaRecord[];
  remove: TlsaRecord[];
}

export interface OwnerChange extends TlsaChange {
  owner: string;
}

/**
 * What every provider guarantees about a write (checked for each one by the contract suite,
 * test/integration/contract/suite.ts), so that a rollover never leaves a name without the
 * records a served chain relies on:
 *
 *  1. Adds before removes. Within one change, no record of `remove` is taken away before the
 *     records of `add` at the same owner are in place: in one atomic write (one RRset REPLACE,
 *     one UPDATE message, one batch), or, where the API needs several calls, adds in earlier
 *     calls than removes.
 *  2. A partial failure never leaves an owner with fewer records than before the change: an
 *     error between two API calls or a failed batch leaves the owner as it was, or with (some
 *     of) the adds in place and the removes not all done. Adds that succeeded stay (they are
 *     not rolled back by a remove); the next run finishes the removes.
 *  3. A record both in `add` and in `remove` is kept (add wins): see effectiveChange().
 *  4. A change without adds keeps the RRset's TTL as it is; `ttl` is the TTL of the records
 *     added (which, on APIs that store whole RRsets, becomes the RRset's TTL).
 *  5. All of this holds for applyMany across many owners: if the API's atomic unit (a batch,
 *     a PATCH, a message) cannot hold every owner's change, each owner's adds go in the same
 *     or an earlier unit than its removes; all adds of all owners first, then the removes.
 */
export interface DnsProvider {
  readonly name: string;
  /** TLSA records now at the owner name, as the provider sees them (ours and foreign ones). */
  list(owner: string): Promise<TlsaRecord[]>;
  /** Apply exactly these additions and removals at one owner name; records not named stay. */
  apply(owner: string, change: TlsaChange, ttl: number): Promise<void>;
  /** Optional: the records at these owner names that carry tlsa's marker (a zone-file comment,
   *  a record comment), as recordKey()s. Only `tlsa adopt` asks: ownership lives in the state. */
  markedKeys?(owners: string[]): Promise<Set<string>>;
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

export type ProviderFactory = (
  options: Record<string, unknown>,
  ctx: ProviderContext,
) => DnsProvider;

type Loader = () => Promise<{ createProvider: ProviderFactory }>;

/** Each type's options (cheap modules: the config schema reads them) and its adapter, loaded
 *  only when a configuration uses it. */
const registry: Record<string, { options: ProviderOptions; load: Loader }> = {
  zonefile: { options: ZONEFILE_OPTIONS, load: () => import('./zonefile.js') },
  exec: { options: EXEC_OPTIONS, load: () => import('./exec.js') },
  rfc2136: { options: RFC2136_OPTIONS, load: () => import('./rfc2136.js') },
  route53: { options: ROUTE53_OPTIONS, load: () => import('./route53.js') },
  cloudflare: { options: CLOUDFLARE_OPTIONS, load: () => import('./cloudflare.js') },
  powerdns: { options: POWERDNS_OPTIONS, load: () => import('./powerdns.js') },
  desec: { options: DESEC_OPTIONS, load: () => import('./desec.js') },
};

export function knownProviderTypes(): string[] {
  return Object.keys(registry).sort();
}

/** The option declarations of every provider type, in registry order. */
export function providerOptions(): ProviderOptions[] {
  return Object.values(registry).map((r) => r.options);
}

export async function loadProviderFactory(type: string): Promise<ProviderFactory | undefined> {
  const entry = registry[type];
  if (!entry) return undefined;
  return (await entry.load()).createProvider;
}

/** Every record of a change must belong to the owner name it is applied at: a guard against a
 *  caller's mix-up, the same for every provider. */
export function checkChangeOwners(provider: string, owner: string, change: TlsaChange): void {
  const o = normaliseName(owner);
  for (const r of [...change.add, ...change.remove]) {
    if (normaliseName(r.owner) !== o)
      throw new ProviderError(provider, `record for ${r.owner} passed to apply(${o})`);
  }
}

/** The change as a provider must apply it: a record named in both `add` and `remove` is kept,
 *  so it is dropped from `remove` (rule 3 of DnsProvider). */
export function effectiveChange<T extends TlsaChange>(change: T): T {
  const key = (r: TlsaRecord) => rdataText(r).toLowerCase();
  const added = new Set(change.add.map(key));
  if (!change.remove.some((r) => added.has(key(r)))) return change;
  return { ...change, remove: change.remove.filter((r) => !added.has(key(r))) };
}
