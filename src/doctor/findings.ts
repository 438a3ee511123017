/** What the Postfix doctor reports: findings (each with the parameter, the service, why and
 *  the fix), checks it had to skip, and the exit code they stand for. Pure. */
import { EXIT } from '../errors.js';

export type FindingLevel = 'error' | 'warning' | 'info';

/** One change that carries out a fix, in postconf's terms: main.cf (`postconf -e` / `-X`) when
 *  `service` is absent, else that master.cf service's `-o` (`postconf -P -e` / `-P -X`, service
 *  as `name/type`). No `value`: delete the setting (back to main.cf's value or the default). */
export interface ConfigEdit {
  service?: string;
  parameter: string;
  value?: string;
}

/** The postconf command line of an edit (for humans: the fix, ready to paste). */
export function editCommand(e: ConfigEdit, configDir?: string): string {
  const c = configDir !== undefined ? ` -c ${configDir}` : '';
  const quote = (t: string): string => `'${t.replace(/'/g, `'\\''`)}'`;
  if (e.service)
    return e.value === undefined
      ? `postconf${c} -P -X ${e.service}/${e.parameter}`
      : `postconf${c} -P -e ${quote(`${e.service}/${e.parameter}=${e.value}`)}`;
  return e.value === undefined
    ? `postconf${c} -X ${e.parameter}`
    : `postconf${c} -e ${quote(`${e.parameter} = ${e.value}`)}`;
}

export interface Finding {
  /** Stable identifier, listed in docs/doctor.md (e.g. `tlsa-mismatch`). */
  id: string;
  level: FindingLevel;
  /** Where it applies: `smtp/25`, `submission/587`, `smtps/465`, `127.0.0.1:2525`,
   *  `smtp client` (outbound), or `main.cf`. */
  service: string;
  /** The Postfix parameter to look at (`smtpd_tls_protocols`, `smtpd_tls_chain_files`, …). */
  parameter: string;
  /** Why it is wrong, in one or two sentences. */
  message: string;
  /** What to change. */
  fix: string;
  /** The fix as postconf edits, when it is a configuration change (not DNS, not files). */
  edits?: ConfigEdit[];
}

/** A finding as a check makes it, before the caller says which service it is about. */
export type FindingWithoutService = Omit<Finding, 'service'>;

/** A check that did not run, and why (not a finding: it says nothing about the configuration). */
export interface Skipped {
  check: string;
  reason: string;
}

export const LEVEL_ORDER: Record<FindingLevel, number> = { error: 0, warning: 1, info: 2 };

export function exitCodeFor(findings: readonly Finding[]): number {
  return findings.some((f) => f.level === 'error') ? EXIT.checkFailed : EXIT.ok;
}

/** Errors first, then warnings, then info; stable otherwise. */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => LEVEL_ORDER[a.level] - LEVEL_ORDER[b.level]);
}

/** Collects findings for one scope; `service` is filled in. */
export class FindingSink {
  readonly findings: Finding[] = [];
  readonly skipped: Skipped[] = [];

  add(f: Finding): void {
    this.findings.push(f);
  }

  skip(check: string, reason: string): void {
    this.skipped.push({ check, reason });
  }

  for(
    service: string,
  ): (id: string, level: FindingLevel, parameter: string, message: string, fix: string) => void {
    return (id, level, parameter, message, fix) =>
      this.add({ id, level, service, parameter, message, fix });
  }
}
