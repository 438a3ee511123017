/** `tlsa check [HOST[:PORT]…]`: DNSSEC, every authoritative server, and a live probe per
 *  address and key type, matched against the published records. Exit 1 on any failure. */
import { existsSync } from 'node:fs';
import type { LoadedConfig } from '../config/load.js';
import { EXIT, InputError } from '../errors.js';
import { builtinCatalogPath, loadCatalog } from '../issuers/catalog.js';
import { configuredProtocol, servicePorts } from '../config/ports.js';
import { bothForms, HostError, parseHost } from '../tlsa/host.js';
import { PROTOCOLS_LIST, type Protocol } from '../tlsa/policy.js';
import { checkTarget, type CheckReport, type CheckTarget } from '../verify/check.js';
import type { RenewalSetup } from '../verify/next-renewal.js';
import { resolverFrom } from '../verify/resolver.js';
import { waitTracker } from '../util/waiting.js';
import { out, printJson, progressLine, warn } from './fail.js';
import type { CliValues } from './options.js';

/** common.ts's DEFAULT_CONFIG: not imported from there, because common.ts loads the config
 *  loader (yaml + zod), a third of a cold start, which `check HOST…` does not need. */
const DEFAULT_CONFIG = '/etc/tlsa/config.yaml';

const sameHost = (a: string, b: string): boolean =>
  a.replace(/\.$/, '').toLowerCase() === b.replace(/\.$/, '').toLowerCase();

function parseTarget(text: string, protocol?: Protocol): CheckTarget {
  // More than one ":" is an IPv6 address without a port: parseHost says why it cannot be used.
  const m = /^(\[[^\]]*\]|[^:]*|.*:.*:.*?)(?::(\d+))?$/.exec(text);
  const port = m?.[2] ? Number(m[2]) : 25;
  if (!m || port < 1 || port > 65535) throw new InputError(`"${text}" is not HOST or HOST:PORT`);
  let host;
  try {
    host = parseHost(m[1]!).ascii;
  } catch (e) {
    if (e instanceof HostError) throw new InputError(`"${text}": ${e.message}`);
    throw e;
  }
  return { host, port, ...(protocol ? { protocol } : {}) };
}

function render(r: CheckReport): string {
  const lines = [
    `${r.ok ? 'OK  ' : 'FAIL'} ${bothForms(r.host)}:${r.port} (${r.protocol})  ${r.owner}  TLSA ${r.dnssec.tlsa}, addresses ${r.dnssec.address}, ${r.records.length} record(s)${r.servedTtl !== undefined ? `, TTL ${r.servedTtl}` : ''}; authoritative: ${r.authoritative.inSync ? r.authoritative.summary : `NOT in sync (${r.authoritative.lagging.join(', ') || r.authoritative.summary})`}`,
  ];
  for (const p of r.probes) {
    const what = p.notServed
      ? 'no certificate of this type (the server answered the other one)'
      : p.ok
        ? `Verified: ${p.matched} (${p.leaf})`
        : `NOT verified: ${p.problems.join('; ')}`;
    lines.push(`     ${p.address.padEnd(15)} ${p.keyType.toUpperCase().padEnd(5)} ${what}`);
  }
  // Probe failures are on their rows already.
  const shown = new Set(
    r.probes.filter((p) => !p.ok).map((p) => `${p.address} ${p.keyType}: ${p.problems.join('; ')}`),
  );
  for (const f of r.failures) if (!shown.has(f)) lines.push(`     failure: ${f}`);
  // The renewal forecasts that are not warnings (safe, staged) are said too.
  for (const f of r.nextRenewal) if (f.verdict !== 'breaks') lines.push(`     ${f.text}`);
  for (const w of r.warnings) lines.push(`     warning: ${w}`);
  return lines.join('\n');
}

/** A built-in ACME renewal coming soon whose next key's 3 1 1 is not live (renewal-due.ts). */
async function renewalWarnings(config: LoadedConfig, services: string[]): Promise<string[]> {
  const [{ acmeLineages, acmeServiceNames }, { nextKeyWarning }, { readState }] = await Promise.all(
    [
      import('../engine/acme-lineages.js'),
      import('../acme/renewal-due.js'),
      import('../engine/state.js'),
    ],
  );
  const now = new Date();
  let state;
  try {
    state = readState(config.stateDir);
  } catch {
    // A damaged state: every next key counts as not live, the safe side for a warning.
  }
  return acmeLineages(config, state, acmeServiceNames(config, services), now).flatMap(
    (l) =>
      nextKeyWarning({
        label: `${l.service} ${l.keyType}`,
        next: l.next,
        nextKeyLive: !!l.nextKey?.live,
        ttl: l.ttl,
        now,
      }) ?? [],
  );
}

export async function run(v: CliValues, args: string[]): Promise<number> {
  if (v.protocol && !(PROTOCOLS_LIST as readonly string[]).includes(v.protocol))
    throw new InputError(`--protocol must be one of ${PROTOCOLS_LIST.join(', ')}`);
  const configFile =
    v.config ?? process.env.TLSA_CONFIG ?? (args.length ? undefined : DEFAULT_CONFIG);
  // The config loader (yaml + zod) is a third of a cold start: loaded only when there is a config.
  const config: LoadedConfig | undefined =
    configFile && (v.config || process.env.TLSA_CONFIG || existsSync(configFile))
      ? (await import('../config/load.js')).loadConfig(configFile)
      : undefined;
  if (config) warn(config.warnings);
  // Without --protocol, a HOST:PORT the configuration lists is probed as configured there.
  let targets: CheckTarget[] = args.map((a) => {
    const t = parseTarget(a, v.protocol as Protocol | undefined);
    const configured =
      !t.protocol && config
        ? configuredProtocol(Object.values(config.raw.services), t.host, t.port)
        : undefined;
    return configured ? { ...t, protocol: configured } : t;
  });
  if (!targets.length) {
    if (!config)
      throw new InputError('check needs HOST[:PORT] arguments or a --config with services');
    targets = Object.values(config.raw.services).flatMap((s) =>
      servicePorts(s).map(({ port, protocol }) => ({ host: s.host, port, protocol })),
    );
  }
  const verify = config?.raw.verify;
  const resolverSetting = v.resolver ?? verify?.resolver ?? 'system';
  let resolver;
  try {
    resolver = resolverFrom(resolverSetting);
  } catch (e) {
    throw new InputError((e as Error).message);
  }
  const authPort =
    v['auth-port'] !== undefined ? Number(v['auth-port']) : (verify?.authoritative_port ?? 53);
  if (!Number.isInteger(authPort) || authPort < 1 || authPort > 65535)
    throw new InputError(`--auth-port must be a port number, got "${v['auth-port']}"`);
  const timeoutMs = (v.timeout !== undefined ? Number(v.timeout) : (verify?.timeout_s ?? 5)) * 1000;
  if (!(timeoutMs > 0))
    throw new InputError(`--timeout must be a number of seconds, got "${v.timeout}"`);
  const catalog = loadCatalog(builtinCatalogPath('letsencrypt'));
  if (config) {
    // A port the configuration lists is forecast with its service's catalog and setup.
    const { parseSpec, serviceCatalog } = await import('../engine/targets.js');
    const cache = new Map();
    const checked = new Set<string>();
    targets = targets.map((t) => {
      const found = Object.entries(config.raw.services).find(
        ([, s]) => sameHost(s.host, t.host) && servicePorts(s).some((p) => p.port === t.port),
      );
      if (!found) return t;
      const [name, s] = found;
      checked.add(name);
      const own = serviceCatalog(config, name, cache);
      const setup: RenewalSetup = {
        service: {
          name,
          staged: !!s.install,
          reload: !!s.reload,
          issuers: s.issuers ?? 'letsencrypt',
          publishesKey: (s.records?.length ? s.records : ['3 1 1'])
            .map(parseSpec)
            .some((x) => x.usage === 3 && x.selector === 1),
          ttl: s.ttl ?? config.raw.ttl,
        },
        catalogs: own ? [own] : [],
      };
      return { ...t, setup };
    });
    if ([...checked].some((n) => config.raw.services[n]!.acme))
      warn(await renewalWarnings(config, [...checked]));
  }
  const now = new Date();
  // Targets are checked side by side, each within timeoutMs; one progress line a second at most.
  const waits = waitTracker(progressLine, { limitMs: timeoutMs });
  const reports = await Promise.all(
    targets.map((t) =>
      checkTarget(t, {
        resolver,
        authoritativePort: authPort,
        timeoutMs,
        catalog,
        cap: config?.raw.max_records_per_name ?? 12,
        now,
        waits,
      }),
    ),
  );
  const code = reports.every((r) => r.ok) ? EXIT.ok : EXIT.checkFailed;
  if (v.json) return printJson('check', code, { reports });
  out(`${reports.map(render).join('\n')}\n`);
  return code;
}
