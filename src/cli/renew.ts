/** `tlsa renew`: built-in ACME. Renews the due lineages of the services with `acme:` (under the
 *  run lock, so no other run reads a lineage while it changes), then runs the engine as the
 *  certbot hook does: the new chain's records are published and its staged install proceeds.
 *  Exit 4 when a lineage had to take a fresh key because its next key's 3 1 1 was not live:
 *  the new chain then waits for its records instead of being served at once. */
import { readLineageRenewal } from '../acme/lineage-renewal.js';
import { renewService, type LineageRenewal } from '../acme/renew.js';
import { acquireLock } from '../engine/lock.js';
import { keyRecordLive } from '../engine/key-record-live.js';
import { publish, readOwned } from '../engine/reconcile.js';
import { ensureStateDir } from '../engine/state.js';
import { EXIT, InputError } from '../errors.js';
import { keyText } from './renewal-text.js';
import { configFromCli, runOptions } from './common.js';
import { engineJson, engineLines } from './engine-view.js';
import { out, printJson, progressLine, reportNetwork, warn } from './fail.js';
import type { CliValues } from './options.js';
import { nextRenewalJson } from './renew-json.js';

function acmeServices(services: Record<string, { acme?: unknown }>, only?: string[]): string[] {
  const withAcme = Object.keys(services).filter((s) => services[s]!.acme);
  if (!only) return withAcme;
  for (const s of only) {
    if (!services[s]) throw new InputError(`unknown service "${s}"`);
    if (!services[s]!.acme) throw new InputError(`service "${s}" has no acme: block to renew`);
  }
  return only;
}

/** A renewal that had a next key but could not use it: the new chain is not served at once. */
const waitsForRecords = (r: LineageRenewal) =>
  r.outcome === 'renewed' && r.key?.use === 'fresh' && r.key.reason === 'next key record not live';

export async function run(v: CliValues): Promise<number> {
  const config = configFromCli(v);
  const opts = runOptions(v, 'renew');
  const services = acmeServices(config.raw.services, v.service);
  if (!services.length) throw new InputError('no service has an acme: block: nothing to renew');
  const now = new Date();
  ensureStateDir(config.stateDir);
  const release = await acquireLock(config.stateDir, {
    command: 'renew',
    waitSeconds: opts.lockWaitSeconds ?? 60,
  });
  const results: LineageRenewal[] = [];
  try {
    const state = readOwned(config);
    for (const s of services)
      results.push(
        ...(await renewService(config, s, {
          force: !!v.force,
          now,
          progress: progressLine,
          warn: (line) => warn([line]),
          isLive: (spki) => keyRecordLive(config, state, s, spki, now),
        })),
      );
  } finally {
    release();
  }
  if (!v.json)
    for (const r of results)
      out(
        r.outcome === 'renewed'
          ? `${r.service} ${r.keyType}: renewed with ${keyText(r.key!)}, valid until ${r.notAfter!.toISOString()} (${r.lineage})\n`
          : `${r.service} ${r.keyType}: not due until ${r.due!.at.toISOString()} (${r.due!.source} rule)\n`,
      );
  // The engine runs for every service renew looked at, renewed or not: a next key made by this
  // run gets its record published now, not at the next publish.
  // The engine's clock starts now: the new certificate is valid from its issuance, after `now`.
  const published = new Date();
  const result = await publish(config, {
    ...opts,
    services,
    now: published,
  });
  warn(result.targets.warnings);
  const waiting = results.filter(waitsForRecords);
  if (!v.json) {
    const lines = engineLines(result, published);
    if (lines.length) out(`${lines.join('\n')}\n`);
    for (const r of waiting)
      out(
        `${r.service} ${r.keyType}: waiting: renewed with a fresh key because the next key's 3 1 1 was not live; the new chain is served once its records are live (exit 4)\n`,
      );
  }
  const reloadFailed = result.promoted.some((p) => p.reloadError);
  const code = reportNetwork(
    result.network,
    reloadFailed ? EXIT.provider : waiting.length ? EXIT.wait : EXIT.ok,
  );
  if (!v.json) return code;
  return printJson('renew', code, {
    lineages: results.map((r) => {
      const view = readLineageRenewal(config.stateDir, r.service, r.keyType, published);
      return {
        service: r.service,
        keyType: r.keyType,
        lineage: r.lineage,
        outcome: r.outcome,
        key: r.key ? { use: r.key.use, reason: r.key.use === 'fresh' ? r.key.reason : null } : null,
        notAfter: (r.notAfter ?? view.cert?.notAfter)?.toISOString() ?? null,
        next: nextRenewalJson(view.next),
      };
    }),
    ...engineJson(result),
  });
}
