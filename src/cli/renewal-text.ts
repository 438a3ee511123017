/** How `renew` and the daemon say which key a renewal used (kept apart from the ACME client,
 *  which the daemon loads only when a renewal is due). */
import type { RenewalKey } from '../acme/next-key.js';

export function keyText(key: RenewalKey): string {
  return key.use === 'next'
    ? 'the next key (its 3 1 1 is live: served at once)'
    : key.reason === 'next key record not live'
      ? "a new key: the next key's 3 1 1 is not live yet, the new chain waits for its records (staged install)"
      : 'a new key (no next key yet)';
}
