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
import type { ConfigEdit, FindingWithoutService } from './findings.js';
import { editAtOrigin, editOnService, type SmtpdService } from './services.js';

export const PROTOCOLS = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
/** What OpenSSL 3 can still negotiate (SSLv2 is gone, SSLv3 is compiled out on Debian). */
export const TLS_PROTOCOLS: readonly Protocol[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

const HEX: Record<number, Protocol> = {
  2: 'SSLv2',
  768: 'SSLv3',
  769: 'TLSv1',
  770: 'TLSv1.1',
  771: 'TLSv1.2',
  772: 'TLSv1.3',
};

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
  const enabled = TLS_PROTOCOLS.filter(
    (p) =>
      (includes.length === 0 || includes.includes(p)) &&
      !excludes.includes(p) &&
      (min === undefined || idx(p) >= idx(min)) &&
      (max === undefined || idx(p) <= idx(max)),
  );
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

export interface ProtocolFinding extends FindingWithoutService {
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
    : s.enforce
      ? 'smtpd_tls_security_level = encrypt makes TLS mandatory'
      : 'TLS is opportunistic here (smtpd_tls_security_level = may)';
  return { parameter, list: parseProtocols(s.get(parameter)), why };
}

const SUPPORTS_BOUNDS = '3.6';

/** What current clients speak: OpenSSL 3 refuses TLS 1.0 and 1.1 at its default security
 *  level, and the large mail providers offer TLS 1.2 and 1.3 only. */
export const CURRENT_PROTOCOLS: readonly Protocol[] = ['TLSv1.2', 'TLSv1.3'];

/** The list a fix proposes: TLS 1.2 and 1.3 on, in the syntax this Postfix knows. Never a
 *  value derived from the list being fixed. */
export function recommendedProtocols(version: string): string {
  return compareVersions(version, SUPPORTS_BOUNDS) >= 0
    ? '>=TLSv1.2'
    : '!SSLv2, !SSLv3, !TLSv1, !TLSv1.1';
}

/** The current TLS versions a list leaves off. */
export function missingCurrent(list: ProtocolList): Protocol[] {
  return CURRENT_PROTOCOLS.filter((p) => !list.enabled.includes(p));
}

function mentionsSslv3(list: ProtocolList): boolean {
  return list.includes.includes('SSLv3') || list.min === 'SSLv2' || list.min === 'SSLv3';
}

/** Checks of one service's protocol settings. `version` is mail_version; `openssl` the OpenSSL
 *  version string (for what cannot be turned back on). */
export function checkProtocols(
  s: SmtpdService,
  version: string,
  openssl = 'OpenSSL 3',
): ProtocolFinding[] {
  if (!s.tls) return [];
  const out: ProtocolFinding[] = [];
  const view = applicableProtocols(s);
  const safe = recommendedProtocols(version);
  const supportsBounds = compareVersions(version, SUPPORTS_BOUNDS) >= 0;
  const other =
    view.parameter === 'smtpd_tls_protocols'
      ? 'smtpd_tls_mandatory_protocols'
      : 'smtpd_tls_protocols';
  const otherList = parseProtocols(s.get(other));
  const where =
    s.origin(other) === 'service' ? `-o ${other} on this service` : `${other} in main.cf`;
  const setHere = s.origin(other) === 'service';
  const setAnywhere = s.origin(other) !== 'default';
  // Port 25 with opportunistic TLS: the fix is Postfix's default, not a stricter list.
  const mxDefaults = s.role === 'mx' && !s.enforce;
  const usable = (l: ProtocolList): boolean =>
    !l.invalid.length && !(l.forms.includes('bounds') && !supportsBounds);
  const sslv3 = (l: ProtocolList): string =>
    mentionsSslv3(l)
      ? ` SSLv3 cannot be turned back on: ${openssl} as built here has no SSLv3 (nor SSLv2), whatever the list says.`
      : '';

  // 1. What the applicable list leaves on: every current client needs TLS 1.2 or 1.3.
  const missing = usable(view.list) ? missingCurrent(view.list) : [];
  if (missing.length) {
    const scope =
      s.origin(view.parameter) === 'service'
        ? `-o ${view.parameter} on ${s.label}`
        : s.origin(view.parameter) === 'main.cf'
          ? `${view.parameter} in main.cf`
          : `${view.parameter} (Postfix's default)`;
    const none = missing.length === CURRENT_PROTOCOLS.length;
    const effect = none
      ? `No current client can complete a TLS handshake: OpenSSL 3 refuses ${describeEnabled(view.list.enabled)} at its default security level, and the large mail providers speak TLS 1.2 and 1.3 only${s.enforce ? `. TLS is mandatory on ${s.label}, so nobody can use it` : s.role === 'mx' ? '. Senders fall back to plaintext, DANE senders defer the mail' : ''}.`
      : missing.includes('TLSv1.2')
        ? `Clients without TLS 1.3 (many MTAs and older mail clients) cannot agree on a protocol${s.enforce ? ' and cannot connect' : s.role === 'mx' ? ': they fall back to plaintext, and DANE senders defer the mail' : ''}.`
        : `Clients that offer TLS 1.3 are held to TLS 1.2${s.role === 'mx' ? '; on port 25 there is nothing to gain from it' : ''}.`;
    const edits: ConfigEdit[] =
      mxDefaults && s.origin(view.parameter) !== 'default'
        ? [editAtOrigin(s, view.parameter)]
        : [
            s.origin(view.parameter) === 'service'
              ? editAtOrigin(s, view.parameter, safe)
              : { parameter: view.parameter, value: safe },
          ];
    out.push({
      id: 'protocols-too-narrow',
      level: none ? 'error' : 'warning',
      parameter: view.parameter,
      message: `${scope} = "${view.list.value}" leaves ${describeEnabled(view.list.enabled)} on ${s.label} (${view.why}): ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} off. ${effect}${sslv3(view.list)}`,
      fix: mxDefaults
        ? `Delete ${scope}: port 25 keeps Postfix's default (>=TLSv1), which leaves TLS 1.2 and 1.3 on; put stricter lists on submission/smtps (smtpd_tls_mandatory_protocols = ${safe}).`
        : `${s.origin(view.parameter) === 'service' ? `In master.cf, on ${s.label}: -o ${view.parameter}=${safe}` : `${view.parameter} = ${safe}`} (or delete the line: Postfix's default, >=TLSv1, keeps TLS 1.2 and 1.3 on). A list must never leave out TLS 1.2 or 1.3.`,
      edits,
    });
  }

  // 2. The restriction was written into the parameter that does not apply here.
  const stillOn = view.list.enabled.filter((p) => !otherList.enabled.includes(p));
  if (
    !missing.length &&
    otherList.invalid.length === 0 &&
    stillOn.length &&
    (setHere || (setAnywhere && s.enforce))
  ) {
    const target =
      s.origin(view.parameter) === 'service'
        ? `-o ${view.parameter}=${safe}`
        : `${view.parameter} = ${safe}`;
    const edits: ConfigEdit[] = [];
    let fix: string;
    if (setHere) {
      edits.push(editAtOrigin(s, other));
      if (!mxDefaults) edits.push(editOnService(s, view.parameter, safe));
      fix = mxDefaults
        ? `In master.cf, on ${s.label}: delete -o ${other}; port 25 keeps Postfix's default protocols.`
        : `In master.cf, on ${s.label}: delete -o ${other} and write -o ${view.parameter}=${safe}.`;
    } else {
      edits.push(
        s.origin(view.parameter) === 'service'
          ? editAtOrigin(s, view.parameter, safe)
          : { parameter: view.parameter, value: safe },
      );
      fix = `Set ${target}${s.origin(view.parameter) === 'service' ? ` on ${s.label}` : ' (main.cf: it applies to every service where TLS is mandatory)'}.`;
    }
    out.push({
      id: 'protocols-wrong-parameter',
      level: 'warning',
      parameter: other,
      message:
        `${where} (${s.get(other) || 'empty'}) has no effect on ${s.label}: ${view.why}, so ${view.parameter} applies ` +
        `(${s.get(view.parameter) || 'empty: all protocols'}), and ${stillOn.join(', ')} ${stillOn.length > 1 ? 'stay' : 'stays'} enabled.`,
      fix,
      edits,
    });
  }

  // 3. Lists Postfix refuses, syntax older Postfix does not know, mixed forms.
  for (const param of [view.parameter, other] as const) {
    // The list that does not apply here: only its main.cf syntax matters (another service may
    // use it); an -o on this service is already reported as the wrong parameter above.
    if (param === other && s.origin(other) !== 'main.cf') continue;
    const list = param === view.parameter ? view.list : otherList;
    if (s.origin(param) === 'default') continue;
    if (param === other && list.invalid.length) continue; // an error where it applies
    // A list without TLS 1.2 or 1.3 gets one finding, where it applies (above): no syntax
    // advice that would restate it in another form.
    if (usable(list) && missingCurrent(list).length) continue;
    const global = s.origin(param) === 'main.cf';
    const scope = global ? `${param} in main.cf` : `-o ${param} on ${s.label}`;
    const push = (f: ProtocolFinding): void => {
      out.push(global && f.id !== 'protocols-invalid' ? { ...f, global } : f);
    };
    if (list.invalid.length) {
      push({
        id: 'protocols-invalid',
        level: param === view.parameter ? 'error' : 'warning',
        parameter: param,
        message:
          `${scope} = "${list.value}": ${list.invalid.map((t) => `"${t}"`).join(', ')} ${list.invalid.length > 1 ? 'are' : 'is'} not a protocol Postfix knows` +
          `${param === view.parameter ? '; Postfix logs "Invalid TLS protocol list" and disables TLS on this service' : ''}.`,
        fix: `Use "${safe}" (names: ${PROTOCOLS.join(', ')}).`,
        edits: [editAtOrigin(s, param, safe)],
      });
      continue;
    }
    if (list.forms.includes('bounds') && !supportsBounds) {
      const exclusion = exclusionForm(list.enabled);
      push({
        id: 'protocols-invalid',
        level: 'error',
        parameter: param,
        message: `${scope} uses ">=" / "<=", which Postfix ${version} does not know (it came with 3.6): the list is invalid and TLS is disabled.`,
        fix: `Write the exclusion form instead: "${exclusion}".`,
        edits: [editAtOrigin(s, param, exclusion)],
      });
      continue;
    }
    const equivalent = boundsForm(list.enabled);
    if (list.forms.length > 1) {
      const oneForm = supportsBounds && equivalent ? equivalent : exclusionForm(list.enabled);
      push({
        id: 'protocols-mixed-syntax',
        level: 'warning',
        parameter: param,
        message:
          `${scope} = "${list.value}" mixes ${list.forms.join(' and ')} forms, which Postfix documents as alternatives` +
          `${list.forms.includes('bounds') ? ': Postfix before 3.6 rejects ">=" (and then disables TLS)' : ''}` +
          `${list.forms.includes('include') ? `${list.forms.includes('bounds') ? ', and' : ':'} once a list names versions to include, every version it does not name is off, whatever it excludes` : ''}. ` +
          `The result here (${describeEnabled(list.enabled)}) is easy to get wrong.${sslv3(list)}`,
        fix: `Use one form: "${oneForm}".`,
        edits: [editAtOrigin(s, param, oneForm)],
      });
    } else if (
      supportsBounds &&
      !list.forms.includes('bounds') &&
      list.value.trim() &&
      equivalent
    ) {
      push({
        id: 'protocols-legacy-syntax',
        level: 'info',
        parameter: param,
        message: `${scope} = "${list.value}" uses the legacy ${list.forms[0] === 'include' ? 'include' : 'exclusion'} form; Postfix ${version} supports the clearer bounds form.${sslv3(list)}`,
        fix: `${param} = ${equivalent}`,
        edits: [editAtOrigin(s, param, equivalent)],
      });
    } else if (mentionsSslv3(list)) {
      push({
        id: 'protocols-sslv3',
        level: 'info',
        parameter: param,
        message: `${scope} = "${list.value}" asks for SSLv3.${sslv3(list)}`,
        fix: `${param} = ${equivalent ?? safe}`,
        edits: [editAtOrigin(s, param, equivalent ?? safe)],
      });
    }
  }
  return out;
}

/** The legacy exclusion form of a set of enabled TLS versions. */
export function exclusionForm(enabled: readonly Protocol[]): string {
  return PROTOCOLS.filter((p) => !enabled.includes(p))
    .map((p) => `!${p}`)
    .join(', ');
}
