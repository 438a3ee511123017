/** Step: a staged chain is installed once a record that matches it is live, for every service
 *  that reads the installed copy; one install per copy, one run of each reload command. */
import { resolve } from 'node:path';
import type { InstalledCopy } from '../../config/installs.js';
import type { LoadedConfig } from '../../config/load.js';
import { runCommand } from '../../util/run-command.js';
import {
  clearReloadPending,
  installPaths,
  installRelease,
  markReloadPending,
  reloadPending,
} from '../install.js';
import type { ChainWait, Promotion, RunContext } from '../run.js';
import { stagedFiles, type ServiceChain } from '../sources.js';
import { chainLiveNow, chainLiveness, waitReason } from './liveness.js';

interface CopyGroup {
  copy: InstalledCopy;
  chain: ServiceChain;
  ready: string[];
  blocked: string[];
}

/** `readyNow`: only the chains whose own records are already live by what the state knows,
 *  without asking any server (a renewal with a next key whose 3 1 1 is live): installed before
 *  this run writes anything, so the new chain is served without waiting for the run's DNS
 *  writes. Every other staged chain is left to the pass after the adds. */
export async function promoteStaged(
  ctx: RunContext,
  mode: 'observe' | 'readyNow' = 'observe',
): Promise<{ promoted: Promotion[]; waiting: ChainWait[] }> {
  const waiting: ChainWait[] = [];
  const copies = new Map<string, CopyGroup>();
  for (const svc of ctx.c.targets.services) {
    for (const chain of svc.chains.filter((x) => x.role === 'staged')) {
      const liveness =
        mode === 'readyNow'
          ? chainLiveNow(ctx, svc, chain)
          : await chainLiveness(ctx, svc, chain, !!chain.bootstrap);
      const copy = copyOf(ctx.config, svc.service, chain.sourceName);
      const group = copies.get(copy.key) ?? { copy, chain, ready: [], blocked: [] };
      copies.set(copy.key, group);
      if (liveness.ready) {
        group.ready.push(svc.service);
        continue;
      }
      const { eta } = liveness;
      waiting.push({
        service: svc.service,
        chain: chain.label,
        reason: waitReason(ctx, liveness),
        ...(eta ? { eta } : {}),
      });
      group.blocked.push(svc.service);
    }
  }
  const chosen = new Set(ctx.c.targets.services.map((x) => x.service));
  const promoted: Promotion[] = [];
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
    if (!ctx.write)
      promoted.push({ service: ready.join(', '), source: copy.name, chain: chain.label });
    else installs.push({ copy, chain });
  }
  if (ctx.write)
    promoted.push(...(await installAndReload(ctx.config, installs, chosen, ctx.now, ctx.opts)));
  return { promoted, waiting };
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
  opts: { progress?: (l: string) => void },
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
    opts.progress?.(
      `${copy.services.join(', ')}: the reload after installing ${copy.name} did not finish last time; reloading now`,
    );
    const promotion = {
      service: copy.services.join(', '),
      source: copy.name,
      chain: installPaths(copy.dir, copy.name).fullchain,
    };
    done.push({ copy, promotion });
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
    opts.progress?.(
      `${copy.services.join(', ')}: installed ${chain.label} as ${release}${chain.bootstrap ? ' (first install)' : ''}`,
    );
    const promotion = {
      service: copy.services.join(', '),
      source: copy.name,
      chain: chain.label,
      release,
    };
    done.push({ copy, promotion });
  }
  const reloads = (copy: InstalledCopy) =>
    copy.services.flatMap((x) => {
      const install = config.raw.services[x]?.install;
      return install?.reload
        ? [{ command: install.reload, timeoutS: install.reload_timeout_s }]
        : [];
    });
  const results = await runReloads(
    config,
    done.flatMap((d) => reloads(d.copy)),
  );
  for (const { copy, promotion } of done) {
    const commands = [...new Set(reloads(copy).map((x) => x.command))];
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

export type ReloadResult = Awaited<ReturnType<typeof runCommand>>;

/** Run each distinct reload command once, with the largest timeout configured for it. */
export async function runReloads(
  config: LoadedConfig,
  reloads: { command: string; timeoutS: number }[],
): Promise<Map<string, ReloadResult>> {
  const timeouts = new Map<string, number>();
  for (const { command, timeoutS } of reloads)
    timeouts.set(command, Math.max(timeouts.get(command) ?? 0, timeoutS));
  const results = new Map<string, ReloadResult>();
  for (const [command, timeout] of timeouts)
    results.set(command, await runCommand(command, timeout * 1000, config.baseDir));
  return results;
}
