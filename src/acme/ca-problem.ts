/** The CA's problem documents (RFC 8555 §6.7) as acme-client hides them: it throws a plain Error
 *  with the detail text only, and sleeps through a 429's Retry-After (which for rateLimited can
 *  be hours) before trying again. While an order runs, every CA answer passes through here: the
 *  last problem is kept (type, status, Retry-After) and a 429 is handed back at once, so tlsa can
 *  say until when the CA refuses and let a later run try again. */
import * as acme from 'acme-client';
import { ProviderError } from '../errors.js';
import { retryAfterSeconds } from './ari-info.js';

export interface CaProblem {
  status: number;
  /** e.g. urn:ietf:params:acme:error:rateLimited */
  type?: string;
  detail?: string;
  retryAfterS?: number;
}

const ERR = 'urn:ietf:params:acme:error:';
export const isProblem = (p: CaProblem | undefined, name: string): boolean =>
  p?.type === `${ERR}${name}`;

/** The CA refused for now and said (or implied) until when: exit 3, retried after `retryAt`. */
export class RateLimitedError extends ProviderError {
  constructor(
    provider: string,
    readonly retryAt: Date,
    /** What the CA said (its problem detail). */
    readonly why: string,
  ) {
    super(provider, `the CA rate-limited this order until ${retryAt.toISOString()}: ${why}`);
  }
}

/** Let's Encrypt also writes the time into the detail ("retry after 2025-01-01 00:00:00 UTC"). */
function timeInDetail(detail: string | undefined): Date | undefined {
  const m = /retry after (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\s*UTC|Z)?/i.exec(detail ?? '');
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]!.replace(' ', 'T')}Z`);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

/** Without a Retry-After nor a time in the text: an hour, long enough not to add to the limit. */
const DEFAULT_RATE_LIMIT_S = 3600;

export function rateLimitedUntil(p: CaProblem, now: Date): Date {
  if (p.retryAfterS !== undefined) return new Date(now.getTime() + p.retryAfterS * 1000);
  const inText = timeInDetail(p.detail);
  if (inText && inText.getTime() > now.getTime()) return inText;
  return new Date(now.getTime() + DEFAULT_RATE_LIMIT_S * 1000);
}

type Transform = (
  this: { retryAttempt?: number },
  data: unknown,
  headers: Record<string, unknown>,
  status?: number,
) => unknown;

function problemOf(data: unknown, status: number): Omit<CaProblem, 'retryAfterS'> {
  let v = data;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return { status };
    }
  }
  const o = (v ?? {}) as { type?: unknown; detail?: unknown };
  return {
    status,
    ...(typeof o.type === 'string' ? { type: o.type } : {}),
    ...(typeof o.detail === 'string' ? { detail: o.detail } : {}),
  };
}

/** Watches acme-client's HTTP answers until stop(). `last()` is the problem of the latest answer
 *  if it was one (a later good answer clears it), so after acme-client throws it is the cause. */
export function watchCaProblems(now: () => Date = () => new Date()): {
  last(): CaProblem | undefined;
  stop(): void;
} {
  let last: CaProblem | undefined;
  const watch: Transform = function (data, headers, status) {
    if (status === undefined) return data;
    if (status < 400) {
      last = undefined;
      return data;
    }
    const header = headers['retry-after'];
    const retryAfterS = retryAfterSeconds(typeof header === 'string' ? header : undefined, now());
    last = { ...problemOf(data, status), ...(retryAfterS !== undefined ? { retryAfterS } : {}) };
    // acme-client's own retry counts attempts here: a 429 is not waited for in-process.
    if (status === 429) this.retryAttempt = Number.POSITIVE_INFINITY;
    return data;
  };
  const defaults = acme.axios.defaults;
  const before = defaults.transformResponse;
  const list = Array.isArray(before) ? before : before ? [before] : [];
  defaults.transformResponse = [...list, watch as (typeof list)[number]];
  return {
    last: () => last,
    stop() {
      defaults.transformResponse = before;
    },
  };
}
