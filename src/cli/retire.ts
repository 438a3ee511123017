/** `tlsa retire [--dry-run]`: remove the records that are due now (grace over, no live server
 *  presents a chain they match); nothing is published. */
import { runEngine } from '../engine/reconcile.js';
import { configFromCli, runOptions } from './common.js';
import { engineJson, engineLines } from './engine-view.js';
import { out, printJson, reportNetwork, warn } from './fail.js';
import type { CliValues } from './options.js';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const now = new Date();
  const result = await runEngine(config, {
    ...runOptions(v, 'retire'),
    now,
    add: false,
    promote: false,
    dryRun: !!v['dry-run'],
  });
  warn(result.targets.warnings);
  if (v.json)
    return printJson('retire', reportNetwork(result.network, 0), {
      dryRun: !!v['dry-run'],
      ...engineJson(result),
    });
  const retiring = result.plan.flatMap((p) => p.retiring);
  const lines = engineLines(result, now);
  if (lines.length) out(`${lines.join('\n')}\n`);
  out(
    `${v['dry-run'] ? 'Dry run: ' : ''}${result.retired.length} record(s) ${v['dry-run'] ? 'due for removal' : 'removed'}, ${result.held.length} kept because a server still needs them${retiring.length ? `, ${retiring.length} still in their grace period` : ''}.\n`,
  );
  return reportNetwork(result.network, 0);
}
