/**
 * The rfc2136 provider's reads at fleet size, against a scripted UDP server in this process that
 * holds its answers and sends them back out of order: listMany keeps a window of queries in
 * flight with one server, and each answer, whenever it comes, goes to the owner it was asked for.
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createProvider } from '../../providers/rfc2136.js';
import { signMessage, type TsigKey, verifyMessage } from '../../src/dns/tsig.js';
import { readName, skipName, TYPE } from '../../src/dns/wire.js';

const KEY: TsigKey = {
  name: 'tlsa-test-key.',
  algorithm: 'hmac-sha256',
  secret: Buffer.from('tlsa unit test vector key 256!!!'),
};
const ctx = {
  instance: 'unit',
  baseDir: '/',
  optionError: (k: string, m: string) => new Error(`option ${k}: ${m}`),
};

/** The one TLSA record this server has at `owner`: 3 1 1 and the SHA-256 of the name. */
const dataOf = (owner: string): string => createHash('sha256').update(owner).digest('hex');

/** A signed authoritative answer to `query` with the owner's one TLSA record. */
function answer(query: Buffer, requestMac: Buffer): Buffer {
  const owner = readName(query, 12);
  const questionEnd = skipName(query, 12) + 4;
  const rdata = Buffer.concat([Buffer.from([3, 1, 1]), Buffer.from(dataOf(owner), 'hex')]);
  const rr = Buffer.alloc(12);
  rr.writeUInt16BE(0xc00c, 0); // the owner: a pointer to the question's name
  rr.writeUInt16BE(TYPE.TLSA, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(300, 6);
  rr.writeUInt16BE(rdata.length, 10);
  const head = Buffer.from(query.subarray(0, 12));
  head.writeUInt16BE(0x8400, 2); // QR, AA, NOERROR
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(1, 6);
  head.writeUInt32BE(0, 8);
  const unsigned = Buffer.concat([head, query.subarray(12, questionEnd), rr, rdata]);
  return signMessage(unsigned, KEY, { requestMac }).message;
}

const sockets: Socket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});

/** Holds every answer until `batch` queries wait (or no more will come), then sends the held
 *  answers back last first, so the first query of each batch is answered last. */
async function shufflingServer(total: number, batch: number) {
  const sock = createSocket('udp4');
  sockets.push(sock);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const seen = { queries: 0, mostWaiting: 0, badTsig: 0 };
  let held: { out: Buffer; port: number }[] = [];
  sock.on('message', (q, from) => {
    seen.queries++;
    const v = verifyMessage(q, KEY);
    if (!v.ok) {
      seen.badTsig++;
      return;
    }
    held.push({ out: answer(q, v.tsig.mac), port: from.port });
    seen.mostWaiting = Math.max(seen.mostWaiting, held.length);
    if (held.length >= batch || seen.queries === total) {
      const now = held.reverse();
      held = [];
      for (const h of now) sock.send(h.out, h.port, '127.0.0.1');
    }
  });
  return { port: sock.address().port, seen };
}

describe('rfc2136 reads, many in flight', () => {
  it('listMany keeps 16 queries in flight; answers sent back out of order each reach their own owner', async () => {
    const owners = Array.from({ length: 200 }, (_, i) => `_25._tcp.mx${i}.z${i % 7}.example.test`);
    const server = await shufflingServer(owners.length, 16);
    const p = createProvider(
      {
        port: server.port,
        tsig_name: KEY.name,
        tsig_secret: KEY.secret.toString('base64'),
        timeout_s: 5,
      },
      ctx,
    );
    const read = await p.listMany!(owners);
    // One query per owner (no retry, so no answer was lost or taken for another's), signed.
    expect(server.seen).toEqual({ queries: owners.length, mostWaiting: 16, badTsig: 0 });
    expect(read.size).toBe(owners.length);
    for (const o of owners) {
      const name = `${o}.`;
      expect(read.get(name), name).toEqual([
        { owner: name, usage: 3, selector: 1, matching: 1, data: dataOf(name) },
      ]);
    }
  });
});
