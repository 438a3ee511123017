/** The host a service's records are for: the name a client looks up and connects to (for SMTP
 *  the MX host). Refuses what cannot carry TLSA records a client would find, converts a
 *  Unicode name to the A-label form DNS and certificates use, and tells whether a leaf
 *  certificate's names cover the host. Pure: no I/O. */
import type { X509Certificate } from 'node:crypto';
import { isIP, isIPv4 } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { EXIT } from '../errors.js';

export interface HostName {
  /** Lower-case A-label form without the trailing dot: what goes into DNS. */
  ascii: string;
  /** The same name with its A-labels shown as Unicode (equal to ascii for an ASCII name). */
  unicode: string;
}

/** A host name that cannot be used; callers add where it came from (exit 2 either way). */
export class HostError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(message: string) {
    super(message);
    this.name = 'HostError';
  }
}

const WHO =
  'DANE clients look up TLSA records at _PORT._tcp.HOST of the name they connect to (for SMTP the MX host name, RFC 7672 §2.2.3)';
const LDH = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** net.isIP, without its IPv6 pattern for text that has no ":" (no IPv6 address lacks one):
 *  compiling that pattern costs a cold process (a certbot hook, every config command) ~6 ms. */
function isAddress(text: string): boolean {
  return text.includes(':') ? isIP(text) !== 0 : isIPv4(text);
}

/** Lower-case letter-digit-hyphen labels, none an A-label (xn--), with or without the
 *  trailing dot; the last label with a letter or a hyphen, and not 0x followed by hex digits
 *  (the URL parser reads such a last label as an IPv4 number). */
const PLAIN_HOST =
  /^(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;
const NUMERIC_LAST = /(?:^|\.)(?:\d+|0x[0-9a-f]*)\.?$/;

/** A plain lower-case host name (a fleet's thousands): what parseHost gives, without the
 *  conversions and checks that cannot change or refuse it; undefined for any other name. */
function plainHost(input: string): HostName | undefined {
  if (input.length > 254 || !PLAIN_HOST.test(input) || NUMERIC_LAST.test(input)) return undefined;
  const ascii = input.endsWith('.') ? input.slice(0, -1) : input;
  if (ascii.length > 253 || ascii === 'localhost' || ascii.endsWith('.localhost')) return undefined;
  return { ascii, unicode: ascii };
}

/** Validate and normalise a host name. Throws HostError saying why it cannot be used. */
export function parseHost(input: string): HostName {
  return plainHost(input) ?? parseHostInFull(input);
}

/** parseHost without the shortcut for a plain name: every conversion and check. */
export function parseHostInFull(input: string): HostName {
  const text = input.trim();
  const q = JSON.stringify(input);
  if (!text) throw new HostError(`an empty host name: ${WHO}`);
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  if (isAddress(bare) || isAddress(bare.replace(/\.$/, ''))) {
    throw new HostError(
      `${q} is an IP address, not a host name: ${WHO}; an address has no such name`,
    );
  }
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  const labels = name.split('.');
  if (labels.some((l) => l.includes('*'))) {
    throw new HostError(
      `${q} is a wildcard, not a host name: ${WHO}, and no client connects to "*"; give each host its own service`,
    );
  }
  const empty = labels.indexOf('');
  if (empty >= 0) throw new HostError(`${q} is not a valid host name: it has an empty label`);
  // Only letters, digits and "-" in ASCII; anything else (":", "/", "%", "_", " ") is refused
  // here, before the WHATWG conversion below, which would silently read a URL into it.
  for (const l of labels) {
    const bad = [...l].find((ch) => ch.charCodeAt(0) < 0x80 && !/[A-Za-z0-9-]/.test(ch));
    if (bad !== undefined)
      throw new HostError(
        `${q} is not a valid host name: label "${l}" has ${JSON.stringify(bad)} (letters, digits and "-" only)`,
      );
  }
  const ascii = domainToASCII(name).toLowerCase();
  if (!ascii)
    throw new HostError(
      `${q} is not a valid host name (not a valid internationalised name, or its last label is all digits)`,
    );
  // The URL parser reads "0x7f.1" or "2130706433" as an IPv4 address.
  if (isIPv4(ascii))
    throw new HostError(
      `${q} is an IP address (${ascii}), not a host name: ${WHO}; an address has no such name`,
    );
  for (const l of ascii.split('.')) {
    if (!LDH.test(l)) {
      throw new HostError(
        `${q} is not a valid host name: label "${l}" (letters, digits and "-", not first or last, at most 63 characters)`,
      );
    }
  }
  if (ascii.length > 253)
    throw new HostError(`${q} is not a valid host name: longer than 253 characters`);
  if (ascii === 'localhost' || ascii.endsWith('.localhost')) {
    throw new HostError(
      `${q} is not a host other machines can look up (RFC 6761: localhost names never resolve through DNS): ${WHO}`,
    );
  }
  return { ascii, unicode: domainToUnicode(ascii) || ascii };
}

/** `ascii (unicode)` for a name with A-labels, the name itself otherwise; works on owner names
 *  too (`_25._tcp.xn--…` → `_25._tcp.xn--… (_25._tcp.bücher…)`). */
export function bothForms(name: string): string {
  const u = unicodeForm(name);
  return u === name ? name : `${name} (${u})`;
}

export function unicodeForm(name: string): string {
  if (!/(^|\.)xn--/i.test(name)) return name;
  // domainToUnicode refuses the "_25" labels of an owner name: convert label by label.
  return name
    .split('.')
    .map((l) => (/^xn--/i.test(l) ? domainToUnicode(l) || l : l))
    .join('.');
}

/** The leaf's DNS names (subjectAltName dNSName entries), for messages. */
export function leafDnsNames(x509: X509Certificate): string[] {
  return (x509.subjectAltName ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4));
}

/** Whether a client checking names would accept this leaf for host (A-label form): the SAN
 *  dNSNames (the subject CN only when there is none), a wildcard standing for exactly one
 *  whole leftmost label (RFC 6125 §6.4.3, as RFC 7672 §3.2.3 asks). */
export function leafCoversHost(x509: X509Certificate, host: string): boolean {
  const quick = plainNamesOf(x509);
  if (quick && PLAIN_NAME.test(host)) {
    if (quick.exact.has(host)) return true;
    const dot = host.indexOf('.');
    return dot > 0 && quick.under.has(host.slice(dot + 1));
  }
  return checkedCover(x509, host);
}

/** leafCoversHost by OpenSSL's X509_check_host, whatever the names. */
export function checkedCover(x509: X509Certificate, host: string): boolean {
  return (
    x509.checkHost(host, {
      subject: 'default',
      wildcards: true,
      partialWildcards: false,
      multiLabelWildcards: false,
    }) !== undefined
  );
}

/** A name of letters, digits and "-" in non-empty labels (lower case for a host). */
const PLAIN_NAME = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/;
const PLAIN_SAN = /^DNS:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*$/;
/** `*.` before at least two labels, none starting with "-": the wildcards OpenSSL honours. */
const PLAIN_WILDCARD_SAN = /^DNS:\*\.[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z0-9][A-Za-z0-9-]*)+$/;

interface PlainNames {
  /** The DNS names, lower case: a host equal to one is covered. */
  exact: Set<string>;
  /** What `*.` stands before, lower case: a host one label below one is covered. */
  under: Set<string>;
}

/** Thousands of services share a leaf: its names are read once. */
const plainNames = new WeakMap<X509Certificate, PlainNames | null>();

/** The leaf's names when all of them are plain DNS names or whole-label wildcards (then
 *  OpenSSL's check is a lookup: case-insensitive equality, or one label below a wildcard's
 *  suffix); null for anything else (no DNS name, the CN, other name types, other wildcards). */
function plainNamesOf(x509: X509Certificate): PlainNames | null {
  let names = plainNames.get(x509);
  if (names !== undefined) return names;
  names = { exact: new Set(), under: new Set() };
  const entries = x509.subjectAltName?.split(', ') ?? [];
  for (const e of entries) {
    if (PLAIN_SAN.test(e)) names.exact.add(e.slice(4).toLowerCase());
    else if (PLAIN_WILDCARD_SAN.test(e)) names.under.add(e.slice(6).toLowerCase());
    else {
      names = null;
      break;
    }
  }
  if (names && names.exact.size + names.under.size === 0) names = null;
  plainNames.set(x509, names);
  return names;
}

/** The leaf's DNS names as a warning shows them ("DNS names a, b"; empty for none), once per
 *  certificate. */
const shownNames = new WeakMap<X509Certificate, string>();

/** Each leaf's fingerprint, once: node:crypto computes it again on every read, and thousands
 *  of services share a leaf. */
const fingerprints = new WeakMap<X509Certificate, string>();

function fingerprintOf(x509: X509Certificate): string {
  let fp = fingerprints.get(x509);
  if (fp === undefined) {
    fp = x509.fingerprint256;
    fingerprints.set(x509, fp);
  }
  return fp;
}

/** A leaf whose names do not cover a host: what a name-coverage warning says. */
export interface CoverageGap {
  /** The chain's label (its lineage). */
  label: string;
  /** The leaf's names as shown: "DNS names a, b" or "no DNS names, CN=…". */
  names: string;
  /** The host, in both forms when it has A-labels. */
  host: string;
}

/** The leaves whose names do not cover host, one per distinct leaf. Only `2 x x` records make
 *  a client check names; the caller asks only when it publishes them. */
export function nameCoverageGaps(
  host: string,
  chains: { label: string; leaf: { x509: X509Certificate; name: string } }[],
): CoverageGap[] {
  const h = host.replace(/\.$/, '').toLowerCase();
  const out: CoverageGap[] = [];
  let seen: Set<string> | undefined;
  for (const c of chains) {
    const x509 = c.leaf.x509;
    // The fingerprint (computed on every read) only for a leaf that does not cover the host.
    if (leafCoversHost(x509, h)) continue;
    const fp = fingerprintOf(x509);
    seen ??= new Set();
    if (seen.has(fp)) continue;
    seen.add(fp);
    let names = shownNames.get(x509);
    if (names === undefined) {
      const dns = leafDnsNames(x509);
      names = dns.length ? `DNS names ${dns.join(', ')}` : '';
      shownNames.set(x509, names);
    }
    out.push({
      label: c.label,
      names: names || `no DNS names, CN=${c.leaf.name}`,
      host: bothForms(h),
    });
  }
  return out;
}

const WHY_NAMES_MATTER =
  "with DANE-TA (2 x x) records a client checks the certificate's names (RFC 7672 §3.2.3), so it will refuse this chain unless the certificate names the mail domain it sends to; " +
  'DANE-EE (3 x x) records do not check names';

/** Names a summary shows before it counts the rest. */
const NAMES_SHOWN = 10;

/** "12 hosts: a, b, … and 2 more": how many, the first NAMES_SHOWN, and a count of the rest. */
export function countedNames(names: Iterable<string>, noun: string): string {
  const all = [...names];
  const shown = all.slice(0, NAMES_SHOWN);
  const more = all.length - shown.length;
  return `${all.length} ${noun}: ${shown.join(', ')}${more ? ` and ${more} more` : ''}`;
}

/** The warnings for these gaps, one per lineage and leaf: a fleet's services share a chain
 *  whose leaf names none of their hosts, and one line per service said the same thing
 *  thousands of times. A lineage with one uncovered host keeps the single-host wording. */
export function coverageWarnings(gaps: readonly CoverageGap[]): string[] {
  // By label, then names (the strings thousands of gaps share): no key string per gap.
  const byLabel = new Map<string, Map<string, { gap: CoverageGap; hosts: Set<string> }>>();
  const groups: { gap: CoverageGap; hosts: Set<string> }[] = [];
  for (const g of gaps) {
    let byNames = byLabel.get(g.label);
    if (!byNames) {
      byNames = new Map();
      byLabel.set(g.label, byNames);
    }
    const group = byNames.get(g.names);
    if (group) group.hosts.add(g.host);
    else {
      const made = { gap: g, hosts: new Set([g.host]) };
      byNames.set(g.names, made);
      groups.push(made);
    }
  }
  const out: string[] = [];
  for (const { gap, hosts } of groups) {
    const which = hosts.size === 1 ? `the host ${gap.host}` : countedNames(hosts, 'hosts');
    out.push(
      `${gap.label}: the leaf certificate (${gap.names}) does not cover ${which}: ${WHY_NAMES_MATTER}`,
    );
  }
  return out;
}

/** Warnings for leaves whose names do not cover host, one per distinct leaf. */
export function nameCoverageWarnings(
  host: string,
  chains: { label: string; leaf: { x509: X509Certificate; name: string } }[],
): string[] {
  return coverageWarnings(nameCoverageGaps(host, chains));
}
