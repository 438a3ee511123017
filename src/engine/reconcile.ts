/** The one engine every entry point goes through: compute targets, read the providers, plan,
 *  and (for publish) apply with write-ahead intents so that a crash at any point converges. */
import type { LoadedConfig } from '../config/load.js';
import { InputError } from '../errors.js';
import { recordKey, type TlsaRecord } from '../tlsa/record.js';
import { ProviderError, type DnsProvider } from '../../providers/index.js';
import { acquireLock } from './lock.js';
import { hasChanges, planOwners, servedChainViolations, type OwnerPlan } from './plan.js';
import { createProviders } from './providers.js';
import { actor, ensureStateDir, readState, writeState, type OwnedRecord, type StateFile } from './state.js';
import { computeTargets, selectServices, type Targets } from './targets.js';

export interface RunOptions {
  services?: string[];
  now?: Date;
  /** Publish even with expired certificates. */
  force?: boolean;
  lockWaitSeconds?: number;
  entryPoint: string;
  progress?: (line: string) => void;
}

export interface PlanResult {
  targets: Targets;
  plan: OwnerPlan[];
  listed: Map<string, TlsaRecord[]>;
  state: StateFile;
}

async function listAll(providers: Map<string, DnsProvider>, owners: Map<string, Set<string>>): Promise<Map<string, Map<string, TlsaRecord[]>>> {
  const out = new Map<string, Map<string, TlsaRecord[]>>();
  for (const [name, set] of owners) {
    const provider = providers.get(name)!;
    const listed = new Map<string, TlsaRecord[]>();
    for (const owner of set) listed.set(owner, await provider.list(owner));
    out.set(name, listed);
  }
  return out;
}

async function computePlan(config: LoadedConfig, opts: RunOptions, state: StateFile): Promise<PlanResult & { providers: Map<string, DnsProvider> }> {
  const now = opts.now ?? new Date();
  const names = selectServices(config, opts.services);
  const targets = computeTargets(config, names, now);
  const chosen = new Set(names);
  const owned = state.records.filter((r) => chosen.has(r.service));
  const ownersByProvider = new Map<string, Set<string>>();
  for (const r of [...targets.records, ...owned]) {
    if (!config.raw.providers[r.provider]) continue;
    if (!ownersByProvider.has(r.provider)) ownersByProvider.set(r.provider, new Set());
    ownersByProvider.get(r.provider)!.add(r.owner);
  }
  const providers = await createProviders(config, ownersByProvider.keys());
  const listedByProvider = await listAll(providers, ownersByProvider);
  const plan: OwnerPlan[] = [];
  const listedAll = new Map<string, TlsaRecord[]>();
  for (const [provider, listed] of listedByProvider) {
    plan.push(...planOwners({
      desired: targets.records.filter((r) => r.provider === provider),
      listed,
      owned: owned.filter((r) => r.provider === provider),
      now,
    }));
    for (const [owner, recs] of listed) listedAll.set(owner, recs);
  }
  const violations = servedChainViolations(plan, listedAll, targets.records);
  if (violations.length) throw new Error(`internal safety check failed, nothing changed: ${violations.join('; ')}`);
  return { targets, plan, listed: listedAll, state, providers };
}

/** `tlsa plan`: read-only. */
export async function planOnly(config: LoadedConfig, opts: RunOptions): Promise<PlanResult> {
  const state = readState(config.stateDir);
  const { providers: _p, ...rest } = await computePlan(config, opts, state);
  return rest;
}

export interface PublishResult extends PlanResult {
  added: number;
  removed: number;
}

function upsert(state: StateFile, rec: OwnedRecord): void {
  const i = state.records.findIndex((r) => r.provider === rec.provider && recordKey(r) === recordKey(rec));
  if (i >= 0) state.records[i] = rec;
  else state.records.push(rec);
}

function drop(state: StateFile, rec: OwnedRecord): void {
  state.records = state.records.filter((r) => !(r.provider === rec.provider && recordKey(r) === recordKey(rec)));
}

/** `tlsa publish`: apply the plan under the lock. Each owner's change is recorded as an intent
 *  before the provider call and confirmed after it. */
export async function publish(config: LoadedConfig, opts: RunOptions): Promise<PublishResult> {
  ensureStateDir(config.stateDir);
  const release = await acquireLock(config.stateDir, {
    command: opts.entryPoint,
    waitSeconds: opts.lockWaitSeconds ?? 60,
    onWait: (h, ms) => opts.progress?.(`waiting for the lock held by ${h ? `pid ${h.pid} (${h.command})` : 'another run'}: ${Math.round(ms / 1000)} s so far`),
  });
  try {
    const now = opts.now ?? new Date();
    const state = readState(config.stateDir);
    const result = await computePlan(config, opts, state);
    if (result.targets.validityProblems.length && !opts.force) {
      throw new InputError(
        `refusing to publish records for invalid certificates (use --force to publish anyway):\n  ${result.targets.validityProblems.join('\n  ')}`,
      );
    }
    const by = actor(opts.entryPoint);
    const stamp = now.toISOString();
    // Settle what needs no DNS change: interrupted publishes found at the provider, records
    // that left the desired set (start of their grace), records already gone.
    for (const p of result.plan) {
      for (const k of p.keep) {
        const owned = state.records.find((r) => r.provider === k.provider && recordKey(r) === recordKey(k));
        if (owned && owned.status !== 'published') upsert(state, { ...owned, status: 'published', publishedAt: owned.publishedAt ?? owned.addedAt });
      }
      for (const r of p.retiring) {
        if (r.record.status !== 'retiring') upsert(state, { ...r.record, status: 'retiring', retiringSince: stamp });
      }
    }
    const chosen = new Set(result.targets.services.map((s) => s.service));
    for (const o of [...state.records]) {
      if (!chosen.has(o.service)) continue;
      const present = (result.listed.get(o.owner) ?? []).some((r) => recordKey(r) === recordKey(o));
      const desired = result.targets.records.some((d) => d.provider === o.provider && recordKey(d) === recordKey(o));
      if (!present && !desired) drop(state, o);
    }
    writeState(config.stateDir, state);

    let added = 0;
    let removed = 0;
    for (const p of result.plan.filter(hasChanges)) {
      const provider = result.providers.get(p.provider)!;
      for (const a of p.add) {
        const prior = state.records.find((r) => r.provider === a.provider && recordKey(r) === recordKey(a));
        upsert(state, { owner: a.owner, usage: a.usage, selector: a.selector, matching: a.matching, data: a.data, provider: a.provider, service: a.service, ttl: a.ttl, status: 'publishing', addedAt: prior?.addedAt ?? stamp, by });
      }
      for (const r of p.remove) upsert(state, { ...r, status: 'removing' });
      writeState(config.stateDir, state);
      opts.progress?.(`${p.provider}: ${p.owner} +${p.add.length} -${p.remove.length}`);
      try {
        await provider.apply(p.owner, { add: p.add.map(plain), remove: p.remove.map(plain) }, p.ttl);
      } catch (e) {
        throw asProviderError(provider.name, e);
      }
      const done = new Date().toISOString();
      for (const a of p.add) {
        const cur = state.records.find((r) => r.provider === a.provider && recordKey(r) === recordKey(a))!;
        upsert(state, { ...cur, status: 'published', publishedAt: done });
      }
      for (const r of p.remove) drop(state, r);
      writeState(config.stateDir, state);
      added += p.add.length;
      removed += p.remove.length;
    }
    for (const provider of result.providers.values()) {
      try {
        await provider.flush?.();
      } catch (e) {
        throw asProviderError(provider.name, e);
      }
    }
    const { providers: _p, ...rest } = result;
    return { ...rest, added, removed };
  } finally {
    release();
  }
}

function plain(r: TlsaRecord): TlsaRecord {
  return { owner: r.owner, usage: r.usage, selector: r.selector, matching: r.matching, data: r.data };
}

function asProviderError(name: string, e: unknown): Error {
  if (e instanceof ProviderError || e instanceof InputError) return e;
  return new ProviderError(name, (e as Error).message ?? String(e), { cause: e });
}

export function readOwned(config: LoadedConfig): StateFile {
  return readState(config.stateDir);
}
