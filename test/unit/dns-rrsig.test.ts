/** The pieces the rfc2136 provider reads a signed answer with: the DO bit on its TLSA query, and
 *  an RRSIG's covered type and Signer's Name (RFC 4034 §3.1), which names the zone. */
import { describe, expect, it } from 'vitest';
import { buildQuery } from '../../src/dns/update.js';
import {
  CLASS,
  encodeName,
  MessageWriter,
  OPCODE,
  readRrsig,
  TYPE,
  walkRecords,
} from '../../src/dns/wire.js';

/** RRSIG RDATA: type covered, algorithm 13, labels, original TTL, expiration, inception, key
 *  tag, the signer (uncompressed, as §3.1.7 requires), then a signature. */
function rrsigRdata(covered: number, signer: string, signature = Buffer.alloc(64, 7)): Buffer {
  const fixed = Buffer.alloc(18);
  fixed.writeUInt16BE(covered, 0);
  fixed[2] = 13;
  fixed[3] = 4;
  fixed.writeUInt32BE(300, 4);
  fixed.writeUInt32BE(2_000_000_000, 8);
  fixed.writeUInt32BE(1_700_000_000, 12);
  fixed.writeUInt16BE(12345, 16);
  return Buffer.concat([fixed, encodeName(signer), signature]);
}

function answerWith(rdata: Buffer): Buffer {
  const w = new MessageWriter(1, 0x8000 | (OPCODE.QUERY << 11) | 0x0400);
  const owner = '_25._tcp.mx.child.example.test.';
  w.question(owner, TYPE.TLSA, CLASS.IN);
  w.rr(1, {
    name: owner,
    type: TYPE.TLSA,
    class: CLASS.IN,
    ttl: 300,
    rdata: Buffer.from([3, 1, 1, 0xab]),
  });
  w.rr(1, { name: owner, type: TYPE.RRSIG, class: CLASS.IN, ttl: 300, rdata });
  return w.finish();
}

describe('RRSIG and the DO bit', () => {
  it('reads the type covered and the Signer’s Name (lower case, absolute)', () => {
    const msg = answerWith(rrsigRdata(TYPE.TLSA, 'Child.Example.Test.'));
    const sig = walkRecords(msg).find((s) => s.type === TYPE.RRSIG)!;
    expect(readRrsig(msg, sig)).toEqual({ typeCovered: TYPE.TLSA, signer: 'child.example.test.' });
  });

  it('refuses RDATA too short to hold the signer, or a signer running past its RDATA', () => {
    const short = answerWith(rrsigRdata(TYPE.TLSA, 'example.test.').subarray(0, 18));
    expect(() => readRrsig(short, walkRecords(short).find((s) => s.type === TYPE.RRSIG)!)).toThrow(
      RangeError,
    );
    const cut = answerWith(rrsigRdata(TYPE.TLSA, 'example.test.', Buffer.alloc(0)).subarray(0, 24));
    expect(() => readRrsig(cut, walkRecords(cut).find((s) => s.type === TYPE.RRSIG)!)).toThrow(
      RangeError,
    );
  });

  it('a query sets DO in its OPT record only when asked, and has no OPT without a UDP size', () => {
    const opt = (m: Buffer) => {
      const s = walkRecords(m).find((r) => r.type === TYPE.OPT)!;
      return { udpSize: s.class, ttl: m.readUInt32BE(s.typeAt + 4) };
    };
    expect(opt(buildQuery(1, 'example.test.', TYPE.TLSA, 1232, true))).toEqual({
      udpSize: 1232,
      ttl: 0x8000,
    });
    expect(opt(buildQuery(1, 'example.test.', TYPE.TLSA, 1232))).toEqual({ udpSize: 1232, ttl: 0 });
    expect(walkRecords(buildQuery(1, 'example.test.', TYPE.SOA))).toEqual([]);
  });
});
