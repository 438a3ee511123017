/**
 * `tlsa hook certbot|acme.sh|lego`: called by an ACME client after a renewal (hooks/ has the
 * executables). Publishes the new chain's records beside the old ones, then:
 * - staged install: installs at once when a live record already matches (key reused, or the
 *   issuer's 2 1 1 is live), else leaves the chain staged and returns 0 quickly;
 * - without staged install: reloads the service only when the new chain matches a live
 *   record; otherwise says how long DANE clients may fail and how to fix the setup (exit 1).
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { EXIT, InputError } from '../errors.js';
import { runEngine } from '../engine/reconcile.js';
import { toCertSource } from '../engine/sources.js';
import { parseSpec, serviceCatalog, type Targets } from '../engine/targets.js';
import { builtinCatalogPath, catalogIssuerOf, loadCatalog } from '../issuers/catalog.js';
import { configFromCli, duration, runOptions } from './common.js';
import { engineEvents, engineJson, noEngineRun } from './engine-view.js';
import { logLine, printJson, reportNetwork, stampLines, warn, type LogEvent } from './fail.js';
import type { CliValues } from './options.js';

interface RenewalEvent {
  client: string;
  /** Paths that identify the renewed certificate: a lineage dir or the chain file. */
  paths: string[];
  describe: string;
}

function env(name: string, client: string): string {
  const v = process.env[name];
  if (!v)
    throw new InputError(
      `${name} is not set: run "tlsa hook ${client}" from ${client} as its deploy/renew hook`,
    );
  return v;
}

export function renewalEvent(client: string): RenewalEvent {
  switch (client) {
    case 'certbot': {
      const lineage = env('RENEWED_LINEAGE', client);
      return {
        client,
        paths: [lineage],
        describe: `certbot lineage ${lineage} (${process.env.RENEWED_DOMAINS ?? 'domains unknown'})`,
      };
    }
    case 'acme.sh': {
      const full = env('CERT_FULLCHAIN_PATH', client);
      return {
        client,
        paths: [full, process.env.CERT_PATH ?? ''].filter(Boolean),
        describe: `acme.sh certificate ${full} (${process.env.Le_Domain ?? ''})`,
      };
    }
    case 'lego': {
      const cert = env('LEGO_HOOK_CERT_PATH', client);
      return {
        client,
        paths: [cert],
        describe: `lego certificate ${cert} (${process.env.LEGO_HOOK_CERT_NAME ?? ''})`,
      };
    }
    default:
      throw new InputError(
        `unknown ACME client "${client}" (hooks exist for certbot, acme.sh and lego)`,
      );
  }
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** The fixes that would have kept this chain from being served before a live record matched
 *  it, for this service's setup only (no --reuse-key where no 3 1 1 of the key is published). */
export function hookFixes(
  config: LoadedConfig,
  service: string,
  chainLabel: string,
  targets: Targets,
): string[] {
  const svc = config.raw.services[service]!;
  const fixes = [
    `configure "install:" for ${service} (staged install: the server reads tlsa's copy, which changes only when its records are live)`,
  ];
  const specs = (svc.records?.length ? svc.records : ['3 1 1', '2 1 1']).map(parseSpec);
  if (specs.some((x) => x.usage === 3 && x.selector === 1))
    fixes.push('renew with --reuse-key (the live 3 1 1 keeps matching)');
  const issuer = targets.services
    .find((t) => t.service === service)
    ?.chains.find((c) => c.label === chainLabel)?.issuer?.x509;
  if (issuer && specs.some((x) => x.usage === 2)) {
    const catalog = serviceCatalog(config, service);
    if (catalog && catalogIssuerOf(catalog, issuer))
      fixes.push(
        `keep the ${catalog.ca} catalog's 2 1 1 records published (max_records_per_name may leave some out)`,
      );
    else if (catalogIssuerOf(loadCatalog(builtinCatalogPath('letsencrypt')), issuer))
      fixes.push("publish the issuer family's 2 1 1 records (issuers: letsencrypt)");
    else
      fixes.push(
        'an issuer catalog listing the intermediates your CA issues from (issuers: FILE), whose 2 1 1 records tlsa then publishes',
      );
  }
  return fixes;
}

/** Services with a certificate source that this renewal wrote. */
export function servicesFor(config: LoadedConfig, event: RenewalEvent): string[] {
  const wanted = new Set(event.paths.map(real));
  return Object.entries(config.raw.services)
    .filter(([, svc]) =>
      svc.certificates.some((src) => {
        const s = toCertSource(src, config.baseDir);
        const paths =
          s.kind === 'lineage' ? [s.dir] : [s.fullchain, s.cert].filter((x): x is string => !!x);
        return paths.some((p) => wanted.has(real(p)));
      }),
    )
    .map(([name]) => name);
}

export async function run(v: CliValues, args: string[]): Promise<number> {
  stampLines(v['log-format']);
  const client = args[0];
  if (!client)
    throw new InputError(
      'which ACME client? "tlsa hook certbot", "tlsa hook acme.sh" or "tlsa hook lego"',
    );
  const event = renewalEvent(client);
  const config = configFromCli(v);
  const services = servicesFor(config, event);
  if (!services.length) {
    const message = `no service in ${config.file} uses ${event.describe}; nothing to do.`;
    logLine(
      `tlsa: ${message}`,
      message,
      { event: 'nothing-to-do', fields: { client, paths: event.paths } },
      'stdout',
    );
    return v.json
      ? printJson('hook', EXIT.ok, { services, ...noEngineRun(), problems: [] })
      : EXIT.ok;
  }
  const now = new Date();
  const result = await runEngine(config, {
    ...runOptions(v, `hook ${client}`),
    services,
    now,
    checkServed: true,
    observeAll: true,
    lockWaitSeconds: v['lock-wait'] !== undefined ? Number(v['lock-wait']) : 120,
  });
  warn(result.targets.warnings);
  // Notes go to stdout, problems to stderr (as text; with --log-format json all are events on stderr).
  const problems: (LogEvent & { message: string })[] = [];
  const notes: (LogEvent & { message: string })[] = engineEvents(result, now);
  for (const p of result.promoted) {
    if (p.reloadError)
      problems.push({
        message: `${p.service}: the new chain is installed but the reload failed: ${p.reloadError}`,
        level: 'error',
        event: 'reload-failed',
        service: p.service,
        fields: { chain: p.chain, reloadError: p.reloadError },
      });
  }
  // The engine ran each distinct reload command once, for the first live chain that uses it.
  for (const s of result.served) {
    const svc = config.raw.services[s.service]!;
    if (s.live) {
      if (svc.reload) {
        if (s.reloaded === true)
          notes.push({
            message: `${s.service}: ${s.chain} matches a live record; reloaded`,
            event: 'reloaded',
            service: s.service,
            fields: { chain: s.chain },
          });
        else if (s.reloadError !== undefined) {
          const failed = {
            message: `${s.service}: reload failed: ${s.reloadError}`,
            level: 'error' as const,
            event: 'reload-failed',
            service: s.service,
            fields: { chain: s.chain, reloadError: s.reloadError },
          };
          notes.push({ ...failed, textOnly: true });
          problems.push(failed);
        }
      } else
        notes.push({
          message: `${s.service}: ${s.chain} matches a live record; safe to serve`,
          event: 'safe-to-serve',
          service: s.service,
          fields: { chain: s.chain },
        });
      continue;
    }
    const exposure = s.eta
      ? Math.max(0, Math.ceil((s.eta.getTime() - now.getTime()) / 1000))
      : undefined;
    const message =
      `${s.service}: ${s.chain} is served from ${client}'s files now, but no record that matches it is live yet: ` +
      `DANE clients that cached the old TLSA RRset may refuse mail for ${exposure !== undefined ? `about ${exposure} s (${duration(exposure)})` : 'up to 2×TTL after every authoritative server has the new records'}. ` +
      `Its records are published; tlsa did not reload the service. Fix the setup so this cannot happen again: ` +
      `${hookFixes(config, s.service, s.chain, result.targets).join(', or ')}.`;
    problems.push({
      message,
      level: 'error',
      event: 'exposed',
      service: s.service,
      fields: { chain: s.chain, exposureSeconds: exposure ?? null },
    });
  }
  // A resolver or server that did not answer makes "not live yet" a guess: exit 3 says so.
  const code = reportNetwork(result.network, problems.length ? EXIT.checkFailed : EXIT.ok);
  if (v.json)
    return printJson('hook', code, {
      services,
      ...engineJson(result),
      problems: problems.map((p) => p.message),
    });
  for (const n of notes) logLine(n.message, n.message, n, 'stdout');
  for (const p of problems) logLine(`tlsa: ${p.message}`, p.message, p);
  return code;
}
