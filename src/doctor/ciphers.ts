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
import type { FindingLevel } from './findings.js';
import { splitList } from './postconf.js';
import type { Protocol } from './protocols.js';
import type { SmtpdService } from './services.js';

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
}

/** Build Postfix's cipher string, or say why Postfix would refuse it. */
export function buildCipherString(cipherlist: string, exclusions: readonly string[]): { cipherString: string } | { invalid: string } {
  let out = cipherlist.trim();
  for (const tok of exclusions) {
    if (/^[!+\-@]/.test(tok)) return { invalid: `"${tok}": an exclusion cannot start with "!", "+", "-" or "@" (Postfix logs "invalid unary '!+-@' in cipher exclusion" and disables TLS)` };
    out += `:!${tok}`;
  }
  return { cipherString: out };
}

const cache = new Map<string, Promise<{ suites: CipherSuite[] } | { error: string }>>();

/** `openssl ciphers -v STRING`; TLS 1.3 suites are left out (these parameters do not set them).
 *  Rejects when openssl is not installed. */
export function expandCipherString(cipherString: string, openssl = 'openssl'): Promise<{ suites: CipherSuite[] } | { error: string }> {
  const key = `${openssl}\0${cipherString}`;
  let hit = cache.get(key);
  if (!hit) {
    hit = new Promise((resolve, reject) => {
      execFile(openssl, ['ciphers', '-v', cipherString], { encoding: 'utf8', timeout: 10_000 }, (err, stdout, stderr) => {
        if (!err) return resolve({ suites: parseOpensslCiphers(stdout).filter((c) => c.protocol !== 'TLSv1.3') });
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return reject(new Error('openssl not found'));
        const detail = String(stderr).trim().split('\n').find((l) => /error/i.test(l)) ?? err.message;
        resolve({ error: /no cipher match/i.test(detail) ? 'no cipher can be selected (OpenSSL: no cipher match)' : detail.trim() });
      });
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
  const exclusionParameters = s.enforce ? ['smtpd_tls_exclude_ciphers', 'smtpd_tls_mandatory_exclude_ciphers'] : ['smtpd_tls_exclude_ciphers'];
  const exclusions = exclusionParameters.flatMap((p) => splitList(s.get(p)));
  const base = { gradeParameter, grade, exclusionParameters, exclusions, suites: [] as CipherSuite[] } as const;
  if (!(GRADES as readonly string[]).includes(grade)) {
    return { ...base, invalid: `${gradeParameter} = "${grade}" is not a cipher grade (${GRADES.join(', ')}); Postfix disables TLS` };
  }
  const built = buildCipherString(s.get(`tls_${grade}_cipherlist`), exclusions);
  if ('invalid' in built) return { ...base, invalid: built.invalid };
  const expanded = await expandCipherString(built.cipherString, openssl);
  if ('error' in expanded) return { ...base, cipherString: built.cipherString, invalid: `OpenSSL rejects "${built.cipherString}": ${expanded.error}; Postfix logs "invalid cipher list" and disables TLS` };
  return { ...base, cipherString: built.cipherString, suites: expanded.suites };
}

export interface CipherFinding {
  id: string;
  level: FindingLevel;
  parameter: string;
  message: string;
  fix: string;
}

/** `families`: the key types the service serves (from its certificates); `protocols`: the TLS
 *  versions its protocol list leaves on. */
export function checkCiphers(s: SmtpdService, view: CipherView, families: readonly KeyFamily[], protocols: readonly Protocol[]): CipherFinding[] {
  if (!s.tls) return [];
  const out: CipherFinding[] = [];
  const exclusionParam = view.exclusions.length
    ? view.exclusionParameters.filter((p) => s.get(p).trim()).join(', ')
    : view.gradeParameter;
  if (view.invalid) {
    out.push({
      id: 'ciphers-invalid',
      level: 'error',
      parameter: view.exclusions.length ? exclusionParam : view.gradeParameter,
      message: `${view.invalid}.`,
      fix: `Remove the offending setting; ${s.role === 'mx' ? 'on port 25 keep Postfix defaults (smtpd_tls_ciphers = medium, no exclusions)' : 'use smtpd_tls_mandatory_ciphers = high at most'}.`,
    });
    return out;
  }
  if (!protocols.includes('TLSv1.2')) return out; // the protocol check says what is wrong then
  const tls13 = protocols.includes('TLSv1.3');
  const kinds = families.filter((f): f is 'rsa' | 'ecdsa' => f === 'rsa' || f === 'ecdsa');
  const names = new Set(view.suites.map((c) => c.name));
  const lost: string[] = [];
  for (const kt of kinds.length ? kinds : (['rsa'] as const)) {
    const common = COMMON_SENDER_SUITES[kt];
    const left = common.filter((n) => names.has(n));
    const label = kt === 'rsa' ? 'RSA' : 'ECDSA';
    const forKt = view.suites.filter((c) => (kt === 'rsa' ? c.au === 'RSA' : c.au === 'ECDSA') && c.kx !== 'RSAPSK');
    if (!left.length) {
      const what = `${view.gradeParameter} = ${view.grade}${view.exclusions.length ? ` with ${view.exclusions.length} exclusion(s) (${view.exclusions.slice(0, 8).join(', ')}${view.exclusions.length > 8 ? ', …' : ''})` : ''}`;
      out.push({
        id: 'ciphers-no-shared-cipher',
        level: s.role === 'mx' ? 'error' : 'warning',
        parameter: exclusionParam,
        message: `${what} leaves none of ${common.join(', ')} for the ${label} certificate ` +
          `(${forKt.length ? `${forKt.length} other ${label} suite(s) remain, e.g. ${forKt[0]!.name}, which many senders do not offer` : `no ${label} suite at all`}). ` +
          `TLS 1.2 senders then fail with "no shared cipher"${s.role === 'mx' ? ' and deliver in plaintext, or, with DANE, not at all' : ''}` +
          `${tls13 ? '; only TLS 1.3 senders still get through' : ''}.`,
        fix: s.role === 'mx'
          ? 'On port 25 use Postfix defaults for opportunistic TLS: remove smtpd_tls_exclude_ciphers (or reduce it to aNULL) and set smtpd_tls_ciphers = medium; put stricter settings on submission only (smtpd_tls_mandatory_ciphers = high there).'
          : `Keep ${common[0]} in the list: drop the exclusions that remove it.`,
      });
    } else if (left.length < common.length) {
      lost.push(...common.filter((n) => !names.has(n)));
    }
  }
  if (s.role !== 'mx' || out.length) return out;
  if (lost.length) {
    out.push({
      id: 'ciphers-common-suites-excluded',
      level: 'warning',
      parameter: exclusionParam,
      message: `The cipher settings on port 25 remove ${lost.join(', ')}, which large senders offer; opportunistic TLS gains nothing from it and some senders end up in plaintext.`,
      fix: 'Use Postfix defaults on port 25 (smtpd_tls_ciphers = medium, no smtpd_tls_exclude_ciphers); stricter settings belong on submission.',
    });
  } else if (view.grade !== 'medium' || view.exclusions.length) {
    out.push({
      id: 'ciphers-port25-not-default',
      level: 'info',
      parameter: view.exclusions.length ? exclusionParam : view.gradeParameter,
      message: `Port 25 uses ${view.gradeParameter} = ${view.grade}${view.exclusions.length ? ` and excludes ${view.exclusions.join(', ')}` : ''}. The common sender suites remain, but with opportunistic TLS a stricter list only turns the odd sender to plaintext.`,
      fix: 'Prefer Postfix defaults for opportunistic TLS (smtpd_tls_ciphers = medium, no exclusions); use smtpd_tls_mandatory_ciphers = high on submission.',
    });
  }
  return out;
}
