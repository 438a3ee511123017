/** Bounded retries with exponential backoff and full jitter, for throttling and transient
 *  server errors. Permanent errors are not retried: the caller's `isRetryable` decides. */

export interface RetryOptions {
  /** Attempts in all, including the first (default 5). */
  attempts?: number;
  /** First backoff in ms (default 200); doubles each time, capped at `maxDelayMs`. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  isRetryable: (error: unknown) => boolean;
  /** A server-given wait (Retry-After) in ms overrides the computed backoff. */
  retryAfterMs?: (error: unknown) => number | undefined;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export async function withRetry<T>(fn: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const attempts = opts.attempts ?? 5;
  const base = opts.baseDelayMs ?? 200;
  const max = opts.maxDelayMs ?? 10_000;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = opts.random ?? Math.random;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (attempt >= attempts || !opts.isRetryable(e)) throw e;
      const computed = Math.round(random() * Math.min(max, base * 2 ** (attempt - 1)));
      const delay = Math.min(max, opts.retryAfterMs?.(e) ?? computed);
      opts.onRetry?.(e, attempt, delay);
      await sleep(delay);
    }
  }
}
