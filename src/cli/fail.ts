/** Turn any error into one clear line on stderr and the exit code it stands for. */
import { EXIT, InputError, exitCodeOf } from '../errors.js';
import { redact } from '../util/redact.js';

let stamped = false;

/** The daemon and the ACME hooks run unattended and their lines end up in logs: from now on
 *  every line this process prints for humans starts with the time (ISO 8601, UTC). */
export function stampLines(): void {
  stamped = true;
}

/** The time prefix of a log line ('' unless stampLines() was called). */
export function linePrefix(): string {
  return stamped ? `${new Date().toISOString()} ` : '';
}

/** Maps by the error's `exitCode` alone; an error without one is a bug ("internal error"). */
export function fail(e: unknown): number {
  const err = e as Error & { hint?: unknown };
  const code = exitCodeOf(e);
  let message: string;
  if (code === undefined) {
    message = `internal error: ${err?.message ?? String(e)}`;
    if (process.env['TLSA_DEBUG'] && err?.stack) message += `\n${err.stack}`;
  } else {
    message = err instanceof InputError ? err.located : err.message;
    if (typeof err.hint === 'string' && err.hint) message += `\n  hint: ${err.hint}`;
  }
  process.stderr.write(`${linePrefix()}tlsa: ${redact(message)}\n`);
  return code ?? EXIT.checkFailed;
}

/** Network problems a run met and worked around (records kept, chains left staged): each on
 *  stderr with what to check; exit 3 when there was any, else `code`. */
export function reportNetwork(problems: readonly { message: string; hint?: string | undefined }[], code: number): number {
  for (const p of problems) process.stderr.write(`${linePrefix()}tlsa: ${redact(p.message + (p.hint ? `\n  hint: ${p.hint}` : ''))}\n`);
  return problems.length ? EXIT.provider : code;
}

export function warn(lines: string[]): void {
  for (const l of lines) process.stderr.write(`${linePrefix()}tlsa: warning: ${redact(l)}\n`);
}

/** Facts worth knowing that are not problems (e.g. a catalog that does not apply to a chain). */
export function note(lines: string[]): void {
  for (const l of lines) process.stderr.write(`tlsa: note: ${redact(l)}\n`);
}

/** Everything a command prints goes through here: a secret may hide in any configured value. */
export function out(text: string): void {
  process.stdout.write(redact(text));
}

export function progressLine(line: string): void {
  process.stderr.write(`${linePrefix()}tlsa: ${redact(line)}\n`);
}
