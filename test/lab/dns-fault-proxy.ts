/**
 * A DNS forwarder on loopback (UDP and TCP on one port) in front of a real server, for fault
 * injection: from the n-th UPDATE message on it answers SERVFAIL itself and forwards nothing,
 * as a primary that fails in the middle of a run would. Everything else (queries, the UPDATEs
 * before the n-th) goes to the server byte for byte, so TSIG signatures stay valid.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';

const OPCODE_UPDATE = 5;
const RCODE_SERVFAIL = 2;

export interface DnsFaultProxy {
  host: string;
  port: number;
  /** From the n-th UPDATE (1 = the next) on, answer SERVFAIL; returns the function that ends it. */
  failUpdatesFrom(n: number): () => void;
  /** Every request that came in (UDP and TCP): its opcode, the name and type of its first
   *  question (an UPDATE's zone section: the zone, SOA) and the transport it came over. */
  readonly requests: ProxiedRequest[];
  stop(): Promise<void>;
}

export interface ProxiedRequest {
  opcode: number;
  qtype: number;
  /** Lower case, with the trailing dot; '' when there is no question. */
  qname: string;
  transport: 'udp' | 'tcp';
}

const opcodeOf = (msg: Buffer) => (msg.length >= 4 ? (msg.readUInt16BE(2) >> 11) & 0xf : -1);

/** The name and type of the first question (the zone section of an UPDATE: the zone, SOA);
 *  '' and -1 if there is none. Requests carry no compression pointer in their question. */
function questionOf(msg: Buffer): { qname: string; qtype: number } {
  if (msg.length < 12 || msg.readUInt16BE(4) === 0) return { qname: '', qtype: -1 };
  const labels: string[] = [];
  let o = 12;
  while (o < msg.length && msg[o] !== 0) {
    labels.push(msg.subarray(o + 1, o + 1 + msg[o]!).toString('latin1'));
    o += 1 + msg[o]!;
  }
  const qname = `${labels.join('.')}.`.toLowerCase();
  return { qname, qtype: o + 3 <= msg.length ? msg.readUInt16BE(o + 1) : -1 };
}

/** The header of `req` turned into an answer with this rcode and no records. */
function failureAnswer(req: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(req.readUInt16BE(0), 0);
  out.writeUInt16BE(0x8000 | (req.readUInt16BE(2) & 0x7800) | rcode, 2);
  return out;
}

export async function startDnsFaultProxy(upstream: {
  host: string;
  port: number;
}): Promise<DnsFaultProxy> {
  let fault: { from: number; seen: number } | undefined;
  const requests: ProxiedRequest[] = [];
  /** Whether this request is answered SERVFAIL by the proxy instead of the server (and logs it). */
  const failing = (msg: Buffer, transport: 'udp' | 'tcp'): boolean => {
    requests.push({ opcode: opcodeOf(msg), ...questionOf(msg), transport });
    return fault !== undefined && opcodeOf(msg) === OPCODE_UPDATE && ++fault.seen >= fault.from;
  };

  const open = new Set<{ destroy(): void }>();
  const tcp: Server = createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    let buf = Buffer.alloc(0);
    let server: ReturnType<typeof connect> | undefined;
    client.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const framed = buf.subarray(0, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(framed.length);
        const msg = framed.subarray(2);
        if (failing(msg, 'tcp')) {
          const answer = failureAnswer(msg, RCODE_SERVFAIL);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(answer.length);
          client.write(Buffer.concat([len, answer]));
          continue;
        }
        if (!server) {
          server = connect({ host: upstream.host, port: upstream.port });
          server.on('data', (x: Buffer) => client.write(x));
          server.on('error', () => client.destroy());
          server.on('close', () => client.end());
          client.on('close', () => server?.destroy());
        }
        server.write(framed);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const port = (tcp.address() as { port: number }).port;

  const udp: Socket = createSocket('udp4');
  udp.on('message', (msg: Buffer, from: RemoteInfo) => {
    if (failing(msg, 'udp')) {
      udp.send(failureAnswer(msg, RCODE_SERVFAIL), from.port, from.address);
      return;
    }
    // One upstream socket per request: its answer goes back to the asker, from our port.
    const up = createSocket('udp4');
    const timer = setTimeout(() => up.close(), 30_000);
    up.on('message', (answer: Buffer) => {
      clearTimeout(timer);
      udp.send(answer, from.port, from.address);
      up.close();
    });
    up.send(msg, upstream.port, upstream.host);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, '127.0.0.1', () => resolve());
  });

  return {
    host: '127.0.0.1',
    port,
    requests,
    failUpdatesFrom(n) {
      const f = { from: n, seen: 0 };
      fault = f;
      return () => {
        if (fault === f) fault = undefined;
      };
    },
    async stop() {
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      for (const c of open) c.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
