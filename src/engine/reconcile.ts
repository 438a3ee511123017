/** The one engine every entry point goes through: compute targets, read the providers, plan,
 *  publish with write-ahead intents, follow each record's lifecycle, install staged chains
 *  once their records are live, and retire records nobody serves any more. Each step is a
 *  module in steps/; this file is their order. */
import type { LoadedConfig } from '../config/load.js';
import { InputError, WaitError } from '../errors.js';
import type { LockInfo } from '../util/file-lock.js';
import { nextDueFor } from './due.js';
import { acquireLock } from './lock.js';
import { dnsPropagation } from './observe.js';
import {
  save,
  type EngineOptions,
  type EngineResult,
  type RunContext,
  type RunOptions,
} from './run.js';
import { actor, ensureStateDir, hasStateFile, readState, type StateFile } from './state.js';
import { factsAt, settled } from './state-ops.js';
import { publishAdds } from './steps/apply.js';
import { computePlan } from './steps/compute.js';
import { previewPlan } from './steps/preview.js';
import { observeAndSave } from './steps/propagation.js';
import { promoteStaged } from './steps/promote.js';
import { retireDue } from './steps/retire.js';
import { checkServed } from './steps/served.js';
import { takeOver, type AdoptResult } from './steps/take-over.js';
import { computeTargets, selectServices, type Targets } from './targets.js';

export type {
  ChainWait,
  EngineOptions,
  EngineResult,
  PlanResult,
  Promotion,
  RunOptions,
  ServedCheck,
} from './run.js';
export type { AdoptResult } from './steps/take-over.js';

/** The engine. Every entry point calls this with the steps it wants. */
export async function runEngine(config: LoadedConfig, opts: EngineOptions): Promise<EngineResult> {
  // Every chain, key and catalog is read once before the lock is taken: bad input fails at
  // once, not after waiting for another run, and never while this run holds the lock.
  const targets = computeTargets(
    config,
    selectServices(config, opts.services),
    opts.now ?? new Date(),
  );
  // The run plans with them, unless it had to wait for another run: that one may have
  // installed staged chains meanwhile, so they are read again.
  return withStateLock(config, opts, (waited) =>
    runLocked(config, opts, waited ? undefined : targets),
  );
}

async function runLocked(
  config: LoadedConfig,
  opts: EngineOptions,
  targets: Targets | undefined,
): Promise<EngineResult> {
  const ctx = await start(config, opts, targets);
  const firstPlan = ctx.c.plan;
  const promote = opts.promote !== false;
  // A staged chain whose records are live already (a renewal with the next key) is served
  // before this run's DNS writes, not after them.
  const early = promote && ctx.write ? (await promoteStaged(ctx, 'readyNow')).promoted : [];
  if (early.length) await replan(ctx);
  const added = opts.add !== false && ctx.write ? await publishAdds(ctx) : 0;
  if (opts.observeAll) await observePending(ctx);
  const after = promote ? await promoteStaged(ctx) : { promoted: [], waiting: [] };
  const promoted = [...early, ...after.promoted];
  const { waiting } = after;
  const served = opts.checkServed ? await checkServed(ctx) : [];
  // What is served changed: the previous chains' records now start their grace.
  if (after.promoted.length && ctx.write) await replan(ctx);
  const retirement =
    opts.retire !== false ? await retireDue(ctx) : { held: [], retired: [], removed: 0 };
  const { providers: _p, ...rest } = ctx.c;
  return {
    ...rest,
    state: ctx.state,
    // The plan this run started from; removals decided after a promotion are in `retired`.
    plan: firstPlan,
    added,
    promoted,
    waiting,
    served,
    ...retirement,
    network: ctx.network,
    nextDue: nextDueFor(config, ctx.state.records, {
      services: opts.services,
      now: ctx.now,
      propagationChecked: !!ctx.propagation,
      factsAt: (o) => factsAt(ctx.state, o),
      observed: ctx.state.observed,
    }),
  };
}

/** Read the state, plan, refuse invalid certificates, settle what needs no DNS change. */
async function start(
  config: LoadedConfig,
  opts: EngineOptions,
  targets: Targets | undefined,
): Promise<RunContext> {
  const now = opts.now ?? new Date();
  const state = readState(config.stateDir);
  const c = await computePlan(config, opts, state, undefined, targets);
  if (c.targets.validityProblems.length && !opts.force && opts.add !== false) {
    throw new InputError(
      `refusing to publish records for invalid certificates (use --force to publish anyway):\n  ${c.targets.validityProblems.join('\n  ')}`,
    );
  }
  const ctx: RunContext = {
    config,
    opts,
    now,
    write: !opts.dryRun,
    by: actor(opts.entryPoint),
    state: settledBy(state, c, now),
    c,
    propagation:
      opts.propagation ??
      (config.raw.verify.propagation ? dnsPropagation(config, opts.progress) : undefined),
    network: [],
  };
  // Unchanged, the file is left as it is: rewriting it (17 MB at 10,000 services) was a good
  // part of a run that changes nothing.
  if (ctx.state !== state || !hasStateFile(config.stateDir)) save(ctx);
  return ctx;
}

const settledBy = (state: StateFile, c: RunContext['c'], now: Date): StateFile =>
  settled(state, { plan: c.plan, listed: c.listed, desired: c.targets.records }, now.toISOString());

/** The daemon: every pending record of the chosen services moves towards live, not only those
 *  a staged or served chain waits for. */
async function observePending(ctx: RunContext): Promise<void> {
  const chosen = new Set(ctx.c.targets.services.map((x) => x.service));
  const pending = ctx.state.records.filter(
    (r) => chosen.has(r.service) && r.status === 'published',
  );
  if (ctx.propagation && pending.length) await observeAndSave(ctx, pending, 'own');
}

async function replan(ctx: RunContext): Promise<void> {
  ctx.c = await computePlan(ctx.config, ctx.opts, ctx.state, ctx.c.providers);
  ctx.state = settledBy(ctx.state, ctx.c, ctx.now);
  save(ctx);
}

/** Every entry point that reads and writes the state does so under the one lock. `fn` learns
 *  whether another run held it first. */
async function withStateLock<T>(
  config: LoadedConfig,
  opts: RunOptions,
  fn: (waited: boolean) => Promise<T>,
): Promise<T> {
  ensureStateDir(config.stateDir);
  const lock = {
    command: opts.entryPoint,
    waitSeconds: opts.lockWaitSeconds ?? 60,
    onWait: (h: LockInfo | undefined, ms: number) =>
      opts.progress?.(
        `waiting for the lock held by ${h ? `pid ${h.pid} (${h.command})` : 'another run'}: ${Math.round(ms / 1000)} s so far`,
      ),
  };
  let waited = false;
  let release: () => void;
  try {
    release = await acquireLock(config.stateDir, { ...lock, waitSeconds: 0 });
  } catch (e) {
    if (!(e instanceof WaitError)) throw e;
    waited = true;
    release = await acquireLock(config.stateDir, lock);
  }
  try {
    return await fn(waited);
  } finally {
    release();
  }
}

/** `tlsa plan`: read-only. */
export const planOnly = previewPlan;

/** `tlsa publish`. */
export function publish(config: LoadedConfig, opts: RunOptions): Promise<EngineResult> {
  return runEngine(config, opts);
}

export function readOwned(config: LoadedConfig): StateFile {
  return readState(config.stateDir);
}

/** `tlsa adopt`, under the lock. */
export function adoptPublished(
  config: LoadedConfig,
  opts: RunOptions & { dryRun?: boolean },
): Promise<AdoptResult> {
  return withStateLock(config, opts, () => takeOver(config, opts));
}
