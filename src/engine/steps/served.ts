/** Step (the ACME hook, no staged install): the ACME client already serves the new chain from its
 *  own files; does a live record match it? Only then is the service's `reload:` run (each
 *  distinct command once, with its configured timeout). */
import type { RunContext, ServedCheck } from '../run.js';
import { chainLiveness } from './liveness.js';
import { runReloads } from './promote.js';

export async function checkServed(ctx: RunContext): Promise<ServedCheck[]> {
  const served: ServedCheck[] = [];
  for (const svc of ctx.c.targets.services) {
    if (ctx.config.raw.services[svc.service]!.install) continue;
    for (const chain of svc.chains.filter((x) => x.role === 'served')) {
      const { ready, eta } = await chainLiveness(ctx, svc, chain, false);
      served.push({
        service: svc.service,
        chain: chain.label,
        live: ready,
        ...(eta ? { eta } : {}),
      });
    }
  }
  if (ctx.write) await reloadServed(ctx, served);
  return served;
}

/** The first live chain of each reload command carries its outcome; later ones sharing the
 *  command carry none (it ran once). */
async function reloadServed(ctx: RunContext, served: ServedCheck[]): Promise<void> {
  const first = new Map<string, ServedCheck>();
  const reloads: { command: string; timeoutS: number }[] = [];
  for (const s of served.filter((x) => x.live)) {
    const svc = ctx.config.raw.services[s.service]!;
    if (!svc.reload || first.has(svc.reload)) continue;
    first.set(svc.reload, s);
    reloads.push({ command: svc.reload, timeoutS: svc.reload_timeout_s });
  }
  const results = await runReloads(ctx.config, reloads);
  for (const [command, s] of first) {
    const r = results.get(command)!;
    if (r.ok) s.reloaded = true;
    else {
      s.reloaded = false;
      s.reloadError = r.message;
    }
  }
}
