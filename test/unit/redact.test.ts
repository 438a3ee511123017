/** src/util/redact.ts: a registered secret is hidden in every form a server or library may echo
 *  it in, not only as it is. */
import { describe, expect, it } from 'vitest';
import { redact, registerSecret } from '../../src/util/redact.js';

const SECRET = 'tok/en+with spaces&=!~(x)é"q';
registerSecret(SECRET);
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

describe('redact', () => {
  it('the secret as it is', () => {
    expect(redact(`key=${SECRET}.`)).toBe('key=***.');
  });

  it.each([
    ['encodeURIComponent', encodeURIComponent(SECRET)],
    ['form encoding (URLSearchParams)', new URLSearchParams({ k: SECRET }).toString().slice(2)],
    ['encodeURIComponent with + for spaces', encodeURIComponent(SECRET).replace(/%20/g, '+')],
    [
      'lower-case percent escapes',
      encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    ],
    ['JSON-escaped', JSON.stringify(SECRET).slice(1, -1)],
    ['base64', b64(SECRET)],
    ['base64 without padding', b64(SECRET).replace(/=+$/, '')],
    ['base64url', b64url(SECRET)],
  ])('%s', (_name, form) => {
    expect(form).not.toBe(SECRET);
    const text = `upstream said: "${form}" (400)`;
    expect(redact(text)).toBe('upstream said: "***" (400)');
  });

  it.each(['u', 'us', 'usr', 'user:'])(
    'base64 of the secret inside a wrapper ("%s" + secret + suffix), at every alignment',
    (prefix) => {
      for (const wrapped of [`${prefix}${SECRET}`, `${prefix}${SECRET}:x`]) {
        for (const enc of [b64(wrapped), b64url(wrapped)]) {
          const shown = redact(`Authorization: Basic ${enc}`);
          expect(shown).toContain('***');
          // What is left is at most the characters that also carry the wrapper's bits: the
          // prefix's own, and up to 6 for the suffix and padding.
          const left = shown.replace('Authorization: Basic ', '').replace('***', '');
          expect(left.length).toBeLessThanOrEqual(Math.ceil((prefix.length * 8) / 6) + 6);
          expect(Buffer.from(left, 'base64').toString('utf8')).not.toContain(SECRET.slice(0, 4));
        }
      }
    },
  );

  it('ordinary text, and the hex of records, is left alone', () => {
    const text = `_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${'ab01'.repeat(16)}`;
    expect(redact(text)).toBe(text);
  });
});
