/** The JSON-over-HTTP exchange the REST providers share (PowerDNS, deSEC): a bounded request,
 *  network failures as Transient (worth another try), the body read as text and as JSON. */
import { EXIT } from '../src/errors.js';
import { withRetry } from '../src/util/retry.js';

/** An answer worth asking again: 429, 5xx, a network error. Exit 3 should it escape. */
export class Transient extends Error {
  readonly exitCode = EXIT.provider;
  constructor(
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface JsonAnswer {
  res: Response;
  text: string;
  /** The body parsed as JSON, or undefined when it is empty or not JSON. */
  json: unknown;
}

export async function exchangeJson(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: unknown; timeoutMs: number },
  /** For messages: "the deSEC API at https://desec.io (reading …)". */
  what: string,
): Promise<JsonAnswer> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: init.method,
      headers: {
        ...init.headers,
        Accept: 'application/json',
        ...(init.body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
      signal: AbortSignal.timeout(init.timeoutMs),
      // Credentials travel in headers, which a followed redirect would carry to any host.
      redirect: 'error',
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why =
      err.name === 'TimeoutError'
        ? `no answer within ${init.timeoutMs / 1000} s`
        : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new Transient(`cannot reach ${what}: ${why}`);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { res, text, json };
}

/** `exchange` with bounded retries of Transient failures (backoff, or the server's
 *  Retry-After); the last one becomes `fail("… (gave up after N attempts)")`. */
export function retryTransient<T>(
  exchange: () => Promise<T>,
  opts: { attempts: number; baseDelayMs: number; maxDelayMs: number },
  fail: (message: string) => Error,
): Promise<T> {
  return withRetry(exchange, {
    ...opts,
    isRetryable: (e) => e instanceof Transient,
    retryAfterMs: (e) => (e instanceof Transient ? e.retryAfterMs : undefined),
  }).catch((e: unknown) => {
    if (e instanceof Transient)
      throw fail(`${e.message} (gave up after ${opts.attempts} attempts)`);
    throw e;
  });
}
