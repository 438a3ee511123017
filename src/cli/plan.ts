/** `tlsa plan`: what publish would change. Reads the providers; changes nothing. */
import { planOnly } from '../engine/reconcile.js';
import { configFromCli, runOptions } from './common.js';
import { note, out, printJson, warn } from './fail.js';
import type { CliValues } from './options.js';
import { planJson, planText } from './plan-view.js';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const now = new Date();
  const result = await planOnly(config, { ...runOptions(v, 'plan'), now });
  const { warnings, validityProblems } = result.targets;
  warn([...warnings, ...validityProblems.map((p) => `${p} (publish will refuse without --force)`)]);
  if (v.json)
    return printJson('plan', 0, {
      ...planJson(result.plan, result.waits, result.servedTtls),
      notes: result.targets.notes,
      validityProblems,
    });
  else {
    note(result.targets.notes);
    out(
      planText(result.plan, now, result.waits, config.raw.verify.propagation, result.servedTtls, {
        all: v.all === true,
      }),
    );
  }
  return 0;
}
