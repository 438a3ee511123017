/** Errors that map to the CLI's exit codes (architecture.md: 0 ok, 1 check failed,
 *  2 bad input, 3 provider/network failure, 4 waiting still needed). */

export const EXIT = { ok: 0, checkFailed: 1, badInput: 2, provider: 3, wait: 4 } as const;

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

export function errnoCode(e: unknown): string {
  return (e as NodeJS.ErrnoException)?.code ?? (e as Error)?.message ?? String(e);
}
