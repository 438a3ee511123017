/**
 * The DNS provider contract: what the engine may rely on from every adapter. A provider knows
 * nothing about rollover: it lists and applies exactly what it is told. docs/providers.md says
 * the same in prose; test/integration/contract/suite.ts checks each rule against every
 * provider (a real server, or an *-api-fake of a hosted API).
 *
 * The rules, so that a rollover never leaves a name without the records a served chain
 * relies on:
 *
 *  1. Adds before removes. Within one change, no record of `remove` is taken away before the
 *     records of `add` at the same owner are in place: in one atomic write (one RRset REPLACE,
 *     one UPDATE message, one batch), or, where the API needs several calls, adds in earlier
 *     calls than removes.
 *  2. A partial failure never leaves an owner with fewer records than before the change: an
 *     error between two API calls or a failed batch leaves the owner as it was, or with (some
 *     of) the adds in place and the removes not all done. Adds that succeeded stay (they are
 *     not rolled back by a remove); the next run finishes the removes.
 *  3. Add wins: a record both in `add` and in `remove` (of one change, or of two changes for
 *     one owner in one applyMany) is kept. kit.ts mergeChanges()/effectiveChange() do this.
 *  4. TTL. `ttl` is the TTL of the records added; on APIs that store whole RRsets (Route 53,
 *     PowerDNS, deSEC) it becomes the RRset's TTL. An add of a record that is already present,
 *     with a `ttl` different from the RRset's TTL, sets the RRset's TTL to `ttl`: every TLSA
 *     record at the owner gets it, foreign ones included (DNS serves one TTL per RRset); this
 *     is how a changed `ttl:` in the configuration reaches records already published. A change
 *     without adds keeps the RRset's TTL as it is. A service's TTL bounds still apply, and a
 *     provider that publishes another TTL says so through effectiveTtl() (deSEC's domain
 *     minimum; a zone file's TLSA lines tlsa did not write, whose TTL the server serves).
 *  5. Names. Owners are absolute DNS names; the provider accepts any spelling (case, trailing
 *     dot) and works on normaliseName(owner). listMany() answers under the normal form and
 *     also under each spelling the caller used. Records come back with `owner` normalised.
 *  6. CNAME refusal. A CNAME at an owner is reported (a ProviderError naming the owner and
 *     the CNAME) and never replaced; in applyMany nothing of that zone is written when any
 *     owner has one.
 *  7. Owner guard. Every record of a change must carry the owner it is applied at; a mix-up is
 *     refused before anything is written (kit.ts checkChangeOwners()).
 *  8. Foreign records. Records not named in a change stay as they are (another writer's, or
 *     records tlsa does not own); a concurrent writer's adds are not lost by ours (a
 *     conditional write, per-record ids, or a read-back that writes again).
 *  9. applyMany. Everything above holds across many owners: if the API's atomic unit (a
 *     batch, a PATCH, a message) cannot hold every owner's change, each owner's adds go in the
 *     same or an earlier unit than its removes; all adds of all owners first, then the
 *     removes. Empty changes cost nothing.
 * 10. Errors. Everything the provider cannot do is a ProviderError (exit 3: provider or
 *     network), naming the provider instance and the owner or zone, never a secret; throttling
 *     and transient failures are retried with bounded backoff first. Option errors are
 *     reported by the factory through ctx.optionError (exit 2).
 */
import { ProviderError } from '../src/errors.js';
import type { TlsaRecord } from '../src/tlsa/record.js';

// Declared with the other errors (one module, each with its exit code); importable from here
// too, for the adapters.
export { ProviderError };

export interface TlsaChange {
  add: TlsaRecord[];
  remove: TlsaRecord[];
}

/** A TTL a provider publishes instead of the one asked, and why (for the plan). */
export interface PublishedTtl {
  ttl: number;
  /** The plan's TTL line: "raised from 3600: <cause>, <what to change>". */
  why: string;
  /** What sets it, in a few words: the lines that name a wait say "tlsa's TTL, raised from
   *  3600: <cause>" (status, publish and plan). */
  cause?: string;
}

export interface OwnerChange extends TlsaChange {
  owner: string;
}

/** A DNS provider: see the rules at the top of this file. */
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
   *  domain minimum; a zone file's foreign line with a higher TTL sets the RRset's), with why
   *  when it is not `ttl`. The engine writes with it and its waits count from it. */
  effectiveTtl?(owner: string, ttl: number): Promise<number | PublishedTtl>;
  /** Optional: effectiveTtl() for several owner names at once, the answers in the order asked
   *  (one look at the zone for a fleet's thousands of owners, where effectiveTtl looks per call). */
  effectiveTtlMany?(
    asks: readonly { owner: string; ttl: number }[],
  ): Promise<(number | PublishedTtl)[]>;
  /** Optional provider-side "change is live" signal. The engine does not trust it alone. */
  waitUntilApplied?(): Promise<void>;
  /** Optional: make applied changes take effect (reload a server). Called once at the end of
   *  every reconcile, also when nothing changed, so that an interrupted reload is retried. */
  flush?(): Promise<void>;
  /** Optional (built-in ACME's DNS-01): TXT records at an owner such as
   *  `_acme-challenge.mx.example.org`. See TxtRecords. */
  readonly txt?: TxtRecords;
}

/**
 * TXT records for ACME DNS-01 challenges. The same rules as for TLSA apply where they make
 * sense: owners in any spelling (5), a CNAME at the owner is refused and never replaced (6),
 * values not named stay (8: another client's challenge for the same name, a wildcard and its
 * base name answered at once, SPF or verification strings), errors are ProviderErrors (10).
 * Values are the TXT strings themselves (for DNS-01 the 43-character base64url digest),
 * without quotes; each value is one record of one character-string.
 */
export interface TxtRecords {
  /** The TXT values now at the owner (ours and foreign ones). */
  list(owner: string): Promise<string[]>;
  /** Add these values at the owner (present ones stay; adding a present value is a no-op). */
  add(owner: string, values: string[], ttl: number): Promise<void>;
  /** Remove exactly these values; other values at the owner stay; absent ones are no error. */
  remove(owner: string, values: string[]): Promise<void>;
  /** Make the change take effect where the provider needs it (a zone-file reload). */
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
