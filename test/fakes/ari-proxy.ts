/**
 * ari-proxy: a test-only HTTPS proxy in front of the lab's real pebble (2.4, which has neither
 * ARI nor profiles). It adds `renewalInfo` (RFC 9773) and, when asked, `meta.profiles` to
 * pebble's directory, answers renewalInfo from a schedule the test sets (with Retry-After),
 * records every request and the decoded payload of every newOrder (to assert `replaces` and
 * `profile`), injects faults on demand (badNonce, rateLimited, alreadyReplaced, a chain for
 * another key), and passes everything else through to pebble unchanged.
 *
 * Facts this relies on (checked against Debian's pebble 2.4):
 *  - pebble builds every URL it hands out (directory, orders, Location) and checks the JWS
 *    `url` against the request's Host header, so forwarding the client's Host keeps clients
 *    talking through the proxy without touching signed bodies;
 *  - pebble ignores unknown newOrder fields (`profile`, `replaces`), so the payload passes on
 *    as signed (a JWS cannot be changed without breaking its signature).
 * The proxy serves pebble's own TLS certificate, so clients trust it with pebble's tlsCaPath.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface RenewalInfoAnswer {
  /** HTTP status (default 200). */
  status?: number;
  window?: { start: Date; end: Date };
  explanationURL?: string;
  /** Retry-After header value (seconds), if any. */
  retryAfterS?: number;
  /** A raw body instead of the JSON made from `window` (for bad answers). */
  body?: string;
}

export type ProxyFault =
  /** the next newOrder is refused once with badNonce (a client retries it) */
  | { kind: 'badNonce' }
  /** every newOrder is refused with rateLimited (429) and this Retry-After */
  | { kind: 'rateLimited'; retryAfterS: number; detail?: string }
  /** the next newOrder carrying `replaces` is refused with alreadyReplaced (409) */
  | { kind: 'alreadyReplaced' }
  /** the next certificate download returns this PEM chain instead of pebble's */
  | { kind: 'foreignChain'; pem: string };

export interface AriProxy {
  readonly directoryUrl: string;
  readonly origin: string;
  /** Every request that reached the proxy: "METHOD /path". */
  readonly requests: string[];
  /** Decoded payloads of every newOrder POST, in order (refused ones included). */
  readonly newOrders: Record<string, unknown>[];
  /** ARI ids asked for, in order. */
  readonly renewalInfoAsked: string[];
  /** What renewalInfo answers for this ARI id, or (without one) for every other id. */
  setRenewalInfo(answer: RenewalInfoAnswer | undefined, ariId?: string): void;
  /** Offer these profiles in meta.profiles (undefined: none). */
  setProfiles(profiles: Record<string, string> | undefined): void;
  /** Advertise renewalInfo in the directory (default true). */
  setAri(on: boolean): void;
  fault(f: ProxyFault | undefined): void;
  stop(): Promise<void>;
}

export interface AriProxyOptions {
  upstreamHost: string;
  upstreamPort: number;
  /** pebble's dir: its tls-cert.pem / tls-key.pem are served by the proxy too. */
  pebbleDir: string;
  tlsCaPath: string;
}

const PROBLEM = 'urn:ietf:params:acme:error:';

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function jwsPayload(body: Buffer): Record<string, unknown> {
  try {
    const jws = JSON.parse(body.toString('utf8')) as { payload?: string };
    const text = Buffer.from(jws.payload ?? '', 'base64url').toString('utf8');
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function problem(
  res: ServerResponse,
  status: number,
  type: string,
  detail: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/problem+json', ...headers });
  res.end(JSON.stringify({ type: `${PROBLEM}${type}`, detail, status }));
}

export async function startAriProxy(opts: AriProxyOptions): Promise<AriProxy> {
  const ca = readFileSync(opts.tlsCaPath);
  const requests: string[] = [];
  const newOrders: Record<string, unknown>[] = [];
  const renewalInfoAsked: string[] = [];
  const answers = new Map<string, RenewalInfoAnswer>();
  let fallback: RenewalInfoAnswer | undefined;
  let profiles: Record<string, string> | undefined;
  let ari = true;
  let fault: ProxyFault | undefined;
  let origin = '';

  const upstream = (
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const out = request(
        {
          host: opts.upstreamHost,
          port: opts.upstreamPort,
          method: req.method,
          path: req.url,
          // The client's Host: pebble makes its URLs (and checks the JWS url) from it.
          headers: { ...req.headers },
          ca,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 502,
              headers: res.headers,
              body: Buffer.concat(parts),
            }),
          );
          res.on('error', reject);
        },
      );
      out.on('error', reject);
      out.end(body);
    });

  const pass = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const up = await upstream(req, body);
    const headers = { ...up.headers };
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    delete headers.connection;
    let out = up.body;
    if (req.url?.startsWith('/certZ/') && fault?.kind === 'foreignChain' && up.status === 200) {
      out = Buffer.from(fault.pem);
      fault = undefined;
    }
    res.writeHead(up.status, headers);
    res.end(out);
  };

  const directory = async (req: IncomingMessage, res: ServerResponse) => {
    const up = await upstream(req, Buffer.alloc(0));
    const upstreamOrigin = `https://${opts.upstreamHost}:${opts.upstreamPort}`;
    const dir = JSON.parse(up.body.toString('utf8').split(upstreamOrigin).join(origin)) as {
      meta?: Record<string, unknown>;
      renewalInfo?: string;
    };
    if (ari) dir.renewalInfo = `${origin}/renewal-info`;
    if (profiles) dir.meta = { ...dir.meta, profiles };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(dir, null, 2));
  };

  const renewalInfo = (id: string, res: ServerResponse) => {
    renewalInfoAsked.push(id);
    const a = answers.get(id) ?? fallback;
    if (!a) return problem(res, 404, 'malformed', 'no renewal information for this certificate');
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (a.retryAfterS !== undefined) headers['retry-after'] = String(a.retryAfterS);
    res.writeHead(a.status ?? 200, headers);
    res.end(
      a.body ??
        JSON.stringify({
          suggestedWindow: {
            start: a.window?.start.toISOString(),
            end: a.window?.end.toISOString(),
          },
          ...(a.explanationURL ? { explanationURL: a.explanationURL } : {}),
        }),
    );
  };

  const newOrder = async (req: IncomingMessage, res: ServerResponse, body: Buffer) => {
    const payload = jwsPayload(body);
    newOrders.push(payload);
    if (fault?.kind === 'badNonce') {
      fault = undefined;
      return problem(res, 400, 'badNonce', 'JWS has an invalid anti-replay nonce (injected)');
    }
    if (fault?.kind === 'rateLimited')
      return problem(
        res,
        429,
        'rateLimited',
        fault.detail ?? 'too many new orders recently (injected)',
        { 'retry-after': String(fault.retryAfterS) },
      );
    if (fault?.kind === 'alreadyReplaced' && payload.replaces !== undefined) {
      fault = undefined;
      return problem(
        res,
        409,
        'alreadyReplaced',
        'the certificate was already replaced (injected)',
      );
    }
    await pass(req, res, body);
  };

  const server: Server = createServer(
    {
      cert: readFileSync(join(opts.pebbleDir, 'tls-cert.pem')),
      key: readFileSync(join(opts.pebbleDir, 'tls-key.pem')),
    },
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      requests.push(`${req.method} ${path}`);
      void (async () => {
        const body = await readBody(req);
        if (req.method === 'GET' && path === '/dir') return directory(req, res);
        if (req.method === 'GET' && path.startsWith('/renewal-info/'))
          return renewalInfo(path.slice('/renewal-info/'.length), res);
        if (req.method === 'POST' && path === '/order-plz') return newOrder(req, res, body);
        return pass(req, res, body);
      })().catch((e: Error) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`ari-proxy: ${e.message}`);
      });
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  origin = `https://127.0.0.1:${port}`;
  return {
    origin,
    directoryUrl: `${origin}/dir`,
    requests,
    newOrders,
    renewalInfoAsked,
    setRenewalInfo(answer, ariId) {
      if (ariId === undefined) fallback = answer;
      else if (answer) answers.set(ariId, answer);
      else answers.delete(ariId);
    },
    setProfiles(p) {
      profiles = p;
    },
    setAri(on) {
      ari = on;
    },
    fault(f) {
      fault = f;
    },
    stop: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
