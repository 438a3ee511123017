/** TXT values as rfc2136 writes them on the wire and powerdns in presentation text: one value
 *  is one record, split into character-strings of at most 255 bytes, read back joined. */
import { describe, expect, it } from 'vitest';
import { unquoteTxt } from '../../providers/powerdns-txt.js';
import { quoteTxt } from '../../providers/txt.js';
import { parseTxtRdata, txtRdata } from '../../src/dns/update.js';

describe('TXT RDATA (rfc2136)', () => {
  it('one string for a DNS-01 digest, several of at most 255 bytes for a long value', () => {
    const digest = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
    expect(txtRdata(digest)).toEqual(Buffer.concat([Buffer.from([43]), Buffer.from(digest)]));
    const long = 'x'.repeat(300);
    const rdata = txtRdata(long);
    expect(rdata[0]).toBe(255);
    expect(rdata[256]).toBe(45);
    expect(parseTxtRdata(rdata)).toBe(long);
    expect(parseTxtRdata(txtRdata(''))).toBe('');
  });
});

describe('TXT content (powerdns)', () => {
  it('quotes and escapes, and reads several strings and escapes back', () => {
    expect(quoteTxt('abc')).toBe('"abc"');
    expect(quoteTxt('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(unquoteTxt(quoteTxt('a"b\\c'))).toBe('a"b\\c');
    expect(unquoteTxt('"v=spf1 " "-all"')).toBe('v=spf1 -all');
    expect(unquoteTxt('"caf\\195\\169"')).toBe('caf\u00e9');
    expect(unquoteTxt(quoteTxt('\u{1F511} key'))).toBe('\u{1F511} key');
  });
});
