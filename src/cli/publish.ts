/** `tlsa publish`: apply the plan. New records go out beside the old ones; old ones retire late. */
import { publish } from '../engine/reconcile.js';
import { configFromCli, json, runOptions } from './common.js';
import { out, warn } from './fail.js';
import type { CliValues } from './main.js';
import { planJson, planSummary, planText } from './plan-view.js';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const now = new Date();
  const result = await publish(config, { ...runOptions(v, 'publish'), now });
  warn([...result.targets.warnings, ...result.targets.validityProblems.map((p) => `${p} (published because of --force)`)]);
  if (v.json) {
    json({ ...planJson(result.plan), added: result.added, removed: result.removed, warnings: result.targets.warnings });
    return 0;
  }
  out(planText(result.plan, now));
  const s = planSummary(result.plan);
  out(
    result.added || result.removed
      ? `Published ${result.added} record(s), removed ${result.removed}. New records are pending until 2×TTL old; see "tlsa status".\n`
      : `Published nothing: already in place${s.retiring ? `; ${s.retiring} record(s) retiring` : ''}.\n`,
  );
  return 0;
}
