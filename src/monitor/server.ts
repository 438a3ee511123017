/** The daemon's HTTP listener: /metrics (Prometheus text), /healthz and the status page at /.
 *  No authentication, so loopback only unless the configuration says otherwise
 *  (monitor.allow_remote). Read-only: GET and HEAD. */
import { createServer, type Server } from 'node:http';
import { isIP } from 'node:net';
import { InputError } from '../errors.js';
import { exposition, METRICS_CONTENT_TYPE } from './exposition.js';
import { metricFamilies } from './metrics.js';
import type { MonitorModel } from './model.js';
import { renderPage } from './page.js';

export interface ListenAddress {
  host: string;
  port: number;
}

/** "127.0.0.1:9153", "[::1]:9153", "localhost:9153" → host and port. */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || port < 0 || port > 65535)
    throw new InputError(`"${text}" is not HOST:PORT (or [IPv6]:PORT)`);
  return { host: m[1] ?? m[2]!, port };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

/** Refuses an address other hosts can reach unless allowed: the page names every host and
 *  the metrics what is broken where. */
export function checkListen(text: string, allowRemote: boolean): ListenAddress {
  const a = parseListen(text);
  if (!allowRemote && !isLoopback(a.host))
    throw new InputError(
      `${text} is not a loopback address; the metrics and status page have no authentication`,
      undefined,
      undefined,
      'listen on 127.0.0.1 (or ::1) and put a proxy with authentication in front, or set monitor.allow_remote: true',
    );
  return a;
}

export interface MonitorServer {
  /** The address bound (port 0 becomes the one the system chose). */
  address: ListenAddress;
  close(): Promise<void>;
}

/** `snapshot` is asked at every request (it reads the state file): what is shown is never older
 *  than the request. `healthy` says whether the daemon's last run succeeded. */
export async function startMonitor(opts: {
  listen: ListenAddress;
  snapshot: () => MonitorModel;
  healthy: () => { ok: boolean; why: string };
}): Promise<MonitorServer> {
  const expo = exposition();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, {
        'content-type': type,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...(type.startsWith('text/html')
          ? { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" }
          : {}),
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const answer = async () => {
      switch (path) {
        case '/metrics':
          return send(200, METRICS_CONTENT_TYPE, await expo.text(metricFamilies(opts.snapshot())));
        case '/healthz': {
          const h = opts.healthy();
          return send(
            h.ok ? 200 : 503,
            'text/plain; charset=utf-8',
            `${h.ok ? 'ok' : 'failing'}: ${h.why}\n`,
          );
        }
        case '/':
          return send(200, 'text/html; charset=utf-8', renderPage(opts.snapshot()));
        default:
          return send(404, 'text/plain; charset=utf-8', 'not found: try /, /metrics or /healthz\n');
      }
    };
    answer().catch((e: unknown) => {
      if (!res.headersSent)
        send(500, 'text/plain; charset=utf-8', `cannot answer: ${(e as Error).message}\n`);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address();
  const port = typeof bound === 'object' && bound ? bound.port : opts.listen.port;
  return {
    address: { host: opts.listen.host, port },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
