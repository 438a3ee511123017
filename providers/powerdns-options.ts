/** powerdns's options (read by powerdns.ts, listed in the config schema without loading it). */
import { type ProviderOptions, SETTLE_MS_OPTION } from './options.js';

export const POWERDNS_OPTIONS = {
  provider: 'powerdns',
  options: {
    api_key: {
      type: 'string',
      secret: true,
      doc: "The server's api-key setting (all-or-nothing: narrow the API from outside)",
      required:
        'powerdns needs "api_key" (the server\'s api-key), e.g. api_key: ${PDNS_API_KEY} or api_key_file: PATH',
    },
    url: {
      type: 'string',
      default: 'http://127.0.0.1:8081',
      doc: 'The webserver, without /api/v1',
    },
    server_id: { type: 'string', default: 'localhost', doc: 'The server id in the API path' },
    zone: {
      type: 'string',
      doc: "The zone; default: the server's longest zone that contains the owner name",
    },
    timeout_s: { type: 'number', default: 30, min: 1, doc: 'Seconds per request' },
    settle_ms: SETTLE_MS_OPTION,
  },
} as const satisfies ProviderOptions;
