/** Provider failures counted per provider and kind, for tlsa_provider_errors_total. The kind
 *  comes from the message the provider adapter wrote (HTTP status, errno, reload), so that an
 *  alert can tell bad credentials (act now) from throttling (wait). Pure. */
import { ProviderError } from '../errors.js';

export type ProviderErrorKind =
  | 'auth'
  | 'throttled'
  | 'timeout'
  | 'network'
  | 'not-found'
  | 'reload'
  | 'other';

const KINDS: [ProviderErrorKind, RegExp][] = [
  ['auth', /\b(401|403)\b|unauthori[sz]ed|forbidden|credential|authenticat/i],
  // DNS UPDATE's answers (TSIG errors, rcodes): upper case, whole words.
  ['auth', /\b(BADKEY|BADSIG|BADTIME|NOTAUTH|REFUSED)\b/],
  ['throttled', /\b429\b|throttl|rate.?limit|too many requests/i],
  ['timeout', /time(d)?\s?out|ETIMEDOUT/i],
  [
    'network',
    /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|fetch failed|SERVFAIL/i,
  ],
  ['not-found', /\b404\b|not found|unknown zone|no such zone|NXDOMAIN|NOTZONE/i],
  ['reload', /reload/i],
];

export function providerErrorKind(message: string): ProviderErrorKind {
  for (const [kind, re] of KINDS) if (re.test(message)) return kind;
  return 'other';
}

/** The provider and kind of a run's failure, or undefined when it was not a provider's. */
export function classifyProviderError(
  e: unknown,
): { provider: string; kind: ProviderErrorKind } | undefined {
  if (!(e instanceof ProviderError)) return undefined;
  return { provider: e.provider, kind: providerErrorKind(e.message) };
}

/** Counts, kept by the daemon. */
export class ProviderErrorCounts {
  private readonly counts = new Map<string, { provider: string; kind: string; count: number }>();

  add(provider: string, kind: string): void {
    const key = `${provider}\u0000${kind}`;
    const e = this.counts.get(key) ?? { provider, kind, count: 0 };
    e.count++;
    this.counts.set(key, e);
  }

  list(): { provider: string; kind: string; count: number }[] {
    return [...this.counts.values()].map((e) => ({ ...e }));
  }
}
