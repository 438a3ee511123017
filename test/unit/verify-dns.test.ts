/**
 * The DNS client, the DNSSEC verdicts and the RRset comparison against a tiny in-test DNS
 * responder (UDP and TCP on 127.0.0.1, one port, built with dns-packet): TC -> TCP fallback,
 * timeouts and retries, replies with a wrong id or question ignored, refused ports, TLSA
 * conversion, EDE, and every status of validatedLookup from crafted responses.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet } from 'dns-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DnsFormatError,
  DnsNetworkError,
  DnsTimeoutError,
  canonicalName,
  followCnames,
  isSubdomain,
  parentName,
  query,
  tlsaFromAnswers,
  type DnsServer,
} from '../../src/verify/dns.js';
import {
  UNVALIDATED_MESSAGE,
  resolveHostForDane,
  validatedLookup,
} from '../../src/verify/dnssec.js';
import {
  compareRrsets,
  findZone,
  findZoneApex,
  queryAuthoritative,
  waitForRecords,
  type AuthoritativeAnswer,
} from '../../src/verify/authoritative.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

// ---------------------------------------------------------------------------------------------
// The responder

type Transport = 'udp' | 'tcp';
/** A reply: a packet (encoded by the responder), raw bytes, or several of them in order. */
type Reply = Packet | Buffer;
type Handler = (
  q: DecodedPacket,
  transport: Transport,
) => Reply | Reply[] | undefined | Promise<Reply | Reply[] | undefined>;

interface Responder {
  port: number;
  server: DnsServer;
  seen: { transport: Transport; q: DecodedPacket }[];
  handler: Handler;
  close(): Promise<void>;
}

const encodeReply = (r: Reply): Buffer => (Buffer.isBuffer(r) ? r : dnsPacket.encode(r));

async function startResponder(host = '127.0.0.1'): Promise<Responder> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(0, host, () => resolve(udp.address().port));
    });
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, host, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      continue;
    }
    return wire(udp, tcp, port, host);
  }
  throw new Error('no free port for the responder');
}

function wire(udp: Socket, tcp: Server, port: number, host: string): Responder {
  const conns = new Set<TcpSocket>();
  const r: Responder = {
    port,
    server: { host, port },
    seen: [],
    handler: () => undefined,
    close: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([
        new Promise<void>((res) => udp.close(() => res())),
        new Promise<void>((res) => tcp.close(() => res())),
      ]);
    },
  };
  const handle = async (buf: Buffer, transport: Transport): Promise<Buffer[]> => {
    const q = dnsPacket.decode(buf);
    r.seen.push({ transport, q });
    const out = await r.handler(q, transport);
    if (out === undefined) return [];
    return (Array.isArray(out) ? out : [out]).map(encodeReply);
  };
  udp.on('message', (msg, rinfo) => {
    void handle(msg, 'udp').then((bufs) => {
      for (const b of bufs) udp.send(b, rinfo.port, rinfo.address);
    });
  });
  tcp.on('connection', (c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => undefined);
    let pending = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const msg = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + msg.length);
        void handle(msg, 'tcp').then((bufs) => {
          for (const b of bufs) {
            const len = Buffer.alloc(2);
            len.writeUInt16BE(b.length);
            c.write(Buffer.concat([len, b]));
          }
        });
      }
    });
  });
  return r;
}

/** A response to `q` with these fields (flags given as names, rcode as a number). */
function reply(
  q: DecodedPacket,
  o: {
    flags?: ('aa' | 'tc' | 'ra' | 'ad' | 'cd')[];
    rcode?: number;
    id?: number;
    answers?: Answer[];
    authorities?: Answer[];
    additionals?: Answer[];
    question?: string;
  } = {},
): Packet {
  const bits = {
    aa: dnsPacket.AUTHORITATIVE_ANSWER,
    tc: dnsPacket.TRUNCATED_RESPONSE,
    ra: dnsPacket.RECURSION_AVAILABLE,
    ad: dnsPacket.AUTHENTIC_DATA,
    cd: dnsPacket.CHECKING_DISABLED,
  };
  let flags = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  for (const f of o.flags ?? []) flags |= bits[f];
  flags |= o.rcode ?? 0;
  const question = q.questions?.[0];
  return {
    type: 'response',
    id: o.id ?? q.id,
    flags,
    questions: question ? [{ ...question, name: o.question ?? question.name }] : [],
    answers: o.answers ?? [],
    authorities: o.authorities ?? [],
    additionals: o.additionals ?? [],
  };
}

const SERVFAIL = 2;
const NXDOMAIN = 3;
const REFUSED = 5;

const A = (name: string, ip: string, ttl = 300): Answer => ({ type: 'A', name, ttl, data: ip });
const AAAA = (name: string, ip: string): Answer => ({ type: 'AAAA', name, ttl: 300, data: ip });
const CNAME = (name: string, target: string): Answer => ({
  type: 'CNAME',
  name,
  ttl: 300,
  data: target,
});
const NS = (name: string, target: string): Answer => ({ type: 'NS', name, ttl: 300, data: target });
const SOA = (zone: string): Answer => ({
  type: 'SOA',
  name: zone,
  ttl: 60,
  data: {
    mname: `ns1.${zone}`,
    rname: `hostmaster.${zone}`,
    serial: 1,
    refresh: 3600,
    retry: 600,
    expire: 86400,
    minimum: 60,
  },
});
const DS = (name: string): Answer => ({
  type: 'DS',
  name,
  ttl: 300,
  data: { keyTag: 1, algorithm: 13, digestType: 2, digest: Buffer.alloc(32, 1) },
});
const NSEC = (name: string, next: string): Answer => ({
  type: 'NSEC',
  name,
  ttl: 60,
  data: { nextDomain: next, rrtypes: ['NS', 'RRSIG', 'NSEC'] },
});
const RRSIG = (name: string, covered: string, signer: string): Answer => ({
  type: 'RRSIG',
  name,
  ttl: 300,
  data: {
    typeCovered: covered,
    algorithm: 13,
    labels: name.split('.').filter(Boolean).length,
    originalTTL: 300,
    expiration: 2_000_000_000,
    inception: 1_700_000_000,
    keyTag: 12345,
    signersName: signer,
    signature: Buffer.alloc(64, 7),
  },
});
const TLSA = (
  name: string,
  usage: number,
  selector: number,
  matchingType: number,
  certificate: Buffer,
): Answer => ({
  type: 'TLSA',
  name,
  ttl: 300,
  data: { usage, selector, matchingType, certificate },
});
const EDE = (code: number, text: string): Answer => {
  const data = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(text)]);
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: 1232,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [{ code: 15 as 14, data, tags: [] }],
  } as Answer;
};

const qname = (q: DecodedPacket): string => canonicalName(q.questions?.[0]?.name ?? '.');
const qtype = (q: DecodedPacket): string => q.questions?.[0]?.type ?? '';
const opt = (q: DecodedPacket) =>
  q.additionals?.find((a) => a.type === 'OPT') as
    | { udpPayloadSize: number; flag_do: boolean }
    | undefined;

const hex32 = (byte: number): string => Buffer.alloc(32, byte).toString('hex');
const tlsa = (owner: string, byte: number, usage: 2 | 3 = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data: hex32(byte),
});

let dns: Responder;

beforeAll(async () => {
  dns = await startResponder();
});
afterEach(() => {
  dns.seen.length = 0;
  dns.handler = () => undefined;
});
afterAll(async () => {
  await dns.close();
});

// ---------------------------------------------------------------------------------------------

describe('names', () => {
  it('canonicalName, parentName, isSubdomain', () => {
    expect(canonicalName('MX.Example.ORG')).toBe('mx.example.org.');
    expect(canonicalName('mx.example.org.')).toBe('mx.example.org.');
    expect(canonicalName('.')).toBe('.');
    expect(parentName('mx.example.org.')).toBe('example.org.');
    expect(parentName('org.')).toBe('.');
    expect(parentName('.')).toBeUndefined();
    expect(isSubdomain('_25._tcp.mx.example.org', 'example.org.')).toBe(true);
    expect(isSubdomain('example.org.', 'example.org')).toBe(true);
    expect(isSubdomain('badexample.org.', 'example.org.')).toBe(false);
    expect(isSubdomain('anything.', '.')).toBe(true);
  });

  it('query rejects what cannot be asked', async () => {
    await expect(query({ host: 'localhost', port: 53 }, 'a.test', 'A')).rejects.toThrow(
      /not an IP address/,
    );
    await expect(query(dns.server, `${'a'.repeat(64)}.test`, 'A')).rejects.toThrow(/63 octets/);
    await expect(query(dns.server, 'a..test', 'A')).rejects.toThrow(/empty label/);
  });
});

describe('query: the wire', () => {
  it('UDP: flags, rcode and records decoded; RD and EDNS0 (1232, no DO) sent by default', async () => {
    dns.handler = (q) => reply(q, { flags: ['ra'], answers: [A('Mx.Example.Test', '192.0.2.1')] });
    const r = await query(dns.server, 'mx.example.test', 'A', { timeoutMs: 500 });
    expect(r.rcode).toBe('NOERROR');
    expect(r.flags).toEqual({ aa: false, tc: false, rd: true, ra: true, ad: false, cd: false });
    expect(r.transport).toBe('udp');
    expect(r.attempts).toBe(1);
    expect(r.name).toBe('mx.example.test.');
    expect(r.answers).toHaveLength(1);
    expect(r.answers[0]).toMatchObject({ type: 'A', data: '192.0.2.1' });
    const seen = dns.seen[0]!.q;
    expect(seen.flag_rd).toBe(true);
    expect(seen.flag_cd).toBe(false);
    expect(opt(seen)).toMatchObject({ udpPayloadSize: 1232, flag_do: false });
  });

  it('dnssec sets DO (and AD), checkingDisabled sets CD, recursionDesired:false clears RD', async () => {
    dns.handler = (q) => reply(q, { flags: ['aa', 'cd'], rcode: NXDOMAIN });
    const r = await query(dns.server, 'nx.example.test.', 'TLSA', {
      dnssec: true,
      checkingDisabled: true,
      recursionDesired: false,
      timeoutMs: 500,
    });
    expect(r.rcode).toBe('NXDOMAIN');
    expect(r.flags.aa).toBe(true);
    expect(r.flags.cd).toBe(true);
    const seen = dns.seen[0]!.q;
    expect(opt(seen)).toMatchObject({ udpPayloadSize: 1232, flag_do: true });
    expect(seen.flag_cd).toBe(true);
    expect(seen.flag_rd).toBe(false);
    expect(seen.flag_ad).toBe(true);
    expect(qtype(seen)).toBe('TLSA');
  });

  it('random ids: two questions do not (practically ever) share an id', async () => {
    dns.handler = (q) => reply(q, { answers: [A(qname(q), '192.0.2.1')] });
    const ids = new Set<number>();
    for (let i = 0; i < 8; i++)
      ids.add((await query(dns.server, 'mx.example.test', 'A', { timeoutMs: 500 })).id);
    expect(ids.size).toBeGreaterThan(6);
  });

  it('TC over UDP -> the same question over TCP', async () => {
    dns.handler = (q, transport) =>
      transport === 'udp'
        ? reply(q, { flags: ['tc', 'ra'] })
        : reply(q, {
            flags: ['ra'],
            answers: Array.from({ length: 40 }, (_, i) =>
              A('big.example.test', `192.0.2.${i + 1}`),
            ),
          });
    const r = await query(dns.server, 'big.example.test', 'A', { timeoutMs: 500 });
    expect(r.transport).toBe('tcp');
    expect(r.flags.tc).toBe(false);
    expect(r.answers).toHaveLength(40);
    expect(dns.seen.map((s) => s.transport)).toEqual(['udp', 'tcp']);
  });

  it('tcp: true asks over TCP only; a TCP response still truncated is a DnsFormatError', async () => {
    dns.handler = (q) => reply(q, { answers: [A('mx.example.test', '192.0.2.1')] });
    const r = await query(dns.server, 'mx.example.test', 'A', { tcp: true, timeoutMs: 500 });
    expect(r.transport).toBe('tcp');
    expect(dns.seen.map((s) => s.transport)).toEqual(['tcp']);
    dns.handler = (q) => reply(q, { flags: ['tc'] });
    await expect(
      query(dns.server, 'mx.example.test', 'A', { timeoutMs: 500 }),
    ).rejects.toBeInstanceOf(DnsFormatError);
  });

  it('TCP: several messages on the connection, only ours counts; garbage is a DnsFormatError', async () => {
    dns.handler = (q, transport) =>
      transport === 'tcp'
        ? [
            reply(q, { id: (q.id! + 1) & 0xffff, answers: [A('mx.example.test', '203.0.113.66')] }),
            reply(q, { answers: [A('mx.example.test', '192.0.2.1')] }),
          ]
        : undefined;
    const r = await query(dns.server, 'mx.example.test', 'A', { tcp: true, timeoutMs: 500 });
    expect(r.answers[0]).toMatchObject({ data: '192.0.2.1' });
    dns.handler = () => Buffer.from([0xff, 0xff, 0x81]);
    await expect(
      query(dns.server, 'mx.example.test', 'A', { tcp: true, timeoutMs: 500 }),
    ).rejects.toBeInstanceOf(DnsFormatError);
  });

  it('timeouts are retried with a fresh id; the answer to the third attempt counts', async () => {
    let n = 0;
    dns.handler = (q) =>
      ++n < 3 ? undefined : reply(q, { answers: [A('mx.example.test', '192.0.2.1')] });
    const r = await query(dns.server, 'mx.example.test', 'A', { timeoutMs: 150, retries: 2 });
    expect(r.attempts).toBe(3);
    expect(dns.seen).toHaveLength(3);
    expect(new Set(dns.seen.map((s) => s.q.id)).size).toBe(3);
  });

  it('no answer at all: DnsTimeoutError after 1 + retries attempts', async () => {
    const t0 = Date.now();
    const e = await query(dns.server, 'mx.example.test', 'A', { timeoutMs: 120, retries: 1 }).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(DnsTimeoutError);
    expect((e as DnsTimeoutError).attempts).toBe(2);
    expect((e as DnsTimeoutError).message).toMatch(
      /no response from 127\.0\.0\.1:\d+ over UDP \(2 attempts of 120 ms\)/,
    );
    expect((e as DnsTimeoutError).exitCode).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(230);
    expect(dns.seen).toHaveLength(2);
  });

  it('a reply with another id, another question or without QR is ignored (then the right one counts)', async () => {
    dns.handler = (q) => [
      reply(q, { id: (q.id! + 1) & 0xffff, answers: [A('mx.example.test', '203.0.113.1')] }),
      reply(q, {
        question: 'other.example.test',
        answers: [A('other.example.test', '203.0.113.2')],
      }),
      { ...reply(q, { answers: [A('mx.example.test', '203.0.113.3')] }), type: 'query' },
      reply(q, { answers: [A('mx.example.test', '192.0.2.1')] }),
    ];
    const r = await query(dns.server, 'mx.example.test', 'A', { timeoutMs: 500, retries: 0 });
    expect(r.answers.map((a) => a.type === 'A' && a.data)).toEqual(['192.0.2.1']);
  });

  it('only wrong ids: a timeout, not a wrong answer', async () => {
    dns.handler = (q) =>
      reply(q, { id: (q.id! + 1) & 0xffff, answers: [A('mx.example.test', '203.0.113.1')] });
    await expect(
      query(dns.server, 'mx.example.test', 'A', { timeoutMs: 100, retries: 1 }),
    ).rejects.toBeInstanceOf(DnsTimeoutError);
  });

  it('nothing listening: DnsNetworkError (refused) at once, over UDP and TCP, no retries', async () => {
    const gone = await startResponder();
    const server = gone.server;
    await gone.close();
    const t0 = Date.now();
    const udp = await query(server, 'mx.example.test', 'A', { timeoutMs: 2000, retries: 3 }).catch(
      (x: unknown) => x,
    );
    expect(udp).toBeInstanceOf(DnsNetworkError);
    expect((udp as DnsNetworkError).code).toBe('ECONNREFUSED');
    expect((udp as DnsNetworkError).transport).toBe('udp');
    const tcp = await query(server, 'mx.example.test', 'A', {
      tcp: true,
      timeoutMs: 2000,
      retries: 3,
    }).catch((x: unknown) => x);
    expect(tcp).toBeInstanceOf(DnsNetworkError);
    expect((tcp as DnsNetworkError).code).toBe('ECONNREFUSED');
    expect((tcp as Error).message).toMatch(/connection refused/);
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('an aborted signal rejects with its reason', async () => {
    const ac = new AbortController();
    const p = query(dns.server, 'mx.example.test', 'A', { timeoutMs: 5000, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop now')), 50);
    await expect(p).rejects.toThrow('stop now');
  });

  it('a deadline signal (AbortSignal.timeout) bounds all attempts and ends as DnsTimeoutError', async () => {
    const e = await query(dns.server, 'mx.example.test', 'A', {
      timeoutMs: 100,
      retries: 1000,
      signal: AbortSignal.timeout(450),
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(DnsTimeoutError);
    expect((e as DnsTimeoutError).deadline).toBe(true);
    expect((e as DnsTimeoutError).message).toMatch(
      /no response from 127\.0\.0\.1:\d+ over UDP in the time allowed \(\d+ attempts\)/,
    );
    expect(dns.seen.length).toBeLessThan(1000);
    // Already past the deadline: no query is sent at all.
    const before = dns.seen.length;
    const late = await query(dns.server, 'mx.example.test', 'A', {
      signal: AbortSignal.abort(new DOMException('late', 'TimeoutError')),
    }).catch((x: unknown) => x);
    expect(late).toBeInstanceOf(DnsTimeoutError);
    expect(dns.seen.length).toBe(before);
  });

  it('rcodes: SERVFAIL and REFUSED are responses; EDE options are decoded', async () => {
    dns.handler = (q) =>
      reply(q, {
        flags: ['ra'],
        rcode: SERVFAIL,
        additionals: [EDE(6, 'validation failure <x. A IN>: signature expired')],
      });
    const r = await query(dns.server, 'x.test', 'A', { dnssec: true, timeoutMs: 500 });
    expect(r.rcode).toBe('SERVFAIL');
    expect(r.ede).toEqual([{ code: 6, text: 'validation failure <x. A IN>: signature expired' }]);
    dns.handler = (q) => reply(q, { rcode: REFUSED });
    expect((await query(dns.server, 'x.test', 'A', { timeoutMs: 500 })).rcode).toBe('REFUSED');
  });
});

describe('TLSA conversion', () => {
  it('dns-packet {usage, selector, matchingType, certificate: Buffer} -> TlsaRecord (owner lower case absolute, data lower hex)', async () => {
    const cert = Buffer.from('0A1b2C3d'.repeat(8), 'hex');
    dns.handler = (q) =>
      reply(q, {
        flags: ['aa'],
        answers: [
          TLSA('_25._TCP.MX.Example.Test', 3, 1, 1, cert),
          TLSA('_25._tcp.mx.example.test', 2, 0, 2, Buffer.alloc(64, 0xab)),
          TLSA('_25._tcp.mx.example.test', 255, 1, 1, Buffer.alloc(32, 1)),
          RRSIG('_25._tcp.mx.example.test', 'TLSA', 'example.test'),
        ],
      });
    const r = await query(dns.server, '_25._tcp.mx.example.test', 'TLSA', {
      dnssec: true,
      recursionDesired: false,
      timeoutMs: 500,
    });
    expect(r.tlsa).toEqual([
      {
        owner: '_25._tcp.mx.example.test.',
        usage: 3,
        selector: 1,
        matching: 1,
        data: '0a1b2c3d'.repeat(8),
      },
      {
        owner: '_25._tcp.mx.example.test.',
        usage: 2,
        selector: 0,
        matching: 2,
        data: 'ab'.repeat(64),
      },
    ]);
    expect(r.tlsaUnsupported).toEqual([
      `_25._tcp.mx.example.test. TLSA 255 1 1 ${'01'.repeat(32)}`,
    ]);
    expect(tlsaFromAnswers(r.answers, 'other.example.test.').records).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// validatedLookup from crafted resolver responses

const Z = 'example.test';
const MX = `mx.${Z}`;
const OWNER = `_25._tcp.${MX}`;

describe('validatedLookup', () => {
  it('secure: AD set; TLSA records converted; TTL', async () => {
    dns.handler = (q) =>
      reply(q, {
        flags: ['ra', 'ad'],
        answers: [TLSA(OWNER, 3, 1, 1, Buffer.alloc(32, 1)), RRSIG(OWNER, 'TLSA', Z)],
      });
    const r = await validatedLookup(dns.server, OWNER, 'TLSA', { timeoutMs: 500 });
    expect(r.status).toBe('secure');
    expect(r.security).toBe('secure');
    expect(r.authenticated).toBe(true);
    expect(r.signed).toBe(true);
    expect(r.signer).toBe(`${Z}.`);
    expect(r.records).toEqual([tlsa(`${OWNER}.`, 1)]);
    expect(r.ttl).toBe(300);
    expect(opt(dns.seen[0]!.q)?.flag_do).toBe(true);
  });

  it('insecure: no AD and no RRSIG (unsigned zone); A records as strings', async () => {
    dns.handler = (q) => reply(q, { flags: ['ra'], answers: [A('mx.insecure.test', '192.0.2.7')] });
    const r = await validatedLookup(dns.server, 'mx.insecure.test', 'A', { timeoutMs: 500 });
    expect(r.status).toBe('insecure');
    expect(r.signed).toBe(false);
    expect(r.records).toEqual(['192.0.2.7']);
    expect(r.message).toMatch(/not signed/);
  });

  it('unvalidated: RRSIGs but no AD, and the zone has a DS: the resolver does not validate', async () => {
    dns.handler = (q) =>
      qtype(q) === 'DS'
        ? reply(q, { flags: ['ra'], answers: [DS(Z), RRSIG(Z, 'DS', 'test')] })
        : reply(q, { flags: ['ra'], answers: [A(MX, '192.0.2.1'), RRSIG(MX, 'A', Z)] });
    const r = await validatedLookup(dns.server, MX, 'A', { timeoutMs: 500 });
    expect(r.status).toBe('unvalidated');
    expect(r.message).toContain(UNVALIDATED_MESSAGE);
    expect(r.records).toEqual(['192.0.2.1']);
    expect(dns.seen.map((s) => `${qname(s.q)} ${qtype(s.q)}`)).toEqual([`${MX}. A`, `${Z}. DS`]);
  });

  it('insecure: a signed zone whose parent provably has no DS (island of security)', async () => {
    dns.handler = (q) =>
      qtype(q) === 'DS'
        ? reply(q, {
            flags: ['ra', 'ad'],
            authorities: [
              SOA('test'),
              RRSIG('test', 'SOA', 'test'),
              NSEC('island.test', 'ns.test'),
              RRSIG('island.test', 'NSEC', 'test'),
            ],
          })
        : reply(q, {
            flags: ['ra'],
            answers: [
              A('mx.island.test', '192.0.2.1'),
              RRSIG('mx.island.test', 'A', 'island.test'),
            ],
          });
    const r = await validatedLookup(dns.server, 'mx.island.test', 'A', { timeoutMs: 500 });
    expect(r.status).toBe('insecure');
    expect(r.signed).toBe(true);
    expect(r.message).toMatch(/island\.test\. is signed but its parent has no DS record/);
  });

  it('unvalidated: no DS and the denial is signed but not validated either', async () => {
    dns.handler = (q) =>
      qtype(q) === 'DS'
        ? reply(q, {
            flags: ['ra'],
            authorities: [
              SOA('test'),
              RRSIG('test', 'SOA', 'test'),
              NSEC('island.test', 'ns.test'),
            ],
          })
        : reply(q, {
            flags: ['ra'],
            answers: [
              A('mx.island.test', '192.0.2.1'),
              RRSIG('mx.island.test', 'A', 'island.test'),
            ],
          });
    expect(
      (await validatedLookup(dns.server, 'mx.island.test', 'A', { timeoutMs: 500 })).status,
    ).toBe('unvalidated');
  });

  it('bogus: SERVFAIL, and with CD the data comes; the EDE text is in the message; no records handed out', async () => {
    dns.handler = (q) =>
      q.flag_cd
        ? reply(q, {
            flags: ['ra', 'cd'],
            answers: [A('mx.bogus.test', '192.0.2.1'), RRSIG('mx.bogus.test', 'A', 'bogus.test')],
          })
        : reply(q, {
            flags: ['ra'],
            rcode: SERVFAIL,
            additionals: [EDE(9, 'DS hash mismatches key')],
          });
    const r = await validatedLookup(dns.server, 'mx.bogus.test', 'A', { timeoutMs: 500 });
    expect(r.status).toBe('bogus');
    expect(r.records).toEqual([]);
    expect(r.signer).toBe('bogus.test.');
    expect(r.message).toMatch(/bogus.*EDE 9: DS hash mismatches key/);
    expect(dns.seen.map((s) => s.q.flag_cd)).toEqual([false, true]);
  });

  it('servfail: SERVFAIL with CD too', async () => {
    dns.handler = (q) => reply(q, { flags: ['ra'], rcode: SERVFAIL });
    const r = await validatedLookup(dns.server, 'mx.broken.test', 'A', { timeoutMs: 500 });
    expect(r.status).toBe('servfail');
  });

  it('nxdomain and nodata, with the security of the denial', async () => {
    dns.handler = (q) =>
      reply(q, { flags: ['ra', 'ad'], rcode: NXDOMAIN, authorities: [SOA(Z), RRSIG(Z, 'SOA', Z)] });
    const nx = await validatedLookup(dns.server, `nx.${Z}`, 'A', { timeoutMs: 500 });
    expect(nx.status).toBe('nxdomain');
    expect(nx.security).toBe('secure');
    dns.handler = (q) => reply(q, { flags: ['ra'], authorities: [SOA('insecure.test')] });
    const nodata = await validatedLookup(dns.server, '_25._tcp.mx.insecure.test', 'TLSA', {
      timeoutMs: 500,
    });
    expect(nodata.status).toBe('nodata');
    expect(nodata.security).toBe('insecure');
    expect(nodata.records).toEqual([]);
  });

  it('a CNAME chain is followed: chain, target, records at the target', async () => {
    dns.handler = (q) =>
      reply(q, {
        flags: ['ra', 'ad'],
        answers: [
          CNAME(`Alias.${Z}`, `hop.${Z}`),
          RRSIG(`alias.${Z}`, 'CNAME', Z),
          CNAME(`hop.${Z}`, MX),
          A(MX, '192.0.2.1'),
          RRSIG(MX, 'A', Z),
        ],
      });
    const r = await validatedLookup(dns.server, `alias.${Z}`, 'A', { timeoutMs: 500 });
    expect(r.status).toBe('secure');
    expect(r.cnameChain).toEqual([`alias.${Z}.`, `hop.${Z}.`, `${MX}.`]);
    expect(r.target).toBe(`${MX}.`);
    expect(r.records).toEqual(['192.0.2.1']);
    expect(followCnames([CNAME('a.test', 'b.test'), CNAME('b.test', 'a.test')], 'a.test')).toEqual([
      'a.test.',
      'b.test.',
    ]);
  });

  it('timeout is a status; REFUSED is an error status; a refused port throws', async () => {
    const t = await validatedLookup(dns.server, MX, 'A', { timeoutMs: 80, retries: 0 });
    expect(t.status).toBe('timeout');
    dns.handler = (q) => reply(q, { rcode: REFUSED });
    const e = await validatedLookup(dns.server, MX, 'A', { timeoutMs: 500 });
    expect(e.status).toBe('error');
    expect(e.rcode).toBe('REFUSED');
    const gone = await startResponder();
    await gone.close();
    await expect(validatedLookup(gone.server, MX, 'A', { timeoutMs: 500 })).rejects.toBeInstanceOf(
      DnsNetworkError,
    );
  });
});

describe('resolveHostForDane', () => {
  it('secure A + secure AAAA denial; a secure CNAME chain moves the TLSA base to the target', async () => {
    dns.handler = (q) => {
      const chain = [CNAME(`alias.${Z}`, MX), RRSIG(`alias.${Z}`, 'CNAME', Z)];
      if (qtype(q) === 'A')
        return reply(q, {
          flags: ['ra', 'ad'],
          answers: [...chain, A(MX, '192.0.2.1'), RRSIG(MX, 'A', Z)],
        });
      return reply(q, {
        flags: ['ra', 'ad'],
        answers: chain,
        authorities: [SOA(Z), RRSIG(Z, 'SOA', Z)],
      });
    };
    const r = await resolveHostForDane(dns.server, `alias.${Z}`, { timeoutMs: 500 });
    expect(r.status).toBe('secure');
    expect(r.addresses).toEqual({ v4: ['192.0.2.1'], v6: [] });
    expect(r.cnameChain).toEqual([`alias.${Z}.`, `${MX}.`]);
    expect(r.tlsaBase).toBe(`${MX}.`);
    expect(r.tlsaBases).toEqual([`${MX}.`, `alias.${Z}.`]);
  });

  it('an insecure chain keeps the original name as the TLSA base; mixed security is not secure', async () => {
    dns.handler = (q) =>
      qtype(q) === 'A'
        ? reply(q, {
            flags: ['ra'],
            answers: [CNAME(`alias.${Z}`, 'mx.insecure.test'), A('mx.insecure.test', '192.0.2.9')],
          })
        : reply(q, {
            flags: ['ra', 'ad'],
            answers: [AAAA(`alias.${Z}`, '2001:db8::1'), RRSIG(`alias.${Z}`, 'AAAA', Z)],
          });
    const r = await resolveHostForDane(dns.server, `alias.${Z}`, { timeoutMs: 500 });
    expect(r.status).toBe('insecure');
    expect(r.addresses).toEqual({ v4: ['192.0.2.9'], v6: ['2001:db8::1'] });
    expect(r.tlsaBase).toBe(`alias.${Z}.`);
    expect(r.tlsaBases).toEqual([`alias.${Z}.`]);
  });

  it('bogus wins over everything; no address at all is nxdomain/nodata', async () => {
    dns.handler = (q) =>
      qtype(q) === 'AAAA' && !q.flag_cd
        ? reply(q, { rcode: SERVFAIL })
        : reply(q, { flags: ['ra', 'ad'], answers: [A(MX, '192.0.2.1')] });
    expect((await resolveHostForDane(dns.server, MX, { timeoutMs: 500 })).status).toBe('bogus');
    dns.handler = (q) => reply(q, { flags: ['ra', 'ad'], rcode: NXDOMAIN, authorities: [SOA(Z)] });
    const nx = await resolveHostForDane(dns.server, `nx.${Z}`, { timeoutMs: 500 });
    expect(nx.status).toBe('nxdomain');
    expect(nx.addresses).toEqual({ v4: [], v6: [] });
  });
});

// ---------------------------------------------------------------------------------------------
// Authoritative side

describe('zone discovery', () => {
  it('the SOA in the authority section of a negative answer names the zone', async () => {
    dns.handler = (q) => reply(q, { flags: ['ra'], authorities: [SOA(Z)] });
    expect(await findZoneApex(dns.server, OWNER, { timeoutMs: 500 })).toBe(`${Z}.`);
    expect(dns.seen).toHaveLength(1);
    expect(dns.seen[0]!.q.flag_cd).toBe(true);
  });

  it('a CNAME at the name moves the search one label up; SOA in the answer is the apex', async () => {
    dns.handler = (q) => {
      const n = qname(q);
      if (n === `alias.${Z}.`)
        return reply(q, {
          flags: ['ra'],
          answers: [CNAME(`alias.${Z}`, 'mx.other.test')],
          authorities: [SOA('other.test')],
        });
      if (n === `${Z}.`) return reply(q, { flags: ['ra'], answers: [SOA(Z)] });
      return reply(q, { rcode: SERVFAIL });
    };
    expect(await findZoneApex(dns.server, `alias.${Z}`, { timeoutMs: 500 })).toBe(`${Z}.`);
  });

  it('findZone: NS names, their A and AAAA; a server without address says why', async () => {
    dns.handler = (q) => {
      const n = qname(q);
      const t = qtype(q);
      if (t === 'SOA')
        return reply(q, {
          flags: ['ra'],
          answers: n === `${Z}.` ? [SOA(Z)] : [],
          authorities: n === `${Z}.` ? [] : [SOA(Z)],
        });
      if (t === 'NS')
        return reply(q, {
          flags: ['ra'],
          answers: [NS(Z, `ns2.${Z}`), NS(Z, `NS1.${Z}`), NS(Z, 'ns.gone.test')],
        });
      if (n === `ns1.${Z}.` && t === 'A')
        return reply(q, { flags: ['ra'], answers: [A(`ns1.${Z}`, '192.0.2.53')] });
      if (n === `ns1.${Z}.` && t === 'AAAA')
        return reply(q, { flags: ['ra'], answers: [AAAA(`ns1.${Z}`, '2001:db8::53')] });
      if (n === `ns2.${Z}.` && t === 'A')
        return reply(q, { flags: ['ra'], answers: [A(`ns2.${Z}`, '198.51.100.53')] });
      if (n === 'ns.gone.test.') return reply(q, { flags: ['ra'], rcode: NXDOMAIN });
      return reply(q, { flags: ['ra'] });
    };
    const zone = await findZone(dns.server, OWNER, { timeoutMs: 500 });
    expect(zone).toEqual({
      zone: `${Z}.`,
      nameservers: [
        { name: `ns.gone.test.`, addresses: [], error: 'no address for ns.gone.test.' },
        { name: `ns1.${Z}.`, addresses: ['192.0.2.53', '2001:db8::53'] },
        { name: `ns2.${Z}.`, addresses: ['198.51.100.53'] },
      ],
    });
  });
});

describe('queryAuthoritative, compareRrsets, waitForRecords (one fake server on 127.0.0.1)', () => {
  const owner = `${OWNER}.`;
  const r1 = tlsa(owner, 1);
  const r2 = tlsa(owner, 2, 2);
  const r3 = tlsa(owner, 3);
  const zoneOf = (addresses: string[]) => ({
    zone: `${Z}.`,
    nameservers: [{ name: `ns1.${Z}.`, addresses }],
  });

  it('asks with RD clear and DO set; AA answers give records, REFUSED and no-AA give errors', async () => {
    dns.handler = (q) =>
      reply(q, {
        flags: ['aa'],
        answers: [TLSA(OWNER, 3, 1, 1, Buffer.alloc(32, 1)), RRSIG(OWNER, 'TLSA', Z)],
      });
    const [ok] = await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
      port: dns.port,
      timeoutMs: 500,
    });
    expect(ok).toEqual({
      server: `ns1.${Z}.`,
      address: '127.0.0.1',
      aa: true,
      rcode: 'NOERROR',
      records: [r1],
      rdata: [`3 1 1 ${hex32(1)}`],
      signed: true,
      ttl: { seconds: 300, of: 'rrset' },
    });
    expect(dns.seen[0]!.q.flag_rd).toBe(false);
    expect(opt(dns.seen[0]!.q)?.flag_do).toBe(true);

    dns.handler = (q) => reply(q, { rcode: REFUSED });
    const [refused] = await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
      port: dns.port,
      timeoutMs: 500,
    });
    expect(refused!.error).toMatch(/REFUSED \(it does not serve the zone\)/);
    expect(refused!.records).toBeUndefined();

    dns.handler = (q) => reply(q, { authorities: [NS(Z, `ns1.${Z}`)] });
    const [lame] = await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
      port: dns.port,
      timeoutMs: 500,
    });
    expect(lame!.aa).toBe(false);
    expect(lame!.error).toMatch(/without the AA bit/);

    dns.handler = (q) => reply(q, { flags: ['aa'], rcode: NXDOMAIN, authorities: [SOA(Z)] });
    const [nx] = await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
      port: dns.port,
      timeoutMs: 500,
    });
    expect(nx!.records).toEqual([]);
    expect(nx!.rcode).toBe('NXDOMAIN');

    // How long a resolver may cache each answer: a negative one min(SOA TTL, SOA MINIMUM), a CNAME its own.
    dns.handler = (q) =>
      reply(q, {
        flags: ['aa'],
        rcode: NXDOMAIN,
        authorities: [{ ...SOA(Z), ttl: 900 } as Answer],
      });
    expect(
      (
        await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
          port: dns.port,
          timeoutMs: 500,
        })
      )[0]!.ttl,
    ).toEqual({ seconds: 60, of: 'negative' });
    dns.handler = (q) => reply(q, { flags: ['aa'], answers: [CNAME(OWNER, `other.${Z}`)] });
    expect(
      (
        await queryAuthoritative(zoneOf(['127.0.0.1']), OWNER, 'TLSA', {
          port: dns.port,
          timeoutMs: 500,
        })
      )[0]!.ttl,
    ).toEqual({ seconds: 300, of: 'cname' });
  });

  it('compareRrsets: exact and contains, missing and extra, failures never in sync', () => {
    const answer = (
      server: string,
      records?: TlsaRecord[],
      error?: string,
    ): AuthoritativeAnswer => ({
      server,
      address: server === 'ns1.' ? '192.0.2.1' : '192.0.2.2',
      aa: true,
      ...(records ? { records } : {}),
      ...(error ? { error } : {}),
    });
    const same = compareRrsets([r1, r2], [answer('ns1.', [r2, r1]), answer('ns2.', [r1, r2, r1])]);
    expect(same.inSync).toBe(true);
    expect(same.summary).toBe('all 2 server addresses in sync');

    const lag = compareRrsets(
      [r1, r2, r3],
      [answer('ns1.', [r1, r2, r3]), answer('ns2.', [r1, r2])],
    );
    expect(lag.inSync).toBe(false);
    expect(lag.synced.map((s) => s.server)).toEqual(['ns1.']);
    expect(lag.lagging.map((s) => [s.server, s.address, s.missing, s.extra])).toEqual([
      ['ns2.', '192.0.2.2', [r3], []],
    ]);
    expect(lag.summary).toMatch(/^ns2\. \(192\.0\.2\.2\) lags: missing 3 1 1 0303/);

    const extra = [answer('ns1.', [r1, r2]), answer('ns2.', [r1])];
    expect(compareRrsets([r1], extra, 'exact').lagging.map((s) => [s.server, s.extra])).toEqual([
      ['ns1.', [r2]],
    ]);
    expect(compareRrsets([r1], extra, 'contains').inSync).toBe(true);

    const upper = { ...r1, owner: owner.toUpperCase().slice(0, -1), data: r1.data.toUpperCase() };
    expect(compareRrsets([upper], [answer('ns1.', [r1])]).inSync).toBe(true);

    const failed = compareRrsets(
      [r1],
      [answer('ns1.', [r1]), answer('ns2.', undefined, 'timeout')],
    );
    expect(failed.inSync).toBe(false);
    expect(failed.failed.map((s) => s.server)).toEqual(['ns2.']);
    expect(failed.summary).toBe('ns2. (192.0.2.2) failed: timeout');
    expect(compareRrsets([], []).inSync).toBe(false);
    expect(compareRrsets([], [answer('ns1.', [])]).inSync).toBe(true);
  });

  it('waitForRecords polls until the server serves the expected set, reporting progress', async () => {
    let round = 0;
    dns.handler = (q) => {
      round++;
      const answers = [TLSA(OWNER, 3, 1, 1, Buffer.alloc(32, 1))];
      if (round >= 3) answers.push(TLSA(OWNER, 2, 1, 1, Buffer.alloc(32, 2)));
      return reply(q, { flags: ['aa'], answers });
    };
    const progress: { round: number; pending: string[] }[] = [];
    const res = await waitForRecords(zoneOf(['127.0.0.1']), OWNER, [r1, r2], {
      port: dns.port,
      timeoutMs: 5000,
      intervalMs: 50,
      queryTimeoutMs: 500,
      onProgress: (p) => progress.push({ round: p.round, pending: p.pending }),
    });
    expect(res.ok).toBe(true);
    expect(res.rounds).toBe(3);
    expect(progress).toEqual([
      { round: 1, pending: [`ns1.${Z}. (127.0.0.1)`] },
      { round: 2, pending: [`ns1.${Z}. (127.0.0.1)`] },
      { round: 3, pending: [] },
    ]);
  });

  it('waitForRecords gives up after timeoutMs with the last comparison; an abort rejects', async () => {
    dns.handler = (q) =>
      reply(q, { flags: ['aa'], answers: [TLSA(OWNER, 3, 1, 1, Buffer.alloc(32, 1))] });
    const t0 = Date.now();
    const res = await waitForRecords(zoneOf(['127.0.0.1']), OWNER, [r1, r2], {
      port: dns.port,
      timeoutMs: 300,
      intervalMs: 50,
      queryTimeoutMs: 500,
    });
    expect(res.ok).toBe(false);
    expect(res.rounds).toBeGreaterThan(2);
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(res.comparison.lagging[0]!.missing).toEqual([r2]);

    const ac = new AbortController();
    const p = waitForRecords(zoneOf(['127.0.0.1']), OWNER, [r1, r2], {
      port: dns.port,
      timeoutMs: 10_000,
      intervalMs: 5000,
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(new Error('shutting down')), 100);
    await expect(p).rejects.toThrow('shutting down');
  });
});
