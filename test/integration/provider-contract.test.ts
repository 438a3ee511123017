/** One contract, every provider. Targets live in ./contract/<provider>.ts; fakes of hosted
 *  APIs are named *-api-fake so nobody mistakes them for the service. */
import { describe, expect, it } from 'vitest';
import { labDescribe } from '../lab/lab.js';
import { contractCases, type ContractTarget } from './contract/suite.js';
import { txtCases } from './contract/txt-suite.js';
import { zonefileTarget } from './contract/zonefile.js';
import { execTarget } from './contract/exec.js';
import { rfc2136BindTarget, rfc2136KnotTarget } from './contract/rfc2136.js';
import { route53Target } from './contract/route53.js';
import { cloudflareTarget } from './contract/cloudflare.js';
import { powerdnsTarget } from './contract/powerdns.js';
import { desecTarget } from './contract/desec.js';

const targets: ContractTarget[] = [
  zonefileTarget,
  execTarget,
  rfc2136KnotTarget,
  rfc2136BindTarget,
  route53Target,
  cloudflareTarget,
  powerdnsTarget,
  desecTarget,
];

for (const t of targets) {
  if (t.tools.length) labDescribe(`provider contract: ${t.name}`, t.tools, () => contractCases(t));
  else describe(`provider contract: ${t.name}`, () => contractCases(t));
}

// TXT (ACME DNS-01) for every target whose provider has `txt`; without it the cases skip.
for (const t of targets) {
  if (t.tools.length) labDescribe(`provider contract TXT: ${t.name}`, t.tools, () => txtCases(t));
  else describe(`provider contract TXT: ${t.name}`, () => txtCases(t));
}

// These have it; the cases above must run for them, not skip.
describe('provider contract TXT: the providers that offer it', () => {
  for (const t of [zonefileTarget, execTarget, route53Target, cloudflareTarget, desecTarget]) {
    it(`${t.name} has txt`, async () => {
      const env = await t.setup();
      try {
        expect(env.provider().txt).toBeDefined();
      } finally {
        await env.teardown();
      }
    });
  }
});
