/**
 * src/dns/transport.ts, the one UDP/TCP transport under the RFC 2136 exchange and the verify
 * resolver client: tiny UDP and TCP servers on 127.0.0.1 that answer, stay silent, set TC,
 * send strays or close early.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DnsTransportError,
  exchange,
  tcpAttempt,
  udpAttempt,
  type Attempt,
} from '../../src/dns/transport.js';
import { OPCODE, readName } from '../../src/dns/wire.js';
import { buildQuery } from '../../src/dns/update.js';
import { EXIT } from '../../src/errors.js';
import { freePort } from '../lab/lab.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** The answer to `query`: same id, QR set, `flags` ORed in (e.g. TC 0x0200). */
function answer(query: Buffer, flags = 0): Buffer {
  const a = Buffer.from(query);
  a.writeUInt16BE(a.readUInt16BE(2) | 0x8000 | flags, 2);
  return a;
}

async function udpServer(
  onQuery: (q: Buffer, reply: (m: Buffer) => void, from: { port: number }) => void,
  port = 0,
): Promise<number> {
  const sock: UdpSocket = createSocket('udp4');
  await new Promise<void>((res) => sock.bind(port, '127.0.0.1', res));
  sock.on('message', (q, r) => onQuery(q, (m) => sock.send(m, r.port, r.address), r));
  closers.push(() => new Promise((res) => sock.close(() => res())));
  return sock.address().port;
}

async function tcpServer(onQuery: (q: Buffer, conn: Socket) => void, port = 0): Promise<number> {
  const server: Server = createServer((conn) => {
    let buf = Buffer.alloc(0);
    conn.on('error', () => {});
    conn.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        onQuery(buf.subarray(2, 2 + buf.readUInt16BE(0)), conn);
    });
  });
  await new Promise<void>((res) => server.listen(port, '127.0.0.1', res));
  closers.push(() => new Promise((res) => server.close(() => res())));
  return (server.address() as { port: number }).port;
}

const framed = (m: Buffer): Buffer => Buffer.concat([Buffer.from([m.length >> 8, m.length]), m]);

const query = (id: number): Buffer => buildQuery(id, 'example.test.', 6);

function attempt(port: number, message: Buffer, timeoutMs = 2000): Attempt<Buffer> {
  const id = message.readUInt16BE(0);
  return {
    address: '127.0.0.1',
    port,
    message,
    timeoutMs,
    accept: (m) => (m.readUInt16BE(0) === id ? m : undefined),
  };
}

describe('udpAttempt and tcpAttempt', () => {
  it('UDP: a stray datagram is skipped, the answer taken', async () => {
    const port = await udpServer((q, reply) => {
      const stray = answer(q);
      stray.writeUInt16BE(q.readUInt16BE(0) ^ 1, 0);
      reply(stray);
      setTimeout(() => reply(answer(q)), 20);
    });
    const q = query(4242);
    const o = await udpAttempt(attempt(port, q));
    expect(o.kind).toBe('answer');
    expect(o.kind === 'answer' && o.value.readUInt16BE(0)).toBe(4242);
  });

  it('UDP: silence is a timeout, a refused port an error (ICMP on the connected socket)', async () => {
    const silent = await udpServer(() => {});
    expect(await udpAttempt(attempt(silent, query(1), 200))).toEqual({ kind: 'timeout' });
    const closed = await freePort();
    const o = await udpAttempt(attempt(closed, query(2)));
    expect(o.kind).toBe('error');
    expect(o.kind === 'error' && o.error.code).toBe('ECONNREFUSED');
  });

  it('TCP: several messages on the connection, the one accepted wins', async () => {
    const port = await tcpServer((q, conn) => {
      const other = answer(q);
      other.writeUInt16BE(7, 0);
      conn.write(Buffer.concat([framed(other), framed(answer(q))]));
    });
    const o = await tcpAttempt(attempt(port, query(99)));
    expect(o.kind === 'answer' && o.value.readUInt16BE(0)).toBe(99);
  });

  it('TCP: closed before an answer is "closed"; a throw from accept ends the attempt with it', async () => {
    const closing = await tcpServer((_q, conn) => conn.end());
    expect(await tcpAttempt(attempt(closing, query(3)))).toEqual({ kind: 'closed' });
    const port = await tcpServer((q, conn) => conn.write(framed(answer(q))));
    const bad = new Error('not DNS');
    await expect(
      tcpAttempt({
        ...attempt(port, query(4)),
        accept: () => {
          throw bad;
        },
      }),
    ).rejects.toBe(bad);
  });

  it('an abort rejects with the signal reason at once', async () => {
    const silent = await udpServer(() => {});
    const ac = new AbortController();
    const reason = new Error('stop');
    setTimeout(() => ac.abort(reason), 50);
    const t0 = Date.now();
    await expect(
      udpAttempt({ ...attempt(silent, query(5), 5000), signal: ac.signal }),
    ).rejects.toBe(reason);
    expect(Date.now() - t0).toBeLessThan(2000);
  });
});

describe('exchange (RFC 2136 client)', () => {
  const build = (id: number) => buildQuery(id, 'example.test.', 6);

  it('TC over UDP: asked again over TCP with a fresh id; the reply says tcp', async () => {
    // One port number for both transports, as a DNS server has.
    const port = await freePort();
    const ids: number[] = [];
    await udpServer((q, reply) => {
      ids.push(q.readUInt16BE(0));
      reply(answer(q, 0x0200));
    }, port);
    await tcpServer((q, conn) => {
      ids.push(q.readUInt16BE(0));
      conn.write(framed(answer(q)));
    }, port);
    const reply = await exchange({ host: '127.0.0.1', port, timeoutMs: 2000 }, build);
    expect(reply.transport).toBe('tcp');
    expect(reply.header.tc).toBe(false);
    expect(reply.header.opcode).toBe(OPCODE.QUERY);
    expect(ids).toHaveLength(2);
    expect(reply.header.id).toBe(ids[1]);
  });

  it('UDP exchanges in flight with one server share one socket; each takes the answer to its id', async () => {
    const sourcePorts = new Set<number>();
    const held: [Buffer, (m: Buffer) => void][] = [];
    const n = 20;
    const port = await udpServer((q, reply, from) => {
      sourcePorts.add(from.port);
      held.push([q, reply]);
      // All answered at once, last asked first.
      if (held.length === n) for (const [hq, r] of held.reverse()) r(answer(hq));
    });
    const replies = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        exchange({ host: '127.0.0.1', port, timeoutMs: 5000 }, (id) =>
          buildQuery(id, `q${i}.example.test.`, 6),
        ),
      ),
    );
    replies.forEach((r, i) => {
      expect(r.transport).toBe('udp');
      expect(readName(r.message, 12)).toBe(`q${i}.example.test.`);
    });
    expect(sourcePorts.size).toBe(1);
  });

  it('after a UDP timeout, later exchanges use another socket (a late answer cannot meet a reused id)', async () => {
    const held = new Map<string, [Buffer, (m: Buffer) => void, number]>();
    const port = await udpServer((q, reply, from) => {
      const name = readName(q, 12);
      held.set(name, [q, reply, from.port]);
      if (name !== 'next.example.test.') return;
      // The timed-out query's answer arrives late, then the answers to the others.
      const [lq, lr] = held.get('late.example.test.')!;
      lr(answer(lq));
      setTimeout(() => {
        reply(answer(q));
        const [bq, br] = held.get('busy.example.test.')!;
        br(answer(bq));
      }, 50);
    });
    const ep = { host: '127.0.0.1', port, timeoutMs: 5000 };
    const late = exchange({ ...ep, timeoutMs: 300 }, (id) =>
      buildQuery(id, 'late.example.test.', 6),
    );
    while (!held.has('late.example.test.')) await new Promise((r) => setTimeout(r, 5));
    // Still in flight on the same socket when `late` times out.
    const busy = exchange(ep, (id) => buildQuery(id, 'busy.example.test.', 6));
    await expect(late).rejects.toThrow(/no answer/);
    const next = await exchange(ep, (id) => buildQuery(id, 'next.example.test.', 6));
    expect(readName(next.message, 12)).toBe('next.example.test.');
    expect(readName((await busy).message, 12)).toBe('busy.example.test.');
    expect(held.get('busy.example.test.')![2]).toBe(held.get('late.example.test.')![2]);
    expect(held.get('next.example.test.')![2]).not.toBe(held.get('late.example.test.')![2]);
  });

  it('silence: DnsTransportError (exit 3) naming the server, the transport and the timeout', async () => {
    const port = await udpServer(() => {});
    const e = await exchange({ host: '127.0.0.1', port, timeoutMs: 300 }, build).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(DnsTransportError);
    expect((e as DnsTransportError).exitCode).toBe(EXIT.provider);
    expect((e as Error).message).toBe(`no answer from 127.0.0.1 port ${port} (UDP) within 0.3 s`);
  });

  it('nothing listening on the UDP port: DnsTransportError naming the server at once, not after the timeout', async () => {
    const port = await freePort();
    const t0 = Date.now();
    const e = await exchange({ host: '127.0.0.1', port, timeoutMs: 5000 }, build).catch(
      (x: unknown) => x,
    );
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(e).toBeInstanceOf(DnsTransportError);
    expect((e as Error).message).toMatch(
      new RegExp(`^UDP to 127\\.0\\.0\\.1 port ${port}: .*ECONNREFUSED`),
    );
  });
});
