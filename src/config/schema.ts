/** The configuration schema (zod), also exported as JSON Schema for editors (docs/config.schema.json). */
// A namespace import lets the bundler (scripts/bundle.mjs) leave zod's unused locales out.
import * as z from 'zod';
import { providerOptions } from '../../providers/index.js';
import { PROTOCOLS_LIST as PROTOCOLS } from '../tlsa/policy.js';
import { parseServer } from '../verify/resolver.js';
import { providersBlockSchema } from './provider-options.js';

const recordSpec = z
  .string()
  .regex(
    /^\s*\S+\s+\S+\s+\S+\s*$/,
    'a record spec is "USAGE SELECTOR MATCHING", e.g. "3 1 1" or "DANE-EE SPKI SHA2-256"',
  )
  .describe(
    'Usage, selector and matching type, numbers or RFC 7218 mnemonics: "3 1 1", "2 1 1", "DANE-EE SPKI SHA2-512"',
  );

const sourceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'a source name is letters, digits, ".", "_" and "-"')
  .optional()
  .describe(
    'Name of the installed copy (install.dir/NAME/current/); default: the lineage or file directory name',
  );

const certificateSource = z.union([
  z.strictObject({
    lineage: z
      .string()
      .min(1)
      .describe('certbot lineage directory (…/live/NAME) with fullchain.pem and privkey.pem'),
    name: sourceName,
  }),
  z.strictObject({
    fullchain: z
      .string()
      .min(1)
      .describe('PEM file: leaf first, then intermediates, as the server sends them'),
    key: z.string().min(1).optional().describe('private key of the leaf (checked to match)'),
    name: sourceName,
  }),
  z.strictObject({
    cert: z.string().min(1).describe('PEM file with the leaf certificate'),
    chain: z.string().min(1).optional().describe('PEM file with the intermediates'),
    key: z.string().min(1).optional().describe('private key of the leaf (checked to match)'),
    name: sourceName,
  }),
]);

const install = z
  .strictObject({
    dir: z
      .string()
      .min(1)
      .describe(
        'Where tlsa installs the chain the service reads: DIR/NAME/current/{fullchain,privkey,combined}.pem',
      ),
    reload: z
      .string()
      .min(1)
      .optional()
      .describe('Shell command run after a new chain is installed, e.g. "postfix reload"'),
    reload_timeout_s: z.number().positive().default(60),
    owner: z
      .string()
      .min(1)
      .optional()
      .describe(
        'User (name or uid) that owns the installed key copies, privkey.pem and combined.pem; default: the user tlsa runs as (root)',
      ),
    group: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Group (name or gid) of the installed key copies, e.g. the group a server reads keys as; default: tlsa's group",
      ),
    mode: z
      .string({
        error: 'write the mode in quotes, e.g. "0640" (YAML reads 0640 unquoted as the number 640)',
      })
      .regex(
        /^0?[0-7][0-7]0$/,
        'a mode is octal like "0600" or "0640", with nothing for others (the key is secret)',
      )
      .optional()
      .describe(
        'Permissions of the installed key copies, quoted octal; default "0600". Certificates are 0644',
      ),
  })
  .describe('Staged install: a renewed chain is served only once its records are live');

const verify = z
  .strictObject({
    resolver: z
      .string()
      .min(1)
      .refine(
        (s) => s === 'system' || parseServer(s) !== undefined,
        'the resolver is "system", "IP", "IP:PORT" or "[IPv6]:PORT"',
      )
      .default('system')
      .describe(
        'Validating resolver "IP", "IP:PORT" or "[IPv6]:PORT"; "system" = first nameserver of /etc/resolv.conf',
      ),
    authoritative_port: z
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(53)
      .describe('Port of the authoritative servers (53)'),
    propagation: z
      .boolean()
      .default(true)
      .describe('A record is live only once every authoritative server serves it'),
    probe: z
      .boolean()
      .default(true)
      .describe(
        'Before removing a record, connect to every address of the host and make sure no served chain still matches it',
      ),
    timeout_s: z
      .number()
      .positive()
      .default(5)
      .describe(
        "Time allowed for one verification, all its DNS queries (retried within it) and TLS probes together: `tlsa check` of one HOST:PORT, or the engine's look at one owner name's authoritative servers or at one host's live servers before a removal. A resolver or server that does not answer within it is a network failure (exit 3; for check, a failed check)",
      ),
  })
  .describe('How tlsa verifies DNS and the live servers');

const portNumber = z.number().int().min(1).max(65535);

const portEntry = z.union([
  portNumber,
  z.strictObject({
    port: portNumber,
    protocol: z
      .enum(PROTOCOLS)
      .optional()
      .describe(
        "What this port speaks (default: the service's protocol, else the port's usual one)",
      ),
  }),
]);

/** Each port once; port 25 is always SMTP with STARTTLS (RFC 7672), whatever else is asked. */
function checkPorts(entries: z.infer<typeof portEntry>[], ctx: z.RefinementCtx): void {
  const seen = new Set<number>();
  entries.forEach((entry, i) => {
    const port = typeof entry === 'number' ? entry : entry.port;
    if (seen.has(port))
      ctx.addIssue({ code: 'custom', path: [i], message: `port ${port} is listed twice` });
    seen.add(port);
    if (
      typeof entry !== 'number' &&
      port === 25 &&
      entry.protocol !== undefined &&
      entry.protocol !== 'smtp'
    ) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'protocol'],
        message: `port 25 is always smtp (STARTTLS, RFC 7672), not ${entry.protocol}`,
      });
    }
  });
}

export const ACME_KEY_TYPES = [
  'ecdsa-p256',
  'ecdsa-p384',
  'rsa-2048',
  'rsa-3072',
  'rsa-4096',
] as const;

/** `letsencrypt`, `letsencrypt-staging`, or an RFC 8555 directory URL (https; http only on
 *  loopback, for a test CA). */
const acmeDirectory = z
  .string()
  .min(1)
  .refine(
    (s) =>
      s === 'letsencrypt' ||
      s === 'letsencrypt-staging' ||
      /^https:\/\/\S+$/.test(s) ||
      /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//.test(s),
    'the ACME directory is "letsencrypt", "letsencrypt-staging" or an https:// URL',
  )
  .describe('"letsencrypt", "letsencrypt-staging", or the directory URL of an RFC 8555 CA');

const http01 = z.union([
  z.strictObject({
    webroot: z
      .string()
      .min(1)
      .describe('Directory served as http://NAME/; tokens go to .well-known/acme-challenge/'),
  }),
  z.strictObject({
    standalone: z
      .string()
      .regex(
        /^(127\.\d+\.\d+\.\d+|\[::1\]|0\.0\.0\.0|\[::\]|[0-9.]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/,
        'standalone is "IP:PORT" (e.g. "127.0.0.1:8080" behind a proxy, or "0.0.0.0:80")',
      )
      .describe('IP:PORT where tlsa answers the HTTP-01 challenge for the duration of the order'),
  }),
]);

/** DNS-01 (RFC 8555 §8.4): TXT records at _acme-challenge.NAME through a provider's TXT
 *  capability, answered only once every authoritative server serves them. */
const dns01 = z
  .strictObject({
    provider: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Name of an entry under providers that writes the TXT records; default: the service's provider",
      ),
    ttl: z
      .number()
      .int()
      .min(1)
      .max(86400)
      .default(60)
      .describe('TTL of the _acme-challenge TXT records (default 60)'),
    propagation_timeout_s: z
      .number()
      .positive()
      .max(86400)
      .default(300)
      .describe(
        'How long to wait for every authoritative server to serve the TXT records before the order fails (exit 3; default 300)',
      ),
  })
  .describe(
    'DNS-01: TXT records at _acme-challenge.NAME, written through the provider, removed after the order (also when it fails); needed for wildcard names',
  );

/** Wildcards only as the whole first label, and only with DNS-01 (RFC 8555 §7.1.3). */
function checkAcmeNames(
  a: { names?: string[] | undefined; challenge: { http01?: unknown } },
  ctx: z.RefinementCtx,
): void {
  (a.names ?? []).forEach((name, i) => {
    if (!name.includes('*')) return;
    if (!/^\*\.[^*]+$/.test(name))
      ctx.addIssue({
        code: 'custom',
        path: ['names', i],
        message: `"${name}": a wildcard is "*." followed by a name, e.g. "*.example.org"`,
      });
    else if (a.challenge.http01 !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['names', i],
        message: `"${name}" is a wildcard name: the CA validates it only by DNS-01; use challenge: {dns01: {}}`,
      });
  });
}

const acme = z
  .strictObject({
    directory: acmeDirectory,
    contact: z
      .array(z.string().min(1))
      .optional()
      .describe('Account contacts, e.g. "mailto:hostmaster@example.org"'),
    key_types: z
      .array(z.enum(ACME_KEY_TYPES))
      .min(1)
      .default(['ecdsa-p256'])
      .describe('One lineage per key type (RSA and ECDSA side by side): ecdsa-p256 (default), …'),
    names: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        'Names in the certificate (SANs); default: the service host. A wildcard ("*.example.org") needs dns01',
      ),
    profile: z
      .string()
      .min(1)
      .optional()
      .describe(
        "ACME profile (tlsserver, shortlived, classic, …): sent only when the directory's meta.profiles lists it, else exit 2",
      ),
    challenge: z
      .strictObject({
        http01: http01.optional(),
        dns01: dns01.optional(),
      })
      .superRefine((c, ctx) => {
        if (c.http01 !== undefined && c.dns01 !== undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['dns01'],
            message: 'give one challenge: http01 or dns01, not both',
          });
        else if (c.http01 === undefined && c.dns01 === undefined)
          ctx.addIssue({
            code: 'custom',
            message:
              'the challenge is {http01: {webroot: DIR}}, {http01: {standalone: IP:PORT}} or {dns01: {}}',
          });
      })
      .describe('How the CA validates the names: http01 {webroot} or {standalone}, or dns01'),
    eab: z
      .strictObject({
        kid: z.string().min(1).describe('External Account Binding key id'),
        hmac_key: z
          .string()
          .min(1)
          .describe('EAB HMAC key (base64url), a secret: ${ENV} or hmac_key_file: PATH'),
      })
      .optional()
      .describe('External Account Binding, for CAs that require it'),
    ca_bundle: z
      .string()
      .min(1)
      .optional()
      .describe("PEM file of the CA that signs a private ACME server's HTTPS certificate"),
  })
  .superRefine(checkAcmeNames)
  .describe(
    'Built-in ACME renewal ("tlsa renew"): lineages in STATE_DIR/acme/SERVICE/KEY_TYPE/ (certbot layout)',
  );

const service = z.strictObject({
  host: z
    .string()
    .min(1)
    .describe('The host name clients connect to (for SMTP the MX host, not the mail domain)'),
  ports: z
    .array(portEntry)
    .min(1)
    .superRefine(checkPorts)
    .default([25])
    .describe('TCP ports, each a number or {port, protocol}; each gets _PORT._tcp.HOST'),
  protocol: z
    .enum(PROTOCOLS)
    .optional()
    .describe(
      'Default protocol of the ports without their own (else: 25 smtp, 587 submission, 465 smtps, 143 imap, 110 pop3, others tls); smtp, submission and smtps refuse usages 0 and 1',
    ),
  provider: z.string().min(1).describe('Name of an entry under providers'),
  ttl: z
    .number()
    .int()
    .min(1)
    .max(604800)
    .optional()
    .describe('TTL of the TLSA RRset (default: top-level ttl)'),
  records: z
    .array(recordSpec)
    .min(1)
    .optional()
    .describe('Record kinds to publish (default "3 1 1" and "2 1 1")'),
  issuers: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Issuer catalog for the 2 x x family: "letsencrypt" (default), "none", or a path to a catalog.json',
    ),
  certificates: z
    .array(certificateSource)
    .min(1)
    .describe('One source per key type served (e.g. an RSA and an ECDSA lineage)'),
  install: install.optional(),
  reload: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Without install: command that makes the server load renewed files (run by the hook only when that is safe)',
    ),
  reload_timeout_s: z
    .number()
    .positive()
    .default(60)
    .describe('Seconds the hook lets "reload" run before it counts as failed'),
  grace_s: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('How long a record stays after no chain needs it (default: its TTL)'),
  acme: acme.optional(),
});

const provider = z
  .looseObject({
    type: z.string().min(1).describe('Provider type, e.g. zonefile'),
  })
  .describe(
    "A DNS provider instance; other keys are the provider's options, checked by the provider when it is created (docs/providers-options.md)",
  );

export const configSchema = z.strictObject({
  state_dir: z
    .string()
    .min(1)
    .default('/var/lib/tlsa')
    .describe('State directory (records published, lock); relative to this file'),
  ttl: z
    .number()
    .int()
    .min(1)
    .max(604800)
    .default(3600)
    .describe('Default TLSA RRset TTL in seconds'),
  max_records_per_name: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(12)
    .describe('Cap on records per owner name'),
  providers: z.record(z.string(), provider).describe('DNS providers by name'),
  services: z
    .record(z.string(), service)
    .describe('Services by name: host, ports, certificates, provider'),
  verify: verify.default({
    resolver: 'system',
    authoritative_port: 53,
    propagation: true,
    probe: true,
    timeout_s: 5,
  }),
  daemon: z
    .strictObject({
      interval_s: z.number().int().min(5).default(300).describe('Seconds between runs'),
      schedule: z
        .string()
        .min(1)
        .optional()
        .describe('Cron expression instead of interval_s, e.g. "*/10 * * * *"'),
    })
    .default({ interval_s: 300 })
    .describe('tlsa daemon'),
  monitor: z
    .strictObject({
      listen: z
        .string()
        .regex(/^(?:\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'HOST:PORT, or [IPv6]:PORT')
        .optional()
        .describe(
          'Where tlsa daemon serves /metrics, /healthz and the status page, e.g. "127.0.0.1:9153" (off when absent)',
        ),
      allow_remote: z
        .boolean()
        .default(false)
        .describe(
          'Allow a listen address that is not loopback (no authentication: put a proxy in front)',
        ),
      check_interval_s: z
        .number()
        .int()
        .min(5)
        .default(300)
        .describe(
          'Seconds between checks of the served chains against the published records (also after each run)',
        ),
    })
    .default({ allow_remote: false, check_interval_s: 300 })
    .describe('tlsa daemon: metrics, health and status page (off unless listen is set)'),
});

export type RawConfig = z.infer<typeof configSchema>;
export type RawService = RawConfig['services'][string];
export type RawAcme = z.infer<typeof acme>;
export type RawDns01 = z.infer<typeof dns01>;
export type AcmeKeyType = (typeof ACME_KEY_TYPES)[number];
export type RawCertificateSource = z.infer<typeof certificateSource>;

/** The config's JSON Schema. Provider blocks are loose in the zod schema (each provider checks
 *  its own options when created, with its own messages); here they get their declared options. */
export function configJsonSchema(): unknown {
  const schema = z.toJSONSchema(configSchema, { io: 'input' }) as unknown as {
    properties: { providers: { additionalProperties: unknown } };
  };
  schema.properties.providers.additionalProperties = providersBlockSchema(providerOptions());
  return schema;
}
