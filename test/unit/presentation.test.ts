import { describe, expect, it } from 'vitest';
import { formatRecord, parseRdata, parseRecordLine } from '../../src/tlsa/presentation.js';
import { ownerName, normaliseName } from '../../src/tlsa/record.js';
import { checkRecordData, checkUsageAllowed, PolicyError } from '../../src/tlsa/policy.js';
import { createHash } from 'node:crypto';

const hex = createHash('sha256').update('some key').digest('hex');

describe('owner names', () => {
  it('builds _PORT._tcp.HOST. for any port', () => {
    expect(ownerName('MX.Example.org', 25)).toBe('_25._tcp.mx.example.org.');
    expect(ownerName('mail.example.net.', 993)).toBe('_993._tcp.mail.example.net.');
    expect(ownerName('h.example', 5060, 'udp')).toBe('_5060._udp.h.example.');
  });
  it('rejects bad ports and names', () => {
    expect(() => ownerName('mx.example.org', 0)).toThrow(/port 0/);
    expect(() => ownerName('mx.example.org', 70000)).toThrow(/port/);
    expect(() => normaliseName('bad..name')).toThrow(/not a valid DNS name/);
    expect(() => normaliseName('sp ace.example')).toThrow(/not a valid DNS name/);
  });
});

describe('presentation', () => {
  it('formats and parses back', () => {
    const r = {
      owner: '_25._tcp.mx.example.org.',
      usage: 3,
      selector: 1,
      matching: 1,
      data: hex,
    } as const;
    const line = formatRecord(r, 3600);
    expect(line).toBe(`_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${hex}`);
    expect(parseRecordLine(line)).toEqual({ owner: r.owner, ttl: 3600, record: r });
  });
  it('accepts RFC 7218 mnemonics, upper-case and split hex', () => {
    const rd = parseRdata(
      `DANE-EE SPKI SHA2-256 ${hex.slice(0, 20).toUpperCase()} ${hex.slice(20)}`,
    );
    expect(rd).toEqual({ usage: 3, selector: 1, matching: 1, data: hex });
    expect(parseRdata(`dane-ta cert sha2-512 ${hex}${hex}`)).toMatchObject({
      usage: 2,
      selector: 0,
      matching: 2,
    });
    expect(parseRdata(`PKIX-TA SPKI Full 3059`)).toMatchObject({
      usage: 0,
      selector: 1,
      matching: 0,
    });
  });
  it('parses relative names, class/TTL in either order, parentheses and the generic form', () => {
    expect(
      parseRecordLine(`_25._tcp.mx IN 300 TLSA 3 1 1 ${hex}`, 'example.org.')?.record.owner,
    ).toBe('_25._tcp.mx.example.org.');
    expect(
      parseRecordLine(`_25._tcp.mx.example.org. IN TLSA ( 3 1 1\n ${hex} )`)?.record.data,
    ).toBe(hex);
    const generic = parseRecordLine(`_25._tcp.mx.example.org. 60 IN TLSA \\# 35 030101${hex}`);
    expect(generic?.record).toMatchObject({ usage: 3, selector: 1, matching: 1, data: hex });
    expect(parseRecordLine('mx.example.org. 60 IN A 192.0.2.1')).toBeUndefined();
  });
  it('rejects malformed RDATA with a reason', () => {
    expect(() => parseRdata('3 1 1')).toThrow(/needs usage, selector, matching type and data/);
    expect(() => parseRdata('4 1 1 ab')).toThrow(/usage 4 is not defined/);
    expect(() => parseRdata('3 2 1 ab')).toThrow(/selector 2 is not defined/);
    expect(() => parseRdata('3 1 1 xyz')).toThrow(/not hex/);
    expect(() => parseRdata('DANE-XX SPKI SHA2-256 ab')).toThrow(/not a TLSA usage/);
  });
});

describe('SMTP and data rules', () => {
  it('refuses usages 0 and 1 on port 25 and for protocol smtp, explaining RFC 7672', () => {
    for (const u of [0, 1]) {
      expect(() => checkUsageAllowed(u, 25)).toThrow(PolicyError);
      expect(() => checkUsageAllowed(u, 2525, 'smtp')).toThrow(/RFC 7672 §3\.1\.3.*web\.de.*GMX/s);
    }
    expect(() => checkUsageAllowed(1, 443, 'https')).not.toThrow();
    expect(() => checkUsageAllowed(3, 25)).not.toThrow();
  });
  it('rejects wrong lengths and the digest of empty input', () => {
    const owner = '_25._tcp.mx.example.org.';
    const empty256 = createHash('sha256').update('').digest('hex');
    const empty512 = createHash('sha512').update('').digest('hex');
    expect(() =>
      checkRecordData({ owner, usage: 3, selector: 1, matching: 1, data: empty256 }),
    ).toThrow(/digest of empty input/);
    expect(() =>
      checkRecordData({ owner, usage: 3, selector: 1, matching: 2, data: empty512 }),
    ).toThrow(/digest of empty input/);
    expect(() =>
      checkRecordData({ owner, usage: 3, selector: 1, matching: 1, data: hex.slice(2) }),
    ).toThrow(/32 bytes/);
    expect(() => checkRecordData({ owner, usage: 3, selector: 1, matching: 2, data: hex })).toThrow(
      /64 bytes/,
    );
    expect(() =>
      checkRecordData({ owner, usage: 3, selector: 1, matching: 1, data: hex }),
    ).not.toThrow();
  });
});
