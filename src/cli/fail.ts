/** Turn any error into one clear line on stderr and the exit code it stands for. */
import { EXIT, InputError, exitCodeOf } from '../errors.js';
import { redact } from '../util/redact.js';

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
  process.stderr.write(`tlsa: ${redact(message)}\n`);
  return code ?? EXIT.checkFailed;
}

/** Network problems a run met and worked around (records kept, chains left staged): each on
 *  stderr with what to check; exit 3 when there was any, else `code`. */
export function reportNetwork(problems: readonly { message: string; hint?: string | undefined }[], code: number): number {
  for (const p of problems) process.stderr.write(`tlsa: ${redact(p.message + (p.hint ? `\n  hint: ${p.hint}` : ''))}\n`);
  return problems.length ? EXIT.provider : code;
}

export function warn(lines: string[]): void {
  for (const l of lines) process.stderr.write(`tlsa: warning: ${redact(l)}\n`);
}

/** Everything a command prints goes through here: a secret may hide in any configured value. */
export function out(text: string): void {
  process.stdout.write(redact(text));
}

export function progressLine(line: string): void {
  process.stderr.write(`tlsa: ${redact(line)}\n`);
}
