/** `tlsa adopt [--dry-run]`: take ownership of records already published (a migration from
 *  hand-made records or another tool, or a lost state), so they retire by the normal rules. */
import { adoptPublished } from '../engine/reconcile.js';
import { rdataText } from '../tlsa/record.js';
import { configFromCli, runOptions, shortRdata } from './common.js';
import { out, printJson, warn } from './fail.js';
import type { CliValues } from './options.js';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const dryRun = !!v['dry-run'];
  const result = await adoptPublished(config, {
    ...runOptions(v, 'adopt'),
    now: new Date(),
    dryRun,
  });
  warn(result.targets.warnings);
  const { desired, marked, foreign } = result.adoption;
  if (v.json) {
    const row = (r: { owner: string; service?: string } & Parameters<typeof rdataText>[0]) => ({
      owner: r.owner,
      rdata: rdataText(r),
      ...(r.service ? { service: r.service } : {}),
    });
    return printJson('adopt', 0, {
      dryRun,
      adopted: desired.map(row),
      retiring: marked.map(row),
      foreign: foreign.map(row),
      missing: result.plan.reduce((n, p) => n + p.add.length, 0),
    });
  }
  const verb = dryRun ? 'would take over' : 'took over';
  const lines: string[] = [];
  for (const r of desired)
    lines.push(`${verb} ${r.owner} ${shortRdata(r)}  (equal to a record ${r.service} publishes)`);
  for (const r of marked)
    lines.push(
      `${verb} ${r.owner} ${shortRdata(r)}  (written by tlsa, no longer needed: retires by the normal rules)`,
    );
  for (const r of foreign)
    lines.push(`left alone ${r.owner} ${shortRdata(r)}  (not published by tlsa)`);
  const missing = result.plan.reduce((n, p) => n + p.add.length, 0);
  if (lines.length) out(`${lines.join('\n')}\n`);
  out(
    `${dryRun ? 'Dry run: ' : ''}${desired.length + marked.length} record(s) ${dryRun ? 'would be adopted' : 'adopted'} (${desired.length} in use, ${marked.length} retiring), ${foreign.length} left alone.` +
      `${desired.length ? ' Adopted records count as live once every authoritative server serves them and 2×TTL has passed.' : ''}` +
      `${missing ? ` ${missing} desired record(s) are not published yet: "tlsa publish" adds them.` : ''}\n`,
  );
  return 0;
}
