/** Contract target: the desec provider against desec-api-fake (an HTTP fake of deSEC's
 *  documented API on loopback; not deSEC). Seeding and reading back use the fake's own test
 *  hooks, not the provider and not HTTP. */
import { createProvider, type DesecProvider } from '../../../providers/desec.js';
import { parseRdata } from '../../../src/tlsa/presentation.js';
import { rdataText, type TlsaRecord } from '../../../src/tlsa/record.js';
import {
  startDesecApiFake,
  type DesecApiFake,
  type DesecApiFakeOptions,
} from '../../fakes/desec-api-fake.js';
import type { ContractTarget } from './suite.js';
import { quoteForSeed, readTxtText } from './txt-suite.js';

export const DESEC_DOMAIN = 'example.test';

/** The fake's domains for the contract: minimum_ttl 60 so the suite's TTLs (120, 300) are
 *  accepted as they are (deSEC's usual 3600 is exercised in provider-desec.test.ts). */
export const DESEC_FAKE_OPTIONS: DesecApiFakeOptions = {
  domains: [
    { name: DESEC_DOMAIN, minimum_ttl: 60 },
    { name: 'other.test', minimum_ttl: 3600 },
  ],
};

export function desecProvider(
  fake: DesecApiFake,
  options: Record<string, unknown> = {},
  instance = 'contract',
): DesecProvider {
  return createProvider(
    { api_url: fake.url, token: fake.token, settle_ms: 50, ...options },
    { instance, baseDir: '/', optionError: (k, m) => new Error(`${k}: ${m}`) },
  ) as DesecProvider;
}

/** `_25._tcp.mx.example.test.` → `_25._tcp.mx` (relative to DESEC_DOMAIN). */
export const subnameOf = (owner: string, domain = DESEC_DOMAIN) =>
  owner === `${domain}.` ? '' : owner.slice(0, -(domain.length + 2));

export function readFake(fake: DesecApiFake, owner: string, domain = DESEC_DOMAIN): TlsaRecord[] {
  return (fake.rrset(domain, subnameOf(owner, domain), 'TLSA')?.records ?? []).map((r) => ({
    owner,
    ...parseRdata(r),
  }));
}

export const desecTarget: ContractTarget = {
  name: 'desec (desec-api-fake)',
  tools: [],
  async setup() {
    const fake = await startDesecApiFake(DESEC_FAKE_OPTIONS);
    const wrongToken = `${fake.token.slice(0, 10)}WRONGtoken`;
    return {
      zone: `${DESEC_DOMAIN}.`,
      provider: () => desecProvider(fake),
      badCredentials: () => desecProvider(fake, { token: wrongToken }),
      unknownZone: () => ({ provider: desecProvider(fake), owner: '_25._tcp.mx.nowhere.invalid.' }),
      async addForeign(owner: string, record: TlsaRecord, ttl: number) {
        const sub = subnameOf(owner);
        const existing = fake.rrset(DESEC_DOMAIN, sub, 'TLSA')?.records ?? [];
        fake.seed(DESEC_DOMAIN, sub, 'TLSA', ttl, [...existing, rdataText(record)]);
      },
      async addCname(owner: string, target: string) {
        fake.seed(DESEC_DOMAIN, subnameOf(owner), 'CNAME', 3600, [target]);
      },
      readDirect: async (owner: string) => readFake(fake, owner),
      async readTtls(owner: string) {
        const set = fake.rrset(DESEC_DOMAIN, subnameOf(owner), 'TLSA');
        return new Map(
          (set?.records ?? []).map((r) => [rdataText(parseRdata(r)), set!.ttl] as const),
        );
      },
      txt: {
        async addForeign(owner: string, value: string, ttl: number) {
          const sub = subnameOf(owner);
          const existing = fake.rrset(DESEC_DOMAIN, sub, 'TXT')?.records ?? [];
          fake.seed(DESEC_DOMAIN, sub, 'TXT', ttl, [...existing, quoteForSeed(value)]);
        },
        read: async (owner: string) =>
          (fake.rrset(DESEC_DOMAIN, subnameOf(owner), 'TXT')?.records ?? []).map((r) =>
            readTxtText(r),
          ),
      },
      failWritesFrom: (n: number) => fake.failWritesFrom(n),
      throttleOnce: () => fake.throttleOnce(1),
      secrets: [fake.token, wrongToken],
      teardown: () => fake.close(),
    };
  },
};
