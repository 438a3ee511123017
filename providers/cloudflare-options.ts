/** cloudflare's options (read by cloudflare.ts, listed in the config schema without loading
 *  the Cloudflare SDK). */
import type { ProviderOptions } from './options.js';

export const CLOUDFLARE_OPTIONS = {
  provider: 'cloudflare',
  options: {
    api_token: {
      type: 'string',
      secret: true,
      doc: 'A scoped API token with Zone → DNS → Edit on the zone (never the Global API Key)',
      required:
        'cloudflare needs "api_token": a token with Zone → DNS → Edit on the zone (write it as ${ENV_VAR} or api_token_file: PATH)',
    },
    zone_id: {
      type: 'string',
      doc: "The zone's 32-character hex id; default: looked up by name (needs Zone → Zone → Read)",
    },
    base_url: {
      type: 'string',
      default: 'https://api.cloudflare.com/client/v4',
      doc: 'API base URL (for tests)',
    },
    batch_size: {
      type: 'number',
      default: 200,
      integer: true,
      min: 1,
      max: 3_500,
      doc: 'Operations per batch: 200 on Free zones, up to 3500 on paid plans',
    },
  },
} as const satisfies ProviderOptions;
