/** `tlsa daemon [--once]`: the engine on a schedule. One run at a time (the shared lock);
 *  SIGTERM/SIGINT finish the current step and exit; SIGHUP reloads the configuration.
 *  Between runs it sleeps until the next scheduled run (`interval_s` or the cron `schedule`)
 *  or, when that is sooner, until the engine says a step is due (a record turning live, a
 *  grace ending, a re-check, a retry after a failure): a staged chain is installed as soon as
 *  its records are live, not up to an interval later. Another run changing the state (the
 *  ACME hook staging a chain) can move the wake-up earlier. Services with `acme:` are renewed
 *  before the run when a lineage is due, and the daemon wakes at the next renewal time
 *  (daemon-renew.ts). */
import { watch, type FSWatcher } from 'node:fs';
import type { LoadedConfig } from '../config/load.js';
import { nextDueFor, retryDelaySeconds, type Due } from '../engine/due.js';
import { runEngine, type EngineResult } from '../engine/reconcile.js';
import { InputError } from '../errors.js';
import { readState, STATE_FILE } from '../engine/state.js';
import type { DaemonMonitor } from '../monitor/daemon-monitor.js';
import { configFromCli, duration, runOptions } from './common.js';
import { keepHeapSmall, releaseRunMemory } from './daemon-memory.js';
import { renewalMemo, renewalWake, renewDue } from './daemon-renew.js';
import { engineEvents, engineJson } from './engine-view.js';
import {
  addWarning,
  fail,
  printJson,
  progressLine,
  reportNetwork,
  stampLines,
  warn,
} from './fail.js';
import type { CliValues } from './options.js';

/** Never sleep less than this: a step that is due "now" again right after a run must not spin. */
const MIN_SLEEP_MS = 1000;
/** Wake just after the due moment, so that the run's own clock sees it as due. */
const WAKE_MARGIN_MS = 5;
/** State writes come in bursts (intent, confirmation): look once the burst is over. */
const STATE_SETTLE_MS = 200;

async function scheduledRun(config: LoadedConfig, now: number): Promise<Due> {
  const { schedule, interval_s } = config.raw.daemon;
  const interval = {
    at: new Date(now + interval_s * 1000),
    why: `daemon.interval_s ${interval_s}`,
  };
  if (!schedule) return interval;
  const { Cron } = await import('croner');
  const next = new Cron(schedule, { paused: true }).nextRun(new Date(now));
  return next ? { at: next, why: `daemon.schedule "${schedule}"` } : interval;
}

const earliest = (...xs: (Due | undefined)[]): Due =>
  xs.filter((x): x is Due => !!x).reduce((a, b) => (b.at.getTime() < a.at.getTime() ? b : a));

/** "<lead> in 5m (<time>): <why>"; with --log-format json a "wake" event. `after`: this run,
 *  a state change another run made while sleeping, or (--once) the step the next timer run
 *  should find due. */
function reportWake(
  lead: string,
  w: Due,
  after: 'run' | 'state-change' | 'once',
): { at: string; why: string } {
  const ms = Math.max(MIN_SLEEP_MS, w.at.getTime() - Date.now());
  const at = new Date(Date.now() + ms).toISOString();
  progressLine(`${lead} in ${duration(ms / 1000)} (${at}): ${w.why}`, {
    event: 'wake',
    fields: { at, inSeconds: Math.round(ms / 1000), why: w.why, after },
  });
  return { at, why: w.why };
}

/** Sleep until `first` (or an earlier due moment another run's state change reveals), or
 *  until `interrupt` is called (signals). */
function sleepUntil(
  config: LoadedConfig,
  v: CliValues,
  first: Due,
  setInterrupt: (f: (() => void) | undefined) => void,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let current = first;
    let timer: NodeJS.Timeout | undefined;
    let settle: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    const done = () => {
      clearTimeout(timer);
      clearTimeout(settle);
      watcher?.close();
      setInterrupt(undefined);
      resolve();
    };
    const arm = (w: Due) => {
      current = w;
      const until = Math.max(Date.now() + MIN_SLEEP_MS, w.at.getTime() + WAKE_MARGIN_MS);
      // A timer counts from the event loop's cached time and can fire early by as much as that
      // is stale: a run started a few ms before the due moment would find nothing due and sleep.
      const tick = () => {
        const left = until - Date.now();
        if (left > 0) timer = setTimeout(tick, left);
        else done();
      };
      clearTimeout(timer);
      timer = setTimeout(tick, until - Date.now());
    };
    const recheck = () => {
      let state;
      try {
        state = readState(config.stateDir);
      } catch {
        return; // the next run reports a damaged state
      }
      const due = nextDueFor(config, state.records, {
        services: v.service,
        now: new Date(),
        propagationChecked: config.raw.verify.propagation,
        factsAt: (o) => state.ttls?.[o] ?? [],
        observed: state.observed,
      });
      if (due && due.at.getTime() < current.at.getTime()) {
        arm(due);
        reportWake('the state changed: next run', due, 'state-change');
      }
    };
    setInterrupt(done);
    arm(first);
    try {
      watcher = watch(config.stateDir, (_event, name) => {
        if (name !== null && name !== STATE_FILE) return;
        clearTimeout(settle);
        settle = setTimeout(recheck, STATE_SETTLE_MS);
      });
      watcher.on('error', (e) => {
        progressLine(
          `stopped watching ${config.stateDir} (${e.message}): changes by other runs wait for the next run`,
          { level: 'warn', event: 'watch-failed', fields: { dir: config.stateDir } },
        );
        watcher?.close();
      });
    } catch (e) {
      progressLine(
        `cannot watch ${config.stateDir} (${(e as Error).message}): changes by other runs wait for the next run`,
        { level: 'warn', event: 'watch-failed', fields: { dir: config.stateDir } },
      );
    }
    // A write between the end of the run and the start of the watch.
    recheck();
    // What that look built is garbage now too: the sleep starts from what is live.
    releaseRunMemory();
  });
}

export async function run(v: CliValues): Promise<number> {
  stampLines(v['log-format']);
  keepHeapSmall();
  let config = configFromCli(v);
  const monitor = await startMonitorFor(config, v);
  let stopping = false;
  let reload = false;
  let wake: (() => void) | undefined;
  const onStop = () => {
    stopping = true;
    progressLine('stopping after the current step', { event: 'stopping' });
    wake?.();
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    reload = true;
    wake?.();
  });
  let lastCode = 0;
  let failures = 0;
  const renewals = renewalMemo();
  for (;;) {
    if (reload) {
      reload = false;
      try {
        config = configFromCli(v);
        monitor?.reconfigure(config);
        progressLine(`reloaded ${config.file}`, {
          event: 'config-reloaded',
          fields: { file: config.file },
        });
      } catch (e) {
        // With --json not an output of its own: a warning in the envelope of the run that follows.
        lastCode = fail(e, { json: false });
        addWarning(
          `${e instanceof InputError ? e.located : (e as Error).message}: keeping the previous configuration`,
        );
        progressLine('keeping the previous configuration', {
          level: 'warn',
          event: 'config-kept',
          fields: { file: config.file },
        });
      }
    }
    const { code, due, waiting, error: runError, json } = await oneRun(config, v, renewals);
    lastCode = code;
    monitor?.runFinished({
      at: new Date(),
      exitCode: lastCode,
      ...(runError ? { error: runError } : {}),
      ...(waiting ? { waiting } : {}),
    });
    // A failed run (or a failed reload, which the next run retries) is retried with backoff.
    failures = lastCode === 0 ? 0 : failures + 1;
    const retry = failures
      ? {
          at: new Date(
            Date.now() + retryDelaySeconds(failures, config.raw.daemon.interval_s) * 1000,
          ),
          why: `retry after ${failures} failed run(s) in a row`,
        }
      : undefined;
    // With --json, one envelope per run: a failed run printed its own (fail()).
    const printRun = (next: { at: string; why: string } | null) => {
      if (json) printJson('daemon', lastCode, { ...json, next });
    };
    if (v.once || stopping) {
      const renewal = v.once ? renewalWake(config, v.service, renewals, new Date()) : undefined;
      const step = due || renewal ? earliest(due, renewal) : undefined;
      printRun(v.once && step ? reportWake('next step due', step, 'once') : null);
      await monitor?.close();
      return lastCode;
    }
    // What the run built is garbage now (oneRun has returned): collected before the look at
    // the state that the sleep starts with, so that this does not add to it.
    releaseRunMemory();
    const next = earliest(
      await scheduledRun(config, Date.now()),
      due,
      retry,
      renewalWake(config, v.service, renewals, new Date()),
    );
    printRun(reportWake('next run', next, 'run'));
    monitor?.nextRun(next);
    await sleepUntil(config, v, next, (f) => {
      wake = f;
    });
    if (stopping) {
      await monitor?.close();
      return lastCode;
    }
  }
}

/** What the loop keeps of a run. The engine's result (every target, plan entry and state
 *  record: tens of MB at 10,000 services) lives in oneRun's frame only: a suspended async
 *  function keeps each of its locals, so the loop, which sleeps, must never hold it. */
interface RunOutcome {
  code: number;
  due?: Due;
  waiting?: EngineResult['waiting'];
  error?: unknown;
  /** With --json: the run's fields of its envelope. */
  json?: ReturnType<typeof engineJson>;
}

async function oneRun(
  config: LoadedConfig,
  v: CliValues,
  renewals: ReturnType<typeof renewalMemo>,
): Promise<RunOutcome> {
  let json: RunOutcome['json'];
  try {
    const opts = runOptions(v, 'daemon');
    // A renewal failure is logged and retried on its own schedule; the run goes on.
    const renewCode = await renewDue(
      config,
      { services: v.service, lockWaitSeconds: opts.lockWaitSeconds },
      renewals,
      new Date(),
    );
    // After the renewals: a new certificate is valid from its issuance.
    const now = new Date();
    const result = await runEngine(config, { ...opts, now, observeAll: true });
    if (v.json) json = engineJson(result);
    warn(result.targets.warnings);
    for (const e of engineEvents(result, now)) progressLine(e.message, e);
    if (result.added || result.removed)
      progressLine(`published ${result.added}, removed ${result.removed}`, {
        event: 'published',
        fields: { added: result.added, removed: result.removed },
      });
    const code = reportNetwork(result.network, result.promoted.some((p) => p.reloadError) ? 3 : 0);
    reportWaits(result);
    return { code: code || renewCode, due: result.nextDue, waiting: result.waiting, json };
  } catch (e) {
    return { code: fail(e), error: e, ...(json ? { json } : {}) };
  }
}

/** "waiting: …": the chains waiting to be installed and the records retiring. */
function reportWaits(result: EngineResult): void {
  const retiring = result.plan.flatMap((p) => p.retiring);
  const waits = [
    ...result.waiting.map(
      (w) =>
        `${w.chain} waits for ${w.reason}${w.eta ? ` (${duration((w.eta.getTime() - Date.now()) / 1000)})` : ''}`,
    ),
    ...(retiring.length
      ? [
          `${retiring.length} record(s) retiring, next removal in ${duration(Math.min(...retiring.map((r) => r.due.getTime())) / 1000 - Date.now() / 1000)}`,
        ]
      : []),
  ];
  if (!waits.length) return;
  progressLine(`waiting: ${waits.join('; ')}`, {
    event: 'waiting',
    fields: {
      chains: result.waiting.map((w) => ({
        service: w.service,
        chain: w.chain,
        reason: w.reason,
        eta: w.eta?.toISOString() ?? null,
      })),
      retiring: retiring.length,
      ...(retiring.length
        ? {
            nextRemoval: new Date(Math.min(...retiring.map((r) => r.due.getTime()))).toISOString(),
          }
        : {}),
    },
  });
}

/** The metrics, health and status listener (monitor.listen), loaded only when configured;
 *  not for --once (a timer's run is over before anyone could scrape it). */
async function startMonitorFor(
  config: LoadedConfig,
  v: CliValues,
): Promise<DaemonMonitor | undefined> {
  if (v.once || !config.raw.monitor.listen) return undefined;
  const { startDaemonMonitor } = await import('../monitor/daemon-monitor.js');
  return startDaemonMonitor(config, {
    services: v.service,
    log: (line, level) => progressLine(line, { level, event: 'monitor' }),
  });
}
