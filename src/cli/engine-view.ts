/** What the engine did and what it waits for, for humans and scripts; shared by publish,
 *  retire, the hook and the daemon. */
import type { EngineResult } from '../engine/reconcile.js';
import { rdataText } from '../tlsa/record.js';
import { duration, shortRdata } from './common.js';
import type { LogEvent } from './fail.js';

export function engineLines(r: EngineResult, now: Date): string[] {
  return engineEvents(r, now).map((e) => e.message);
}

/** engineLines with what each line is about, for `--log-format json`. */
export function engineEvents(r: EngineResult, now: Date): (LogEvent & { message: string })[] {
  const out: (LogEvent & { message: string })[] = [];
  for (const p of r.promoted) {
    out.push({
      message: `installed ${p.chain} for ${p.service}${p.release ? ` (${p.release})` : ''}${p.reloaded === true ? '; reload ok' : ''}${p.reloadError ? `; RELOAD FAILED: ${p.reloadError}` : ''}`,
      level: p.reloadError ? 'error' : 'info',
      event: 'installed',
      service: p.service,
      fields: {
        chain: p.chain,
        release: p.release ?? null,
        reloaded: p.reloaded ?? null,
        ...(p.reloadError ? { reloadError: p.reloadError } : {}),
      },
    });
  }
  for (const w of r.waiting) {
    const left = w.eta ? (w.eta.getTime() - now.getTime()) / 1000 : undefined;
    out.push({
      message: `staged ${w.chain} for ${w.service}: waits for ${w.reason}${left !== undefined ? ` (${left > 0 ? `about ${duration(left)}` : 'due now'})` : ''}`,
      event: 'staged',
      service: w.service,
      fields: { chain: w.chain, reason: w.reason, eta: w.eta?.toISOString() ?? null },
    });
  }
  for (const h of r.held) {
    out.push({
      message: `keeping ${h.record.owner} ${shortRdata(h.record)}: ${h.why}`,
      event: 'kept',
      service: h.record.service,
      fields: { owner: h.record.owner, rdata: rdataText(h.record), why: h.why },
    });
  }
  for (const x of r.retired) {
    out.push({
      message: `${r.removed ? 'removed' : 'would remove'} ${x.owner} ${shortRdata(x)}`,
      event: r.removed ? 'removed' : 'would-remove',
      service: x.service,
      fields: { owner: x.owner, rdata: rdataText(x) },
    });
  }
  return out;
}

/** engineJson when the engine did not run (a hook for a certificate no service uses). */
export function noEngineRun(): ReturnType<typeof engineJson> {
  return {
    added: 0,
    removed: 0,
    promoted: [],
    waiting: [],
    held: [],
    retired: [],
    served: [],
    network: [],
  };
}

/** The engine's part of a `--json` output (src/cli/json-contract.ts), field by field: the
 *  contract changes only when this does, not with the engine's own types. */
export function engineJson(r: EngineResult) {
  return {
    added: r.added,
    removed: r.removed,
    promoted: r.promoted.map((p) => ({
      service: p.service,
      source: p.source,
      chain: p.chain,
      ...(p.release !== undefined ? { release: p.release } : {}),
      ...(p.reloaded !== undefined ? { reloaded: p.reloaded } : {}),
      ...(p.reloadError !== undefined ? { reloadError: p.reloadError } : {}),
    })),
    waiting: r.waiting.map((w) => ({
      service: w.service,
      chain: w.chain,
      reason: w.reason,
      eta: w.eta?.toISOString() ?? null,
    })),
    held: r.held.map((h) => ({ owner: h.record.owner, rdata: rdataText(h.record), why: h.why })),
    retired: r.retired.map((x) => ({ owner: x.owner, rdata: rdataText(x) })),
    served: r.served.map((s) => ({
      service: s.service,
      chain: s.chain,
      live: s.live,
      eta: s.eta?.toISOString() ?? null,
      ...(s.reloaded !== undefined ? { reloaded: s.reloaded } : {}),
      ...(s.reloadError !== undefined ? { reloadError: s.reloadError } : {}),
    })),
    network: r.network.map((e) => ({ message: e.message, hint: e.hint ?? null })),
  };
}
