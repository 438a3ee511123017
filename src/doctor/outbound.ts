/**
 * Outbound mail (the smtp client): DANE needs `smtp_tls_security_level = dane`,
 * `smtp_dns_support_level = dnssec` and a validating resolver (the AD bit on Postfix's
 * `dnssec_probe`); `secure` policy entries without `match=` verify the certificate against
 * the next-hop domain, which fails for every provider whose MX names differ from the domain.
 */
import { isIP } from 'node:net';
import type { DnsServer } from '../verify/dns.js';
import { serverLabel } from '../verify/dns.js';
import { validatedLookup } from '../verify/dnssec.js';
import type { FindingLevel } from './findings.js';
import { listTable, splitList, splitTableList, type MasterService, type PostfixConfig } from './postconf.js';

export interface OutboundFinding {
  id: string;
  level: FindingLevel;
  parameter: string;
  message: string;
  fix: string;
}

export interface PolicyEntry {
  table: string;
  key: string;
  level: string;
  attributes: Record<string, string>;
}

export interface OutboundView {
  service: string;
  securityLevel: string;
  dnsSupportLevel: string;
  relayhost: string;
  policyEntries: PolicyEntry[];
  resolver?: { server: string; status: string; message: string };
}

export interface OutboundResult {
  view: OutboundView;
  findings: OutboundFinding[];
  skipped: { check: string; reason: string }[];
}

export function isLoopback(host: string): boolean {
  return (isIP(host) === 4 && host.startsWith('127.')) || host === '::1';
}

export function parsePolicyValue(table: string, key: string, value: string): PolicyEntry {
  const [level = '', ...rest] = value.trim().split(/\s+/);
  const attributes: Record<string, string> = {};
  for (const t of rest) {
    const i = t.indexOf('=');
    if (i > 0) attributes[t.slice(0, i).toLowerCase()] = t.slice(i + 1);
  }
  return { table, key, level: level.toLowerCase(), attributes };
}

export interface OutboundOptions {
  /** The resolver to ask (Postfix's own is the first nameserver in /etc/resolv.conf). */
  resolver?: DnsServer;
  /** The resolver is the system's (what Postfix uses), not one given with --resolver. */
  resolverIsSystem?: boolean;
  /** Why the resolver check does not run (when resolver is undefined). */
  resolverSkipped?: string;
  timeoutMs: number;
}

export async function checkOutbound(cfg: PostfixConfig, client: MasterService | undefined, opts: OutboundOptions): Promise<OutboundResult> {
  const get = (p: string): string => client?.overrides.get(p) ?? cfg.effective.get(p) ?? '';
  const findings: OutboundFinding[] = [];
  const skipped: { check: string; reason: string }[] = [];
  const securityLevel = get('smtp_tls_security_level').trim().toLowerCase() || (/^yes$/i.test(get('smtp_enforce_tls')) ? 'encrypt' : /^yes$/i.test(get('smtp_use_tls')) ? 'may' : 'none');
  const dnsSupportLevel = get('smtp_dns_support_level').trim().toLowerCase();
  const relayhost = get('relayhost').trim();
  const origin = (p: string): string => (client?.overrides.has(p) ? `-o ${p} on ${client.name}/${client.type}` : `${p}`);

  // Policy tables.
  const policyEntries: PolicyEntry[] = [];
  const tables = splitTableList(get('smtp_tls_policy_maps'));
  const listed = await Promise.all(tables.map((t) => listTable(cfg, t).then((entries) => ({ entries }), (e: Error) => ({ error: e.message }))));
  tables.forEach((table, i) => {
    const l = listed[i]!;
    if ('error' in l) skipped.push({ check: `smtp_tls_policy_maps ${table}`, reason: `cannot list the table (postmap -s): ${l.error}` });
    else for (const e of l.entries) policyEntries.push(parsePolicyValue(table, e.key, e.value));
  });
  const danePolicy = policyEntries.filter((e) => e.level === 'dane' || e.level === 'dane-only');
  const daneWanted = securityLevel === 'dane' || securityLevel === 'dane-only' || danePolicy.length > 0;

  if (!daneWanted) {
    findings.push({
      id: 'dane-outbound-off',
      level: relayhost ? 'info' : 'warning',
      parameter: 'smtp_tls_security_level',
      message: `${origin('smtp_tls_security_level')} = ${securityLevel}: outbound mail does not use DANE, so a man in the middle can strip STARTTLS or present any certificate to your server${relayhost ? ` (all mail goes through relayhost ${relayhost}; DANE then protects only that hop)` : ''}.`,
      fix: 'Set smtp_tls_security_level = dane and smtp_dns_support_level = dnssec, with a local validating resolver (unbound) in /etc/resolv.conf.',
    });
  }
  if (daneWanted && dnsSupportLevel !== 'dnssec') {
    findings.push({
      id: 'dane-dnssec-off',
      level: 'error',
      parameter: 'smtp_dns_support_level',
      message: `${securityLevel === 'dane' || securityLevel === 'dane-only' ? `smtp_tls_security_level = ${securityLevel}` : `${danePolicy.length} dane policy entr${danePolicy.length > 1 ? 'ies' : 'y'}`} without smtp_dns_support_level = dnssec (it is "${dnsSupportLevel || 'empty'}"): Postfix cannot see DNSSEC and silently downgrades dane to may — no DANE at all.`,
      fix: 'Set smtp_dns_support_level = dnssec.',
    });
  }

  // `secure` without match=: the certificate must name the next-hop domain.
  const certMatch = splitList(get('smtp_tls_secure_cert_match'), true).map((x) => x.toLowerCase());
  for (const e of policyEntries) {
    if (e.level !== 'secure' || e.attributes['match'] || e.key.startsWith('[') || certMatch.includes('hostname')) continue;
    findings.push({
      id: 'policy-secure-nexthop',
      level: 'warning',
      parameter: 'smtp_tls_policy_maps',
      message: `${e.table}: "${e.key} secure" checks the server certificate against ${certMatch.join(', ') || 'nexthop, dot-nexthop'} (the domain ${e.key.replace(/^\./, '')}), but providers' MX names usually differ from the domain (gmail.com → *.google.com, outlook.com → *.protection.outlook.com): delivery defers with "Server certificate not verified".`,
      fix: `Use "${e.key} dane" when the domain publishes TLSA records, else "${e.key} secure match=.PROVIDER-MX-DOMAIN" (or "verify match=hostname" after checking the MX records are DNSSEC-signed).`,
    });
  }

  // The validating resolver.
  let resolverView: OutboundView['resolver'];
  if (opts.resolver) {
    const server = serverLabel(opts.resolver);
    const probe = get('dnssec_probe').trim() || 'ns:.';
    const m = /^([a-z0-9]+):(.+)$/i.exec(probe);
    const type = (m?.[1] ?? 'ns').toUpperCase();
    const name = m?.[2] ?? '.';
    if (opts.resolverIsSystem && !isLoopback(opts.resolver.host) && daneWanted) {
      findings.push({
        id: 'dane-resolver-not-local',
        level: 'warning',
        parameter: '/etc/resolv.conf',
        message: `Postfix trusts the AD bit of ${server}, which is not on this host: the bit crosses the network unprotected, so a man in the middle can forge "validated" answers.`,
        fix: 'Run a local validating resolver (unbound) and put "nameserver 127.0.0.1" in /etc/resolv.conf.',
      });
    }
    let status: string;
    let message: string;
    try {
      const r = await validatedLookup(opts.resolver, name, type as 'NS', { timeoutMs: opts.timeoutMs, retries: 1 });
      // A validated denial (NXDOMAIN/NODATA with AD) proves validation as well as data does.
      status = (r.status === 'nxdomain' || r.status === 'nodata') && r.security === 'secure' ? 'secure' : r.status;
      message = r.message;
    } catch (e) {
      status = 'error';
      message = (e as Error).message;
    }
    resolverView = { server, status, message };
    if (status === 'timeout' || status === 'error' || status === 'servfail') {
      findings.push({
        id: 'dane-resolver-unreachable',
        level: 'warning',
        parameter: 'dnssec_probe',
        message: `The resolver ${server} gave no usable answer for dnssec_probe (${probe}): ${message}.`,
        fix: 'Check that the resolver runs and answers for the probe name; dnssec_probe must name a signed RRset the resolver can reach.',
      });
    } else if (status !== 'secure') {
      findings.push({
        id: 'dane-resolver-not-validating',
        level: daneWanted ? 'error' : 'warning',
        parameter: 'dnssec_probe',
        message: `The resolver ${server} does not validate: ${probe} came back without the AD bit (${message}).${daneWanted ? ' Postfix treats every TLSA lookup as insecure, so DANE is never used.' : ''}`,
        fix: 'Use a validating resolver (unbound with a root trust anchor) on this host.',
      });
    }
  } else if (opts.resolverSkipped) {
    skipped.push({ check: 'validating resolver (dnssec_probe)', reason: opts.resolverSkipped });
  }

  return {
    view: {
      service: client ? `${client.name}/${client.type}` : 'main.cf',
      securityLevel,
      dnsSupportLevel,
      relayhost,
      policyEntries,
      ...(resolverView ? { resolver: resolverView } : {}),
    },
    findings,
    skipped,
  };
}
