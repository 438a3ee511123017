/**
 * One DNS exchange with one server: UDP for small messages, TCP (2-byte length prefix,
 * RFC 1035 §4.2.2) for large ones and when the UDP answer is truncated. Optionally TSIG-signed,
 * with the answer's TSIG checked against the request's MAC.
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, connect } from 'node:net';
import { NetworkError } from '../errors.js';
import { signMessage, verifyMessage, type TsigKey, type TsigVerdict } from './tsig.js';
import { readHeader, type Header } from './wire.js';

/** Larger requests go over TCP: 512 is the RFC 1035 UDP size without EDNS. */
export const MAX_UDP_REQUEST = 512;

export interface Endpoint {
  host: string;
  port: number;
  /** Per exchange (one UDP try or one TCP connection). */
  timeoutMs: number;
}

/** No answer in time or a connection failure: worth retrying. */
export class DnsTransportError extends NetworkError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, undefined, options);
    this.name = 'DnsTransportError';
  }
}

async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const fam = isIP(host);
  if (fam) return { address: host, family: fam as 4 | 6 };
  try {
    const r = await lookup(host);
    return { address: r.address, family: r.family === 6 ? 6 : 4 };
  } catch (e) {
    throw new DnsTransportError(
      `cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { cause: e },
    );
  }
}

export async function exchangeUdp(ep: Endpoint, msg: Buffer): Promise<Buffer> {
  const { address, family } = await resolveHost(ep.host);
  const id = msg.readUInt16BE(0);
  return new Promise((resolveUdp, reject) => {
    const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
    const done = (err: Error | undefined, data?: Buffer): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolveUdp(data!);
    };
    const timer = setTimeout(
      () =>
        done(
          new DnsTransportError(
            `no answer from ${ep.host} port ${ep.port} (UDP) within ${ep.timeoutMs / 1000} s`,
          ),
        ),
      ep.timeoutMs,
    );
    sock.on('error', (e) =>
      done(new DnsTransportError(`UDP to ${ep.host} port ${ep.port}: ${e.message}`, { cause: e })),
    );
    sock.on('message', (data, rinfo) => {
      // Only the server's answer to this id counts (a stray datagram is ignored).
      if (rinfo.port !== ep.port || data.length < 12 || data.readUInt16BE(0) !== id) return;
      done(undefined, data);
    });
    sock.send(msg, ep.port, address, (e) => {
      if (e)
        done(
          new DnsTransportError(`UDP to ${ep.host} port ${ep.port}: ${e.message}`, { cause: e }),
        );
    });
  });
}

export async function exchangeTcp(ep: Endpoint, msg: Buffer): Promise<Buffer> {
  const { address } = await resolveHost(ep.host);
  return new Promise((resolveTcp, reject) => {
    const sock = connect({ host: address, port: ep.port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | undefined, data?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolveTcp(data!);
    };
    const timer = setTimeout(
      () =>
        done(
          new DnsTransportError(
            `no answer from ${ep.host} port ${ep.port} (TCP) within ${ep.timeoutMs / 1000} s`,
          ),
        ),
      ep.timeoutMs,
    );
    sock.on('error', (e) =>
      done(new DnsTransportError(`TCP to ${ep.host} port ${ep.port}: ${e.message}`, { cause: e })),
    );
    sock.on('close', () =>
      done(
        new DnsTransportError(
          `${ep.host} port ${ep.port} closed the TCP connection without a complete answer`,
        ),
      ),
    );
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length, 0);
      sock.write(Buffer.concat([len, msg]));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0))
        done(undefined, buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
}

export interface Reply {
  message: Buffer;
  header: Header;
  transport: 'udp' | 'tcp';
  /** The TSIG check of the answer; undefined when the request was not signed. */
  tsig?: TsigVerdict;
}

/**
 * Sends the message `build(id)` makes (signed with `key` when given) and returns the answer.
 * TCP when the request is larger than 512 bytes, when `tcp` is set, or when the UDP answer has
 * TC set (the request is then built, signed and sent again over TCP).
 */
export async function exchange(
  ep: Endpoint,
  build: (id: number) => Buffer,
  key?: TsigKey,
  tcp = false,
): Promise<Reply> {
  for (let useTcp = tcp; ; useTcp = true) {
    const id = randomInt(0, 0x10000);
    const unsigned = build(id);
    const signed = key ? signMessage(unsigned, key) : { message: unsigned, mac: undefined };
    const overTcp = useTcp || signed.message.length > MAX_UDP_REQUEST;
    const message = overTcp
      ? await exchangeTcp(ep, signed.message)
      : await exchangeUdp(ep, signed.message);
    const header = readHeader(message);
    if (header.id !== id || !header.qr)
      throw new DnsTransportError(
        `${ep.host} port ${ep.port} sent an answer that does not match the request`,
      );
    if (header.tc && !overTcp) continue;
    const reply: Reply = { message, header, transport: overTcp ? 'tcp' : 'udp' };
    if (key) reply.tsig = verifyMessage(message, key, signed.mac ? { requestMac: signed.mac } : {});
    return reply;
  }
}
