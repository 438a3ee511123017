/** The one engine every entry point goes through: compute targets, read the providers, plan,
 *  publish with write-ahead intents, follow each record's lifecycle, install staged chains
 *  once their records are live, and retire records nobody serves any more. */
import type { LoadedConfig } from '../config/load.js';
import { servicePorts, type PortProtocol } from '../config/ports.js';
import { InputError, NetworkError, UnsafeError } from '../errors.js';
import { rdataText, recordKey, type TlsaRecord } from '../tlsa/record.js';
import { recordMatchesChain } from '../verify/dane.js';
import { parseRdata } from '../tlsa/presentation.js';
import { ProviderError, type DnsProvider } from '../../providers/index.js';
import { adoptionFor, type Adoption } from './adopt.js';
import {
  clearReloadPending,
  installPaths,
  installRelease,
  markReloadPending,
  reloadPending,
} from './install.js';
import type { InstalledCopy } from '../config/installs.js';
import { nextDueFor, type Due } from './due.js';
import {
  addTtlFact,
  describeWait,
  graceWait,
  liveAt,
  observedLiveAt,
  observedRecord,
  waitTtl,
  type WaitTtl,
} from './lifecycle.js';
import { acquireLock } from './lock.js';
import {
  dnsPropagation,
  liveProbe,
  type LiveView,
  type PropagationView,
  type ServedChains,
  type ServedTtl,
} from './observe.js';
import { planOwners, servedChainViolations, type OwnerPlan } from './plan.js';
import { findRecordIndex, upsertRecord } from './record-index.js';
import { groupBy } from '../util/group-by.js';
import { capWarning, servedTtl, ttlChangeNote, ttlMismatch } from './writers.js';
import { createProviders } from './providers.js';
import { stagedFiles, type ServiceChain } from './sources.js';
import {
  actor,
  ensureStateDir,
  readState,
  writeState,
  type OwnedRecord,
  type StateFile,
  type TtlFact,
} from './state.js';
import { computeTargets, selectServices, type ServiceTargets, type Targets } from './targets.js';
import { runCommand } from '../util/run-command.js';
import { resolve } from 'node:path';

export interface RunOptions {
  services?: string[];
  now?: Date;
  /** Publish even with expired certificates. */
  force?: boolean;
  lockWaitSeconds?: number;
  entryPoint: string;
  progress?: (line: string) => void;
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
  /** Also find out whether each served chain (no staged install) matches a live record:
   *  the certbot hook needs it to tell whether the new chain is safe to serve. */
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
  served: { service: string; chain: string; live: boolean; eta?: Date }[];
  /** DNS and probe failures the run worked around (records kept, chains left staged); the CLI
   *  exits 3 when there are any. */
  network: NetworkError[];
  /** The earliest moment something will be due (a record turning live, a grace ending, a
   *  re-check), from the state this run left: the daemon sleeps until then. */
  nextDue: Due | undefined;
}

/** Each problem once (several owners may hit the same silent resolver). */
function noteNetwork(network: NetworkError[] | undefined, e: NetworkError): void {
  if (network && !network.some((x) => x.message === e.message)) network.push(e);
}

async function listAll(
  providers: Map<string, DnsProvider>,
  owners: Map<string, Set<string>>,
): Promise<Map<string, Map<string, TlsaRecord[]>>> {
  const out = new Map<string, Map<string, TlsaRecord[]>>();
  for (const [name, set] of owners) {
    const provider = providers.get(name)!;
    const listed = new Map<string, TlsaRecord[]>();
    try {
      if (provider.listMany && set.size > 1) {
        const many = await provider.listMany([...set]);
        for (const owner of set) listed.set(owner, many.get(owner) ?? []);
      } else {
        for (const owner of set) listed.set(owner, await provider.list(owner));
      }
    } catch (e) {
      throw asProviderError(provider.name, e);
    }
    out.set(name, listed);
  }
  return out;
}

type Computed = PlanResult & { providers: Map<string, DnsProvider> };

async function computePlan(
  config: LoadedConfig,
  opts: RunOptions,
  state: StateFile,
  providers?: Map<string, DnsProvider>,
): Promise<Computed> {
  const now = opts.now ?? new Date();
  const names = selectServices(config, opts.services);
  const targets = computeTargets(config, names, now);
  const chosen = new Set(names);
  // Records of services that were removed from the configuration are still ours to retire,
  // unless this run is limited to named services.
  const known = new Set(Object.keys(config.raw.services));
  const owned = state.records.filter(
    (r) =>
      chosen.has(r.service) ||
      (!opts.services?.length && !known.has(r.service) && config.raw.providers[r.provider]),
  );
  const ownersByProvider = new Map<string, Set<string>>();
  for (const r of [...targets.records, ...owned]) {
    if (!config.raw.providers[r.provider]) continue;
    if (!ownersByProvider.has(r.provider)) ownersByProvider.set(r.provider, new Set());
    ownersByProvider.get(r.provider)!.add(r.owner);
  }
  const prov = providers ?? (await createProviders(config, ownersByProvider.keys()));
  for (const name of ownersByProvider.keys())
    if (!prov.has(name)) for (const [k, v] of await createProviders(config, [name])) prov.set(k, v);
  // A provider that publishes another TTL than asked (deSEC's minimum): waits count from it.
  for (const r of targets.records) {
    const p = prov.get(r.provider);
    if (p?.effectiveTtl) {
      try {
        r.ttl = await p.effectiveTtl(r.owner, r.ttl);
      } catch (e) {
        throw asProviderError(p.name, e);
      }
    }
  }
  const listedByProvider = await listAll(prov, ownersByProvider);
  const plan: OwnerPlan[] = [];
  const listedAll = new Map<string, TlsaRecord[]>();
  for (const [provider, listed] of listedByProvider) {
    plan.push(
      ...planOwners({
        desired: targets.records.filter((r) => r.provider === provider),
        listed,
        owned: owned.filter((r) => r.provider === provider),
        now,
        graceFor: (r) =>
          graceWait(r, config.raw.services[r.service]?.grace_s, factsAt(state, r.owner)).ttl,
      }),
    );
    for (const [owner, recs] of listed) listedAll.set(owner, recs);
  }
  const violations = servedChainViolations(plan, listedAll, targets.records);
  if (violations.length)
    throw new UnsafeError(
      `internal safety check failed, nothing changed: ${violations.join('; ')}`,
    );
  // Other writers at the same owner: their records count for the cap, their TTL resets ours.
  // Only records at the owner's names can count (keys include the owner): no scan per owner.
  const ownedAt = groupBy(owned, (o) => o.owner);
  for (const p of plan) {
    const listed = listedAll.get(p.owner) ?? [];
    const near = [...new Set([p.owner, ...listed.map((r) => r.owner)])];
    const mine = near.flatMap((o) => ownedAt.get(o) ?? []);
    const cap = capWarning(p, listed, mine, config.raw.max_records_per_name);
    const ttl = ttlMismatch(p.owner, p.ttl, factsAt(state, p.owner));
    const change = ttlChangeNote(p, mine);
    for (const w of [cap, ttl, change])
      if (w && !targets.warnings.includes(w)) targets.warnings.push(w);
  }
  return { targets, plan, listed: listedAll, state, providers: prov };
}

/** `tlsa plan`: read-only. */
export async function planOnly(config: LoadedConfig, opts: RunOptions): Promise<PlanResult> {
  const state = readState(config.stateDir);
  const { providers: _p, ...rest } = await computePlan(config, opts, state);
  // What publish would see before its write (it asks where a staged chain will wait), without
  // remembering it.
  const view = config.raw.verify.propagation ? dnsPropagation(config) : undefined;
  const owners = [
    ...new Set(
      rest.plan
        .filter((p) => p.add.some((a) => config.raw.services[a.service]?.install))
        .map((p) => p.owner),
    ),
  ];
  if (view) await observeBeforeWrite(owners, view, state, new Date(), opts.progress);
  const waits = new Map<string, WaitTtl>();
  const stamp = (opts.now ?? new Date()).toISOString();
  for (const p of rest.plan.filter((x) => x.add.length)) {
    const next: OwnedRecord = {
      ...p.add[0]!,
      ttl: Math.max(...p.add.map((a) => a.ttl)),
      status: 'published',
      addedAt: stamp,
      publishedAt: stamp,
      by: '',
    };
    waits.set(p.owner, waitTtl(next, factsAt(state, p.owner)));
  }
  const served = new Map<string, TtlFact>();
  for (const p of rest.plan) {
    const f = servedTtl(factsAt(state, p.owner));
    if (f) served.set(p.owner, f);
  }
  return { ...rest, waits, servedTtls: served };
}

const factsAt = (state: StateFile, owner: string): TtlFact[] => state.ttls?.[owner] ?? [];

/** Remember a TTL the servers answered with at `owner` (see lifecycle.ts for how it counts). */
function noteTtl(
  state: StateFile,
  owner: string,
  served: ServedTtl,
  source: TtlFact['source'],
  at: Date,
): void {
  const foreign = served.records.some(
    (x) => !state.records.some((o) => recordKey(o) === recordKey(x)),
  );
  const fact: TtlFact = {
    ttl: served.ttl,
    at: at.toISOString(),
    source,
    served: served.of,
    ...(foreign ? { foreign: true } : {}),
  };
  const others = Object.entries(state.observed?.[owner] ?? {}).map(([rdata, seenAt]) =>
    observedRecord(otherRecord(owner, rdata), seenAt, served.ttl),
  );
  state.ttls = {
    ...state.ttls,
    [owner]: addTtlFact(factsAt(state, owner), fact, [
      ...state.records.filter((r) => r.owner === owner),
      ...others,
    ]),
  };
}

/** Before tlsa writes at an owner name, what resolvers may have cached there and how long: the
 *  write resets the RRset's TTL on many servers (Knot, PowerDNS), so this is the last moment
 *  the TTL of a foreign record, an earlier tool, a CNAME or a negative answer can be seen. */
async function observeBeforeWrite(
  owners: string[],
  view: PropagationView,
  state: StateFile,
  at: Date,
  progress?: (l: string) => void,
): Promise<void> {
  if (!view.servedTtl) return;
  const seen = await Promise.all(
    owners.map(async (owner) => {
      try {
        return { owner, served: await view.servedTtl!(owner) };
      } catch (e) {
        return { owner, error: (e as Error).message };
      }
    }),
  );
  for (const x of seen) {
    if (x.served) noteTtl(state, x.owner, x.served, 'before-write', at);
    else
      progress?.(
        `${x.owner}: cannot see what the authoritative servers serve before writing (${x.error ?? 'no server answered'}); the wait counts from the TTLs seen after the write`,
      );
  }
}

const find = (state: StateFile, r: { provider: string } & TlsaRecord) =>
  state.records[findRecordIndex(state.records, r)];

function upsert(state: StateFile, rec: OwnedRecord): void {
  upsertRecord(state.records, rec);
}

/** Several at once: one pass over the state, however many records go. */
function drop(state: StateFile, recs: readonly OwnedRecord[]): void {
  if (!recs.length) return;
  const gone = new Set(recs.map((r) => `${r.provider} ${recordKey(r)}`));
  state.records = state.records.filter((r) => !gone.has(`${r.provider} ${recordKey(r)}`));
}

/** Transitions that need no DNS change: interrupted publishes found at the provider, records
 *  leaving the desired set (start of their grace), records already gone. */
function settle(state: StateFile, c: Computed, stamp: string): void {
  for (const p of c.plan) {
    for (const k of p.keep) {
      const owned = find(state, k);
      if (owned && owned.status !== 'published') {
        const { held: _held, ...rest } = owned;
        upsert(state, {
          ...rest,
          status: 'published',
          publishedAt: owned.publishedAt ?? owned.addedAt,
        });
      }
    }
    for (const r of p.retiring)
      if (r.record.status !== 'retiring')
        upsert(state, { ...r.record, status: 'retiring', retiringSince: stamp });
  }
  const owners = new Set(c.plan.map((p) => `${p.provider} ${p.owner}`));
  const desiredKeys = new Set(c.targets.records.map((d) => `${d.provider} ${recordKey(d)}`));
  const gone: OwnedRecord[] = [];
  for (const o of state.records) {
    if (!owners.has(`${o.provider} ${o.owner}`)) continue;
    const present = (c.listed.get(o.owner) ?? []).some((r) => recordKey(r) === recordKey(o));
    const desired = desiredKeys.has(`${o.provider} ${recordKey(o)}`);
    if (!present && !desired) gone.push(o);
  }
  drop(state, gone);
  // Another writer's record that is gone (or now ours) starts over if it comes back.
  const ownedKeys = new Set(state.records.map(recordKey));
  for (const [owner, listed] of c.listed) {
    const seen = state.observed?.[owner];
    if (!seen) continue;
    const keep = Object.entries(seen).filter(([rdata]) =>
      listed.some((r) => rdataText(r) === rdata && !ownedKeys.has(recordKey(r))),
    );
    if (keep.length === Object.keys(seen).length) continue;
    const { [owner]: _gone, ...others } = state.observed!;
    state.observed = keep.length ? { ...others, [owner]: Object.fromEntries(keep) } : others;
  }
}

/** Apply changes at several owner names of one provider: intents first, then one write per
 *  owner (or one for all, where the provider can), then the confirmations. */
async function applyChanges(
  c: Computed,
  provider: string,
  items: { p: OwnerPlan; add: OwnerPlan['add']; remove: OwnedRecord[] }[],
  state: StateFile,
  dir: string,
  by: string,
  progress?: (l: string) => void,
): Promise<void> {
  const dns = c.providers.get(provider)!;
  const stamp = new Date().toISOString();
  for (const { add, remove } of items) {
    for (const a of add) {
      const prior = find(state, a);
      upsert(state, {
        owner: a.owner,
        usage: a.usage,
        selector: a.selector,
        matching: a.matching,
        data: a.data,
        provider: a.provider,
        service: a.service,
        ttl: a.ttl,
        status: 'publishing',
        addedAt: prior?.addedAt ?? stamp,
        by,
      });
    }
    for (const r of remove) upsert(state, { ...r, status: 'removing' });
  }
  writeState(dir, state);
  for (const { p, add, remove } of items)
    progress?.(`${provider}: ${p.owner} +${add.length} -${remove.length}`);
  const confirm = (batch: typeof items) => {
    const done = new Date().toISOString();
    for (const { add } of batch)
      for (const a of add)
        upsert(state, { ...find(state, a)!, status: 'published', publishedAt: done });
    drop(
      state,
      batch.flatMap(({ remove }) => remove),
    );
    writeState(dir, state);
  };
  try {
    if (dns.applyMany && items.length > 1) {
      const ttls = new Map(items.map(({ p }) => [p.owner, p.ttl]));
      await dns.applyMany(
        items.map(({ p, add, remove }) => ({
          owner: p.owner,
          add: add.map(plain),
          remove: remove.map(plain),
        })),
        (o) => ttls.get(o) ?? 3600,
      );
      confirm(items);
    } else {
      for (const item of items) {
        await dns.apply(
          item.p.owner,
          { add: item.add.map(plain), remove: item.remove.map(plain) },
          item.p.ttl,
        );
        confirm([item]);
      }
    }
  } catch (e) {
    throw asProviderError(dns.name, e);
  }
}

function byProvider<T extends { p: OwnerPlan }>(items: T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) {
    const list = m.get(i.p.provider);
    if (list) list.push(i);
    else m.set(i.p.provider, [i]);
  }
  return m;
}

async function flushAll(providers: Map<string, DnsProvider>): Promise<void> {
  for (const provider of providers.values()) {
    try {
      await provider.flush?.();
    } catch (e) {
      throw asProviderError(provider.name, e);
    }
  }
}

/** Mark records seen on every authoritative server (once), so that they can become live, and
 *  remember the TTL the servers serve them with until they are live. */
async function observePropagation(
  records: OwnedRecord[],
  view: PropagationView,
  state: StateFile,
  now: Date,
  progress?: (l: string) => void,
  network?: NetworkError[],
): Promise<string[]> {
  const notes: string[] = [];
  const byOwner = new Map<string, OwnedRecord[]>();
  for (const r of records) {
    const live = liveAt(r, true, factsAt(state, r.owner));
    if (r.status !== 'published' || (live && live.getTime() <= now.getTime())) continue;
    byOwner.set(r.owner, [...(byOwner.get(r.owner) ?? []), r]);
  }
  for (const [owner, recs] of byOwner) {
    try {
      const { seen, lagging, ttl } = await view.propagated(owner, recs);
      // The moment of observation, not the run's start: the 2×TTL count starts here.
      const observed = new Date(Math.max(Date.now(), now.getTime()));
      const seenAt = observed.toISOString();
      for (const s of seen) {
        const o = find(state, recs.find((r) => recordKey(r) === recordKey(s))!)!;
        if (!o.seenAt) upsert(state, { ...o, seenAt });
      }
      if (ttl) noteTtl(state, owner, ttl, 'after-write', observed);
      if (lagging.length) {
        notes.push(`${owner}: not on every authoritative server yet: ${lagging.join('; ')}`);
        progress?.(`${owner}: waiting for ${lagging.join('; ')}`);
      }
    } catch (e) {
      if (e instanceof NetworkError) noteNetwork(network, e);
      else notes.push(`${owner}: cannot check the authoritative servers: ${(e as Error).message}`);
    }
  }
  return notes;
}

const shortOther = (r: TlsaRecord): string =>
  `${r.usage} ${r.selector} ${r.matching} ${r.data.slice(0, 12)}…`;

const otherRecord = (owner: string, rdata: string): TlsaRecord => ({ owner, ...parseRdata(rdata) });

/** Records at the owners of a chain's records that tlsa does not own but that match the chain
 *  (another host's tlsa published them, or someone by hand): they count for it once live. */
function othersFor(
  c: Computed,
  state: StateFile,
  provider: string,
  owners: Set<string>,
  chain: ServiceChain,
): TlsaRecord[] {
  const certs = chain.certs.map((x) => x.x509);
  return [...owners].flatMap((owner) =>
    (c.listed.get(owner) ?? []).filter(
      (r) =>
        !state.records.some((o) => o.provider === provider && recordKey(o) === recordKey(r)) &&
        recordMatchesChain(r, certs),
    ),
  );
}

/** When another writer's record counts as live (see lifecycle.ts observedLiveAt), or undefined
 *  while tlsa has not seen it on every authoritative server. */
function otherLiveAt(c: Computed, state: StateFile, r: TlsaRecord): Date | undefined {
  const seenAt = state.observed?.[r.owner]?.[rdataText(r)];
  if (!seenAt) return undefined;
  const ttl =
    Math.max(0, ...c.targets.records.filter((d) => d.owner === r.owner).map((d) => d.ttl)) || 3600;
  return observedLiveAt(r, seenAt, ttl, factsAt(state, r.owner));
}

/** Remember when every authoritative server first served each of another writer's records
 *  (the age of such a record counts from then), and the TTL they serve it with. */
async function observeOthers(
  records: TlsaRecord[],
  view: PropagationView,
  state: StateFile,
  now: Date,
  progress?: (l: string) => void,
  network?: NetworkError[],
): Promise<string[]> {
  const notes: string[] = [];
  const byOwner = new Map<string, TlsaRecord[]>();
  for (const r of records) byOwner.set(r.owner, [...(byOwner.get(r.owner) ?? []), r]);
  for (const [owner, recs] of byOwner) {
    try {
      const { seen, lagging, ttl } = await view.propagated(owner, recs);
      const observed = new Date(Math.max(Date.now(), now.getTime()));
      const at = { ...state.observed?.[owner] };
      for (const x of seen) at[rdataText(x)] ??= observed.toISOString();
      for (const x of recs.filter((r) => !seen.some((y) => recordKey(y) === recordKey(r))))
        delete at[rdataText(x)];
      const { [owner]: _before, ...rest } = state.observed ?? {};
      state.observed = Object.keys(at).length ? { ...rest, [owner]: at } : rest;
      if (ttl) noteTtl(state, owner, ttl, 'after-write', observed);
      if (lagging.length) {
        notes.push(
          `${owner}: another writer's record is not on every authoritative server yet: ${lagging.join('; ')}`,
        );
        progress?.(`${owner}: waiting for ${lagging.join('; ')}`);
      }
    } catch (e) {
      if (e instanceof NetworkError) noteNetwork(network, e);
      else notes.push(`${owner}: cannot check the authoritative servers: ${(e as Error).message}`);
    }
  }
  return notes;
}

/** The engine. Every entry point calls this with the steps it wants. */
export async function runEngine(config: LoadedConfig, opts: EngineOptions): Promise<EngineResult> {
  // Every chain, key and catalog is read once before the lock is taken: bad input fails at
  // once, not after waiting for another run, and never while this run holds the lock.
  computeTargets(config, selectServices(config, opts.services), opts.now ?? new Date());
  return withStateLock(config, opts, () => runLocked(config, opts));
}

/** Every entry point that reads and writes the state does so under the one lock. */
async function withStateLock<T>(
  config: LoadedConfig,
  opts: RunOptions,
  fn: () => Promise<T>,
): Promise<T> {
  ensureStateDir(config.stateDir);
  const release = await acquireLock(config.stateDir, {
    command: opts.entryPoint,
    waitSeconds: opts.lockWaitSeconds ?? 60,
    onWait: (h, ms) =>
      opts.progress?.(
        `waiting for the lock held by ${h ? `pid ${h.pid} (${h.command})` : 'another run'}: ${Math.round(ms / 1000)} s so far`,
      ),
  });
  try {
    return await fn();
  } finally {
    release();
  }
}

async function runLocked(config: LoadedConfig, opts: EngineOptions): Promise<EngineResult> {
  const now = opts.now ?? new Date();
  const stamp = now.toISOString();
  const dir = config.stateDir;
  const by = actor(opts.entryPoint);
  const write = !opts.dryRun;
  const state = readState(dir);
  let c = await computePlan(config, opts, state);
  const firstPlan = c.plan;
  if (c.targets.validityProblems.length && !opts.force && opts.add !== false) {
    throw new InputError(
      `refusing to publish records for invalid certificates (use --force to publish anyway):\n  ${c.targets.validityProblems.join('\n  ')}`,
    );
  }
  settle(state, c, stamp);
  if (write) writeState(dir, state);

  const propagationView =
    opts.propagation ??
    (config.raw.verify.propagation ? dnsPropagation(config, opts.progress) : undefined);
  let added = 0;
  if (opts.add !== false && write) {
    const adds = c.plan
      .filter((p) => p.add.length)
      .map((p) => ({ p, add: p.add, remove: [] as OwnedRecord[] }));
    // Only where a wait will rely on it: a plain `publish` of services without staged install
    // sends no DNS query (the README's quick start stays on the machine).
    const relies = (p: OwnerPlan) =>
      opts.checkServed ||
      opts.observeAll ||
      p.add.some((a) => config.raw.services[a.service]?.install);
    const observed = adds.filter((a) => relies(a.p)).map((a) => a.p.owner);
    if (propagationView && observed.length)
      await observeBeforeWrite(
        observed,
        propagationView,
        state,
        new Date(Math.max(Date.now(), now.getTime())),
        opts.progress,
      );
    // `ttl:` lowered since tlsa's records there were published: caches may hold the RRset with
    // the old TTL, asked or not, so the wait of what is added now counts from it.
    const recordsAt = groupBy(state.records, (r) => r.owner);
    for (const { p } of adds) {
      const old = Math.max(
        0,
        ...(recordsAt.get(p.owner) ?? [])
          .filter(
            (r) => r.owner === p.owner && r.provider === p.provider && r.status === 'published',
          )
          .map((r) => r.ttl),
      );
      if (old > p.ttl)
        noteTtl(
          state,
          p.owner,
          { ttl: old, of: 'rrset', records: state.records.filter((r) => r.owner === p.owner) },
          'before-write',
          new Date(Math.max(Date.now(), now.getTime())),
        );
    }
    for (const [provider, items] of byProvider(adds)) {
      await applyChanges(c, provider, items, state, dir, by, opts.progress);
      added += items.reduce((n, i) => n + i.add.length, 0);
    }
    await flushAll(c.providers);
  }

  const network: NetworkError[] = [];
  const liveOf = (r: OwnedRecord) => liveAt(r, !!propagationView, factsAt(state, r.owner));
  const isLive = (r: OwnedRecord | undefined) =>
    !!r && liveOf(r) !== undefined && liveOf(r)!.getTime() <= now.getTime();

  if (opts.observeAll && propagationView) {
    const chosen = new Set(c.targets.services.map((x) => x.service));
    const pending = state.records.filter(
      (r) => chosen.has(r.service) && r.status === 'published' && !isLive(r),
    );
    if (pending.length) {
      for (const n of await observePropagation(
        pending,
        propagationView,
        state,
        now,
        opts.progress,
        network,
      ))
        opts.progress?.(n);
      if (write) writeState(dir, state);
    }
  }

  // Records of other writers that match a chain count once they are live too: their age counts
  // from when tlsa first saw them on every authoritative server (or listed by the provider, when
  // propagation is not checked). tlsa never removes them.
  const isOtherLive = (r: TlsaRecord) => {
    const at = otherLiveAt(c, state, r);
    return !!at && at.getTime() <= now.getTime();
  };
  const observeOtherWriters = async (others: TlsaRecord[]): Promise<string[]> => {
    if (propagationView)
      return observeOthers(
        others.filter((r) => !isOtherLive(r)),
        propagationView,
        state,
        now,
        opts.progress,
        network,
      );
    const listedAt = new Date(Math.max(Date.now(), now.getTime())).toISOString();
    for (const r of others)
      state.observed = {
        ...state.observed,
        [r.owner]: { [rdataText(r)]: listedAt, ...state.observed?.[r.owner] },
      };
    return [];
  };
  const otherWait = (others: TlsaRecord[]): string => {
    const seen = others.filter((r) => state.observed?.[r.owner]?.[rdataText(r)]);
    const which = others.map((r) => shortOther(r)).join(', ');
    if (!seen.length)
      return `another writer's record (${which}) to reach every authoritative server, then 2×TTL`;
    const waits = seen
      .map((r) =>
        waitTtl(
          observedRecord(
            r,
            state.observed![r.owner]![rdataText(r)]!,
            Math.max(
              0,
              ...c.targets.records.filter((d) => d.owner === r.owner).map((d) => d.ttl),
            ) || 3600,
          ),
          factsAt(state, r.owner),
        ),
      )
      .sort((a, b) => a.ttl - b.ttl);
    // Nobody told tlsa the other writer's TTL: its own for the name stands in, raised by what
    // the servers were seen serving.
    const w =
      waits[0]!.why === "tlsa's TTL, as published"
        ? {
            ...waits[0]!,
            why: "tlsa's TTL for the name (the servers were seen serving no larger one)",
          }
        : waits[0]!;
    return `another writer's record (${which}) to be 2×TTL old (${describeWait(w)}), counted from when tlsa first saw it ${propagationView ? 'on every authoritative server' : 'at the provider'}`;
  };

  /** Whether a chain matches a live record now (tlsa's own or another writer's), after asking
   *  the authoritative servers about those not yet seen there, and the earliest moment one
   *  turns live. The staged install and the hook's served-chain check both ask this. */
  const chainLiveness = async (svc: ServiceTargets, chain: ServiceChain, bootstrap: boolean) => {
    const matching = c.targets.records.filter(
      (d) => d.service === svc.service && d.chains.includes(chain.label),
    );
    const owned = matching.map((d) => find(state, d)).filter((o): o is OwnedRecord => !!o);
    if (!bootstrap && propagationView && !owned.some(isLive)) {
      for (const n of await observePropagation(
        owned,
        propagationView,
        state,
        now,
        opts.progress,
        network,
      ))
        opts.progress?.(n);
      if (write) writeState(dir, state);
    }
    const others =
      bootstrap || owned.some(isLive)
        ? []
        : othersFor(c, state, svc.provider, new Set(matching.map((d) => d.owner)), chain);
    if (others.length && !others.some(isOtherLive)) {
      for (const n of await observeOtherWriters(others)) opts.progress?.(n);
      if (write) writeState(dir, state);
    }
    const fresh = owned.map((o) => find(state, o)!);
    const etas = [...fresh.map(liveOf), ...others.map((r) => otherLiveAt(c, state, r))].filter(
      (d): d is Date => !!d,
    );
    const eta = etas.length ? new Date(Math.min(...etas.map((d) => d.getTime()))) : undefined;
    return { owned, others, live: fresh.some(isLive) || others.some(isOtherLive), eta };
  };

  // Promotion: a staged chain is installed once a record that matches it is live, for every
  // service that reads the installed copy; one install per copy, one reload per command.
  const promoted: Promotion[] = [];
  const waiting: ChainWait[] = [];
  if (opts.promote !== false) {
    const copies = new Map<
      string,
      { copy: InstalledCopy; chain: ServiceChain; ready: string[]; blocked: string[] }
    >();
    for (const svc of c.targets.services) {
      for (const chain of svc.chains.filter((x) => x.role === 'staged')) {
        const { owned, others, live, eta } = await chainLiveness(svc, chain, !!chain.bootstrap);
        const copy = copyOf(config, svc.service, chain.sourceName);
        const group = copies.get(copy.key) ?? { copy, chain, ready: [], blocked: [] };
        copies.set(copy.key, group);
        if (!chain.bootstrap && !live) {
          const waits = owned
            .map((o) => waitTtl(find(state, o)!, factsAt(state, o.owner)))
            .sort((a, b) => a.ttl - b.ttl);
          const span = waits.length ? describeWait(waits[0]!) : '2×TTL';
          const reason =
            owned.length || !others.length
              ? owned.some((o) => o.status === 'published' && !o.seenAt && propagationView)
                ? `its records to reach every authoritative server, then ${span}`
                : `its records to be 2×TTL old (${span})`
              : otherWait(others);
          waiting.push({
            service: svc.service,
            chain: chain.label,
            reason,
            ...(eta ? { eta } : {}),
          });
          group.blocked.push(svc.service);
          continue;
        }
        group.ready.push(svc.service);
      }
    }
    const chosen = new Set(c.targets.services.map((x) => x.service));
    const installs: { copy: InstalledCopy; chain: ServiceChain }[] = [];
    for (const { copy, chain, ready, blocked } of copies.values()) {
      // A shared copy changes what every sharer serves: all of them must be ready.
      const outside = copy.services.filter((x) => !chosen.has(x));
      if (blocked.length || outside.length) {
        const why = blocked.length
          ? `${blocked.join(', ')} (records not live yet)`
          : `${outside.join(', ')} (not part of this run)`;
        for (const x of ready)
          waiting.push({
            service: x,
            chain: chain.label,
            reason: `its installed copy ${copy.name} is shared with ${why}`,
          });
        continue;
      }
      if (!write)
        promoted.push({ service: ready.join(', '), source: copy.name, chain: chain.label });
      else installs.push({ copy, chain });
    }
    if (write)
      promoted.push(...(await installAndReload(config, installs, chosen, now, opts.progress)));
  }
  const served: EngineResult['served'] = [];
  if (opts.checkServed) {
    for (const svc of c.targets.services) {
      if (config.raw.services[svc.service]!.install) continue;
      for (const chain of svc.chains.filter((x) => x.role === 'served')) {
        const { live, eta } = await chainLiveness(svc, chain, false);
        served.push({ service: svc.service, chain: chain.label, live, ...(eta ? { eta } : {}) });
      }
    }
  }
  if (promoted.length && write) {
    // What is served changed: the previous chains' records now start their grace.
    c = await computePlan(config, opts, state, c.providers);
    settle(state, c, stamp);
    writeState(dir, state);
  }

  // Retirement: grace over, and no live server presents a chain the record matches.
  const held: EngineResult['held'] = [];
  // Remembered in the state, so that `status` (which reads only the state) and `plan` say why.
  const hold = (record: OwnedRecord, why: string) => {
    held.push({ record, why });
    const o = find(state, record);
    if (o)
      upsert(state, {
        ...o,
        held: { why, at: new Date(Math.max(Date.now(), now.getTime())).toISOString() },
      });
  };
  const retired: OwnedRecord[] = [];
  let removed = 0;
  if (opts.retire !== false) {
    const due = c.plan.flatMap((p) => p.remove.map((r) => ({ p, r })));
    const liveView =
      due.length && config.raw.verify.probe
        ? (opts.live ?? liveProbe(config, opts.progress))
        : undefined;
    const seenChains = new Map<string, Awaited<ReturnType<LiveView['servedChains']>>>();
    const removable = new Map<OwnerPlan, OwnedRecord[]>();
    for (const { p, r } of due) {
      if (liveView) {
        const svc = config.raw.services[r.service];
        if (svc) {
          const key = r.service;
          if (!seenChains.has(key)) {
            const ports = servicePorts(svc);
            opts.progress?.(
              `probing ${svc.host} (ports ${ports.map((x) => `${x.port} ${x.protocol}`).join(', ')}) before removing records`,
            );
            seenChains.set(key, await servedOrKept(liveView, svc.host, ports, network));
          }
          const seen = seenChains.get(key)!;
          const user = seen.chains.find((x) => recordMatchesChain(r, x.chain));
          if (user) {
            hold(
              r,
              `${user.address} port ${user.port} still presents a chain it matches (${user.keyType})`,
            );
            continue;
          }
          if (seen.errors.length) {
            hold(r, `the live probe could not check every address: ${seen.errors.join('; ')}`);
            continue;
          }
        }
      }
      retired.push(r);
      removable.set(p, [...(removable.get(p) ?? []), r]);
    }
    if (write && held.length) writeState(dir, state);
    if (write) {
      const removals = [...removable].map(([p, recs]) => ({
        p,
        add: [] as OwnerPlan['add'],
        remove: recs,
      }));
      for (const [provider, items] of byProvider(removals)) {
        await applyChanges(c, provider, items, state, dir, by, opts.progress);
        removed += items.reduce((n, i) => n + i.remove.length, 0);
      }
      if (removed) await flushAll(c.providers);
    }
  }
  const { providers: _p, ...rest } = c;
  // Show the plan this run started from; removals decided after a promotion are in `retired`.
  const nextDue = nextDueFor(config, state.records, {
    services: opts.services,
    now,
    propagationChecked: !!propagationView,
    factsAt: (o) => factsAt(state, o),
    observed: state.observed,
  });
  return {
    ...rest,
    plan: firstPlan,
    added,
    removed,
    promoted,
    waiting,
    held,
    retired,
    served,
    network,
    nextDue,
  };
}

/** The live probe before a removal; when it cannot see every address the records stay, and
 *  the run says why (exit 3). */
async function servedOrKept(
  view: LiveView,
  host: string,
  ports: PortProtocol[],
  network: NetworkError[],
): Promise<ServedChains> {
  let seen: ServedChains;
  try {
    seen = await view.servedChains(host, ports);
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    noteNetwork(network, e);
    return { chains: [], errors: [e.message] };
  }
  if (seen.errors.length) {
    noteNetwork(
      network,
      new NetworkError(
        `the live probe of ${host} could not check every address, so records it might still need are kept: ${seen.errors.join('; ')}`,
        `is ${host} reachable from here on port${ports.length === 1 ? '' : 's'} ${ports.map((x) => x.port).join(', ')}? (verify.probe: false skips the probe)`,
      ),
    );
  }
  return seen;
}

/** The installed copy a service's chain goes to (shared when several services read it). */
function copyOf(config: LoadedConfig, service: string, name: string): InstalledCopy {
  for (const copy of config.installs.values())
    if (copy.name === name && copy.services.includes(service)) return copy;
  const install = config.raw.services[service]!.install!;
  return {
    key: `${service}/${name}`,
    dir: resolve(config.baseDir, install.dir),
    name,
    services: [service],
  };
}

/** Install each copy once, then run each distinct reload command of the services reading a
 *  changed copy once (also those a killed or failed run left undone). A copy's pending marker
 *  is cleared only when every reload command of its readers succeeded. */
async function installAndReload(
  config: LoadedConfig,
  installs: { copy: InstalledCopy; chain: ServiceChain }[],
  chosen: Set<string>,
  now: Date,
  progress?: (l: string) => void,
): Promise<Promotion[]> {
  const done: { copy: InstalledCopy; promotion: Promotion }[] = [];
  const installing = new Set(installs.map((i) => i.copy.key));
  for (const copy of config.installs.values()) {
    if (
      installing.has(copy.key) ||
      !copy.services.some((x) => chosen.has(x)) ||
      !reloadPending(copy.dir, copy.name)
    )
      continue;
    progress?.(
      `${copy.services.join(', ')}: the reload after installing ${copy.name} did not finish last time; reloading now`,
    );
    done.push({
      copy,
      promotion: {
        service: copy.services.join(', '),
        source: copy.name,
        chain: installPaths(copy.dir, copy.name).fullchain,
      },
    });
  }
  for (const { copy, chain } of installs) {
    const { fullchainPem, keyPem } = stagedFiles(chain);
    // The marker goes first: a run killed after the switch but before the reload finished
    // leaves it, and the next run reloads (nothing would be staged any more to tell it).
    markReloadPending(copy.dir, copy.name);
    const release = installRelease(
      copy.dir,
      copy.name,
      fullchainPem,
      keyPem,
      now,
      config.keyAccess.get(copy.services[0]!),
    );
    progress?.(
      `${copy.services.join(', ')}: installed ${chain.label} as ${release}${chain.bootstrap ? ' (first install)' : ''}`,
    );
    done.push({
      copy,
      promotion: {
        service: copy.services.join(', '),
        source: copy.name,
        chain: chain.label,
        release,
      },
    });
  }
  const reloadsOf = (copy: InstalledCopy) => [
    ...new Set(
      copy.services
        .map((x) => config.raw.services[x]?.install?.reload)
        .filter((x): x is string => !!x),
    ),
  ];
  const timeouts = new Map<string, number>();
  for (const { copy } of done) {
    for (const x of copy.services) {
      const install = config.raw.services[x]?.install;
      if (install?.reload)
        timeouts.set(
          install.reload,
          Math.max(timeouts.get(install.reload) ?? 0, install.reload_timeout_s),
        );
    }
  }
  const results = new Map<string, Awaited<ReturnType<typeof runCommand>>>();
  for (const [command, timeout] of timeouts)
    results.set(command, await runCommand(command, timeout * 1000, config.baseDir));
  for (const { copy, promotion } of done) {
    const commands = reloadsOf(copy);
    const failed = commands
      .map((x) => results.get(x)!)
      .filter((r): r is { ok: false; message: string } => !r.ok);
    if (failed.length) {
      promotion.reloaded = false;
      promotion.reloadError = `${failed.map((r) => r.message).join('; ')} (retried on the next run)`;
      continue;
    }
    clearReloadPending(copy.dir, copy.name);
    if (commands.length) promotion.reloaded = true;
  }
  return done.map((d) => d.promotion);
}

/** `tlsa publish`. */
export function publish(config: LoadedConfig, opts: RunOptions): Promise<EngineResult> {
  return runEngine(config, opts);
}

function plain(r: TlsaRecord): TlsaRecord {
  return {
    owner: r.owner,
    usage: r.usage,
    selector: r.selector,
    matching: r.matching,
    data: r.data,
  };
}

function asProviderError(name: string, e: unknown): Error {
  if (e instanceof ProviderError || e instanceof InputError) return e;
  return new ProviderError(name, (e as Error).message ?? String(e), { cause: e });
}

export function readOwned(config: LoadedConfig): StateFile {
  return readState(config.stateDir);
}

export interface AdoptResult extends PlanResult {
  adoption: Adoption;
}

/** `tlsa adopt`: take ownership of published records equal to desired ones, and of records
 *  carrying tlsa's marker (see adopt.ts). Changes the state only, never DNS. */
export async function adoptPublished(
  config: LoadedConfig,
  opts: RunOptions & { dryRun?: boolean },
): Promise<AdoptResult> {
  return withStateLock(config, opts, async () => {
    const state = readState(config.stateDir);
    const { providers, ...c } = await computePlan(config, opts, state);
    const marked = new Map<string, Set<string>>();
    for (const [name, dns] of providers) {
      const owners = [
        ...new Set(
          c.plan.filter((p) => p.provider === name && p.foreign.length).map((p) => p.owner),
        ),
      ];
      if (!dns.markedKeys || !owners.length) continue;
      try {
        marked.set(name, await dns.markedKeys(owners));
      } catch (e) {
        throw asProviderError(dns.name, e);
      }
    }
    const adoption = adoptionFor(
      c.plan,
      marked,
      state,
      opts.now ?? new Date(),
      actor(opts.entryPoint),
    );
    if (!opts.dryRun && (adoption.desired.length || adoption.marked.length)) {
      state.records.push(...adoption.desired, ...adoption.marked);
      writeState(config.stateDir, state);
    }
    return { ...c, adoption };
  });
}
