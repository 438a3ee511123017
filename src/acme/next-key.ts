/** Which key a renewal uses. The next key may serve at once only when its 3 1 1 record is live
 *  (every authoritative server, the engine's TTL rule); otherwise the renewal takes a fresh key
 *  and the new chain waits in a staged install like a certbot renewal. Pure. */

export type RenewalKey =
  | { use: 'next' }
  | { use: 'fresh'; reason: 'no next key' | 'next key record not live' };

export function renewalKey(
  nextKeySpki: string | undefined,
  isLive: (spkiSha256Hex: string) => boolean,
): RenewalKey {
  if (nextKeySpki === undefined) return { use: 'fresh', reason: 'no next key' };
  return isLive(nextKeySpki)
    ? { use: 'next' }
    : { use: 'fresh', reason: 'next key record not live' };
}
