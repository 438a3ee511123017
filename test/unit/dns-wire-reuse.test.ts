/**
 * What the DNS code works out once and reuses, checked against computations made from scratch:
 *  - a TSIG key's wire names and HMAC key, kept per key object: MACs over several messages equal
 *    an HMAC computed here by hand (RFC 8945 §4.3.3 variables written out byte by byte), and a
 *    key changed in place is worked out again;
 *  - the message writer's one growing buffer: wherever it grows (inside a name, at a compression
 *    pointer, at a name's final zero byte, inside RDATA), dns-packet reads back every name and
 *    RDATA as written;
 *  - a query written straight into one buffer: the message writer's bytes (and errors) for the
 *    same question; names of an answer read once: what readName reads at the same offset.
 */
import { createHmac } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { signMessage, type TsigKey, verifyMessage } from '../../src/dns/tsig.js';
import { buildQuery } from '../../src/dns/update.js';
import { nameAt, type Reply, recordsOf } from '../../src/dns/transport.js';
import { CLASS, MessageWriter, OPCODE, readHeader, readName, TYPE } from '../../src/dns/wire.js';

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

/** The query as MessageWriter writes it: buildQuery writes the same bytes straight into one
 *  buffer, and must go on doing so. */
function writerQuery(
  id: number,
  name: string,
  type: number,
  udpSize?: number,
  dnssecOk = false,
): Buffer {
  const w = new MessageWriter(id, OPCODE.QUERY << 11);
  w.question(name, type, CLASS.IN);
  if (udpSize)
    w.rr(3, {
      name: '.',
      type: TYPE.OPT,
      class: udpSize,
      ttl: dnssecOk ? 0x8000 : 0,
      rdata: Buffer.alloc(0),
    });
  return w.finish();
}

const outcome = (f: () => Buffer): string => {
  try {
    return f().toString('hex');
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
};

describe('a query written straight into its buffer', () => {
  it('is byte for byte what the message writer makes, errors included', () => {
    const names = [
      '',
      '.',
      'example.test',
      'example.test.',
      '_25._tcp.MX1.Example.TEST.',
      `${'a'.repeat(63)}.test.`,
      `${'a'.repeat(64)}.test.`,
      'a..test.',
      '.test.',
      'test..',
      '..',
      'bücher.test.', // one byte per character, as Buffer's 'ascii' encoding writes them
      'x\u{1F600}y.test.',
      'a b.test.',
      Array.from({ length: 60 }, (_, i) => `l${i}`).join('.'),
    ];
    const cases: [number, string, number, number | undefined, boolean][] = [];
    for (const [i, name] of names.entries())
      for (const [udpSize, dnssecOk] of [
        [undefined, false],
        [1232, false],
        [1232, true],
        [4096, true],
      ] as const)
        cases.push([(i * 7919) & 0xffff, name, i % 2 ? TYPE.TLSA : TYPE.SOA, udpSize, dnssecOk]);
    for (let i = 0; i < 300; i++) {
      const labels = Array.from(
        { length: 1 + (i % 6) },
        (_, j) => `${String.fromCharCode(65 + ((i + j) % 58))}${'q'.repeat((i * j) % 9)}`,
      );
      cases.push([i * 211, `${labels.join('.')}${i % 3 ? '.' : ''}`, TYPE.TXT, 1232, i % 2 === 0]);
    }
    for (const c of cases)
      expect(
        outcome(() => buildQuery(...c)),
        c[1],
      ).toBe(outcome(() => writerQuery(...c)));
  });
});

describe('names read once per answer', () => {
  it('nameAt reads what readName reads at every record and question, pointers or not', () => {
    const w = new MessageWriter(9, 0x8400);
    w.question('_25._tcp.mx.Example.test.', TYPE.TLSA, CLASS.IN);
    const rdata = Buffer.from('030101ab', 'hex');
    w.rr(1, { name: '_25._tcp.mx.example.test.', type: TYPE.TLSA, class: 1, ttl: 1, rdata });
    w.rr(1, { name: '_25._tcp.MX.example.test.', type: TYPE.TLSA, class: 1, ttl: 1, rdata });
    w.rr(2, { name: 'example.test.', type: TYPE.SOA, class: 1, ttl: 1, rdata });
    w.rr(2, { name: 'other.example.test.', type: TYPE.NS, class: 1, ttl: 1, rdata });
    w.rr(3, { name: 'new.name.', type: TYPE.A, class: 1, ttl: 1, rdata });
    const message = w.finish();
    const reply: Reply = { message, header: readHeader(message), transport: 'udp' };
    const offsets = [12, ...recordsOf(reply).map((s) => s.start)];
    // twice: the second round comes from what the first one read
    for (let round = 0; round < 2; round++)
      for (const at of offsets) expect(nameAt(reply, at)).toBe(readName(message, at));
    expect(new Set(reply.names!.values())).toEqual(
      new Set(['_25._tcp.mx.example.test.', 'example.test.', 'other.example.test.', 'new.name.']),
    );
  });

  it('a name that does not read throws as readName throws, however often it is asked', () => {
    // a pointer to a pointer to ... itself; and a name running past the end
    const loop = Buffer.from('000100000001000000000000c00c00340001', 'hex');
    const cut = Buffer.from('0001000000010000000000000561626364', 'hex');
    for (const message of [loop, cut]) {
      const reply: Reply = { message, header: readHeader(message), transport: 'udp' };
      const expected = outcome(() => Buffer.from(readName(message, 12)));
      for (let i = 0; i < 2; i++)
        expect(outcome(() => Buffer.from(nameAt(reply, 12)))).toBe(expected);
    }
  });
});
