/** The one shape of every command's `--json` output (docs/json/envelope.schema.json): `ok`,
 *  `exitCode`, `command`, `warnings`, then the command's own fields, or `error` when the
 *  command stopped on one. Pure; fail.ts prints it. Loaded by every command, so it imports no
 *  schema library (src/cli/json-contract.ts describes the same shapes in zod). */
import { EXIT, ProviderError } from '../errors.js';

/** What went wrong, by what a script does about it: `input` fix the command line or the
 *  configuration; `unsafe` nothing was changed because a served chain would be left without a
 *  matching record; `provider` and `network` retry later (state consistent); `wait` another
 *  run holds the lock or a step must wait; `internal` a bug. */
export const ERROR_KINDS = ['input', 'unsafe', 'provider', 'network', 'wait', 'internal'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

export interface ErrorDetail {
  message: string;
  kind: ErrorKind;
  hint?: string;
  file?: string;
  line?: number;
}

/** `code`: the exit code the error carries (undefined: none, a bug). */
export function errorKind(e: unknown, code: number | undefined): ErrorKind {
  switch (code) {
    case EXIT.badInput:
      return 'input';
    case EXIT.checkFailed:
      return 'unsafe';
    case EXIT.wait:
      return 'wait';
    case EXIT.provider:
      return e instanceof ProviderError ? 'provider' : 'network';
    default:
      return 'internal';
  }
}

export function resultEnvelope<F extends object>(
  command: string,
  exitCode: number,
  warnings: string[],
  fields: F,
) {
  return { ok: exitCode === EXIT.ok, exitCode, command, warnings, ...fields };
}

export function failureEnvelope(
  command: string,
  exitCode: number,
  warnings: string[],
  error: ErrorDetail,
) {
  return { ok: false as const, exitCode, command, warnings, error };
}
