/** The TXT kit (providers/txt.ts): values to and from presentation text, as RFC 1035 §5.1
 *  writes it (decimal escapes) and as Route 53 does (octal), and the owner named in errors. */
import { describe, expect, it } from 'vitest';
import { ProviderError } from '../../providers/contract.js';
import { namingOwner, parseTxt, quoteTxt, txtArgs, txtKeyOf } from '../../providers/txt.js';

describe('TXT presentation text', () => {
  it('quotes every value, escapes " and \\, writes other bytes as three digits, splits at 255 bytes', () => {
    expect(quoteTxt('abc')).toBe('"abc"');
    expect(quoteTxt('')).toBe('""');
    expect(quoteTxt('a "b" \\ c;(d)')).toBe('"a \\"b\\" \\\\ c;(d)"');
    expect(quoteTxt('café\n')).toBe('"caf\\195\\169\\010"');
    expect(quoteTxt('café', 'octal')).toBe('"caf\\303\\251"');
    const long = 'x'.repeat(600);
    expect(quoteTxt(long)).toBe(`"${'x'.repeat(255)}" "${'x'.repeat(255)}" "${'x'.repeat(90)}"`);
  });

  it('reads quoted and bare strings, joined, with their escapes; refuses what does not parse', () => {
    for (const v of ['abc', '', 'a "b" \\ c;(d)', 'café\n', 'x'.repeat(600)]) {
      expect(parseTxt(quoteTxt(v))).toBe(v);
      expect(parseTxt(quoteTxt(v, 'octal'), { escapes: 'octal' })).toBe(v);
    }
    expect(parseTxt('"v=spf1 " "-all"')).toBe('v=spf1 -all');
    expect(parseTxt('bare words')).toBe('barewords');
    expect(parseTxt('"semi\\059colon" \\"q')).toBe('semi;colon"q');
    // A zone file read as latin1: each character is a byte.
    expect(parseTxt('"caf\u00c3\u00a9"', { latin1: true })).toBe('café');
    expect(parseTxt('"open')).toBeUndefined();
    expect(parseTxt('"\\300"')).toBeUndefined();
    expect(parseTxt('   ')).toBeUndefined();
  });

  it('a record is known by its value, whatever its spelling; text that does not parse is never matched', () => {
    const key = txtKeyOf();
    expect(key('"v=spf1 " "-all"')).toBe(key('"v=spf1 -all"'));
    expect(key('"a\\066c"')).toBe(quoteTxt('aBc'));
    expect(key('"ABC"')).not.toBe(key('"abc"'));
    expect(key('"open')).toBe('raw:"open');
  });
});

describe('TXT arguments and errors', () => {
  it('normalises the owner, dedupes the values, refuses what is not a list of strings or a TTL', () => {
    expect(txtArgs('p', '_ACME-challenge.Example.org', ['a', 'a', 'b'], 60)).toEqual({
      owner: '_acme-challenge.example.org.',
      values: ['a', 'b'],
    });
    expect(() => txtArgs('p', 'x..y', [])).toThrow(ProviderError);
    expect(() => txtArgs('p', 'x.example', 'a' as unknown as string[])).toThrow(/list of strings/);
    expect(() => txtArgs('p', 'x.example', ['a'], -1)).toThrow(/not a DNS TTL/);
  });

  it('an error that does not name the owner is said again with it; bad input passes as it is', async () => {
    const o = '_acme-challenge.example.org.';
    const err = await namingOwner('p(x)', o, 'adding', async () => {
      throw new ProviderError('p(x)', 'token rejected (HTTP 401)');
    }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err.message).toBe(`p(x): adding TXT at ${o}: token rejected (HTTP 401)`);
    const named = new ProviderError('p(x)', `${o} has a CNAME`);
    await expect(namingOwner('p(x)', o, 'adding', () => Promise.reject(named))).rejects.toBe(named);
    const input = Object.assign(new Error('zone.db:3: bad'), { exitCode: 2 });
    await expect(namingOwner('p(x)', o, 'adding', () => Promise.reject(input))).rejects.toBe(input);
  });
});
