// Counting proxies for the benchmarks, on loopback: what a provider sends to a lab server,
// counted as reads and writes without touching the provider (DNS by opcode: UPDATE is a write;
// HTTP by method: GET is a read).
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { type HttpTap, startHttpTap } from '../test/lab/http-tap.js';
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
    c.pipe(up).pipe(c);
    const end = () => {
      c.destroy();
      up.destroy();
      sockets.delete(c);
      sockets.delete(up);
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
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

/** An HTTP proxy on loopback in front of `upstream` (e.g. the PowerDNS API) counting requests. */
export const countingHttpProxy = (upstream: string): Promise<HttpTap> => startHttpTap(upstream);
