/** What `tlsa daemon` runs beside its loop when `monitor.listen` is set: the listener, what it
 *  remembers of its runs, and the periodic check of the served chains. */
import type { LoadedConfig } from '../config/load.js';
import type { Due } from '../engine/due.js';
import type { ChainWait } from '../engine/reconcile.js';
import { readState } from '../engine/state.js';
import { computeTargets, selectServices, type Targets } from '../engine/targets.js';
import { checkServedChains } from './check.js';
import { monitorModel, type DaemonFacts, type StagedChain } from './model.js';
import { classifyProviderError, ProviderErrorCounts } from './provider-errors.js';
import { checkListen, startMonitor, type MonitorServer } from './server.js';
import { acmeRenewals } from './renewals.js';
import { stagedChains } from './staged.js';
import { InputError, errnoCode } from '../errors.js';

export interface DaemonMonitor {
  /** Where it listens, e.g. "127.0.0.1:9153". */
  url: string;
  /** After each run: its exit code, the error that ended it (if any) and the staged chains it
   *  left waiting. Starts a check of the served chains. */
  runFinished(run: { at: Date; exitCode: number; error?: unknown; waiting?: ChainWait[] }): void;
  nextRun(due: Due): void;
  /** After SIGHUP: the services and checks follow the new configuration (the listener stays). */
  reconfigure(config: LoadedConfig): void;
  close(): Promise<void>;
}

export async function startDaemonMonitor(
  initial: LoadedConfig,
  opts: { services?: string[] | undefined; log: (line: string, level: 'info' | 'warn') => void },
): Promise<DaemonMonitor | undefined> {
  const m = initial.raw.monitor;
  if (!m.listen) return undefined;
  let listen: ReturnType<typeof checkListen>;
  try {
    listen = checkListen(m.listen, m.allow_remote);
  } catch (e) {
    // At its line in the configuration, keeping the hint.
    const at = initial.error(['monitor', 'listen'], (e as Error).message);
    throw new InputError(at.message, at.file, at.line, (e as InputError).hint);
  }
  let config = initial;
  const errors = new ProviderErrorCounts();
  const facts: DaemonFacts = {
    startedAt: new Date().toISOString(),
    staged: [],
    providerErrors: [],
  };
  // The chains staged now, as the last check cycle read them; undefined when they could not
  // be read (a renewal half-written): the last run's view stands in.
  let staged: StagedChain[] | undefined;
  let checking: Promise<void> | undefined;
  let again = false;
  const check = (): void => {
    if (checking) {
      again = true; // one more once this one is done: it may predate the run
      return;
    }
    // One reading of the chains per cycle serves both the check and the status page.
    const now = new Date();
    let targets: Targets | undefined;
    try {
      targets = computeTargets(config, selectServices(config, opts.services), now);
    } catch {
      targets = undefined; // the check reads them again and reports why
    }
    staged = targets && stagedChains(targets);
    checking = checkServedChains(config, { services: opts.services, now, targets })
      .then(
        (c) => {
          facts.check = c.check;
          for (const e of c.providerErrors) errors.add(e.provider, e.kind);
        },
        (e: unknown) =>
          opts.log(`checking the served chains failed: ${(e as Error).message}`, 'warn'),
      )
      .finally(() => {
        checking = undefined;
        if (again) {
          again = false;
          check();
        }
      });
  };
  let server: MonitorServer;
  try {
    server = await startMonitor({
      listen,
      snapshot: () => {
        const now = new Date();
        return monitorModel({
          config,
          state: readState(config.stateDir),
          now,
          facts: { ...facts, providerErrors: errors.list() },
          ...(staged ? { staged } : {}),
          renewals: acmeRenewals(config, opts.services, now),
        });
      },
      healthy: () =>
        !facts.lastRun
          ? { ok: true, why: 'no run finished yet' }
          : facts.lastRun.exitCode === 0
            ? { ok: true, why: `last run ${facts.lastRun.at} exited 0` }
            : {
                ok: false,
                why: `last run ${facts.lastRun.at} exited ${facts.lastRun.exitCode}${facts.lastRun.error ? `: ${facts.lastRun.error}` : ''}`,
              },
    });
  } catch (e) {
    throw new InputError(
      `monitor.listen: cannot listen on ${m.listen}: ${errnoCode(e)}`,
      initial.file,
    );
  }
  let timer = setInterval(check, m.check_interval_s * 1000);
  timer.unref();
  const url = `${server.address.host.includes(':') ? `[${server.address.host}]` : server.address.host}:${server.address.port}`;
  opts.log(`serving /metrics, /healthz and the status page on http://${url}/`, 'info');
  return {
    url,
    runFinished(run) {
      facts.lastRun = {
        at: run.at.toISOString(),
        exitCode: run.exitCode,
        ...(run.error ? { error: (run.error as Error).message ?? String(run.error) } : {}),
      };
      if (run.exitCode === 0) facts.lastSuccessAt = facts.lastRun.at;
      const failed = run.error ? classifyProviderError(run.error) : undefined;
      if (failed) errors.add(failed.provider, failed.kind);
      if (run.waiting)
        facts.staged = run.waiting.map((w) => ({
          service: w.service,
          chain: w.chain,
          reason: w.reason,
          ...(w.eta ? { eta: w.eta.toISOString() } : {}),
        }));
      check();
    },
    nextRun(due) {
      facts.nextRun = { at: due.at.toISOString(), why: due.why };
    },
    reconfigure(next) {
      config = next;
      const every = next.raw.monitor.check_interval_s;
      clearInterval(timer);
      timer = setInterval(check, every * 1000);
      timer.unref();
    },
    async close() {
      clearInterval(timer);
      await server.close();
      await checking;
    },
  };
}
