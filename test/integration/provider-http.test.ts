/** The JSON-over-HTTP exchange of the REST providers (providers/http.ts) against loopback
 *  servers made for each case: redirects refused at once, a deadline over the whole answer,
 *  network errors, an answer size cap, compressed answers, keep-alive without holding the
 *  process open, and HTTPS verified against Node's CAs (NODE_EXTRA_CA_CERTS included). */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { exchangeJson, MAX_ANSWER_BYTES, retryTransient, Transient } from '../../providers/http.js';
import { throwawayCert } from '../lab/certs.js';
import { freePort, makeTempDir } from '../lab/lab.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const fail = (m: string) => Object.assign(new Error(m), { name: 'ProviderError' });
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
});

/** A loopback HTTP server; counts requests and connections. */
async function serve(handler: Handler) {
  const seen = { requests: 0, connections: 0 };
  const server = createServer((req, res) => {
    seen.requests++;
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => handler(req, res, body));
  });
  server.on('connection', () => seen.connections++);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const get = (url: string, timeoutMs = 5_000) =>
  exchangeJson(url, { method: 'GET', headers: { 'X-API-Key': 'k' }, timeoutMs }, 'the API', fail);

describe('exchangeJson (node:http, loopback)', () => {
  it('sends the JSON body with Accept and Content-Type; reads the answer as UTF-8 text and JSON, headers by any case', async () => {
    let got: { headers: IncomingMessage['headers']; body: string; method?: string } | undefined;
    const { url } = await serve((req, res, body) => {
      got = { headers: req.headers, body, ...(req.method ? { method: req.method } : {}) };
      res.writeHead(201, 'Made', { 'X-PDNS-New-Serial': '2026120201', 'Content-Type': 'x' });
      res.end(JSON.stringify({ name: 'grüße ✓' }));
    });
    const a = await exchangeJson(
      `${url}/zones/x`,
      { method: 'PATCH', headers: { 'X-API-Key': 'k' }, body: { a: 'é' }, timeoutMs: 5_000 },
      'the API',
      fail,
    );
    expect(got?.method).toBe('PATCH');
    expect(got?.headers.accept).toBe('application/json');
    expect(got?.headers['content-type']).toBe('application/json');
    expect(got?.headers['x-api-key']).toBe('k');
    expect(JSON.parse(got!.body)).toEqual({ a: 'é' });
    expect(a.res.status).toBe(201);
    expect(a.res.ok).toBe(true);
    expect(a.res.statusText).toBe('Made');
    expect(a.res.headers.get('x-pdns-new-serial')).toBe('2026120201');
    expect(a.res.headers.get('X-PDNS-New-Serial')).toBe('2026120201');
    expect(a.res.headers.get('retry-after')).toBeNull();
    expect(a.json).toEqual({ name: 'grüße ✓' });

    const plain = await serve((req, res) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(req.method === 'GET' ? 'Internal Server Error' : '');
    });
    const b = await get(plain.url);
    expect(b.res.ok).toBe(false);
    expect(b.text).toBe('Internal Server Error');
    expect(b.json).toBeUndefined();
  });

  it('decompresses a gzip answer', async () => {
    const { url } = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip' });
      res.end(gzipSync(JSON.stringify([1, 2, 3])));
    });
    expect((await get(url)).json).toEqual([1, 2, 3]);
    // Cut off in the middle: said at once, not after the timeout.
    const cut = await serve((req, res) => {
      res.writeHead(200, { 'Content-Encoding': 'gzip', 'Content-Length': '5000' });
      res.write(
        gzipSync(JSON.stringify(Array.from({ length: 2000 }, (_, i) => i))).subarray(0, 100),
      );
      setTimeout(() => req.socket.destroy(), 50);
    });
    const err = await errorOf(get(cut.url, 20_000));
    expect(err).toBeInstanceOf(Transient);
    expect(err!.message).toBe('cannot reach the API: ECONNRESET');
  });

  it('never follows a redirect: fails at once (no retries) naming where it points, the request never reaching that address', async () => {
    const elsewhere = await serve((_req, res) => res.end('{}'));
    const { url, seen } = await serve((_req, res) => {
      res.writeHead(301, { Location: `${elsewhere.url}/api/v1?token=secret` });
      res.end();
    });
    const err = await errorOf(
      retryTransient(
        () => get(`${url}/api/v1/servers`),
        { attempts: 5, baseDelayMs: 1, maxDelayMs: 1 },
        fail,
      ),
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toBe(
      `the API: HTTP 301, a redirect to ${elsewhere.url}/api/v1; not followed (the request carries credentials): set the API URL to where the server points`,
    );
    expect(seen.requests).toBe(1);
    expect(elsewhere.seen.requests).toBe(0);
  });

  it('no answer within the timeout, also when the body stalls after the headers: Transient', async () => {
    const silent = await serve(() => undefined);
    const e1 = await errorOf(get(silent.url, 300));
    expect(e1).toBeInstanceOf(Transient);
    expect(e1!.message).toBe('cannot reach the API: no answer within 0.3 s');
    const stalling = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('[1,');
    });
    const e2 = await errorOf(get(stalling.url, 300));
    expect(e2).toBeInstanceOf(Transient);
    expect(e2!.message).toBe('cannot reach the API: no answer within 0.3 s');
  });

  it('network errors are Transient, naming the error code', async () => {
    const port = await freePort();
    const e = await errorOf(get(`http://127.0.0.1:${port}/x`));
    expect(e).toBeInstanceOf(Transient);
    expect(e!.message).toBe('cannot reach the API: ECONNREFUSED');
    const cut = await serve((req) => req.socket.destroy());
    const e2 = await errorOf(get(cut.url));
    expect(e2).toBeInstanceOf(Transient);
    expect(e2!.message).toBe('cannot reach the API: ECONNRESET');
  });

  it(`refuses an answer over ${MAX_ANSWER_BYTES >> 20} MiB instead of reading on`, async () => {
    const chunk = Buffer.alloc(1 << 20, 0x20);
    const { url } = await serve((_req, res) => {
      res.writeHead(200);
      let sent = 0;
      const more = () => {
        while (sent <= MAX_ANSWER_BYTES) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      res.on('close', () => {
        sent = Number.POSITIVE_INFINITY;
      });
      more();
    });
    const err = await errorOf(get(url, 30_000));
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toBe('the API: the answer is larger than 64 MiB; not read');
  }, 60_000);

  it('keeps the connection for the next request where the server allows it', async () => {
    const { url, seen } = await serve((_req, res) => res.end('{}'));
    await get(url);
    await get(url);
    await get(url);
    expect(seen.requests).toBe(3);
    expect(seen.connections).toBe(1);
  });
});

const built = join(ROOT, 'dist/providers/http.js');
describe.skipIf(!existsSync(built))('exchangeJson in a process of its own (dist)', () => {
  /** Runs `code` (an ES module; `exchangeJson` and `URL_` are given) in a fresh node. */
  function run(code: string, url: string, env: NodeJS.ProcessEnv = {}) {
    const script = `import { exchangeJson } from ${JSON.stringify(built)};
const URL_ = ${JSON.stringify(url)};
const fail = (m) => new Error(m);
${code}`;
    return new Promise<{ code: number | null; out: string; ms: number }>((resolve) => {
      const started = Date.now();
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        out += d.toString();
      });
      child.on('close', (c) => resolve({ code: c, out, ms: Date.now() - started }));
    });
  }

  it('exits as soon as its work is done although the server keeps the connection open', async () => {
    const { url, seen } = await serve((_req, res) => res.end('{"ok":true}'));
    const r = await run(
      `const a = await exchangeJson(URL_, { method: 'GET', headers: {}, timeoutMs: 30000 }, 'x', fail);
console.log(JSON.stringify(a.json));`,
      url,
    );
    expect(r.out.trim()).toBe('{"ok":true}');
    expect(r.code).toBe(0);
    expect(seen.connections).toBe(1);
    // The server would hold the idle connection for 60 s.
    expect(r.ms).toBeLessThan(10_000);
  }, 30_000);

  it('HTTPS: a certificate not signed by a trusted CA is refused; trusted through NODE_EXTRA_CA_CERTS it is accepted', async () => {
    const dir = makeTempDir('http-tls');
    try {
      const { keyPath: key, fullchainPath: cert } = throwawayCert(dir, '127.0.0.1', 'IP:127.0.0.1');
      const server = createHttpsServer(
        { key: readFileSync(key), cert: readFileSync(cert) },
        (_req, res) => res.end('{"tls":true}'),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      closers.push(async () => {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      });
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const call = `try {
  const a = await exchangeJson(URL_, { method: 'GET', headers: {}, timeoutMs: 10000 }, 'x', fail);
  console.log(JSON.stringify(a.json));
} catch (e) { console.log(e.constructor.name, e.message); }`;
      const refused = await run(call, url);
      expect(refused.out).toMatch(
        /^Transient cannot reach x: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)/,
      );
      const trusted = await run(call, url, { NODE_EXTRA_CA_CERTS: cert });
      expect(trusted.out.trim()).toBe('{"tls":true}');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
