// Counting proxies for the benchmarks, on loopback: what a provider sends to a lab server,
// counted as reads and writes without touching the provider (DNS by opcode: UPDATE is a write;
// HTTP by method: GET is a read).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from '../test/lab/lab.js';

export interface Counts {
  reads: number;
  writes: number;
}

/** A DNS proxy on loopback (UDP and TCP) that counts messages by opcode. */
export async function countingProxy(
  upstreamPort: number,
  HOST = '127.0.0.1',
): Promise<{ port: number; counts: Counts; close(): Promise<void> }> {
  const counts: Counts = { reads: 0, writes: 0 };
  const count = (msg: Buffer) => {
    if (msg.length < 3) return;
    const opcode = (msg[2]! >> 3) & 0xf;
    if (opcode === 5) counts.writes++;
    else counts.reads++;
  };
  const port = await freePort();
  const udp = createSocket('udp4');
  const upstreams = new Set<UdpSocket>();
  // One upstream socket for the queries in flight, answers matched to their client by DNS id: a
  // socket per message (create, bind, close) cost the proxy more CPU than the query cost the
  // server, on the machine the client under test shares with it. A message whose id is in
  // flight already takes a socket of its own.
  const shared = createSocket('udp4');
  const inFlight = new Map<number, { port: number; address: string; timer: NodeJS.Timeout }>();
  shared.on('message', (reply) => {
    if (reply.length < 2) return;
    const id = reply.readUInt16BE(0);
    const client = inFlight.get(id);
    if (!client) return; // late: its query was given up, as its own socket would have been closed
    clearTimeout(client.timer);
    inFlight.delete(id);
    udp.send(reply, client.port, client.address);
  });
  shared.on('error', () => {});
  await new Promise<void>((r) => shared.connect(upstreamPort, HOST, () => r()));
  const ownSocket = (msg: Buffer, client: { port: number; address: string }) => {
    const up = createSocket('udp4');
    upstreams.add(up);
    const done = () => {
      upstreams.delete(up);
      try {
        up.close();
      } catch {
        /* closed */
      }
    };
    const timer = setTimeout(done, 10_000);
    up.on('message', (reply) => {
      clearTimeout(timer);
      udp.send(reply, client.port, client.address);
      done();
    });
    up.send(msg, upstreamPort, HOST);
  };
  udp.on('message', (msg, client) => {
    count(msg);
    const id = msg.length >= 2 ? msg.readUInt16BE(0) : undefined;
    if (id === undefined || inFlight.has(id)) return ownSocket(msg, client);
    const timer = setTimeout(() => inFlight.delete(id), 10_000);
    inFlight.set(id, { port: client.port, address: client.address, timer });
    shared.send(msg);
  });
  await new Promise<void>((r) => udp.bind({ address: HOST, port }, () => r()));
  const sockets = new Set<Socket>();
  const tcp: Server = createServer((c) => {
    const up = connect(upstreamPort, HOST);
    sockets.add(c).add(up);
    let buf = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        count(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
    });
    splice(c, up, sockets);
  });
  await new Promise<void>((r) => tcp.listen({ host: HOST, port }, () => r()));
  return {
    port,
    counts,
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const { timer } of inFlight.values()) clearTimeout(timer);
      inFlight.clear();
      shared.close();
      for (const u of upstreams)
        try {
          u.close();
        } catch {
          /* closed */
        }
      await new Promise<void>((r) => tcp.close(() => r()));
      await new Promise<void>((r) => udp.close(() => r()));
    },
  };
}

/** An HTTP proxy on loopback in front of `upstream` (e.g. the PowerDNS API) counting requests:
 *  a byte relay, one upstream connection per client connection, that reads only the request
 *  heads (method, Content-Length) to count and skip them. What the client sees is the server's
 *  own answer byte for byte (PowerDNS's `Connection: close` included: it closes after every
 *  answer), and the relay costs the shared machine far less CPU than an HTTP proxy (which
 *  parses, rebuilds and re-sends every request on a new connection) while tlsa is timed. */
export async function countingHttpProxy(
  upstream: string,
  HOST = '127.0.0.1',
): Promise<{ url: string; counts: Counts; close(): Promise<void> }> {
  const target = new URL(upstream);
  const counts: Counts = { reads: 0, writes: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = connect(Number(target.port || 80), target.hostname);
    sockets.add(c).add(up);
    const heads = requestHeads((method) => {
      if (method === 'GET') counts.reads++;
      else counts.writes++;
    });
    c.on('data', heads);
    splice(c, up, sockets);
  });
  await new Promise<void>((r) => server.listen({ host: HOST, port: 0 }, () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://${HOST}:${port}${target.pathname.replace(/\/+$/, '')}${target.search}`,
    counts,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A reader of one connection's request stream that calls `seen` with each request's method:
 *  a head up to its blank line, then a body of its Content-Length skipped. A chunked request
 *  body (tlsa's HTTP client always sends a length) ends the counting on that connection. */
export function requestHeads(seen: (method: string) => void): (data: Buffer) => void {
  let pending = Buffer.alloc(0);
  let skip = 0;
  let lost = false;
  return (data) => {
    if (lost) return;
    let buf = pending.length ? Buffer.concat([pending, data]) : data;
    for (;;) {
      if (skip) {
        const n = Math.min(skip, buf.length);
        skip -= n;
        buf = buf.subarray(n);
        if (skip) break;
      }
      const endOfHead = buf.indexOf('\r\n\r\n');
      if (endOfHead < 0) break;
      const head = buf.subarray(0, endOfHead).toString('latin1');
      buf = buf.subarray(endOfHead + 4);
      seen(head.slice(0, head.indexOf(' ')).toUpperCase());
      if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
        lost = true;
        return;
      }
      skip = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    }
    pending = Buffer.from(buf);
  };
}

/** Bytes both ways between a client and its upstream; either end closing or failing ends both. */
function splice(c: Socket, up: Socket, sockets: Set<Socket>): void {
  c.pipe(up).pipe(c);
  const end = () => {
    c.destroy();
    up.destroy();
    sockets.delete(c);
    sockets.delete(up);
  };
  c.on('error', end).on('close', end);
  up.on('error', end).on('close', end);
}
