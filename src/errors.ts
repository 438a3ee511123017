/** Errors that map to the CLI's exit codes (architecture.md: 0 ok, 1 check failed,
 *  2 bad input, 3 provider/network failure, 4 waiting still needed). Every error the product
 *  throws on purpose carries its `exitCode`; the CLI maps by that field alone, and anything
 *  without one is reported as an internal error (a bug). */

export const EXIT = { ok: 0, checkFailed: 1, badInput: 2, provider: 3, wait: 4 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const CODES: ReadonlySet<number> = new Set(Object.values(EXIT));

/** The exit code an error stands for, or undefined when it carries none (a bug). */
export function exitCodeOf(e: unknown): ExitCode | undefined {
  const code = (e as { exitCode?: unknown } | null | undefined)?.exitCode;
  return typeof code === 'number' && code !== EXIT.ok && CODES.has(code)
    ? (code as ExitCode)
    : undefined;
}

/** Bad input or configuration; raised before any DNS change. */
export class InputError extends Error {
  readonly exitCode = EXIT.badInput;
  constructor(
    message: string,
    readonly file?: string,
    readonly line?: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'InputError';
  }

  /** `file:line: message`, the form editors and humans both jump to. */
  get located(): string {
    const where = this.file ? `${this.file}${this.line ? `:${this.line}` : ''}: ` : '';
    return `${where}${this.message}`;
  }
}

/** Another run holds the lock, or a rollover step must wait (exit 4). */
export class WaitError extends Error {
  readonly exitCode = EXIT.wait;
  constructor(message: string) {
    super(message);
    this.name = 'WaitError';
  }
}

/** A DNS server (the validating resolver, an authoritative server) or a live TLS server
 *  could not be asked: refused, silent, unreachable, SERVFAIL. Exit 3; the state stays
 *  consistent, so a re-run once the network is fixed carries on. `hint` says what to check. */
export class NetworkError extends Error {
  readonly exitCode: ExitCode = EXIT.provider;
  constructor(
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'NetworkError';
  }
}

/** A provider failure (network, API, reload command): exit code 3, state left consistent. */
export class ProviderError extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    readonly provider: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${provider}: ${message}`, options);
    this.name = 'ProviderError';
  }
}

/** A safety rule would be broken (a served chain left without a matching record): nothing was
 *  changed. Exit 1, like a failed check. */
export class UnsafeError extends Error {
  readonly exitCode = EXIT.checkFailed;
  constructor(message: string) {
    super(message);
    this.name = 'UnsafeError';
  }
}

export function errnoCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.message ?? String(e);
}
