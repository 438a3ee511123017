/**
 * `tlsa doctor postfix`: reads a Postfix instance's real configuration (postconf), works out
 * per SMTP listener (smtp/25, submission/587, smtps/465, …) what is effective, and explains
 * what is wrong with TLS and DANE there, each finding with the parameter, the service, why and
 * the fix. Nothing is changed.
 *
 * Network: DNS questions only, and only to the resolver given with --resolver or, outside a
 * test environment, the system's (the one Postfix uses). In a test environment (vitest,
 * TLSA_LAB, NODE_ENV=test) a resolver that is not on loopback is never asked.
 */
import type { KeyFamily } from '../certs/key-type.js';
import { InputError } from '../errors.js';
import { builtinCatalogPath, loadCatalog, type IssuerCatalog } from '../issuers/catalog.js';
import { normaliseName, ownerName, rdataText, type TlsaRecord } from '../tlsa/record.js';
import type { DnsServer } from '../verify/dns.js';
import { parseServer, systemResolver } from '../verify/resolver.js';
import { chainSummary, servedCertificates, type ServedCertificates } from './certificates.js';
import { checkCiphers, cipherView, COMMON_SENDER_SUITES, type CipherView } from './ciphers.js';
import { exitCodeFor, sortFindings, type Finding, type Skipped } from './findings.js';
import { checkListener, checkMisplacedParameters } from './listeners.js';
import { checkOutbound, isLoopback, type OutboundView } from './outbound.js';
import { readPostfixConfig, type PostfixConfig } from './postconf.js';
import { applicableProtocols, checkProtocols } from './protocols.js';
import { smtpClientServices, smtpdServices, type Role } from './services.js';
import { checkTlsa, fromDns, fromFile, readTlsaFile, type ChainVerdict, type PublishedRecords } from './tlsa-records.js';

export interface DoctorOptions {
  /** `-c DIR` for postconf: another instance; undefined = the default one. */
  configDir?: string;
  /** MX host name for the TLSA owner names (default: myhostname of each service). */
  host?: string;
  /** Zone-file lines with the published TLSA records (instead of DNS). */
  tlsaFile?: string;
  /** `IP[:PORT]` of the validating resolver (default: the system's, outside tests). */
  resolver?: string;
  timeoutMs?: number;
  now?: Date;
  env?: NodeJS.ProcessEnv;
  /** Path of postconf (default: $TLSA_POSTCONF, PATH, /usr/sbin). */
  postconf?: string;
}

export interface ServiceReport {
  service: string;
  master: string;
  command: string;
  port?: number;
  role: Role;
  tls: { securityLevel: string; wrappermode: boolean; mandatory: boolean };
  protocols?: { parameter: string; value: string; enabled: string[]; why: string };
  ciphers?: { parameter: string; grade: string; exclusions: string[]; cipherString?: string; tls12Suites: number; commonSuites: string[]; invalid?: string };
  certificates: { parameter: string; chains: string[] };
  tlsa?: { owner: string; source: 'file' | 'dns'; status?: string; records: string[]; chains: { keyType: string; verified: boolean; matched?: string }[] };
}

export interface DoctorReport {
  ok: boolean;
  exitCode: number;
  postfix: { version: string; configDir: string };
  services: ServiceReport[];
  outbound: OutboundView;
  findings: Finding[];
  skipped: Skipped[];
}

export function inTestEnvironment(env: NodeJS.ProcessEnv): boolean {
  return !!(env['VITEST'] || env['TLSA_LAB'] || env['NODE_ENV'] === 'test');
}

interface ResolverChoice { server?: DnsServer; isSystem: boolean; skipped?: string }

function chooseResolver(setting: string | undefined, env: NodeJS.ProcessEnv): ResolverChoice {
  const test = inTestEnvironment(env);
  if (setting !== undefined) {
    const server = parseServer(setting);
    if (!server) throw new InputError(`--resolver "${setting}" is not "IP", "IP:PORT" or "[IPv6]:PORT"`);
    if (test && !isLoopback(server.host)) return { isSystem: false, skipped: `test environment: the resolver ${setting} is not on loopback, and tests never leave loopback` };
    return { server, isSystem: false };
  }
  if (test) return { isSystem: true, skipped: 'test environment: the system resolver is not asked (pass --resolver with a loopback lab resolver)' };
  const server = systemResolver();
  if (!server) return { isSystem: true, skipped: 'no nameserver in /etc/resolv.conf (pass --resolver)' };
  return { server, isSystem: true };
}

function familiesOf(certs: ServedCertificates): KeyFamily[] {
  return [...new Set(certs.chains.map((c) => c.keyType.family))];
}

function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.id}\0${f.service}\0${f.parameter}\0${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  const now = opts.now ?? new Date();
  const timeoutMs = opts.timeoutMs ?? 5000;
  let hostOverride: string | undefined;
  if (opts.host !== undefined) {
    try { hostOverride = normaliseName(opts.host); } catch (e) { throw new InputError(`--host: ${(e as Error).message}`); }
  }
  const resolver = chooseResolver(opts.resolver, env);
  const fileRecords: TlsaRecord[] | undefined = opts.tlsaFile !== undefined ? readTlsaFile(opts.tlsaFile) : undefined;
  const cfg: PostfixConfig = await readPostfixConfig({ ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}), ...(opts.postconf ? { postconf: opts.postconf } : {}) });

  let catalog: IssuerCatalog | undefined;
  try { catalog = loadCatalog(builtinCatalogPath('letsencrypt')); } catch { catalog = undefined; }

  const findings: Finding[] = [];
  const skipped: Skipped[] = [];
  const services: ServiceReport[] = [];
  const smtpd = smtpdServices(cfg);
  if (!smtpd.length) skipped.push({ check: 'smtpd listeners', reason: 'master.cf has no inet service running smtpd' });
  if (!fileRecords && !resolver.server) {
    skipped.push({ check: 'published TLSA records', reason: `no --tlsa-file and no resolver (${resolver.skipped ?? 'none'})` });
  }
  let cipherSkipped = false;

  const perService = await Promise.all(smtpd.map(async (s) => {
    const mine: Finding[] = [];
    const add = (f: Omit<Finding, 'service'> & { global?: boolean }): void => {
      const { global, ...rest } = f;
      mine.push({ ...rest, service: global ? 'main.cf' : s.label });
    };
    const certs = servedCertificates(s, cfg.effectiveConfigDir);
    const host = hostOverride ?? (() => { try { return normaliseName(s.get('myhostname')); } catch { return undefined; } })();

    // Published records for this listener's port.
    let published: PublishedRecords | undefined;
    let otherOwners: string[] | undefined;
    // Listeners without TLS (content-filter re-injection ports and the like) have no records to
    // check, except the MX, where records without STARTTLS are themselves the problem.
    if (host && s.port !== undefined && (s.tls || s.role === 'mx')) {
      const owner = ownerName(host, s.port);
      if (fileRecords) {
        published = fromFile(fileRecords, owner);
        otherOwners = [...new Set(fileRecords.map((r) => r.owner))].filter((o) => o !== owner);
      } else if (resolver.server) {
        published = await fromDns(resolver.server, owner, timeoutMs);
      }
    }

    for (const f of checkListener(s, certs, !!published?.records.length)) add(f);
    for (const f of checkMisplacedParameters(cfg, s.master, s.label, 'server')) add(f);
    if (s.handoff) for (const f of checkMisplacedParameters(cfg, s.handoff, s.label, 'server')) add(f);

    let protocols: ServiceReport['protocols'];
    let ciphers: ServiceReport['ciphers'];
    if (s.tls) {
      const pv = applicableProtocols(s);
      protocols = { parameter: pv.parameter, value: pv.list.value, enabled: pv.list.enabled, why: pv.why };
      for (const f of checkProtocols(s, cfg.version)) add(f);
      let cv: CipherView | undefined;
      try {
        cv = await cipherView(s);
      } catch (e) {
        if (!cipherSkipped) skipped.push({ check: 'cipher lists', reason: `${(e as Error).message} (install openssl)` });
        cipherSkipped = true;
      }
      if (cv) {
        const families = familiesOf(certs);
        const common = Object.entries(COMMON_SENDER_SUITES)
          .filter(([kt]) => !families.length || families.includes(kt as KeyFamily))
          .flatMap(([, names]) => names.filter((n) => cv!.suites.some((c) => c.name === n)));
        ciphers = {
          parameter: cv.gradeParameter,
          grade: cv.grade,
          exclusions: cv.exclusions,
          ...(cv.cipherString ? { cipherString: cv.cipherString } : {}),
          tls12Suites: cv.suites.length,
          commonSuites: common,
          ...(cv.invalid ? { invalid: cv.invalid } : {}),
        };
        for (const f of checkCiphers(s, cv, families, pv.list.enabled)) add(f);
      }
    }

    let tlsa: ServiceReport['tlsa'];
    if (published && host) {
      const { findings: tf, verdicts } = checkTlsa({
        service: s,
        host,
        published,
        chains: certs.chains,
        certParameter: certs.parameter === 'none' ? 'smtpd_tls_chain_files' : certs.parameter,
        ...(catalog ? { catalog } : {}),
        now,
        ...(otherOwners ? { otherOwners } : {}),
      });
      for (const f of tf) add(f);
      tlsa = {
        owner: published.owner,
        source: published.source,
        ...(published.status ? { status: published.status } : {}),
        records: published.records.map(rdataText),
        chains: verdicts.map((v: ChainVerdict) => ({ keyType: v.chain.keyType.label, verified: v.verified, ...(v.matched ? { matched: v.matched } : {}) })),
      };
    }

    const report: ServiceReport = {
      service: s.label,
      master: `${s.master.name}/${s.master.type}${s.handoff ? ` → ${s.handoff.name}/${s.handoff.type}` : ''}`,
      command: s.handoff ? `${s.master.command} → ${s.handoff.command}` : s.master.command,
      ...(s.port !== undefined ? { port: s.port } : {}),
      role: s.role,
      tls: { securityLevel: s.securityLevel, wrappermode: s.wrappermode, mandatory: s.enforce },
      ...(protocols ? { protocols } : {}),
      ...(ciphers ? { ciphers } : {}),
      certificates: { parameter: certs.parameter, chains: certs.chains.map(chainSummary) },
      ...(tlsa ? { tlsa } : {}),
    };
    return { report, findings: mine };
  }));
  // In master.cf order, whatever order the lookups finished in.
  for (const p of perService) {
    services.push(p.report);
    findings.push(...p.findings);
  }

  // Outbound.
  const clients = smtpClientServices(cfg);
  const client = clients.find((c) => c.name === 'smtp') ?? clients[0];
  for (const c of clients) {
    for (const f of checkMisplacedParameters(cfg, c, `${c.name}/${c.type}`, 'client')) findings.push({ ...f, service: 'smtp client' });
  }
  const outbound = await checkOutbound(cfg, client, {
    ...(resolver.server ? { resolver: resolver.server } : {}),
    resolverIsSystem: resolver.isSystem,
    ...(resolver.skipped ? { resolverSkipped: resolver.skipped } : {}),
    timeoutMs,
  });
  for (const f of outbound.findings) findings.push({ ...f, service: 'smtp client' });
  skipped.push(...outbound.skipped);

  const all = sortFindings(dedupe(findings));
  const exitCode = exitCodeFor(all);
  return {
    ok: exitCode === 0,
    exitCode,
    postfix: { version: cfg.version, configDir: cfg.effectiveConfigDir },
    services,
    outbound: outbound.view,
    findings: all,
    skipped,
  };
}
