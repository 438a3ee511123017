/** Turn any error into one clear line on stderr and the exit code it stands for; and every
 *  other line a command prints for humans (warnings, notes, progress), as text or, for the
 *  daemon and the hooks with `--log-format json`, as one JSON object per line. With `--json`,
 *  stdout carries nothing but the command's envelopes (src/cli/envelope.ts), errors included. */
import { EXIT, InputError, exitCodeOf } from '../errors.js';
import { redact, redactValue } from '../util/redact.js';
import { errorKind, resultEnvelope, failureEnvelope, type ErrorDetail } from './envelope.js';
import type { CommandFields, JsonCommand } from './json-contract.js';
import { writeTo } from './pipe-write.js';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'info' | 'warn' | 'error';

/** What a line says, for machines: `event` is a short stable name (log queries and alerts
 *  match on it, so it never changes with the wording of `message`). */
export interface LogEvent {
  level?: LogLevel;
  event: string;
  service?: string | undefined;
  fields?: Record<string, unknown>;
  /** A text line whose fact has its own event elsewhere: left out of the JSON log. */
  textOnly?: boolean;
}

let stamped = false;
let format: LogFormat = 'text';
/** Set by `--json`: the command whose envelopes stdout carries, and whether one a line. */
let jsonMode: { command: string; lines: boolean } | undefined;
/** The warnings printed since the last envelope: the envelope's `warnings`. */
let warned: string[] = [];

/** Only an envelope reads `warned`: without `--json` nothing is kept (a daemon would otherwise
 *  keep every run's warnings, 20,000 lines a run at 10,000 services, for as long as it runs). */
function keepWarning(line: string): void {
  if (jsonMode) warned.push(line);
}

/** `--json`: from now on stdout carries nothing but `command`'s JSON envelopes (the daemon's
 *  one a line, one per run); every line for humans goes to stderr. */
export function jsonOutput(command: string, opts: { lines?: boolean } = {}): void {
  jsonMode = { command, lines: !!opts.lines };
}

function printEnvelope(value: object): void {
  out(`${JSON.stringify(value, null, jsonMode?.lines ? undefined : 2)}\n`);
}

/** The command's result as its `--json` envelope, with the warnings printed since the last one.
 *  Returns `exitCode`, so that a command can end with `return printJson(…)`. */
export function printJson<C extends JsonCommand>(
  command: C,
  exitCode: number,
  fields: CommandFields[C],
): number {
  printEnvelope(resultEnvelope(command, exitCode, takeWarnings(), fields));
  return exitCode;
}

/** A warning that was printed in another form (an error a run worked around) but belongs in
 *  the next envelope's `warnings`. */
export function addWarning(line: string): void {
  keepWarning(line);
}

function takeWarnings(): string[] {
  const w = warned;
  warned = [];
  return w;
}

/** The daemon and the ACME hooks run unattended and their lines end up in logs: from now on
 *  every line this process prints for humans starts with the time (ISO 8601, UTC), or, with
 *  `--log-format json`, is one JSON object on stderr (journald, Loki). */
export function stampLines(logFormat?: string): void {
  if (logFormat !== undefined && logFormat !== 'text' && logFormat !== 'json') {
    throw new InputError(`--log-format must be text or json, got "${logFormat}"`);
  }
  stamped = true;
  format = logFormat === 'json' ? 'json' : 'text';
}

/** The time prefix of a log line ('' unless stampLines() was called). */
export function linePrefix(): string {
  return stamped ? `${new Date().toISOString()} ` : '';
}

/** One line for humans: `text` as it always was (on stderr, or stdout for the hook's notes),
 *  or with `--log-format json` the event as JSON on stderr, so that stdout carries nothing but
 *  the `--json` output. Redacted either way: a secret may hide in any configured value. */
export function logLine(
  text: string,
  message: string,
  e: LogEvent,
  stream: 'stdout' | 'stderr' = 'stderr',
): void {
  const line = formatLine(text, message, e, stream);
  if (line) writeTo(line.to, line.text);
}

/** A line as logLine prints it, and where; undefined when this format leaves it out. */
function formatLine(
  text: string,
  message: string,
  e: LogEvent,
  stream: 'stdout' | 'stderr',
): { to: NodeJS.WriteStream; text: string } | undefined {
  if (format === 'json') {
    if (e.textOnly) return undefined;
    const entry = {
      time: new Date().toISOString(),
      level: e.level ?? 'info',
      ...(e.service !== undefined ? { service: e.service } : {}),
      event: e.event,
      message,
      ...(e.fields && Object.keys(e.fields).length ? { fields: e.fields } : {}),
    };
    return { to: process.stderr, text: `${JSON.stringify(redactValue(entry))}\n` };
  }
  const toStdout = stream === 'stdout' && !jsonMode;
  return {
    to: toStdout ? process.stdout : process.stderr,
    text: `${linePrefix()}${redact(text)}\n`,
  };
}

/** Lines are written in pieces of about this many characters: a fleet's run prints tens of
 *  thousands of warnings, and a write each cost as much as the rest of printing them. Small
 *  enough that no large buffer is allocated (and kept by the allocator) for them. */
const BATCH_CHARS = 64 * 1024;

/** logLine for each of `lines`, written in a few larger pieces, all before it returns (the
 *  streams write synchronously, so the order with other output is kept). */
function logEach(lines: readonly string[], prefix: string, e: LogEvent): void {
  let pending = '';
  for (const l of lines) {
    const line = formatLine(`${prefix}${l}`, l, e, 'stderr');
    if (!line) continue;
    pending += line.text;
    if (pending.length >= BATCH_CHARS) {
      writeTo(process.stderr, pending);
      pending = '';
    }
  }
  if (pending) writeTo(process.stderr, pending);
}

/** Maps by the error's `exitCode` alone; an error without one is a bug ("internal error").
 *  With `--json` the error is also the envelope on stdout, unless `opts.json` is false (an
 *  error a run works around: the caller puts it into the run's envelope). */
export function fail(e: unknown, opts: { json?: boolean } = {}): number {
  const err = e as Error & { hint?: unknown };
  const code = exitCodeOf(e);
  let message: string;
  let hint: string | undefined;
  let stack: string | undefined;
  if (code === undefined) {
    message = `internal error: ${err?.message ?? String(e)}`;
    if (process.env.TLSA_DEBUG && err?.stack) stack = err.stack;
  } else {
    message = err instanceof InputError ? err.located : err.message;
    if (typeof err.hint === 'string' && err.hint) hint = err.hint;
  }
  const exitCode = code ?? EXIT.checkFailed;
  const where =
    err instanceof InputError && err.file
      ? { file: err.file, ...(err.line ? { line: err.line } : {}) }
      : {};
  logLine(
    `tlsa: ${message}${stack ? `\n${stack}` : ''}${hint ? `\n  hint: ${hint}` : ''}`,
    message,
    {
      level: 'error',
      event: 'error',
      fields: { exitCode, ...where, ...(hint ? { hint } : {}), ...(stack ? { stack } : {}) },
    },
  );
  if (opts.json !== false)
    printFailure(exitCode, {
      message,
      kind: errorKind(e, code),
      ...(hint ? { hint } : {}),
      ...where,
    });
  return exitCode;
}

/** With `--json`: the failure envelope on stdout (its human form is on stderr already). */
export function printFailure(exitCode: number, error: ErrorDetail): void {
  if (jsonMode) printEnvelope(failureEnvelope(jsonMode.command, exitCode, takeWarnings(), error));
}

/** Network problems a run met and worked around (records kept, chains left staged): each on
 *  stderr with what to check; exit 3 when there was any, else `code`. */
export function reportNetwork(
  problems: readonly { message: string; hint?: string | undefined }[],
  code: number,
): number {
  for (const p of problems) {
    logLine(`tlsa: ${p.message}${p.hint ? `\n  hint: ${p.hint}` : ''}`, p.message, {
      level: 'error',
      event: 'network',
      fields: p.hint ? { hint: p.hint } : {},
    });
  }
  return problems.length ? EXIT.provider : code;
}

const WARNING: LogEvent = { level: 'warn', event: 'warning' };
const NOTE: LogEvent = { event: 'note' };

export function warn(lines: string[]): void {
  for (const l of lines) keepWarning(l);
  logEach(lines, 'tlsa: warning: ', WARNING);
}

/** Facts worth knowing that are not problems (e.g. a catalog that does not apply to a chain). */
export function note(lines: string[]): void {
  logEach(lines, 'tlsa: note: ', NOTE);
}

/** Everything a command prints goes through here: a secret may hide in any configured value. */
export function out(text: string): void {
  writeTo(process.stdout, redact(text));
}

/** Progress of a run. The engine's lines are plain strings; the ones about something awaited
 *  (the lock, a resolver, a server: "waiting for …") are told apart so that a long wait can be
 *  found in a log by its event. */
export function progressLine(line: string, e?: LogEvent): void {
  logLine(
    `tlsa: ${line}`,
    line,
    e ?? { event: line.startsWith('waiting for ') ? 'waiting' : 'progress' },
  );
}
