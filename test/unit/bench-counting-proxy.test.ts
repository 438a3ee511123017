/** bench:scale's HTTP request counter (bench/counting-proxy.ts): a byte relay that counts the
 *  requests passing through it by their heads, over one connection or many. */
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { countingHttpProxy, requestHeads } from '../../bench/counting-proxy.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

describe('requestHeads', () => {
  it('counts each request of a stream, skipping bodies by Content-Length, however it is cut', () => {
    const stream = Buffer.from(
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\n' +
        'PATCH /b HTTP/1.1\r\ncontent-length: 21\r\n\r\n{"GET /c HTTP/1.1":1}' +
        'get /d HTTP/1.1\r\nContent-Length: 0\r\n\r\n',
    );
    for (const cut of [1, 2, 7, 13, stream.length]) {
      const seen: string[] = [];
      const feed = requestHeads((m) => seen.push(m));
      for (let i = 0; i < stream.length; i += cut) feed(stream.subarray(i, i + cut));
      expect(seen).toEqual(['GET', 'PATCH', 'GET']);
    }
  });
});

describe('countingHttpProxy', () => {
  it('relays answers as they are and counts GETs as reads, other methods as writes, on kept-alive and closed connections', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        const close = req.url === '/api/close';
        res.writeHead(200, {
          'X-Seen': `${req.method}|${body}`,
          ...(close ? { Connection: 'close' } : {}),
        });
        res.end(`${req.method} ${req.url}`);
      });
    });
    let connections = 0;
    server.on('connection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    });
    const proxy = await countingHttpProxy(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/api`,
    );
    closers.unshift(() => proxy.close());
    expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api$/);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(async () => agent.destroy());
    const send = (method: string, path: string, body?: string) =>
      new Promise<{ text: string; seen: string | undefined }>((resolve, reject) => {
        const req = request(`${proxy.url}${path}`, { method, agent }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve({ text, seen: res.headers['x-seen'] as string | undefined }));
        });
        req.on('error', reject);
        req.end(body);
      });
    expect(await send('GET', '/a')).toEqual({ text: 'GET /api/a', seen: 'GET|' });
    expect(await send('PATCH', '/b', '{"rrsets":[]}')).toEqual({
      text: 'PATCH /api/b',
      seen: 'PATCH|{"rrsets":[]}',
    });
    expect(await send('GET', '/close')).toEqual({ text: 'GET /api/close', seen: 'GET|' });
    expect(await send('GET', '/d')).toEqual({ text: 'GET /api/d', seen: 'GET|' });
    expect(proxy.counts).toEqual({ reads: 3, writes: 1 });
    // The first three on one kept-alive connection, which the server closed after /close.
    expect(connections).toBe(2);
  });
});
