/** `tlsa daemon [--once]`: the engine on a schedule. One run at a time (the shared lock);
 *  SIGTERM/SIGINT finish the current step and exit; SIGHUP reloads the configuration. */
import type { LoadedConfig } from '../config/load.js';
import { runEngine } from '../engine/reconcile.js';
import { configFromCli, duration, runOptions } from './common.js';
import { engineLines } from './engine-view.js';
import { fail, progressLine, reportNetwork, warn } from './fail.js';
import type { CliValues } from './main.js';

async function nextRunDelayMs(config: LoadedConfig, now: Date): Promise<number> {
  const schedule = config.raw.daemon.schedule;
  if (!schedule) return config.raw.daemon.interval_s * 1000;
  const { Cron } = await import('croner');
  const next = new Cron(schedule, { paused: true }).nextRun(now);
  return next ? Math.max(1000, next.getTime() - now.getTime()) : config.raw.daemon.interval_s * 1000;
}

export async function run(v: CliValues): Promise<number> {
  let config = configFromCli(v);
  let stopping = false;
  let reload = false;
  let wake: (() => void) | undefined;
  const onStop = () => {
    stopping = true;
    progressLine('stopping after the current step');
    wake?.();
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    reload = true;
    wake?.();
  });
  let lastCode = 0;
  for (;;) {
    if (reload) {
      reload = false;
      try {
        config = configFromCli(v);
        progressLine(`reloaded ${config.file}`);
      } catch (e) {
        lastCode = fail(e);
        progressLine('keeping the previous configuration');
      }
    }
    const now = new Date();
    try {
      const result = await runEngine(config, { ...runOptions(v, 'daemon'), now, observeAll: true });
      warn(result.targets.warnings);
      for (const l of engineLines(result, now)) progressLine(l);
      if (result.added || result.removed) progressLine(`published ${result.added}, removed ${result.removed}`);
      lastCode = reportNetwork(result.network, result.promoted.some((p) => p.reloadError) ? 3 : 0);
      const retiring = result.plan.flatMap((p) => p.retiring);
      const waits = [
        ...result.waiting.map((w) => `${w.chain} waits for ${w.reason}${w.eta ? ` (${duration((w.eta.getTime() - Date.now()) / 1000)})` : ''}`),
        ...(retiring.length ? [`${retiring.length} record(s) retiring, next removal in ${duration(Math.min(...retiring.map((r) => r.due.getTime())) / 1000 - Date.now() / 1000)}`] : []),
      ];
      if (waits.length) progressLine(`waiting: ${waits.join('; ')}`);
    } catch (e) {
      lastCode = fail(e);
    }
    if (v.once || stopping) return lastCode;
    const delay = await nextRunDelayMs(config, new Date());
    progressLine(`next run in ${duration(delay / 1000)}`);
    await new Promise<void>((r) => {
      const t = setTimeout(r, delay);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
    wake = undefined;
    if (stopping) return lastCode;
  }
}
