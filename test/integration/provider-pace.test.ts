/**
 * Provider calls run side by side within the provider's documented rate limit: the cloudflare
 * adapter (1,200 requests per 5 minutes per token) against cloudflare-api-fake behind a proxy
 * that counts the requests in flight and makes each DNS-records request slow.
 */
import { createHash } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProvider } from '../../providers/cloudflare.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { CloudflareApiFake } from '../fakes/cloudflare-api-fake.js';

const ZONES = ['pa.example.test.', 'pb.example.test.', 'pc.example.test.', 'pd.example.test.'];
const SLOW_MS = 1500;

describe('provider calls within the rate limit: cloudflare (cloudflare-api-fake behind a counting proxy)', () => {
  let fake: CloudflareApiFake;
  let proxy: Server;
  let base = '';
  const seen = { inFlight: 0, max: 0, starts: [] as number[] };

  beforeAll(async () => {
    fake = await CloudflareApiFake.start();
    for (const z of ZONES) fake.addZone(z);
    const target = new URL(fake.baseUrl);
    proxy = createServer((req, res) => {
      const records = /\/dns_records/.test(req.url ?? '');
      if (records) {
        seen.inFlight++;
        seen.max = Math.max(seen.max, seen.inFlight);
        seen.starts.push(Date.now());
      }
      const forward = () =>
        req.pipe(
          request(
            {
              host: target.hostname,
              port: target.port,
              path: req.url,
              method: req.method,
              headers: req.headers,
            },
            (up) => {
              res.writeHead(up.statusCode ?? 502, up.headers);
              up.pipe(res);
              up.on('end', () => {
                if (records) seen.inFlight--;
              });
            },
          ),
        );
      if (records) setTimeout(forward, SLOW_MS);
      else forward();
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const port = (proxy.address() as AddressInfo).port;
    base = fake.baseUrl.replace(/\/\/[^/]+/, `//127.0.0.1:${port}`);
  });
  afterAll(async () => {
    await new Promise<void>((r) => proxy.close(() => r()));
    await fake.stop();
  });

  it('listMany across 4 zones reads 2 zones at a time, starting at most one per second', async () => {
    const ctx = {
      instance: 'cf',
      baseDir: process.cwd(),
      optionError: (k: string, m: string) => new Error(`option ${k}: ${m}`),
    };
    const p = createProvider({ api_token: fake.token, base_url: base }, ctx);
    const owners = ZONES.flatMap((z) => [`_25._tcp.mx1.${z}`, `_25._tcp.mx2.${z}`]);
    const rec = (o: string): TlsaRecord => ({
      owner: o,
      usage: 3,
      selector: 1,
      matching: 1,
      data: createHash('sha256').update(o).digest('hex'),
    });
    await p.applyMany!(
      owners.map((o) => ({ owner: o, add: [rec(o)], remove: [] })),
      () => 300,
    );
    seen.max = 0;
    seen.starts.length = 0;
    const listed = await p.listMany!(owners);
    for (const o of owners) expect(listed.get(o), o).toEqual([rec(o)]);
    expect(seen.starts.length).toBe(ZONES.length); // one read per zone
    expect(seen.max).toBe(2); // side by side (one at a time before), never more than 2
    const gaps = seen.starts.slice(1).map((t, i) => t - seen.starts[i]!);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(900);
  }, 60_000);
});
