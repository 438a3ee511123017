/** Contract target: the cloudflare provider (Cloudflare's SDK, pointed at the fake with its
 *  `baseURL`) against cloudflare-api-fake, an HTTP fake that follows the v4 API contract;
 *  records are read and seeded in the fake's store directly, not through the API. The
 *  provider runs with `batch_size: 2`, so that a change of a few records already needs several
 *  batches (as one of over 200 does with the default). */
import { createProvider } from '../../../providers/cloudflare.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import { CloudflareApiFake } from '../../fakes/cloudflare-api-fake.js';
import type { ContractTarget } from './suite.js';
import { quoteForSeed, readTxtText } from './txt-suite.js';

const ZONE = 'example.test.';
/** The wrong token that badCredentials() uses; it must not show in any message either. */
const BAD_TOKEN = 'cf-wrong-token-contract-0123456789abcdef';

export const cloudflareTarget: ContractTarget = {
  name: 'cloudflare (cloudflare-api-fake, v4)',
  tools: [],
  async setup() {
    const fake = await CloudflareApiFake.start({ maxPerPage: 5 });
    fake.addZone(ZONE);
    const ctx = {
      instance: 'contract',
      baseDir: process.cwd(),
      optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
    };
    const make = (extra: Record<string, unknown> = {}) =>
      createProvider(
        { api_token: fake.token, base_url: fake.baseUrl, batch_size: 2, ...extra },
        ctx,
      );
    return {
      zone: ZONE,
      provider: () => make(),
      badCredentials: () => make({ api_token: BAD_TOKEN }),
      unknownZone: () => ({
        provider: make(),
        owner: `_25._tcp.mx.nowhere-${process.pid}.invalid.`,
      }),
      async addForeign(owner: string, r: TlsaRecord, ttl: number) {
        fake.addRecord(owner, 'TLSA', {
          ttl,
          data: {
            usage: r.usage,
            selector: r.selector,
            matching_type: r.matching,
            certificate: r.data,
          },
        });
      },
      async addCname(owner: string, target: string) {
        fake.addRecord(owner, 'CNAME', { content: target.replace(/\.$/, '') });
      },
      async readDirect(owner: string) {
        return fake
          .records(owner, 'TLSA')
          .map((r): TlsaRecord => ({ owner, ...parseRdata(r.content) }));
      },
      async readTtls(owner: string) {
        return new Map(
          fake
            .records(owner, 'TLSA')
            .map((r) => [rdataText(parseRdata(r.content)), r.ttl] as const),
        );
      },
      txt: {
        async addForeign(owner: string, value: string, ttl: number) {
          fake.addRecord(owner, 'TXT', { content: quoteForSeed(value), ttl });
        },
        read: async (owner: string) =>
          fake.records(owner, 'TXT').map((r) => readTxtText(r.content)),
      },
      failWritesFrom: (n: number) => fake.failWritesFrom(n),
      throttleOnce: () => fake.throttleOnce(1),
      secrets: [fake.token, BAD_TOKEN],
      teardown: () => fake.stop(),
    };
  },
};
