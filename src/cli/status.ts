/** `tlsa status`: each owned record's phase, age and what it waits for; for each built-in ACME
 *  lineage its expiry, next renewal (and where that time comes from) and whether its next key's
 *  3 1 1 is live. Reads the state and the lineages' files only: the CA is not asked. */
import { sourceText } from '../acme/renewal-due.js';
import { type AcmeLineageStatus, acmeLineages, acmeServiceNames } from '../engine/acme-lineages.js';
import { viewRecord } from '../engine/lifecycle.js';
import { readOwned } from '../engine/reconcile.js';
import { selectServices } from '../engine/targets.js';
import { servedTtl, ttlMismatch } from '../engine/writers.js';
import { bothForms, unicodeForm } from '../tlsa/host.js';
import { rdataText } from '../tlsa/record.js';
import { configFromCli, duration, shortRdata } from './common.js';
import { out, printJson, warn } from './fail.js';
import type { CliValues } from './options.js';
import { nextRenewalJson } from './renew-json.js';

/** One line per ACME lineage, for humans. */
function acmeText(lineages: AcmeLineageStatus[]): string {
  if (!lineages.length) return '';
  const rows = lineages.map((l) => {
    const cert = l.cert
      ? `certificate valid until ${l.cert.notAfter.toISOString()}`
      : 'no certificate yet';
    const key = !l.nextKey
      ? 'no next key yet'
      : l.nextKey.live
        ? "next key's 3 1 1 live"
        : "next key's 3 1 1 NOT live yet (a renewal now would use a fresh key and wait staged)";
    return `${l.service} ${l.keyType}: ${cert}; next renewal ${l.next.at.toISOString()} (${sourceText(l.next)})${l.next.nextPollAt ? `, CA asked again ${l.next.nextPollAt.toISOString()}` : ''}; ${key}`;
  });
  return `ACME lineages:\n${rows.map((r) => `  ${r}`).join('\n')}\n`;
}

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const services = new Set(selectServices(config, v.service));
  const now = new Date();
  const state = readOwned(config);
  const lineages = acmeLineages(config, state, acmeServiceNames(config, [...services]), now);
  const views = state.records
    .filter((r) => services.has(r.service))
    .sort((a, b) => a.owner.localeCompare(b.owner) || a.addedAt.localeCompare(b.addedAt))
    .map((r) =>
      viewRecord(
        r,
        now,
        config.raw.services[r.service]?.grace_s,
        config.raw.verify.propagation,
        state.ttls?.[r.owner],
      ),
    );
  // Per owner: the TTL the authoritative servers were last seen serving (another writer's
  // write resets it), and a warning when other writers there use another TTL.
  const owners = [...new Set(views.map((x) => x.record.owner))];
  const served = new Map(owners.map((o) => [o, servedTtl(state.ttls?.[o] ?? [])]));
  const ttlWarnings = owners
    .map((o) =>
      ttlMismatch(
        o,
        Math.max(...views.filter((x) => x.record.owner === o).map((x) => x.record.ttl)),
        state.ttls?.[o] ?? [],
      ),
    )
    .filter((w): w is string => !!w);
  warn(ttlWarnings);
  if (v.json) {
    return printJson('status', 0, {
      records: views.map((x) => ({
        owner: x.record.owner,
        ...(unicodeForm(x.record.owner) !== x.record.owner
          ? { ownerUnicode: unicodeForm(x.record.owner) }
          : {}),
        rdata: rdataText(x.record),
        service: x.record.service,
        provider: x.record.provider,
        ttl: x.record.ttl,
        servedTtl: served.get(x.record.owner)
          ? { ttl: served.get(x.record.owner)!.ttl, at: served.get(x.record.owner)!.at }
          : null,
        phase: x.phase,
        ageSeconds: Math.round(x.ageSeconds),
        nextInSeconds: x.nextInSeconds === undefined ? null : Math.round(x.nextInSeconds),
        waitsFor: x.waitsFor || null,
        wait: x.wait
          ? {
              seconds: (x.phase === 'retiring' ? 1 : 2) * x.wait.ttl,
              ttl: x.wait.ttl,
              why: x.wait.why,
            }
          : null,
        publishedAt: x.record.publishedAt ?? null,
        retiringSince: x.record.retiringSince ?? null,
        by: x.record.by,
      })),
      acme: lineages.map((l) => ({
        service: l.service,
        keyType: l.keyType,
        lineage: l.lineage,
        notAfter: l.cert?.notAfter.toISOString() ?? null,
        serial: l.cert?.serial ?? null,
        next: nextRenewalJson(l.next),
        nextKey: l.nextKey,
      })),
    });
  }
  if (!views.length) {
    out(
      `No records owned by tlsa (state: ${config.stateDir}). "tlsa plan" shows what is published and what would be; records published before tlsa (or before its state was lost) are taken over by "tlsa adopt".\n${acmeText(lineages)}`,
    );
    return 0;
  }
  const rows = views.map((x) => [
    bothForms(x.record.owner),
    shortRdata(x.record),
    x.phase,
    duration(x.ageSeconds),
    x.waitsFor
      ? `${x.nextInSeconds !== undefined ? `${duration(x.nextInSeconds)}: ` : ''}${x.waitsFor}`
      : '',
  ]);
  const head = ['OWNER', 'RECORD', 'STATE', 'AGE', 'WAITS FOR'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < cells.length - 1 ? c.padEnd(widths[i]!) : c))
      .join('  ')
      .trimEnd();
  out(`${[line(head), ...rows.map(line)].join('\n')}\n`);
  const counts: Record<string, number> = {};
  for (const x of views) counts[x.phase] = (counts[x.phase] ?? 0) + 1;
  out(
    `${Object.entries(counts)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ')}\n`,
  );
  for (const [o, f] of served) {
    const own = [...new Set(views.filter((x) => x.record.owner === o).map((x) => x.record.ttl))];
    if (f && !(own.length === 1 && own[0] === f.ttl))
      out(
        `${bothForms(o)}: served with TTL ${f.ttl} when last seen (${f.at}); tlsa publishes TTL ${own.join(', ')}\n`,
      );
  }
  out(acmeText(lineages));
  return 0;
}
