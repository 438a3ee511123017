/** The configuration schema (zod), also exported as JSON Schema for editors (docs/config.schema.json). */
import { z } from 'zod';
import { PROTOCOLS_LIST as PROTOCOLS } from '../tlsa/policy.js';

const recordSpec = z
  .string()
  .regex(/^\s*\S+\s+\S+\s+\S+\s*$/, 'a record spec is "USAGE SELECTOR MATCHING", e.g. "3 1 1" or "DANE-EE SPKI SHA2-256"')
  .describe('Usage, selector and matching type, numbers or RFC 7218 mnemonics: "3 1 1", "2 1 1", "DANE-EE SPKI SHA2-512"');

const certificateSource = z.union([
  z.strictObject({
    lineage: z.string().min(1).describe('certbot lineage directory (…/live/NAME) with fullchain.pem and privkey.pem'),
  }),
  z.strictObject({
    fullchain: z.string().min(1).describe('PEM file: leaf first, then intermediates, as the server sends them'),
    key: z.string().min(1).optional().describe('private key of the leaf (checked to match)'),
  }),
  z.strictObject({
    cert: z.string().min(1).describe('PEM file with the leaf certificate'),
    chain: z.string().min(1).optional().describe('PEM file with the intermediates'),
    key: z.string().min(1).optional().describe('private key of the leaf (checked to match)'),
  }),
]);


const service = z.strictObject({
  host: z.string().min(1).describe('The host name clients connect to (for SMTP the MX host, not the mail domain)'),
  ports: z.array(z.number().int().min(1).max(65535)).min(1).default([25]).describe('TCP ports; each gets _PORT._tcp.HOST'),
  protocol: z.enum(PROTOCOLS).optional().describe('What the ports speak; smtp (and port 25 always) refuses usages 0 and 1'),
  provider: z.string().min(1).describe('Name of an entry under providers'),
  ttl: z.number().int().min(1).max(604800).optional().describe('TTL of the TLSA RRset (default: top-level ttl)'),
  records: z.array(recordSpec).min(1).optional().describe('Record kinds to publish (default "3 1 1" and "2 1 1")'),
  issuers: z.string().min(1).optional().describe('Issuer catalog for the 2 x x family: "letsencrypt" (default), "none", or a path to a catalog.json'),
  certificates: z.array(certificateSource).min(1).describe('One source per key type served (e.g. an RSA and an ECDSA lineage)'),
});

const provider = z
  .looseObject({
    type: z.string().min(1).describe('Provider type, e.g. zonefile'),
  })
  .describe('A DNS provider instance; other keys are the provider\'s options (see providers/<type>.ts)');

export const configSchema = z.strictObject({
  state_dir: z.string().min(1).default('/var/lib/tlsa').describe('State directory (records published, lock); relative to this file'),
  ttl: z.number().int().min(1).max(604800).default(3600).describe('Default TLSA RRset TTL in seconds'),
  max_records_per_name: z.number().int().min(1).max(100).default(12).describe('Cap on records per owner name'),
  providers: z.record(z.string(), provider).describe('DNS providers by name'),
  services: z.record(z.string(), service).describe('Services by name: host, ports, certificates, provider'),
});

export type RawConfig = z.infer<typeof configSchema>;
export type RawService = RawConfig['services'][string];
export type RawCertificateSource = z.infer<typeof certificateSource>;

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}
