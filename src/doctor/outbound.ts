/**
 * Outbound mail (the smtp client): DANE needs `smtp_tls_security_level = dane`,
 * `smtp_dns_support_level = dnssec` and a validating resolver (the AD bit on Postfix's
 * `dnssec_probe`); a global mandatory level (`encrypt`, `verify`, `secure`) defers mail to
 * much of the Internet; `secure` policy entries without `match=` verify the certificate
 * against the next-hop domain, which fails when the domain's MX names lie outside it (looked
 * up when a resolver may be asked).
 */
import { isIP } from 'node:net';
import type { DnsServer } from '../verify/dns.js';
import { serverLabel } from '../verify/dns.js';
import { validatedLookup } from '../verify/dnssec.js';
import type { ConfigEdit, FindingWithoutService } from './findings.js';
import {
  listTable,
  splitList,
  splitTableList,
  underlyingTables,
  type MasterService,
  type PostfixConfig,
} from './postconf.js';

export type OutboundFinding = FindingWithoutService;

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

/** Global levels that make TLS mandatory for every destination, and what that does. */
const MANDATORY_LEVELS: Record<string, string> = {
  encrypt:
    'mail to every domain whose MX does not offer STARTTLS defers. The certificate is not checked (a man in the middle cannot strip STARTTLS, but can present any certificate).',
  verify:
    'mail to every domain whose MX does not offer STARTTLS, or presents a certificate that does not verify against smtp_tls_CAfile/CApath or does not name the MX host (self-signed and private-CA certificates are common on port 25), defers.',
  secure:
    'the certificate must verify and name the next-hop domain (smtp_tls_secure_cert_match), so mail defers to every domain whose MX names differ from the domain (gmail.com → *.google.com, outlook.com → *.protection.outlook.com), and to every domain without STARTTLS.',
  fingerprint:
    'mail to every destination defers unless its certificate matches smtp_tls_fingerprint_cert_match, which names the certificates of a few known hosts.',
};

/** A match list (`nexthop:dot-nexthop`, `hostname, nexthop`), lower case, without order. */
function matchSet(value: string): string[] {
  return splitList(value, true)
    .map((x) => x.toLowerCase())
    .sort();
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** `.example.net` for mx1.mail.example.net: the parent of an MX name, as a match= suffix. */
function suffixOf(host: string): string {
  const labels = host.replace(/\.$/, '').split('.');
  return `.${labels.length > 2 ? labels.slice(1).join('.') : labels.join('.')}`;
}

/** The MX names of a policy domain that lie outside it (nexthop and dot-nexthop match only
 *  names under it), or why they are not known. No MX record: the domain itself is the host. */
async function mxNames(
  domain: string,
  subdomains: boolean,
  opts: OutboundOptions,
): Promise<{ outside?: string[]; reason?: string }> {
  if (subdomains) return { reason: 'a ".domain" key covers every subdomain, each with its own MX' };
  if (!opts.resolver) return { reason: opts.resolverSkipped ?? 'no resolver' };
  try {
    const r = await validatedLookup(opts.resolver, domain, 'MX', {
      timeoutMs: opts.timeoutMs,
      retries: 1,
    });
    if (r.status === 'nxdomain' || r.status === 'nodata') return { outside: [] };
    if (
      r.status === 'timeout' ||
      r.status === 'servfail' ||
      r.status === 'error' ||
      r.status === 'bogus'
    )
      return { reason: r.message };
    const names = r.records
      .map((a) => (a.type === 'MX' ? String(a.data.exchange).toLowerCase().replace(/\.$/, '') : ''))
      .filter(Boolean);
    return { outside: names.filter((n) => n !== domain && !n.endsWith(`.${domain}`)) };
  } catch (e) {
    return { reason: (e as Error).message };
  }
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

export async function checkOutbound(
  cfg: PostfixConfig,
  client: MasterService | undefined,
  opts: OutboundOptions,
): Promise<OutboundResult> {
  const get = (p: string): string => client?.overrides.get(p) ?? cfg.effective.get(p) ?? '';
  const findings: OutboundFinding[] = [];
  const skipped: { check: string; reason: string }[] = [];
  const securityLevel =
    get('smtp_tls_security_level').trim().toLowerCase() ||
    (/^yes$/i.test(get('smtp_enforce_tls'))
      ? 'encrypt'
      : /^yes$/i.test(get('smtp_use_tls'))
        ? 'may'
        : 'none');
  const dnsSupportLevel = get('smtp_dns_support_level').trim().toLowerCase();
  const relayhost = get('relayhost').trim();
  const origin = (p: string): string =>
    client?.overrides.has(p) ? `-o ${p} on ${client.name}/${client.type}` : `${p}`;
  const edit = (p: string, value: string): ConfigEdit => ({
    ...(client?.overrides.has(p) ? { service: `${client.name}/${client.type}` } : {}),
    parameter: p,
    value,
  });
  const daneEdits = [
    edit('smtp_tls_security_level', 'dane'),
    edit('smtp_dns_support_level', 'dnssec'),
  ];

  // Policy tables.
  const policyEntries: PolicyEntry[] = [];
  const tables = splitTableList(get('smtp_tls_policy_maps')).flatMap((t) =>
    underlyingTables(t).map((under) => ({ table: t, under })),
  );
  const listed = await Promise.all(
    tables.map((t) =>
      listTable(cfg, t.under).then(
        (entries) => ({ entries }),
        (e: Error) => ({ error: e.message }),
      ),
    ),
  );
  tables.forEach(({ table, under }, i) => {
    const l = listed[i]!;
    const name = under === table ? table : `${under} (in ${table})`;
    if ('error' in l)
      skipped.push({
        check: `smtp_tls_policy_maps ${name}`,
        reason: `cannot list the table (postmap -s): ${l.error}`,
      });
    else for (const e of l.entries) policyEntries.push(parsePolicyValue(name, e.key, e.value));
  });
  const danePolicy = policyEntries.filter((e) => e.level === 'dane' || e.level === 'dane-only');
  const daneWanted =
    securityLevel === 'dane' || securityLevel === 'dane-only' || danePolicy.length > 0;

  const mandatory = MANDATORY_LEVELS[securityLevel];
  if (!daneWanted && mandatory && !relayhost) {
    findings.push({
      id: 'outbound-tls-mandatory',
      level: 'warning',
      parameter: 'smtp_tls_security_level',
      message: `${origin('smtp_tls_security_level')} = ${securityLevel} applies to every destination: ${mandatory} Mail that cannot be delivered that way stays in the queue and bounces after maximal_queue_lifetime.`,
      fix: 'Set smtp_tls_security_level = dane (authenticated TLS where the domain publishes TLSA records, opportunistic TLS elsewhere) with smtp_dns_support_level = dnssec; keep mandatory levels for the few domains that need them, in smtp_tls_policy_maps.',
      edits: daneEdits,
    });
  } else if (!daneWanted && !mandatory) {
    findings.push({
      id: 'dane-outbound-off',
      level: relayhost ? 'info' : 'warning',
      parameter: 'smtp_tls_security_level',
      message: `${origin('smtp_tls_security_level')} = ${securityLevel}: outbound mail does not use DANE, so a man in the middle can strip STARTTLS or present any certificate to your server${relayhost ? ` (all mail goes through relayhost ${relayhost}; DANE then protects only that hop)` : ''}.`,
      fix: 'Set smtp_tls_security_level = dane and smtp_dns_support_level = dnssec, with a local validating resolver (unbound) in /etc/resolv.conf.',
      edits: daneEdits,
    });
  }
  if (daneWanted && dnsSupportLevel !== 'dnssec') {
    findings.push({
      id: 'dane-dnssec-off',
      level: 'error',
      parameter: 'smtp_dns_support_level',
      message: `${securityLevel === 'dane' || securityLevel === 'dane-only' ? `smtp_tls_security_level = ${securityLevel}` : `${danePolicy.length} dane policy entr${danePolicy.length > 1 ? 'ies' : 'y'}`} without smtp_dns_support_level = dnssec (it is "${dnsSupportLevel || 'empty'}"): Postfix cannot see DNSSEC and silently downgrades dane to may — no DANE at all.`,
      fix: 'Set smtp_dns_support_level = dnssec.',
      edits: [edit('smtp_dns_support_level', 'dnssec')],
    });
  }

  // match= that repeats the default; `secure` without a match= of its own: the certificate
  // must name the next-hop domain, which the MX hosts' certificates do only when the MX
  // names lie under the domain.
  const certMatch = matchSet(get('smtp_tls_secure_cert_match'));
  const verifyMatch = matchSet(get('smtp_tls_verify_cert_match'));
  for (const e of policyEntries) {
    const defaults =
      e.level === 'secure' ? certMatch : e.level === 'verify' ? verifyMatch : undefined;
    const own = e.attributes.match !== undefined ? matchSet(e.attributes.match) : undefined;
    const repeatsDefault = !!(defaults && own && sameSet(own, defaults));
    const matchDefault = (): void => {
      if (!repeatsDefault) return;
      findings.push({
        id: 'policy-match-default',
        level: 'info',
        parameter: 'smtp_tls_policy_maps',
        message: `${e.table}: "${e.key} ${e.level} match=${e.attributes.match}" repeats the default (smtp_tls_${e.level}_cert_match = ${get(`smtp_tls_${e.level}_cert_match`)}): the match= changes nothing.`,
        fix: 'Drop match= from the entry, or give the names the certificates really carry (e.g. match=.PROVIDER-MX-DOMAIN).',
      });
    };
    if (
      e.level !== 'secure' ||
      (own && !repeatsDefault) ||
      e.key.startsWith('[') ||
      certMatch.includes('hostname')
    ) {
      matchDefault();
      continue;
    }
    const domain = e.key.replace(/^\./, '').toLowerCase();
    const mx = await mxNames(domain, e.key.startsWith('.'), opts);
    if (mx.outside && !mx.outside.length) {
      matchDefault();
      continue;
    } // every MX name is under the domain: it works
    const repeated = repeatsDefault
      ? ` (its match=${e.attributes.match} repeats that default)`
      : '';
    const why = mx.outside
      ? `the MX host${mx.outside.length > 1 ? 's' : ''} of ${domain} (${mx.outside.join(', ')}) ${mx.outside.length > 1 ? 'lie' : 'lies'} outside ${domain}`
      : `providers' MX names often differ from the domain (gmail.com → *.google.com, outlook.com → *.protection.outlook.com; the MX names of ${domain} were not looked up: ${mx.reason})`;
    findings.push({
      id: 'policy-secure-nexthop',
      level: 'warning',
      parameter: 'smtp_tls_policy_maps',
      message: `${e.table}: "${e.key} secure" checks the server certificate against ${certMatch.join(', ') || 'nexthop, dot-nexthop'} (the domain ${domain})${repeated}, but ${why}: delivery defers with "Server certificate not verified".`,
      fix: `Use "${e.key} dane" when the domain publishes TLSA records, else "${e.key} secure match=${mx.outside?.length ? suffixOf(mx.outside[0]!) : '.PROVIDER-MX-DOMAIN'}" (or "verify match=hostname" after checking the MX records are DNSSEC-signed).`,
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
      const r = await validatedLookup(opts.resolver, name, type as 'NS', {
        timeoutMs: opts.timeoutMs,
        retries: 1,
      });
      // A validated denial (NXDOMAIN/NODATA with AD) proves validation as well as data does.
      status =
        (r.status === 'nxdomain' || r.status === 'nodata') && r.security === 'secure'
          ? 'secure'
          : r.status;
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
