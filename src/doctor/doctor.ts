/**
 * `tlsa doctor postfix`: reads a Postfix instance's real configuration (postconf), works out
 * per SMTP listener (smtp/25, submission/587, smtps/465, …) what is effective, and explains
 * what is wrong with TLS and DANE there, each finding with the parameter, the service, why and
 * the fix. Nothing is changed.
 *
 * Network: DNS questions only (TLSA records, Postfix's dnssec_probe, the MX names of `secure`
 * policy domains), to the resolver given with --resolver, else the system's (the one Postfix
 * uses); with --offline none at all.
 */
import type { KeyFamily } from '../certs/key-type.js';
import { InputError } from '../errors.js';
import { builtinCatalogPath, loadCatalog, type IssuerCatalog } from '../issuers/catalog.js';
import { normaliseName, ownerName, rdataText } from '../tlsa/record.js';
import type { DnsServer } from '../verify/dns.js';
import { parseServer, systemResolver } from '../verify/resolver.js';
import { chainSummary, servedCertificates, type ServedCertificates } from './certificates.js';
import {
  certificateSuites,
  checkCiphers,
  cipherView,
  COMMON_SENDER_SUITES,
  opensslVersion,
  type CipherView,
} from './ciphers.js';
import { exitCodeFor, sortFindings, type Finding, type Skipped } from './findings.js';
import { checkListener, checkMisplacedParameters } from './listeners.js';
import { checkOutbound, type OutboundView } from './outbound.js';
import { readPostfixConfig, type PostfixConfig } from './postconf.js';
import { applicableProtocols, checkProtocols } from './protocols.js';
import { smtpClientServices, smtpdServices, type Role } from './services.js';
import {
  checkTlsa,
  fromDns,
  fromFile,
  readTlsaZone,
  type ChainVerdict,
  type PublishedRecords,
  type TlsaZone,
} from './tlsa-records.js';

export interface DoctorOptions {
  /** `-c DIR` for postconf: another instance; undefined = the default one. */
  configDir?: string;
  /** MX host name for the TLSA owner names (default: myhostname of each service). */
  host?: string;
  /** Zone-file lines with the published TLSA records (instead of DNS). */
  tlsaFile?: string;
  /** `IP[:PORT]` of the validating resolver (default: the system's). */
  resolver?: string;
  /** Ask no DNS question at all: the checks that need one are listed as not checked. */
  offline?: boolean;
  timeoutMs?: number;
  now?: Date;
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
  ciphers?: {
    parameter: string;
    grade: string;
    exclusions: string[];
    cipherString?: string;
    tls12Suites: number;
    commonSuites: string[];
    invalid?: string;
  };
  certificates: { parameter: string; chains: string[] };
  tlsa?: {
    owner: string;
    source: 'file' | 'dns';
    status?: string;
    cnameChain?: string[];
    records: string[];
    chains: { keyType: string; verified: boolean; matched?: string }[];
  };
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

interface ResolverChoice {
  server?: DnsServer;
  isSystem: boolean;
  skipped?: string;
}

function chooseResolver(setting: string | undefined, offline: boolean): ResolverChoice {
  if (offline) {
    if (setting !== undefined)
      throw new InputError('--offline asks no DNS question; it cannot be combined with --resolver');
    return { isSystem: false, skipped: '--offline: no DNS question is asked' };
  }
  if (setting !== undefined) {
    const server = parseServer(setting);
    if (!server)
      throw new InputError(`--resolver "${setting}" is not "IP", "IP:PORT" or "[IPv6]:PORT"`);
    return { server, isSystem: false };
  }
  const server = systemResolver();
  if (!server)
    return { isSystem: true, skipped: 'no nameserver in /etc/resolv.conf (pass --resolver)' };
  return { server, isSystem: true };
}

function familiesOf(certs: ServedCertificates): KeyFamily[] {
  return [...new Set(certs.chains.map((c) => c.keyType.family))];
}

/** One finding per cause: the same main.cf finding reached from several listeners once; an
 *  empty list of edits dropped. */
function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings
    .filter((f) => {
      const k = `${f.id}\0${f.service}\0${f.parameter}\0${f.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .map((f) => {
      if (f.edits?.length) return f;
      const { edits: _none, ...rest } = f;
      return rest;
    });
}

export async function runDoctor(opts: DoctorOptions = {}): Promise<DoctorReport> {
  const now = opts.now ?? new Date();
  const timeoutMs = opts.timeoutMs ?? 5000;
  let hostOverride: string | undefined;
  if (opts.host !== undefined) {
    try {
      hostOverride = normaliseName(opts.host);
    } catch (e) {
      throw new InputError(`--host: ${(e as Error).message}`);
    }
  }
  const resolver = chooseResolver(opts.resolver, opts.offline ?? false);
  const fileZone: TlsaZone | undefined =
    opts.tlsaFile !== undefined ? readTlsaZone(opts.tlsaFile) : undefined;
  const cfg: PostfixConfig = await readPostfixConfig({
    ...(opts.configDir !== undefined ? { configDir: opts.configDir } : {}),
    ...(opts.postconf ? { postconf: opts.postconf } : {}),
  });

  let catalog: IssuerCatalog | undefined;
  try {
    catalog = loadCatalog(builtinCatalogPath('letsencrypt'));
  } catch {
    catalog = undefined;
  }

  const findings: Finding[] = [];
  const skipped: Skipped[] = [];
  const services: ServiceReport[] = [];
  const smtpd = smtpdServices(cfg);
  if (!smtpd.length)
    skipped.push({
      check: 'smtpd listeners',
      reason: 'master.cf has no inet service running smtpd',
    });
  if (!fileZone && !resolver.server) {
    skipped.push({
      check: 'published TLSA records',
      reason: `no --tlsa-file and no resolver (${resolver.skipped ?? 'none'})`,
    });
  }
  let cipherSkipped = false;
  const openssl = await opensslVersion();

  const perService = await Promise.all(
    smtpd.map(async (s) => {
      const mine: Finding[] = [];
      const add = (f: Omit<Finding, 'service'> & { global?: boolean }): void => {
        const { global, ...rest } = f;
        mine.push({ ...rest, service: global ? 'main.cf' : s.label });
      };
      const certs = servedCertificates(s, cfg.effectiveConfigDir);
      const host =
        hostOverride ??
        (() => {
          try {
            return normaliseName(s.get('myhostname'));
          } catch {
            return undefined;
          }
        })();

      // Published records for this listener's port.
      let published: PublishedRecords | undefined;
      let otherOwners: string[] | undefined;
      // Listeners without TLS (content-filter re-injection ports and the like) have no records to
      // check, except the MX, where records without STARTTLS are themselves the problem.
      if (host && s.port !== undefined && (s.tls || s.role === 'mx')) {
        const owner = ownerName(host, s.port);
        if (fileZone) {
          published = fromFile(fileZone.records, owner, fileZone.cnames);
          otherOwners = [
            ...new Set([...fileZone.records.map((r) => r.owner), ...fileZone.cnames.keys()]),
          ].filter((o) => o !== owner);
        } else if (resolver.server) {
          published = await fromDns(resolver.server, owner, timeoutMs);
        }
      }

      for (const f of checkListener(s, certs, !!published?.records.length)) add(f);
      for (const f of checkMisplacedParameters(cfg, s.master, s.label, 'server', s)) add(f);
      if (s.handoff)
        for (const f of checkMisplacedParameters(cfg, s.handoff, s.label, 'server', s)) add(f);

      let protocols: ServiceReport['protocols'];
      let ciphers: ServiceReport['ciphers'];
      if (s.tls) {
        const pv = applicableProtocols(s);
        protocols = {
          parameter: pv.parameter,
          value: pv.list.value,
          enabled: pv.list.enabled,
          why: pv.why,
        };
        for (const f of checkProtocols(s, cfg.version, openssl)) add(f);
        let cv: CipherView | undefined;
        try {
          cv = await cipherView(s);
        } catch (e) {
          if (!cipherSkipped)
            skipped.push({
              check: 'cipher lists',
              reason: `${(e as Error).message} (install openssl)`,
            });
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
            tls12Suites: certificateSuites(cv.suites).length,
            commonSuites: common,
            ...(cv.invalid ? { invalid: cv.invalid } : {}),
          };
          for (const f of checkCiphers(s, cv, families, pv.list.enabled, {
            postfix: cfg.version,
            openssl,
          }))
            add(f);
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
          ...(published.cnameChain ? { cnameChain: published.cnameChain } : {}),
          records: published.records.map(rdataText),
          chains: verdicts.map((v: ChainVerdict) => ({
            keyType: v.chain.keyType.label,
            verified: v.verified,
            ...(v.matched ? { matched: v.matched } : {}),
          })),
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
    }),
  );
  // In master.cf order, whatever order the lookups finished in.
  for (const p of perService) {
    services.push(p.report);
    findings.push(...p.findings);
  }

  // Outbound.
  const clients = smtpClientServices(cfg);
  const client = clients.find((c) => c.name === 'smtp') ?? clients[0];
  for (const c of clients) {
    for (const f of checkMisplacedParameters(cfg, c, `${c.name}/${c.type}`, 'client'))
      findings.push({ ...f, service: 'smtp client' });
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
