/** Turn any error into one clear line on stderr and the exit code it stands for. */
import { EXIT, InputError, WaitError } from '../errors.js';
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

export function fail(e: unknown): number {
  const err = e as Error & { exitCode?: number; name?: string };
  let message: string;
  let code: number;
  if (err instanceof InputError) {
    message = err.located + (err.hint ? `\n  hint: ${err.hint}` : '');
    code = EXIT.badInput;
  } else if (err instanceof WaitError) {
    message = err.message;
    code = EXIT.wait;
  } else if (err?.name === 'ProviderError') {
    message = err.message;
    code = EXIT.provider;
  } else {
    message = `internal error: ${err?.message ?? String(e)}`;
    code = EXIT.checkFailed;
    if (process.env['TLSA_DEBUG'] && err?.stack) message += `\n${err.stack}`;
  }
  process.stderr.write(`${linePrefix()}tlsa: ${redact(message)}\n`);
  return code;
}

export function warn(lines: string[]): void {
  for (const l of lines) process.stderr.write(`${linePrefix()}tlsa: warning: ${redact(l)}\n`);
}

/** Everything a command prints goes through here: a secret may hide in any configured value. */
export function out(text: string): void {
  process.stdout.write(redact(text));
}

export function progressLine(line: string): void {
  process.stderr.write(`${linePrefix()}tlsa: ${redact(line)}\n`);
}
