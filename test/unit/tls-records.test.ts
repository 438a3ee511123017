/**
 * The server's handshake read from bytes alone: records and handshake messages are built here
 * byte by byte (TLS 1.2 plaintext, TLS 1.3 encrypted with a known handshake traffic secret),
 * so every parsing path runs without a socket.
 */
import { createCipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { alertByNumber } from '../../src/verify/tls-alerts.js';
import {
  chainFromServerBytes,
  handshakeMessages,
  hkdfExpandLabel,
  parseCertificateMessage,
  REC_ALERT,
  serverHandshakeSecret,
  splitRecords,
} from '../../src/verify/tls-records.js';

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const vec8 = (b: Buffer): Buffer => Buffer.concat([Buffer.from([b.length]), b]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const vec24 = (b: Buffer): Buffer => Buffer.concat([u24(b.length), b]);

/** A TLS record: type, legacy version 3,3, length, fragment. */
const record = (type: number, fragment: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type, 3, 3]), vec16(fragment)]);
/** A handshake message: type and 3-byte length. */
const hsMessage = (type: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type]), vec24(body)]);

function serverHello(suite: number): Buffer {
  return hsMessage(
    2,
    Buffer.concat([
      u16(0x0303),
      Buffer.alloc(32, 7), // random
      vec8(Buffer.alloc(32, 9)), // legacy session id
      u16(suite),
      Buffer.from([0]), // compression
      vec16(Buffer.alloc(0)), // extensions
    ]),
  );
}

/** Stand-ins for DER: the parser copies certificate bytes out and never decodes them. */
const leaf = Buffer.from('30820001aa', 'hex');
const intermediate = Buffer.from('30820002bbcc', 'hex');

const certificate12 = (certs: Buffer[]): Buffer =>
  hsMessage(11, vec24(Buffer.concat(certs.map(vec24))));
const certificate13 = (certs: Buffer[]): Buffer =>
  hsMessage(
    11,
    Buffer.concat([
      vec8(Buffer.alloc(0)), // certificate_request_context
      vec24(Buffer.concat(certs.map((c) => Buffer.concat([vec24(c), vec16(Buffer.alloc(0))])))),
    ]),
  );
const serverHelloDone = hsMessage(14, Buffer.alloc(0));

describe('TLS 1.2: the Certificate message in plaintext', () => {
  it('ServerHello + Certificate + ServerHelloDone in one record → the chain as sent', () => {
    const bytes = record(
      22,
      Buffer.concat([serverHello(0xc02b), certificate12([leaf, intermediate]), serverHelloDone]),
    );
    expect(chainFromServerBytes(bytes, 'TLSv1.2')).toEqual([leaf, intermediate]);
  });

  it('a Certificate message split over two records is joined (messages ignore record boundaries)', () => {
    const flight = Buffer.concat([serverHello(0xc02f), certificate12([leaf, intermediate])]);
    const cut = flight.length - 4;
    const bytes = Buffer.concat([
      record(22, flight.subarray(0, cut)),
      record(22, flight.subarray(cut)),
      record(22, serverHelloDone),
    ]);
    expect(splitRecords(bytes).map((r) => r.type)).toEqual([22, 22, 22]);
    expect(chainFromServerBytes(bytes, 'TLSv1.2')).toEqual([leaf, intermediate]);
  });

  it('records after ChangeCipherSpec are not read', () => {
    const bytes = Buffer.concat([
      record(22, serverHello(0xc02f)),
      record(20, Buffer.from([1])),
      record(22, certificate12([leaf])),
    ]);
    expect(chainFromServerBytes(bytes, 'TLSv1.2')).toBeUndefined();
  });

  it('an alert before the Certificate message → no chain; the record carries level and description', () => {
    const alert = record(REC_ALERT, Buffer.from([2, 40]));
    const bytes = Buffer.concat([record(22, serverHello(0xc02f)), alert]);
    const records = splitRecords(bytes);
    expect(records.map((r) => r.type)).toEqual([22, REC_ALERT]);
    expect([...records[1]!.fragment]).toEqual([2, 40]);
    expect(alertByNumber(records[1]!.fragment[1]!).name).toBe('handshake_failure');
    expect(chainFromServerBytes(bytes, 'TLSv1.2')).toBeUndefined();
  });

  it('a truncated record is left out, so a Certificate message cut short gives no chain', () => {
    const whole = Buffer.concat([
      record(22, serverHello(0xc02f)),
      record(22, certificate12([leaf, intermediate])),
    ]);
    const truncated = whole.subarray(0, whole.length - 3);
    const records = splitRecords(truncated);
    expect(records).toHaveLength(1);
    expect(records[0]!.header).toEqual(whole.subarray(0, 5));
    expect(chainFromServerBytes(truncated, 'TLSv1.2')).toBeUndefined();
  });

  it('handshakeMessages stops at a message longer than the bytes at hand', () => {
    const stream = Buffer.concat([serverHelloDone, hsMessage(11, Buffer.alloc(10)).subarray(0, 8)]);
    expect([...handshakeMessages(stream)].map((m) => m.type)).toEqual([14]);
  });

  it('parseCertificateMessage refuses trailing bytes and a short list', () => {
    const body = certificate12([leaf]).subarray(4);
    expect(parseCertificateMessage(body, false)).toEqual([leaf]);
    expect(() => parseCertificateMessage(Buffer.concat([body, Buffer.from([0])]), false)).toThrow(
      /trailing bytes/,
    );
    expect(() => parseCertificateMessage(body.subarray(0, body.length - 1), false)).toThrow(
      /truncated/,
    );
  });
});

describe('bytes that are not a TLS flight', () => {
  it('chainFromServerBytes: garbage and truncation give undefined, not a throw', () => {
    expect(chainFromServerBytes(Buffer.from('not tls at all'), 'TLSv1.2')).toBeUndefined();
    expect(
      chainFromServerBytes(
        Buffer.from([0x16, 0x03, 0x03, 0x00, 0x08, 0x0b, 0, 0, 9, 0, 0, 5, 0]),
        'TLSv1.2',
      ),
    ).toBeUndefined();
    expect(chainFromServerBytes(Buffer.alloc(0), 'TLSv1.3', 'ab'.repeat(32))).toBeUndefined();
  });
});

describe('TLS 1.3: the Certificate message decrypted with the server handshake secret', () => {
  // RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret and the
  // handshake write key and iv derived from it.
  const secret = Buffer.from(
    'b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38',
    'hex',
  );

  it('hkdfExpandLabel gives the RFC 8448 key and iv', () => {
    expect(hkdfExpandLabel('sha256', secret, 'key', 16).toString('hex')).toBe(
      '3fce516009c21727d0f2e4e86ee403bc',
    );
    expect(hkdfExpandLabel('sha256', secret, 'iv', 12).toString('hex')).toBe(
      '5d313eb2671276ee13000b30',
    );
  });

  /** One TLS 1.3 record of `inner` (handshake content), AES-128-GCM, sequence number `seq`. */
  function encrypted(inner: Buffer, seq: number): Buffer {
    const key = Buffer.from('3fce516009c21727d0f2e4e86ee403bc', 'hex');
    const nonce = Buffer.from('5d313eb2671276ee13000b30', 'hex');
    nonce[11]! ^= seq;
    const plaintext = Buffer.concat([inner, Buffer.from([22]), Buffer.alloc(3)]); // type + padding
    const header = Buffer.concat([Buffer.from([23, 3, 3]), u16(plaintext.length + 16)]);
    const c = createCipheriv('aes-128-gcm', key, nonce);
    c.setAAD(header);
    const body = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
    return Buffer.concat([header, body]);
  }

  const encryptedExtensions = hsMessage(8, vec16(Buffer.alloc(0)));

  function flight(): Buffer {
    const hs = Buffer.concat([encryptedExtensions, certificate13([leaf, intermediate])]);
    const cut = encryptedExtensions.length + 5;
    return Buffer.concat([
      record(22, serverHello(0x1301)),
      record(20, Buffer.from([1])), // middlebox-compatibility ChangeCipherSpec
      encrypted(hs.subarray(0, cut), 0),
      encrypted(hs.subarray(cut), 1),
    ]);
  }

  it('ServerHello (TLS_AES_128_GCM_SHA256) + encrypted Certificate over two records → the chain', () => {
    expect(chainFromServerBytes(flight(), 'TLSv1.3', secret.toString('hex'))).toEqual([
      leaf,
      intermediate,
    ]);
  });

  it('without the secret, with a wrong secret, or with a tampered record → no chain', () => {
    const bytes = flight();
    expect(chainFromServerBytes(bytes, 'TLSv1.3')).toBeUndefined();
    expect(chainFromServerBytes(bytes, 'TLSv1.3', 'ab'.repeat(32))).toBeUndefined();
    const tampered = Buffer.from(bytes);
    tampered[tampered.length - 20]! ^= 1;
    expect(chainFromServerBytes(tampered, 'TLSv1.3', secret.toString('hex'))).toBeUndefined();
  });

  it('serverHandshakeSecret picks the server handshake line out of the keylog', () => {
    const random = 'cd'.repeat(32);
    expect(
      serverHandshakeSecret([
        `CLIENT_HANDSHAKE_TRAFFIC_SECRET ${random} ${'11'.repeat(32)}\n`,
        `SERVER_HANDSHAKE_TRAFFIC_SECRET ${random} ${secret.toString('hex')}\n`,
      ]),
    ).toBe(secret.toString('hex'));
    expect(serverHandshakeSecret(['CLIENT_RANDOM x y'])).toBeUndefined();
  });
});
