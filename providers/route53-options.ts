/** route53's options (read by route53.ts, listed in the config schema without loading the AWS
 *  SDK). Without access_key_id and profile, the standard AWS credential chain applies. */
import type { ProviderOptions } from './options.js';

export const ROUTE53_OPTIONS = {
  provider: 'route53',
  options: {
    hosted_zone_id: {
      type: 'string',
      doc: 'The hosted zone id (Z…); default: found with ListHostedZonesByName',
    },
    region: { type: 'string', default: 'us-east-1', doc: 'AWS region (Route 53 is global)' },
    access_key_id: {
      type: 'string',
      doc: 'AWS access key id, with secret_access_key',
    },
    secret_access_key: { type: 'string', secret: true, doc: 'AWS secret access key' },
    session_token: {
      type: 'string',
      secret: true,
      doc: 'AWS session token of temporary credentials',
    },
    profile: {
      type: 'string',
      doc: 'Profile of ~/.aws/credentials or ~/.aws/config (instead of access keys)',
    },
    endpoint: { type: 'string', doc: 'Another API endpoint URL (LocalStack, a test fake)' },
    wait_timeout_s: {
      type: 'number',
      default: 300,
      above: 0,
      doc: 'Longest wait for a change to be INSYNC',
    },
    poll_interval_s: {
      type: 'number',
      default: 5,
      above: 0,
      doc: 'Seconds between two looks at a pending change',
    },
  },
} as const satisfies ProviderOptions;
