import { describe } from 'vitest';
import { contractCases } from './contract/suite.js';
import { cloudflareTarget } from './contract/cloudflare.js';
describe(`provider contract: ${cloudflareTarget.name}`, () => contractCases(cloudflareTarget));
