/** An HTTP proxy on loopback in front of one upstream (a lab PowerDNS API, an API fake), for
 *  tests and benchmarks that need to see or disturb what a provider sends without touching the
 *  provider: point its URL option at `url`. It counts requests (GET = read, else write), logs
 *  them with their JSON bodies on demand, runs a hook once an answer is in and before the
 *  provider gets it (to play another writer at that moment), and can answer a request itself or
 *  drop its connection (a server gone away) instead of passing it on. */
import { createServer, type IncomingHttpHeaders, request } from 'node:http';

export interface TapCall {
  method: string;
  /** The request path (with the query), less the `strip` prefix given to record(). */
  path: string;
  /** The request body, parsed as JSON (absent without one). */
  body?: unknown;
}

/** What intercept() does with a request: answer it here, or drop its connection unanswered. */
export type TapAction =
  | { status: number; body?: string; headers?: Record<string, string> }
  | { drop: true };

export interface HttpTap {
  /** The upstream URL with the tap's origin in place of the upstream's. */
  readonly url: string;
  /** Every request since the tap started. */
  readonly counts: { reads: number; writes: number };
  /** Log every request from now on into a fresh list (returned), in place of an earlier
   *  one's; `after` runs once the upstream's answer is in, before it is relayed. */
  record(opts?: { strip?: string; after?: (c: TapCall) => Promise<void> }): TapCall[];
  /** No more logging (the list record() returned stays as it is). */
  stopRecording(): void;
  /** Asked for each request before it is passed on: an action, or undefined to pass it on.
   *  Without an argument: pass everything on again. */
  intercept(decide?: (c: TapCall) => Promise<TapAction | undefined> | TapAction | undefined): void;
  close(): Promise<void>;
}

export async function startHttpTap(upstream: string, host = '127.0.0.1'): Promise<HttpTap> {
  const target = new URL(upstream);
  const counts = { reads: 0, writes: 0 };
  let log: { calls: TapCall[]; strip: string; after?: (c: TapCall) => Promise<void> } | undefined;
  let decide: ((c: TapCall) => Promise<TapAction | undefined> | TapAction | undefined) | undefined;

  const server = createServer((req, res) => {
    const method = (req.method ?? 'GET').toUpperCase();
    if (method === 'GET') counts.reads++;
    else counts.writes++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const path = req.url ?? '/';
      const logged = log;
      const call: TapCall = {
        method,
        path: logged && path.startsWith(logged.strip) ? path.slice(logged.strip.length) : path,
        ...(raw.length ? { body: parseJson(raw) } : {}),
      };
      logged?.calls.push(call);
      void (async () => {
        const action = await decide?.(call);
        if (action && 'drop' in action) {
          req.socket.destroy();
          return;
        }
        if (action) {
          res.writeHead(action.status, action.headers ?? {});
          res.end(action.body ?? '');
          return;
        }
        const { connection: _c, 'keep-alive': _k, ...passed } = req.headers;
        const answer = await forward(target, method, path, passed, raw);
        if (logged?.after) await logged.after(call);
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      })().catch(() => req.socket.destroy());
    });
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const { port } = server.address() as { port: number };
  const path = target.pathname.replace(/\/+$/, '');
  return {
    url: `http://${host}:${port}${path}${target.search}`,
    counts,
    record(opts = {}) {
      log = { calls: [], strip: opts.strip ?? '', ...(opts.after ? { after: opts.after } : {}) };
      return log.calls;
    },
    stopRecording() {
      log = undefined;
    },
    intercept(fn) {
      decide = fn;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function parseJson(raw: Buffer): unknown {
  const text = raw.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The request as it came, to the upstream; its whole answer. */
function forward(
  target: URL,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
  body: Buffer,
): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const up = request(
      { host: target.hostname, port: target.port, path, method, headers, agent: false },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () =>
          resolve({
            status: answer.statusCode ?? 502,
            headers: answer.headers,
            body: Buffer.concat(chunks),
          }),
        );
        answer.on('error', reject);
      },
    );
    up.on('error', reject);
    up.end(body);
  });
}
