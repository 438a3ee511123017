/**
 * TLS protocol lists the way Postfix reads them (postconf(5) smtpd_tls_protocols,
 * src/tls/tls_misc.c tls_protocol_mask): names to include, `!names` to exclude, and since
 * Postfix 3.6 the bounds `>=VERSION` / `<=VERSION` (a name or a hex number such as 0x0303);
 * separators are white space, commas and colons. An unknown name makes the whole list
 * invalid, and Postfix then disables TLS ("Invalid TLS protocol list … disabling TLS support").
 *
 * And the checks on them: the list that applies on a service is `smtpd_tls_mandatory_protocols`
 * when TLS is mandatory there (`encrypt`, or wrappermode on 465), `smtpd_tls_protocols`
 * otherwise. Pure.
 */
import { compareVersions } from './postconf.js';
import type { FindingLevel } from './findings.js';
import type { SmtpdService } from './services.js';

export const PROTOCOLS = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** What OpenSSL 3 can still negotiate (SSLv2 is gone, SSLv3 is compiled out on Debian). */
export const TLS_PROTOCOLS: readonly Protocol[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

const HEX: Record<number, Protocol> = { 0x0002: 'SSLv2', 0x0300: 'SSLv3', 0x0301: 'TLSv1', 0x0302: 'TLSv1.1', 0x0303: 'TLSv1.2', 0x0304: 'TLSv1.3' };

export type ProtocolForm = 'include' | 'exclude' | 'bounds';

export interface ProtocolList {
  value: string;
  includes: Protocol[];
  excludes: Protocol[];
  min?: Protocol;
  max?: Protocol;
  /** Tokens Postfix does not know (the list is then invalid). */
  invalid: string[];
  /** Bounds with a hex version OpenSSL does not know: Postfix logs a warning and ignores them. */
  ignoredBounds: string[];
  forms: ProtocolForm[];
  /** TLS versions this list leaves enabled, lowest first. */
  enabled: Protocol[];
}

function protocolName(token: string, allowHex: boolean): Protocol | undefined | 'unknown-hex' {
  const byName = PROTOCOLS.find((p) => p.toLowerCase() === token.toLowerCase());
  if (byName) return byName;
  if (allowHex && /^(0x)?[0-9a-f]{1,4}$/i.test(token)) {
    const n = parseInt(token.replace(/^0x/i, ''), 16);
    return HEX[n] ?? 'unknown-hex';
  }
  return undefined;
}

export function parseProtocols(value: string): ProtocolList {
  const includes: Protocol[] = [];
  const excludes: Protocol[] = [];
  const invalid: string[] = [];
  const ignoredBounds: string[] = [];
  const forms = new Set<ProtocolForm>();
  let min: Protocol | undefined;
  let max: Protocol | undefined;
  for (const tok of value.split(/[\s,:]+/).filter(Boolean)) {
    if (tok.startsWith('>=') || tok.startsWith('<=')) {
      forms.add('bounds');
      const p = protocolName(tok.slice(2), true);
      if (p === 'unknown-hex') ignoredBounds.push(tok);
      else if (!p) invalid.push(tok);
      else if (tok.startsWith('>=')) min = p;
      else max = p;
    } else if (tok.startsWith('!')) {
      forms.add('exclude');
      const p = protocolName(tok.slice(1), false);
      if (!p || p === 'unknown-hex') invalid.push(tok);
      else excludes.push(p);
    } else {
      forms.add('include');
      const p = protocolName(tok, false);
      if (!p || p === 'unknown-hex') invalid.push(tok);
      else includes.push(p);
    }
  }
  const idx = (p: Protocol): number => PROTOCOLS.indexOf(p);
  const enabled = TLS_PROTOCOLS.filter((p) =>
    (includes.length === 0 || includes.includes(p)) &&
    !excludes.includes(p) &&
    (min === undefined || idx(p) >= idx(min)) &&
    (max === undefined || idx(p) <= idx(max)));
  return {
    value,
    includes,
    excludes,
    ...(min ? { min } : {}),
    ...(max ? { max } : {}),
    invalid,
    ignoredBounds,
    forms: [...forms],
    enabled: invalid.length ? [] : enabled,
  };
}

/** The same set of TLS versions in the `>=` form, when it is a contiguous range. */
export function boundsForm(enabled: readonly Protocol[]): string | undefined {
  if (!enabled.length) return undefined;
  const idx = enabled.map((p) => TLS_PROTOCOLS.indexOf(p));
  for (let i = 1; i < idx.length; i++) if (idx[i] !== idx[i - 1]! + 1) return undefined;
  const lo = enabled[0]!;
  const hi = enabled[enabled.length - 1]!;
  const parts = [];
  if (lo !== 'TLSv1') parts.push(`>=${lo}`);
  if (hi !== 'TLSv1.3') parts.push(`<=${hi}`);
  return parts.length ? parts.join(', ') : '>=TLSv1';
}

export function describeEnabled(enabled: readonly Protocol[]): string {
  return enabled.length ? enabled.join(', ') : 'none';
}

// ---------------------------------------------------------------------------------------------
// Checks

export interface ProtocolFinding {
  id: string;
  level: FindingLevel;
  parameter: string;
  message: string;
  fix: string;
  /** About a main.cf setting as such (reported once, for main.cf, not per service). */
  global?: boolean;
}

export interface ProtocolView {
  /** The parameter that applies on this service and its list. */
  parameter: 'smtpd_tls_protocols' | 'smtpd_tls_mandatory_protocols';
  list: ProtocolList;
  /** Why that one applies. */
  why: string;
}

export function applicableProtocols(s: SmtpdService): ProtocolView {
  const parameter = s.enforce ? 'smtpd_tls_mandatory_protocols' : 'smtpd_tls_protocols';
  const why = s.wrappermode
    ? 'wrappermode (implicit TLS) makes TLS mandatory'
    : s.enforce ? 'smtpd_tls_security_level = encrypt makes TLS mandatory' : 'TLS is opportunistic here (smtpd_tls_security_level = may)';
  return { parameter, list: parseProtocols(s.get(parameter)), why };
}

const SUPPORTS_BOUNDS = '3.6';

/** Checks of one service's protocol settings. `version` is mail_version. */
export function checkProtocols(s: SmtpdService, version: string): ProtocolFinding[] {
  if (!s.tls) return [];
  const out: ProtocolFinding[] = [];
  const view = applicableProtocols(s);
  const other = view.parameter === 'smtpd_tls_protocols' ? 'smtpd_tls_mandatory_protocols' : 'smtpd_tls_protocols';
  const otherList = parseProtocols(s.get(other));
  const where = s.origin(other) === 'service' ? `-o ${other} on this service` : `${other} in main.cf`;
  const setHere = s.origin(other) === 'service';
  const setAnywhere = s.origin(other) !== 'default';

  // 1. The restriction was written into the parameter that does not apply here.
  const stillOn = view.list.enabled.filter((p) => !otherList.enabled.includes(p));
  if (otherList.invalid.length === 0 && stillOn.length && (setHere || (setAnywhere && s.enforce))) {
    const target = boundsForm(otherList.enabled) ?? s.get(other);
    out.push({
      id: 'protocols-wrong-parameter',
      level: 'warning',
      parameter: other,
      message: `${where} (${s.get(other) || 'empty'}) has no effect on ${s.label}: ${view.why}, so ${view.parameter} applies ` +
        `(${s.get(view.parameter) || 'empty: all protocols'}), and ${stillOn.join(', ')} ${stillOn.length > 1 ? 'stay' : 'stays'} enabled.`,
      fix: `${s.origin(other) === 'service' ? `In master.cf, on ${s.label}: -o ${view.parameter}=${target}` : `Set ${view.parameter} = ${target} (main.cf, or -o on ${s.label})`}.`,
    });
  }

  // 2. Lists Postfix refuses, syntax older Postfix does not know, mixed forms.
  for (const param of [view.parameter, other] as const) {
    // The list that does not apply here: only its main.cf syntax matters (another service may
    // use it); an -o on this service is already reported as the wrong parameter above.
    if (param === other && s.origin(other) !== 'main.cf') continue;
    const list = param === view.parameter ? view.list : otherList;
    if (s.origin(param) === 'default') continue;
    if (param === other && list.invalid.length) continue; // an error where it applies
    const global = s.origin(param) === 'main.cf';
    const scope = global ? `${param} in main.cf` : `-o ${param} on ${s.label}`;
    const push = (f: ProtocolFinding): void => { out.push(global && f.id !== 'protocols-invalid' ? { ...f, global } : f); };
    if (list.invalid.length) {
      push({
        id: 'protocols-invalid',
        level: param === view.parameter ? 'error' : 'warning',
        parameter: param,
        message: `${scope} = "${list.value}": ${list.invalid.map((t) => `"${t}"`).join(', ')} ${list.invalid.length > 1 ? 'are' : 'is'} not a protocol Postfix knows` +
          `${param === view.parameter ? '; Postfix logs "Invalid TLS protocol list" and disables TLS on this service' : ''}.`,
        fix: `Use ${compareVersions(version, SUPPORTS_BOUNDS) >= 0 ? '">=TLSv1.2"' : '"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"'} (names: ${PROTOCOLS.join(', ')}).`,
      });
      continue;
    }
    if (list.forms.includes('bounds') && compareVersions(version, SUPPORTS_BOUNDS) < 0) {
      push({
        id: 'protocols-invalid',
        level: 'error',
        parameter: param,
        message: `${scope} uses ">=" / "<=", which Postfix ${version} does not know (it came with 3.6): the list is invalid and TLS is disabled.`,
        fix: `Write the exclusion form instead: "${exclusionForm(list.enabled)}".`,
      });
      continue;
    }
    const supportsBounds = compareVersions(version, SUPPORTS_BOUNDS) >= 0;
    const equivalent = boundsForm(list.enabled);
    if (list.forms.length > 1) {
      push({
        id: 'protocols-mixed-syntax',
        level: 'warning',
        parameter: param,
        message: `${scope} = "${list.value}" mixes ${list.forms.join(' and ')} forms, which Postfix documents as alternatives` +
          `${list.forms.includes('bounds') ? ': Postfix before 3.6 rejects ">=" (and then disables TLS)' : ''}` +
          `${list.forms.includes('include') ? `${list.forms.includes('bounds') ? ', and' : ':'} once a list names versions to include, every version it does not name is off, whatever it excludes` : ''}. ` +
          `The result here (${describeEnabled(list.enabled)}) is easy to get wrong.`,
        fix: `Use one form: ${supportsBounds && equivalent ? `"${equivalent}"` : `"${exclusionForm(list.enabled)}"`}.`,
      });
    } else if (list.forms.includes('include') && !list.includes.includes('TLSv1.3') && list.includes.includes('TLSv1.2')) {
      push({
        id: 'protocols-legacy-syntax',
        level: 'warning',
        parameter: param,
        message: `${scope} = "${list.value}" lists the protocols to include, so every protocol not listed is off — TLSv1.3 included.`,
        fix: `Use ${supportsBounds ? '">=TLSv1.2"' : '"!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"'}, which keeps TLSv1.3 on.`,
      });
    } else if (supportsBounds && !list.forms.includes('bounds') && list.value.trim() && equivalent) {
      push({
        id: 'protocols-legacy-syntax',
        level: 'info',
        parameter: param,
        message: `${scope} = "${list.value}" uses the legacy ${list.forms[0] === 'include' ? 'include' : 'exclusion'} form; Postfix ${version} supports the clearer bounds form.`,
        fix: `${param} = ${equivalent}`,
      });
    }
  }

  // 3. Opportunistic TLS on the MX must not turn senders away.
  if (s.role === 'mx' && !s.enforce && !view.list.invalid.length && s.origin(view.parameter) !== 'default') {
    const missing = (['TLSv1.2', 'TLSv1.3'] as const).filter((p) => !view.list.enabled.includes(p));
    if (missing.length) {
      out.push({
        id: 'port25-protocols-too-strict',
        level: 'warning',
        parameter: view.parameter,
        message: `${view.parameter} = "${view.list.value}" disables ${missing.join(' and ')} on port 25. Senders that cannot agree on a protocol fall back to plaintext, and DANE senders defer the mail instead.`,
        fix: `Leave ${view.parameter} at Postfix's default (>=TLSv1) on port 25; put stricter lists on submission/smtps with smtpd_tls_mandatory_protocols.`,
      });
    }
  }
  return out;
}

/** The legacy exclusion form of a set of enabled TLS versions. */
export function exclusionForm(enabled: readonly Protocol[]): string {
  return PROTOCOLS.filter((p) => !enabled.includes(p)).map((p) => `!${p}`).join(', ');
}
