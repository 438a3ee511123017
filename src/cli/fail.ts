/** Turn any error into one clear line on stderr and the exit code it stands for. */
import { EXIT, InputError, WaitError } from '../errors.js';
import { redact } from '../util/redact.js';

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
  process.stderr.write(`tlsa: ${redact(message)}\n`);
  return code;
}

export function warn(lines: string[]): void {
  for (const l of lines) process.stderr.write(`tlsa: warning: ${redact(l)}\n`);
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
  process.stderr.write(`tlsa: ${redact(line)}\n`);
}
