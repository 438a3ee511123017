/** Contract target: the route53 provider (the real AWS SDK, pointed at the fake with its
 *  `endpoint` override and static fake credentials) against route53-api-fake, an HTTP fake that
 *  follows the Route 53 REST/XML contract; records are read and seeded in the fake's store
 *  directly, not through the API. */
import { createProvider } from '../../../providers/route53.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import { Route53ApiFake } from '../../fakes/route53-api-fake.js';
import type { ContractTarget } from './suite.js';
import { quoteForSeed, readTxtText } from './txt-suite.js';

const ZONE = 'example.test.';
/** The wrong secret that badCredentials() uses; it must not show in any message either. */
const BAD_SECRET = 'wrongSecretKey/contract+route53/0123456789ab';

export const route53Target: ContractTarget = {
  name: 'route53 (route53-api-fake, REST/XML)',
  tools: [],
  async setup() {
    const fake = await Route53ApiFake.start({ maxItemsCap: 5 });
    fake.addZone(ZONE);
    const ctx = {
      instance: 'contract',
      baseDir: process.cwd(),
      optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
    };
    const make = (extra: Record<string, unknown> = {}) =>
      createProvider(
        {
          endpoint: fake.url,
          region: 'us-east-1',
          access_key_id: fake.accessKeyId,
          secret_access_key: fake.secretAccessKey,
          ...extra,
        },
        ctx,
      );
    return {
      zone: ZONE,
      provider: () => make(),
      badCredentials: () =>
        make({ access_key_id: 'AKIAWRONGWRONGWRONG1', secret_access_key: BAD_SECRET }),
      unknownZone: () => ({
        provider: make(),
        owner: `_25._tcp.mx.nowhere-${process.pid}.invalid.`,
      }),
      async addForeign(owner: string, r: TlsaRecord, ttl: number) {
        fake.addRecord(owner, 'TLSA', ttl, rdataText(r));
      },
      async addCname(owner: string, target: string) {
        fake.addRecord(owner, 'CNAME', 300, target);
      },
      async readDirect(owner: string) {
        return fake.values(owner, 'TLSA').map((v): TlsaRecord => ({ owner, ...parseRdata(v) }));
      },
      async readTtls(owner: string) {
        const set = fake.recordSet(owner, 'TLSA');
        return new Map(
          (set?.values ?? []).map((v) => [rdataText(parseRdata(v)), set!.ttl] as const),
        );
      },
      txt: {
        // Route 53 escapes are octal; the seeded values here need none.
        async addForeign(owner: string, value: string, ttl: number) {
          fake.addRecord(owner, 'TXT', ttl, quoteForSeed(value));
        },
        read: async (owner: string) => fake.values(owner, 'TXT').map((v) => readTxtText(v, 8)),
      },
      failWritesFrom: (n: number) => fake.failChangesFrom(n),
      throttleOnce: () => fake.throttleOnce(),
      secrets: [fake.secretAccessKey, BAD_SECRET],
      teardown: () => fake.stop(),
    };
  },
};
