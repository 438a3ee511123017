/** `tlsa publish`: publish new records beside the old ones, install staged chains whose records
 *  are live, retire what no server needs any more. */
import { EXIT } from '../errors.js';
import { publish } from '../engine/reconcile.js';
import { configFromCli, runOptions } from './common.js';
import { engineJson, engineLines } from './engine-view.js';
import { out, printJson, reportNetwork, warn } from './fail.js';
import type { CliValues } from './options.js';
import { planJson, planText } from './plan-view.js';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const now = new Date();
  const result = await publish(config, { ...runOptions(v, 'publish'), now });
  warn([
    ...result.targets.warnings,
    ...result.targets.validityProblems.map((p) => `${p} (published because of --force)`),
  ]);
  const reloadFailed = result.promoted.some((p) => p.reloadError);
  const code = reportNetwork(result.network, reloadFailed ? EXIT.provider : EXIT.ok);
  if (v.json) {
    printJson('publish', code, { ...planJson(result.plan), ...engineJson(result) });
  } else {
    out(planText(result.plan, now, undefined, true, undefined, { all: v.all === true }));
    const lines = engineLines(result, now);
    if (lines.length) out(`${lines.join('\n')}\n`);
    out(
      result.added
        ? `Published ${result.added} record(s)${result.removed ? `, removed ${result.removed}` : ''}. New records are pending until 2×TTL old; see "tlsa status".\n`
        : result.removed
          ? `Removed ${result.removed} record(s) no server needs any more.\n`
          : `Published nothing: already in place.\n`,
    );
  }
  return code;
}
