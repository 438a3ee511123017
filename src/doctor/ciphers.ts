/**
 * The OpenSSL cipher list a Postfix smtpd service really uses, computed the way Postfix does
 * (src/tls/tls_misc.c tls_set_ciphers): the grade's list (`tls_<grade>_cipherlist`, grade from
 * `smtpd_tls_ciphers`, or `smtpd_tls_mandatory_ciphers` when TLS is mandatory) followed by
 * `:!X` for every element of `smtpd_tls_exclude_ciphers` (and, when mandatory,
 * `smtpd_tls_mandatory_exclude_ciphers`); expanded with `openssl ciphers -v`. TLS 1.3 suites
 * are set apart by OpenSSL and these parameters do not touch them.
 *
 * The check: the suites the big senders offer (ECDHE with AES-GCM, per key type) must remain
 * for every key type the service serves, or opportunistic TLS on port 25 fails with
 * "no shared cipher" and the sender delivers in plaintext (or, with DANE, not at all).
 */
import { execFile } from 'node:child_process';
import type { KeyFamily } from '../certs/key-type.js';
import type { ConfigEdit, FindingWithoutService } from './findings.js';
import { splitList } from './postconf.js';
import type { Protocol } from './protocols.js';
import { editAtOrigin, editOnService, type SmtpdService } from './services.js';

export const GRADES = ['high', 'medium', 'low', 'export', 'null'] as const;

/** TLS 1.2 suites that Gmail, Microsoft 365, Yahoo, GMX/web.de and other large senders offer. */
export const COMMON_SENDER_SUITES: Record<'rsa' | 'ecdsa', readonly string[]> = {
  rsa: ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384'],
  ecdsa: ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384'],
};

export interface CipherSuite {
  name: string;
  /** TLSv1.3, TLSv1.2, TLSv1, SSLv3 as openssl prints it (the minimum protocol). */
  protocol: string;
  kx: string;
  au: string;
}

export interface CipherView {
  gradeParameter: 'smtpd_tls_ciphers' | 'smtpd_tls_mandatory_ciphers';
  grade: string;
  exclusionParameters: string[];
  exclusions: string[];
  /** The OpenSSL cipher string Postfix hands to SSL_CTX_set_cipher_list. */
  cipherString?: string;
  /** Why Postfix would reject the settings (TLS is then disabled on the service). */
  invalid?: string;
  /** TLS 1.2 and older suites the list selects. */
  suites: CipherSuite[];
  /** The suites of the grade's list alone, before the exclusions (to tell which one removes
   *  what). Undefined when the list is invalid. */
  baseSuites?: CipherSuite[];
  /** Exclusions that each remove at least one common sender suite. */
  culprits?: string[];
}

/** Suites a server with a certificate can negotiate: PSK and SRP key exchanges need a shared
 *  secret the sender does not have, anonymous suites (aNULL) are off in every client. */
export function certificateSuites(suites: readonly CipherSuite[]): CipherSuite[] {
  return suites.filter(
    (c) => (c.au === 'RSA' || c.au === 'ECDSA' || c.au === 'DSS') && !/PSK|SRP/.test(c.kx),
  );
}

/** The suites a key family can use. */
export function suitesFor(suites: readonly CipherSuite[], family: 'rsa' | 'ecdsa'): CipherSuite[] {
  return certificateSuites(suites).filter((c) => c.au === (family === 'rsa' ? 'RSA' : 'ECDSA'));
}

const ALL_COMMON = [...COMMON_SENDER_SUITES.rsa, ...COMMON_SENDER_SUITES.ecdsa];

/** Build Postfix's cipher string, or say why Postfix would refuse it. */
export function buildCipherString(
  cipherlist: string,
  exclusions: readonly string[],
): { cipherString: string } | { invalid: string } {
  let out = cipherlist.trim();
  for (const tok of exclusions) {
    if (/^[!+\-@]/.test(tok))
      return {
        invalid: `"${tok}": an exclusion cannot start with "!", "+", "-" or "@" (Postfix logs "invalid unary '!+-@' in cipher exclusion" and disables TLS)`,
      };
    out += `:!${tok}`;
  }
  return { cipherString: out };
}

const cache = new Map<string, Promise<{ suites: CipherSuite[] } | { error: string }>>();

/** `openssl ciphers -v STRING`; TLS 1.3 suites are left out (these parameters do not set them).
 *  Rejects when openssl is not installed. */
export function expandCipherString(
  cipherString: string,
  openssl = 'openssl',
): Promise<{ suites: CipherSuite[] } | { error: string }> {
  const key = `${openssl}\0${cipherString}`;
  let hit = cache.get(key);
  if (!hit) {
    hit = new Promise((resolve, reject) => {
      execFile(
        openssl,
        ['ciphers', '-v', cipherString],
        { encoding: 'utf8', timeout: 10_000 },
        (err, stdout, stderr) => {
          if (!err)
            return resolve({
              suites: parseOpensslCiphers(stdout).filter((c) => c.protocol !== 'TLSv1.3'),
            });
          if ((err as NodeJS.ErrnoException).code === 'ENOENT')
            return reject(new Error('openssl not found'));
          const detail =
            String(stderr)
              .trim()
              .split('\n')
              .find((l) => /error/i.test(l)) ?? err.message;
          resolve({
            error: /no cipher match/i.test(detail)
              ? 'no cipher can be selected (OpenSSL: no cipher match)'
              : detail.trim(),
          });
        },
      );
    });
    cache.set(key, hit);
  }
  return hit;
}

export function parseOpensslCiphers(text: string): CipherSuite[] {
  const out: CipherSuite[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+)\s+(\S+)\s+Kx=(\S+)\s+Au=(\S+)/.exec(line);
    if (m) out.push({ name: m[1]!, protocol: m[2]!, kx: m[3]!, au: m[4]! });
  }
  return out;
}

export async function cipherView(s: SmtpdService, openssl?: string): Promise<CipherView> {
  const gradeParameter = s.enforce ? 'smtpd_tls_mandatory_ciphers' : 'smtpd_tls_ciphers';
  const grade = s.get(gradeParameter).trim().toLowerCase();
  const exclusionParameters = s.enforce
    ? ['smtpd_tls_exclude_ciphers', 'smtpd_tls_mandatory_exclude_ciphers']
    : ['smtpd_tls_exclude_ciphers'];
  const exclusions = exclusionParameters.flatMap((p) => splitList(s.get(p)));
  const base = {
    gradeParameter,
    grade,
    exclusionParameters,
    exclusions,
    suites: [] as CipherSuite[],
  } as const;
  if (!(GRADES as readonly string[]).includes(grade)) {
    return {
      ...base,
      invalid: `${gradeParameter} = "${grade}" is not a cipher grade (${GRADES.join(', ')}); Postfix disables TLS`,
    };
  }
  const built = buildCipherString(s.get(`tls_${grade}_cipherlist`), exclusions);
  if ('invalid' in built) return { ...base, invalid: built.invalid };
  const expanded = await expandCipherString(built.cipherString, openssl);
  if ('error' in expanded)
    return {
      ...base,
      cipherString: built.cipherString,
      invalid: `OpenSSL rejects "${built.cipherString}": ${expanded.error}; Postfix logs "invalid cipher list" and disables TLS`,
    };
  const list = s.get(`tls_${grade}_cipherlist`).trim();
  const plain = exclusions.length ? await expandCipherString(list, openssl) : expanded;
  const baseSuites = 'error' in plain ? [] : plain.suites;
  const has = (suites: readonly CipherSuite[], n: string): boolean =>
    suites.some((c) => c.name === n);
  const lost = ALL_COMMON.filter((n) => has(baseSuites, n) && !has(expanded.suites, n));
  const culprits: string[] = [];
  if (lost.length) {
    for (const tok of exclusions) {
      const one = await expandCipherString(`${list}:!${tok}`, openssl);
      if (!('error' in one) && lost.some((n) => !has(one.suites, n))) culprits.push(tok);
    }
  }
  return {
    ...base,
    cipherString: built.cipherString,
    suites: expanded.suites,
    baseSuites,
    culprits,
  };
}

let opensslVersionText: Promise<string> | undefined;

/** `openssl version` (the library Postfix links on a distribution build), e.g. "OpenSSL 3.0.22". */
export function opensslVersion(openssl = 'openssl'): Promise<string> {
  opensslVersionText ??= new Promise((resolve) => {
    execFile(openssl, ['version'], { encoding: 'utf8', timeout: 10_000 }, (err, stdout) => {
      resolve(
        err
          ? 'OpenSSL (version unknown)'
          : (/^(\S+ \S+)/.exec(stdout.trim())?.[1] ?? stdout.trim()),
      );
    });
  });
  return opensslVersionText;
}

export type CipherFinding = FindingWithoutService;

/** Where the lists come from, for the check's text. */
export interface CipherContext {
  /** mail_version. */
  postfix: string;
  /** `openssl version`, e.g. "OpenSSL 3.0.22". */
  openssl: string;
}

const LABEL = { rsa: 'RSA', ecdsa: 'ECDSA' } as const;

/** `families`: the key types the service serves (from its certificates); `protocols`: the TLS
 *  versions its protocol list leaves on. */
export function checkCiphers(
  s: SmtpdService,
  view: CipherView,
  families: readonly KeyFamily[],
  protocols: readonly Protocol[],
  ctx: CipherContext = { postfix: 'unknown', openssl: 'OpenSSL' },
): CipherFinding[] {
  if (!s.tls) return [];
  const out: CipherFinding[] = [];
  const setExclusions = view.exclusionParameters.filter((p) => s.get(p).trim());
  const exclusionParam = view.exclusions.length ? setExclusions.join(', ') : view.gradeParameter;
  const cipherlist = `tls_${view.grade}_cipherlist`;
  if (view.invalid) {
    const bad = view.exclusions.filter((t) => /^[!+\-@]/.test(t));
    const edits: ConfigEdit[] = !(['high', 'medium', 'low', 'export', 'null'] as string[]).includes(
      view.grade,
    )
      ? [editAtOrigin(s, view.gradeParameter)]
      : bad.length
        ? setExclusions.map((p) =>
            editAtOrigin(
              s,
              p,
              splitList(s.get(p))
                .filter((t) => !bad.includes(t))
                .join(', '),
            ),
          )
        : [
            ...setExclusions.map((p) => editAtOrigin(s, p)),
            ...(s.origin(cipherlist) !== 'default' ? [editAtOrigin(s, cipherlist)] : []),
          ];
    out.push({
      id: 'ciphers-invalid',
      level: 'error',
      parameter: view.exclusions.length ? exclusionParam : view.gradeParameter,
      message: `${view.invalid}.`,
      fix: `Remove the offending setting; ${s.role === 'mx' ? 'on port 25 keep Postfix defaults (smtpd_tls_ciphers = medium, no exclusions)' : 'use smtpd_tls_mandatory_ciphers = high at most'}.`,
      edits,
    });
    return out;
  }
  if (!protocols.includes('TLSv1.2')) return out; // the protocol check says what is wrong then
  const tls13 = protocols.includes('TLSv1.3');
  const kinds = families.filter((f): f is 'rsa' | 'ecdsa' => f === 'rsa' || f === 'ecdsa');
  const served = kinds.length ? kinds : (['rsa'] as const);
  const names = new Set(view.suites.map((c) => c.name));
  const baseNames = view.baseSuites ? new Set(view.baseSuites.map((c) => c.name)) : undefined;
  const left = (kt: 'rsa' | 'ecdsa'): string[] =>
    COMMON_SENDER_SUITES[kt].filter((n) => names.has(n));
  const keeping = served.filter((kt) => left(kt).length);
  const losing = served.filter((kt) => !left(kt).length);

  // Which setting removes the suites: the grade's list itself, or exclusions (named).
  // (Without the list's own expansion: the exclusions when there are any.)
  const byList =
    losing.length > 0 &&
    (baseNames
      ? losing.every((kt) => !COMMON_SENDER_SUITES[kt].some((n) => baseNames.has(n)))
      : !view.exclusions.length);
  const culprits = view.culprits ?? [];
  const cause = byList
    ? s.origin(cipherlist) !== 'default'
      ? cipherlist
      : view.gradeParameter
    : exclusionParam;
  const causeText = byList
    ? s.origin(cipherlist) !== 'default'
      ? `${cipherlist} = "${s.get(cipherlist)}" (the list of ${view.gradeParameter} = ${view.grade})`
      : `${view.gradeParameter} = ${view.grade}`
    : `${view.gradeParameter} = ${view.grade} with ${culprits.length ? `the exclusion${culprits.length > 1 ? 's' : ''} ${culprits.join(', ')}` : `${view.exclusions.length} exclusion(s) (${view.exclusions.slice(0, 8).join(', ')}${view.exclusions.length > 8 ? ', …' : ''})`}`;
  /** Edits that bring back what removed them: the custom list deleted, or the culprit exclusions dropped. */
  const restore = (): ConfigEdit[] =>
    byList
      ? s.origin(cipherlist) !== 'default'
        ? [editAtOrigin(s, cipherlist)]
        : [editAtOrigin(s, view.gradeParameter)]
      : setExclusions.map((p) =>
          editAtOrigin(
            s,
            p,
            splitList(s.get(p))
              .filter((t) => !culprits.includes(t))
              .join(', '),
          ),
        );
  /** Port 25: Postfix's defaults on this listener only. */
  const mxDefaults = (): ConfigEdit[] => [
    ...setExclusions.map((p) => editOnService(s, p, '')),
    ...(view.grade !== 'medium'
      ? [editOnService(s, view.gradeParameter, 'medium')]
      : byList
        ? [editAtOrigin(s, cipherlist)]
        : []),
  ];
  const versions = `(${ctx.openssl}'s expansion of the list, as Postfix ${ctx.postfix} hands it over; another OpenSSL version may expand the same names differently)`;

  if (!keeping.length) {
    const detail = served
      .map((kt) => {
        const other = suitesFor(view.suites, kt);
        return `${LABEL[kt]}: ${other.length ? `${other.length} other suite(s), e.g. ${other[0]!.name}, which many senders do not offer` : 'no suite at all'}`;
      })
      .join('; ');
    out.push({
      id: 'ciphers-no-shared-cipher',
      level: s.role === 'mx' ? 'error' : 'warning',
      parameter: cause,
      message:
        `${causeText} leaves none of the suites large senders offer for ${served.map((kt) => `the ${LABEL[kt]} certificate (${COMMON_SENDER_SUITES[kt].join(', ')})`).join(' or ')} [${detail}] ${versions}. ` +
        `TLS 1.2 senders then fail with "no shared cipher"${s.role === 'mx' ? ' and deliver in plaintext, or, with DANE, not at all' : ''}` +
        `${tls13 ? '; only TLS 1.3 senders still get through' : ''}.`,
      fix:
        s.role === 'mx'
          ? `On port 25 use Postfix defaults for opportunistic TLS (in master.cf on ${s.label}: ${
              mxDefaults()
                .map((e) => `-o ${e.parameter}=${e.value ?? ''}`)
                .join(' ') || `delete ${cause}`
            }); put stricter settings on submission only (smtpd_tls_mandatory_ciphers = high there).`
          : byList
            ? `Delete ${cause} (back to Postfix's list).`
            : `Drop ${culprits.length ? culprits.join(', ') : 'the exclusions'} from ${exclusionParam}: ${COMMON_SENDER_SUITES[served[0]!][0]} must stay.`,
      edits: s.role === 'mx' ? (mxDefaults().length ? mxDefaults() : restore()) : restore(),
    });
    return out;
  }
  if (losing.length) {
    const kept = keeping.map((kt) => LABEL[kt]).join(' and ');
    out.push({
      id: 'ciphers-key-type-unused',
      level: 'info',
      parameter: cause,
      message:
        `${causeText} leaves no common sender suite for the ${losing.map((kt) => LABEL[kt]).join(' and ')} certificate, but the ${kept} certificate keeps ${keeping.flatMap(left).join(', ')}: TLS 1.2 senders negotiate ${kept} (senders offer both suite families), ` +
        `so there is no "no shared cipher"; the ${losing.map((kt) => LABEL[kt]).join(' and ')} certificate serves ${tls13 ? 'TLS 1.3 clients only' : 'nobody'} ${versions}.`,
      fix: `Nothing breaks. To use both certificates with TLS 1.2, ${byList ? `delete ${cause}` : `drop ${culprits.join(', ') || 'the exclusions'} from ${exclusionParam}`}.`,
      edits: restore(),
    });
  }
  if (s.role !== 'mx' || out.length) return out;
  const lost = keeping.flatMap((kt) => COMMON_SENDER_SUITES[kt].filter((n) => !names.has(n)));
  if (lost.length) {
    out.push({
      id: 'ciphers-common-suites-excluded',
      level: 'warning',
      parameter: cause,
      message: `The cipher settings on port 25 remove ${lost.join(', ')}, which large senders offer; opportunistic TLS gains nothing from it and some senders end up in plaintext.`,
      fix: 'Use Postfix defaults on port 25 (smtpd_tls_ciphers = medium, no smtpd_tls_exclude_ciphers); stricter settings belong on submission.',
      edits: mxDefaults(),
    });
  } else if (view.grade !== 'medium' || view.exclusions.length) {
    out.push({
      id: 'ciphers-port25-not-default',
      level: 'info',
      parameter: view.exclusions.length ? exclusionParam : view.gradeParameter,
      message: `Port 25 uses ${view.gradeParameter} = ${view.grade}${view.exclusions.length ? ` and excludes ${view.exclusions.join(', ')}` : ''}. The common sender suites remain, but with opportunistic TLS a stricter list only turns the odd sender to plaintext.`,
      fix: 'Prefer Postfix defaults for opportunistic TLS (smtpd_tls_ciphers = medium, no exclusions); use smtpd_tls_mandatory_ciphers = high on submission.',
      edits: mxDefaults(),
    });
  }
  return out;
}
