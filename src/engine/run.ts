/** What a run of the engine is asked, what it answers, and the context its steps share. */
import type { DnsProvider } from '../../providers/index.js';
import type { LoadedConfig } from '../config/load.js';
import type { NetworkError } from '../errors.js';
import type { TlsaRecord } from '../tlsa/record.js';
import type { Due } from './due.js';
import type { WaitTtl } from './lifecycle.js';
import type { LiveView, PropagationView } from './observe.js';
import type { OwnerPlan } from './plan.js';
import { writeState, type OwnedRecord, type StateFile, type TtlFact } from './state.js';
import type { Targets } from './targets.js';

export interface RunOptions {
  services?: string[];
  now?: Date;
  /** Publish even with expired certificates. */
  force?: boolean;
  lockWaitSeconds?: number;
  entryPoint: string;
  progress?: (line: string) => void;
  /** Provider instances by name instead of the configured ones (e.g. one that records calls). */
  providers?: Map<string, DnsProvider>;
}

export interface EngineOptions extends RunOptions {
  /** Publish missing records (default true; `retire` turns it off). */
  add?: boolean;
  /** Install staged chains whose records are live (default true). */
  promote?: boolean;
  /** Remove records whose grace is over and that no live server needs (default true). */
  retire?: boolean;
  /** Compute everything, change nothing (retire --dry-run). */
  dryRun?: boolean;
  /** Also find out whether each served chain (no staged install) matches a live record, and
   *  then run the service's `reload:`: the certbot hook needs it to tell whether the new chain
   *  is safe to serve. */
  checkServed?: boolean;
  /** Check every pending record on the authoritative servers, not only those a staged or
   *  served chain waits for (the daemon does, so that `status` moves them to live). */
  observeAll?: boolean;
  /** Overrides for tests; default: DNS and TLS through verify.* settings. */
  propagation?: PropagationView;
  live?: LiveView;
}

export interface PlanResult {
  targets: Targets;
  plan: OwnerPlan[];
  listed: Map<string, TlsaRecord[]>;
  state: StateFile;
  /** `plan` only: per owner name with records to add, the TTL their wait would count from. */
  waits?: Map<string, WaitTtl>;
  /** `plan` only: per owner name, the TTL the authoritative servers were last seen serving the
   *  RRset with (the state's TTL facts), when known. */
  servedTtls?: Map<string, TtlFact>;
}

export interface Promotion {
  service: string;
  source: string;
  chain: string;
  release?: string;
  reloaded?: boolean;
  reloadError?: string;
}

export interface ChainWait {
  service: string;
  chain: string;
  /** What it waits for, for humans. */
  reason: string;
  /** When time alone would make it ready (the records' 2×TTL), if known. */
  eta?: Date;
}

export interface ServedCheck {
  service: string;
  chain: string;
  live: boolean;
  eta?: Date;
  /** The service's `reload:` ran (once per distinct command) because the chain is live. */
  reloaded?: boolean;
  reloadError?: string;
}

export interface EngineResult extends PlanResult {
  added: number;
  removed: number;
  promoted: Promotion[];
  waiting: ChainWait[];
  /** Records due for removal but kept: a live server still presents a chain they match, or the
   *  probe could not tell. */
  held: { record: OwnedRecord; why: string }[];
  /** Records that would be removed (dry run) or were. */
  retired: OwnedRecord[];
  /** With checkServed: per served chain of a service without staged install. */
  served: ServedCheck[];
  /** DNS and probe failures the run worked around (records kept, chains left staged); the CLI
   *  exits 3 when there are any. */
  network: NetworkError[];
  /** The earliest moment something will be due (a record turning live, a grace ending, a
   *  re-check), from the state this run left: the daemon sleeps until then. */
  nextDue: Due | undefined;
}

/** A plan with the providers it was listed from. */
export type Computed = PlanResult & { providers: Map<string, DnsProvider> };

/** What the steps of one run share: the state moves forward through the pure operations of
 *  state-ops.ts; `save` writes it (never in a dry run). */
export interface RunContext {
  config: LoadedConfig;
  opts: EngineOptions;
  now: Date;
  write: boolean;
  by: string;
  state: StateFile;
  c: Computed;
  propagation: PropagationView | undefined;
  network: NetworkError[];
}

export function save(ctx: RunContext): void {
  if (ctx.write) writeState(ctx.config.stateDir, ctx.state);
}

/** The moment of an observation, not the run's start: 2×TTL counts start there. */
export const observedNow = (now: Date): Date => new Date(Math.max(Date.now(), now.getTime()));

/** Each problem once (several owners may hit the same silent resolver). */
export function noteNetwork(network: NetworkError[] | undefined, e: NetworkError): void {
  if (network && !network.some((x) => x.message === e.message)) network.push(e);
}
