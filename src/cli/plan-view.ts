/** Rendering a plan for humans and for scripts; shared by `plan` and `publish`. */
import { describeWait, heldText, type WaitTtl } from '../engine/lifecycle.js';
import type { OwnerPlan, TargetRecord } from '../engine/plan.js';
import type { TtlFact } from '../engine/state.js';
import { bothForms, unicodeForm } from '../tlsa/host.js';
import { rdataText } from '../tlsa/record.js';
import { duration, shortRdata } from './common.js';
import { QUIET_OWNERS_LISTED } from './options.js';

/** The TTL a record re-added for a changed `ttl:` was published with. */
const ttlFrom = (p: OwnerPlan, r: TargetRecord): number | undefined =>
  p.rettl?.find((x) => x.record === r)?.from;

export function planSummary(plan: OwnerPlan[]): {
  add: number;
  remove: number;
  retiring: number;
  keep: number;
  unowned: number;
  foreign: number;
} {
  const sum = (f: (p: OwnerPlan) => number) => plan.reduce((n, p) => n + f(p), 0);
  return {
    add: sum((p) => p.add.length),
    remove: sum((p) => p.remove.length),
    retiring: sum((p) => p.retiring.length),
    keep: sum((p) => p.keep.length),
    unowned: sum((p) => p.unowned.length),
    foreign: sum((p) => p.foreign.length),
  };
}

/** An owner name with nothing to do and nothing to point out: every record there is desired,
 *  owned by tlsa and in place (no add, removal, retiring, foreign or unowned record). */
export function isQuiet(p: OwnerPlan): boolean {
  return (
    p.add.length === 0 &&
    p.remove.length === 0 &&
    p.retiring.length === 0 &&
    p.foreign.length === 0 &&
    p.unowned.length === 0
  );
}

export interface PlanListing {
  /** The owner names listed record by record, in plan order. */
  listed: OwnerPlan[];
  /** The quiet owner names left out, and their records in place (both 0 when none is). */
  folded: { owners: number; records: number };
}

/** Which owner names the human plan lists: every one with something to do or to point out;
 *  the quiet ones too while there are at most `limit` of them (or with `all`). Past the limit
 *  none of them is listed, not the first `limit`: a slice of a fleet's unchanged names tells
 *  nothing and could be taken for all of them. */
export function planListing(
  plan: OwnerPlan[],
  all = false,
  limit = QUIET_OWNERS_LISTED,
): PlanListing {
  const quiet = all ? 0 : plan.reduce((n, p) => n + (isQuiet(p) ? 1 : 0), 0);
  if (quiet <= limit) return { listed: plan, folded: { owners: 0, records: 0 } };
  const listed: OwnerPlan[] = [];
  let records = 0;
  for (const p of plan)
    if (isQuiet(p)) records += p.keep.length;
    else listed.push(p);
  return { listed, folded: { owners: quiet, records } };
}

/** The line standing for the quiet owner names a plan does not list. */
export function foldedLine(folded: PlanListing['folded']): string {
  return `${folded.owners} owner names with nothing to do, ${folded.records} records in place: not listed ("tlsa plan --all" lists every record).`;
}

/** `waits`: per owner with records to add, the TTL their wait counts from (plan only). */
/** `served`: per owner, the TTL the authoritative servers were last seen serving (plan only). */
/** `all`: list every owner name, however many have nothing to do (see planListing). */
export function planText(
  plan: OwnerPlan[],
  now: Date,
  waits?: Map<string, WaitTtl>,
  propagationChecked = true,
  served?: Map<string, TtlFact>,
  { all = false }: { all?: boolean } = {},
): string {
  const out: string[] = [];
  const { listed, folded } = planListing(plan, all);
  for (const p of listed) {
    const seen = served?.get(p.owner);
    out.push(
      `${bothForms(p.owner)}  (provider ${p.provider}, TTL ${p.ttl}${p.ttlWhy ? `: ${p.ttlWhy}` : ''}${seen ? `; served with TTL ${seen.ttl} when last seen, ${seen.at}` : ''})`,
    );
    for (const r of p.add)
      out.push(
        `  + ${shortRdata(r)}  ${r.why}${p.drift.includes(r) ? ' [was deleted outside tlsa: re-adding]' : ''}${ttlFrom(p, r) !== undefined ? ` [TTL ${ttlFrom(p, r)} → ${r.ttl}: re-adding with the new TTL]` : ''}`,
      );
    const wait = waits?.get(p.owner);
    if (wait)
      out.push(
        `    new records live ${describeWait(wait)}; counted from ${propagationChecked ? 'when every authoritative server serves them' : 'publication'}`,
      );
    for (const r of p.remove)
      out.push(
        `  - ${shortRdata(r)}  ${r.held ? `retired, grace over, but ${heldText(r.held, now)}` : 'retired (no served chain needs it; grace over)'}`,
      );
    for (const r of p.retiring) {
      const left = (r.due.getTime() - now.getTime()) / 1000;
      out.push(
        `  ~ ${shortRdata(r.record)}  retiring: no served chain needs it; removal ${left > 0 ? `in ${duration(left)}` : 'due'}`,
      );
    }
    for (const r of p.keep)
      out.push(
        `  = ${shortRdata(r)}  ${r.why}${p.unowned.includes(r) ? ' [not owned by tlsa: "tlsa adopt" takes it over]' : ''}`,
      );
    for (const r of p.foreign) out.push(`  ! ${shortRdata(r)}  not published by tlsa: left alone`);
  }
  if (folded.owners) out.push(foldedLine(folded));
  const s = planSummary(plan);
  out.push(
    s.add || s.remove
      ? `Plan: ${s.add} to add, ${s.remove} to remove${s.retiring ? `, ${s.retiring} retiring later` : ''}.`
      : `Nothing to do: ${s.keep} records in place${s.retiring ? `, ${s.retiring} retiring later` : ''}.`,
  );
  // `status` lists owned records only: say plainly when the two differ, and how to close the gap.
  if (s.unowned)
    out.push(
      `${s.unowned} of the records in place ${s.unowned === 1 ? 'is' : 'are'} not owned by tlsa (not in "tlsa status", never retired): "tlsa adopt" takes ${s.unowned === 1 ? 'it' : 'them'} over.`,
    );
  return `${out.join('\n')}\n`;
}

export function planJson(
  plan: OwnerPlan[],
  waits?: Map<string, WaitTtl>,
  served?: Map<string, TtlFact>,
) {
  return {
    summary: planSummary(plan),
    owners: plan.map((p) => ({
      owner: p.owner,
      ...(unicodeForm(p.owner) !== p.owner ? { ownerUnicode: unicodeForm(p.owner) } : {}),
      provider: p.provider,
      ttl: p.ttl,
      ...(p.ttlWhy ? { ttlWhy: p.ttlWhy } : {}),
      ...(served
        ? {
            servedTtl: served.get(p.owner)
              ? { ttl: served.get(p.owner)!.ttl, at: served.get(p.owner)!.at }
              : null,
          }
        : {}),
      wait: waits?.get(p.owner)
        ? {
            seconds: 2 * waits.get(p.owner)!.ttl,
            ttl: waits.get(p.owner)!.ttl,
            why: waits.get(p.owner)!.why,
          }
        : null,
      add: p.add.map((r) => ({
        rdata: rdataText(r),
        why: r.why,
        service: r.service,
        ...(ttlFrom(p, r) !== undefined ? { ttl: r.ttl, ttlFrom: ttlFrom(p, r) } : {}),
      })),
      remove: p.remove.map((r) => ({
        rdata: rdataText(r),
        service: r.service,
        ...(r.held ? { held: r.held } : {}),
      })),
      retiring: p.retiring.map((r) => ({
        rdata: rdataText(r.record),
        since: r.since.toISOString(),
        due: r.due.toISOString(),
      })),
      keep: p.keep.map((r) => ({ rdata: rdataText(r), why: r.why, owned: !p.unowned.includes(r) })),
      foreign: p.foreign.map((r) => ({ rdata: rdataText(r) })),
    })),
  };
}
