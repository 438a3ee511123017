/**
 * DNS over UDP and TCP, the one transport of the code base. `udpAttempt` and `tcpAttempt` are
 * one try each (one datagram, one connection) and report what became of it as data, so each
 * client words its own errors: the resolver client in verify/dns.ts (dns-packet, retries) and
 * `exchange` here, one exchange with one server: UDP for small messages, TCP for large ones and
 * when the UDP answer is truncated, optionally TSIG-signed with the answer's TSIG checked
 * against the request's MAC (RFC 2136 updates).
 */
import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, connect } from 'node:net';
import { NetworkError } from '../errors.js';
import { signMessage, verifyMessage, type TsigKey, type TsigVerdict } from './tsig.js';
import { type Header, type RRSpan, readHeader, readName, walkRecords } from './wire.js';

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

async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch (e) {
    throw new DnsTransportError(
      `cannot resolve ${host}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      { cause: e },
    );
  }
}

/** One try of one exchange: send `message`, wait for the answer `accept` takes. */
export interface Attempt<T> {
  /** An IP address. */
  address: string;
  port: number;
  message: Buffer;
  timeoutMs: number;
  /** Ends the attempt at once: it rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** The answer this attempt waits for, or undefined for a message that is not one (another
   *  id, a stray datagram): it is skipped. A throw ends the attempt with that error. */
  accept: (message: Buffer) => T | undefined;
}

/** What became of an attempt other than an abort: the callers word their own errors. */
export type Outcome<T> =
  | { kind: 'answer'; value: T }
  | { kind: 'timeout' }
  /** The socket failed: refused (on UDP, ICMP port unreachable), reset, unreachable. */
  | { kind: 'error'; error: NodeJS.ErrnoException }
  /** TCP only: the server closed the connection before a complete answer. */
  | { kind: 'closed' };

/** Runs one attempt on a socket: settles once, clears the timer and the abort listener,
 *  closes the socket. */
function attempt<T>(
  a: Attempt<T>,
  start: (settle: (o: Outcome<T>) => void, fail: (e: unknown) => void) => () => void,
): Promise<Outcome<T>> {
  return new Promise((resolve, reject) => {
    let done = false;
    let close = (): void => {};
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      a.signal?.removeEventListener('abort', onAbort);
      close();
      fn();
    };
    const settle = (o: Outcome<T>): void => finish(() => resolve(o));
    const fail = (e: unknown): void => finish(() => reject(e));
    const onAbort = (): void => fail(a.signal!.reason ?? new Error('aborted'));
    const timer = setTimeout(() => settle({ kind: 'timeout' }), a.timeoutMs);
    a.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      close = start(settle, fail);
    } catch (e) {
      fail(e); // e.g. a bad port, thrown before any socket event
    }
  });
}

/** `accept` applied to a message; a throw fails the attempt. */
function offer<T>(
  a: Attempt<T>,
  message: Buffer,
  settle: (o: Outcome<T>) => void,
  fail: (e: unknown) => void,
): boolean {
  let value: T | undefined;
  try {
    value = a.accept(message);
  } catch (e) {
    fail(e);
    return true;
  }
  if (value === undefined) return false;
  settle({ kind: 'answer', value });
  return true;
}

/** One UDP try. The socket is connected, so only the server's datagrams arrive and ICMP port
 *  unreachable comes back as ECONNREFUSED. */
export function udpAttempt<T>(a: Attempt<T>): Promise<Outcome<T>> {
  return attempt(a, (settle, fail) => {
    const sock = createSocket(isIP(a.address) === 6 ? 'udp6' : 'udp4');
    const failed = (error: NodeJS.ErrnoException): void => settle({ kind: 'error', error });
    sock.on('error', failed);
    sock.on('message', (msg) => offer(a, msg, settle, fail));
    sock.connect(a.port, a.address, () => {
      sock.send(a.message, (e) => {
        if (e) failed(e);
      });
    });
    return () => {
      try {
        sock.close();
      } catch {
        /* already closed */
      }
    };
  });
}

/** One TCP connection: the message with its 2-byte length prefix (RFC 1035 §4.2.2); answers
 *  that `accept` skips are read past. */
export function tcpAttempt<T>(a: Attempt<T>): Promise<Outcome<T>> {
  return attempt(a, (settle, fail) => {
    const sock = connect({ host: a.address, port: a.port });
    let buffered = Buffer.alloc(0);
    sock.on('error', (error: NodeJS.ErrnoException) => settle({ kind: 'error', error }));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(a.message.length);
      sock.write(Buffer.concat([len, a.message]));
    });
    sock.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) return;
        const msg = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        if (offer(a, msg, settle, fail)) return;
      }
    });
    sock.on('end', () => settle({ kind: 'closed' }));
    sock.on('close', () => settle({ kind: 'closed' }));
    return () => sock.destroy();
  });
}

/**
 * One connected UDP socket per server for the exchanges in flight with it: a socket per query
 * (create, bind, connect, close) cost more CPU than the query itself in a run of thousands.
 * Answers go to the query with their id; an id already in flight is not shared (that query
 * takes a socket of its own). An error on the socket (ICMP port unreachable) ends every query
 * waiting on it, as it would have ended each on its own socket. After a timeout the socket
 * takes no new query, so a late answer never meets a later query with the same id; it closes
 * when its last query is done, as it does when nothing is in flight.
 */
class UdpChannel {
  private static readonly open = new Map<string, UdpChannel>();
  private readonly sock: ReturnType<typeof createSocket>;
  private readonly waiting = new Map<number, (o: Outcome<Buffer>) => void>();
  private retired = false;
  /** Sends waiting for the socket to be connected (connect is asynchronous). */
  private queued: (() => void)[] | undefined = [];
  /** Sends waiting for the end of this turn of the event loop (see `sendSoon`). */
  private outbox: (() => void)[] = [];

  static for(address: string, port: number): UdpChannel {
    const k = `${address} ${port}`;
    let c = UdpChannel.open.get(k);
    if (!c) {
      c = new UdpChannel(address, port, k);
      UdpChannel.open.set(k, c);
    }
    return c;
  }

  private constructor(
    address: string,
    port: number,
    private readonly k: string,
  ) {
    this.sock = createSocket(isIP(address) === 6 ? 'udp6' : 'udp4');
    this.sock.on('error', (error: NodeJS.ErrnoException) => {
      this.retire();
      for (const settle of [...this.waiting.values()]) settle({ kind: 'error', error });
      this.close();
    });
    this.sock.on('message', (m: Buffer) => {
      if (m.length >= 12) this.waiting.get(m.readUInt16BE(0))?.({ kind: 'answer', value: m });
    });
    this.sock.connect(port, address, () => {
      const sends = this.queued ?? [];
      this.queued = undefined;
      for (const send of sends) send();
    });
  }

  /** Undefined when a query with this id is in flight here already. */
  ask(message: Buffer, timeoutMs: number): Promise<Outcome<Buffer>> | undefined {
    const id = message.readUInt16BE(0);
    if (this.waiting.has(id)) return undefined;
    return new Promise((resolve) => {
      const settle = (o: Outcome<Buffer>): void => {
        if (this.waiting.get(id) !== settle) return;
        clearTimeout(timer);
        this.waiting.delete(id);
        if (o.kind === 'timeout') this.retire();
        if (this.waiting.size === 0) this.close();
        resolve(o);
      };
      const timer = setTimeout(() => settle({ kind: 'timeout' }), timeoutMs);
      this.waiting.set(id, settle);
      const send = (): void => {
        // Ended before it left (the socket failed): nothing to send, the socket may be closed.
        if (this.waiting.get(id) !== settle) return;
        this.sock.send(message, (e) => {
          if (e) settle({ kind: 'error', error: e });
        });
      };
      if (this.queued) this.queued.push(send);
      else this.sendSoon(send);
    });
  }

  /** Sends asked for while this turn of the event loop handles the answers that came in go
   *  out together once it is done, back to back: the server, woken by the first, is still
   *  awake for the rest (a send that wakes the server costs several times one that finds it
   *  awake, and answers come in bunches, each asking the next query). */
  private sendSoon(send: () => void): void {
    this.outbox.push(send);
    if (this.outbox.length > 1) return;
    setImmediate(() => {
      const sends = this.outbox;
      this.outbox = [];
      for (const s of sends) s();
    });
  }

  private retire(): void {
    if (this.retired) return;
    this.retired = true;
    if (UdpChannel.open.get(this.k) === this) UdpChannel.open.delete(this.k);
  }

  private close(): void {
    this.retire();
    try {
      this.sock.close();
    } catch {
      /* already closed */
    }
  }
}

/** One UDP try or one TCP connection to `ep`, with this module's errors. */
async function exchangeOnce(ep: Endpoint, msg: Buffer, transport: 'udp' | 'tcp'): Promise<Buffer> {
  // An address needs no look-up (nor the await of one): the common case, once per query.
  const address = isIP(ep.host) ? ep.host : await resolveHost(ep.host);
  const id = msg.readUInt16BE(0);
  const a: Attempt<Buffer> = {
    address,
    port: ep.port,
    message: msg,
    timeoutMs: ep.timeoutMs,
    // Over UDP only the answer to this id counts (a stray datagram is ignored); over TCP the
    // first answer is the answer, and `exchange` checks that it matches.
    accept: (m) =>
      transport === 'tcp' || (m.length >= 12 && m.readUInt16BE(0) === id) ? m : undefined,
  };
  const o =
    transport === 'tcp'
      ? await tcpAttempt(a)
      : await (UdpChannel.for(address, ep.port).ask(msg, ep.timeoutMs) ?? udpAttempt(a));
  const where = `${ep.host} port ${ep.port}`;
  switch (o.kind) {
    case 'answer':
      return o.value;
    case 'timeout':
      throw new DnsTransportError(
        `no answer from ${where} (${transport.toUpperCase()}) within ${ep.timeoutMs / 1000} s`,
      );
    case 'error':
      throw new DnsTransportError(`${transport.toUpperCase()} to ${where}: ${o.error.message}`, {
        cause: o.error,
      });
    case 'closed':
      throw new DnsTransportError(`${where} closed the TCP connection without a complete answer`);
  }
}

export interface Reply {
  message: Buffer;
  header: Header;
  transport: 'udp' | 'tcp';
  /** The TSIG check of the answer; undefined when the request was not signed. */
  tsig?: TsigVerdict;
  /** The answer's walkRecords, once something has walked it (see `recordsOf`). */
  records?: RRSpan[];
  /** Names read from the answer, by the offset where their labels start (see `nameAt`). */
  names?: Map<number, string>;
}

/** The records of an answer, walked once however many readers look at them. */
export function recordsOf(reply: Reply): RRSpan[] {
  reply.records ??= walkRecords(reply.message);
  return reply.records;
}

/** readName of the answer at `offset`, each name read once: the owners of an answer's records
 *  are compression pointers to the one name in its question, so a reader that checks every
 *  record's owner reads that name once, not once a record. */
export function nameAt(reply: Reply, offset: number): string {
  const m = reply.message;
  // A name that is a pointer reads as the name it points at (and is read from where it was
  // asked for, so a name that does not read throws as readName throws).
  const at =
    offset + 1 < m.length && (m[offset]! & 0xc0) === 0xc0
      ? ((m[offset]! & 0x3f) << 8) | m[offset + 1]!
      : offset;
  reply.names ??= new Map();
  let name = reply.names.get(at);
  if (name === undefined) {
    name = readName(m, offset);
    reply.names.set(at, name);
  }
  return name;
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
    const message = await exchangeOnce(ep, signed.message, overTcp ? 'tcp' : 'udp');
    const header = readHeader(message);
    if (header.id !== id || !header.qr)
      throw new DnsTransportError(
        `${ep.host} port ${ep.port} sent an answer that does not match the request`,
      );
    if (header.tc && !overTcp) continue;
    const reply: Reply = { message, header, transport: overTcp ? 'tcp' : 'udp' };
    if (key) {
      const opts = signed.mac ? { requestMac: signed.mac } : {};
      reply.tsig = verifyMessage(message, key, opts, recordsOf(reply));
    }
    return reply;
  }
}
