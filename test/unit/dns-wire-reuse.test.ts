/**
 * What the DNS code works out once and reuses, checked against computations made from scratch:
 *  - a TSIG key's wire names and HMAC key, kept per key object: MACs over several messages equal
 *    an HMAC computed here by hand (RFC 8945 §4.3.3 variables written out byte by byte), and a
 *    key changed in place is worked out again;
 *  - the message writer's one growing buffer: wherever it grows (inside a name, at a compression
 *    pointer, at a name's final zero byte, inside RDATA), dns-packet reads back every name and
 *    RDATA as written.
 */
import { createHmac } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { signMessage, type TsigKey, verifyMessage } from '../../src/dns/tsig.js';
import { buildQuery } from '../../src/dns/update.js';
import { CLASS, MessageWriter, OPCODE, TYPE } from '../../src/dns/wire.js';

/** The TSIG variables written out by hand: key name (canonical), class ANY, TTL 0, algorithm,
 *  time signed (48 bits), fudge 300, error 0, other len 0. */
function handMac(
  secret: Buffer,
  hash: string,
  keyWire: string,
  algWire: string,
  msg: Buffer,
  t: number,
): Buffer {
  const time = Buffer.alloc(6);
  time.writeUInt16BE(Math.floor(t / 2 ** 32), 0);
  time.writeUInt32BE(t % 2 ** 32, 2);
  return createHmac(hash, secret)
    .update(msg)
    .update(Buffer.from(keyWire, 'hex'))
    .update(Buffer.from('00ff00000000', 'hex'))
    .update(Buffer.from(algWire, 'hex'))
    .update(time)
    .update(Buffer.from('012c00000000', 'hex'))
    .digest();
}

const HMAC_SHA256 = `0b${Buffer.from('hmac-sha256').toString('hex')}00`;
const HMAC_SHA512 = `0b${Buffer.from('hmac-sha512').toString('hex')}00`;

describe('a TSIG key worked out once', () => {
  it('signs message after message with the MAC computed from scratch, and checks them', () => {
    const key: TsigKey = {
      name: 'TLSA-Key.Example', // canonical form: lower case, with the root label
      algorithm: 'hmac-sha256',
      secret: Buffer.from('a secret of some thirty-two bytes'),
    };
    const keyWire = `08${Buffer.from('tlsa-key').toString('hex')}07${Buffer.from('example').toString('hex')}00`;
    for (let i = 0; i < 5; i++) {
      const msg = buildQuery(0x1000 + i, `_25._tcp.mx${i}.example.test.`, TYPE.TLSA, 1232, true);
      const t = 1_700_000_000 + i;
      const signed = signMessage(msg, key, { now: t });
      expect(signed.mac).toEqual(handMac(key.secret, 'sha256', keyWire, HMAC_SHA256, msg, t));
      expect(verifyMessage(signed.message, key, { now: t })).toMatchObject({ ok: true });
    }
  });

  it('a key object changed in place (name, algorithm, secret) is worked out again', () => {
    const key: TsigKey = { name: 'one.', algorithm: 'hmac-sha256', secret: Buffer.from('first') };
    const msg = buildQuery(7, 'example.test.', TYPE.SOA);
    const t = 1_700_000_000;
    const first = signMessage(msg, key, { now: t });
    const oneWire = `03${Buffer.from('one').toString('hex')}00`;
    const twoWire = `03${Buffer.from('two').toString('hex')}00`;
    expect(first.mac).toEqual(handMac(key.secret, 'sha256', oneWire, HMAC_SHA256, msg, t));

    key.name = 'two.';
    expect(signMessage(msg, key, { now: t }).mac).toEqual(
      handMac(key.secret, 'sha256', twoWire, HMAC_SHA256, msg, t),
    );
    expect(verifyMessage(first.message, key, { now: t })).toMatchObject({
      ok: false,
      reason: 'key-mismatch',
    });

    key.algorithm = 'hmac-sha512';
    expect(signMessage(msg, key, { now: t }).mac).toEqual(
      handMac(key.secret, 'sha512', twoWire, HMAC_SHA512, msg, t),
    );

    key.secret = Buffer.from('second');
    const again = signMessage(msg, key, { now: t });
    expect(again.mac).toEqual(handMac(key.secret, 'sha512', twoWire, HMAC_SHA512, msg, t));
    expect(verifyMessage(again.message, key, { now: t })).toMatchObject({ ok: true });
    expect(
      verifyMessage(again.message, { ...key, secret: Buffer.from('first') }, { now: t }),
    ).toMatchObject({ ok: false, reason: 'bad-mac' });
  });
});

describe('the message writer grows its buffer anywhere', () => {
  it('reads back with dns-packet whatever byte the buffer grows at', () => {
    const type = 65_280; // private use: dns-packet hands back the raw RDATA
    for (let pad = 0; pad < 120; pad++) {
      const w = new MessageWriter(pad, 0x8000 | (OPCODE.QUERY << 11));
      w.question('Example.TEST.', TYPE.SOA, CLASS.IN);
      const written: { name: string; data: Buffer }[] = [];
      const add = (name: string, data: Buffer): void => {
        w.rr(1, { name, type, class: CLASS.IN, ttl: 300, rdata: data });
        written.push({ name, data });
      };
      add('example.test.', Buffer.alloc(pad, 1));
      for (let i = 0; i < 40; i++) {
        // a new label, then a suffix seen before in another case: a pointer
        add(`l${i}-${'x'.repeat(i % 7)}.EXAMPLE.test.`, Buffer.alloc(i % 5, i));
        add(`l${i}-${'x'.repeat(i % 7)}.example.test`, Buffer.alloc(0));
        add(`new-${i}.other-${pad}.`, Buffer.alloc(3, 9));
      }
      const back = dnsPacket.decode(w.finish());
      expect(back.questions?.[0]?.name.toLowerCase()).toBe('example.test');
      expect(
        back.answers?.map((a) => ({
          name: a.name.toLowerCase(),
          data: Buffer.from((a as { data: Buffer }).data),
        })),
      ).toEqual(
        written.map((r) => ({ name: r.name.replace(/\.$/, '').toLowerCase(), data: r.data })),
      );
    }
  });

  it('compresses a suffix seen before in another case to a pointer', () => {
    const lower = new MessageWriter(1, 0);
    lower.question('mx.example.test.', TYPE.TLSA, CLASS.IN);
    lower.question('mx.example.test.', TYPE.TLSA, CLASS.IN);
    const mixed = new MessageWriter(1, 0);
    mixed.question('mx.example.test.', TYPE.TLSA, CLASS.IN);
    mixed.question('MX.Example.TEST', TYPE.TLSA, CLASS.IN);
    expect(mixed.finish().toString('hex')).toBe(lower.finish().toString('hex'));
  });
});
