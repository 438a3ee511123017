/** desec's options (read by desec.ts, listed in the config schema without loading it). */
import { type ProviderOptions, SETTLE_MS_OPTION } from './options.js';

export const DESEC_OPTIONS = {
  provider: 'desec',
  options: {
    token: {
      type: 'string',
      secret: true,
      doc: 'A deSEC API token (write access can be narrowed with token scoping policies)',
      required:
        'desec needs "token" (a deSEC API token), e.g. token: ${DESEC_TOKEN} or token_file: PATH',
    },
    domain: {
      type: 'string',
      doc: "The domain; default: the account's domain responsible for the owner name",
    },
    api_url: { type: 'string', default: 'https://desec.io/api/v1', doc: 'API base URL' },
    timeout_s: { type: 'number', default: 30, min: 1, doc: 'Seconds per request' },
    settle_ms: SETTLE_MS_OPTION,
    max_wait_s: {
      type: 'number',
      default: 120,
      min: 0,
      doc: 'Longest Retry-After waited out; a longer one fails the run',
    },
  },
} as const satisfies ProviderOptions;
