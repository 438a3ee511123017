/** The configuration schema (zod), also exported as JSON Schema for editors (docs/config.schema.json). */
// zod/mini: the same validator core, checks and messages as zod's chained API, but a schema is
// built with fewer intermediate copies (a check list in one step, a description registered on
// the schema itself), and every config command builds this one at start. A namespace import
// lets the bundler (scripts/bundle.mjs) leave what is not used out.
import en from 'zod/v4/locales/en.js';
import * as z from 'zod/mini';
import { providerOptions } from '../../providers/index.js';
import { PROTOCOLS_LIST as PROTOCOLS } from '../tlsa/policy.js';
import { parseServer } from '../verify/resolver.js';
import { providersBlockSchema } from './provider-options.js';

// The English messages (zod's chained API sets them itself; zod/mini leaves the choice to us).
// Only when none is set yet, as zod does.
if (!z.config().localeError) z.config(en());

/** The schema with its description for the JSON Schema (what `.describe()` does, in place). */
function described<T extends z.ZodMiniType>(schema: T, description: string): T {
  z.globalRegistry.add(schema as z.ZodMiniType, { description });
  return schema;
}

const nonEmpty = () => z.string().check(z.minLength(1));

const recordSpec = described(
  z
    .string()
    .check(
      z.regex(
        /^\s*\S+\s+\S+\s+\S+\s*$/,
        'a record spec is "USAGE SELECTOR MATCHING", e.g. "3 1 1" or "DANE-EE SPKI SHA2-256"',
      ),
    ),
  'Usage, selector and matching type, numbers or RFC 7218 mnemonics: "3 1 1", "2 1 1", "DANE-EE SPKI SHA2-512"',
);

const sourceName = described(
  z.optional(
    z
      .string()
      .check(
        z.regex(
          /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
          'a source name is letters, digits, ".", "_" and "-"',
        ),
      ),
  ),
  'Name of the installed copy (install.dir/NAME/current/); default: the lineage or file directory name',
);

const privateKeyFile = () =>
  described(z.optional(nonEmpty()), 'private key of the leaf (checked to match)');

const certificateSource = z.union([
  z.strictObject({
    lineage: described(
      nonEmpty(),
      'certbot lineage directory (…/live/NAME) with fullchain.pem and privkey.pem',
    ),
    name: sourceName,
  }),
  z.strictObject({
    fullchain: described(
      nonEmpty(),
      'PEM file: leaf first, then intermediates, as the server sends them',
    ),
    key: privateKeyFile(),
    name: sourceName,
  }),
  z.strictObject({
    cert: described(nonEmpty(), 'PEM file with the leaf certificate'),
    chain: described(z.optional(nonEmpty()), 'PEM file with the intermediates'),
    key: privateKeyFile(),
    name: sourceName,
  }),
]);

const install = described(
  z.strictObject({
    dir: described(
      nonEmpty(),
      'Where tlsa installs the chain the service reads: DIR/NAME/current/{fullchain,privkey,combined}.pem',
    ),
    reload: described(
      z.optional(nonEmpty()),
      'Shell command run after a new chain is installed, e.g. "postfix reload"',
    ),
    reload_timeout_s: z._default(z.number().check(z.positive()), 60),
    owner: described(
      z.optional(nonEmpty()),
      'User (name or uid) that owns the installed key copies, privkey.pem and combined.pem; default: the user tlsa runs as (root)',
    ),
    group: described(
      z.optional(nonEmpty()),
      "Group (name or gid) of the installed key copies, e.g. the group a server reads keys as; default: tlsa's group",
    ),
    mode: described(
      z.optional(
        z
          .string({
            error:
              'write the mode in quotes, e.g. "0640" (YAML reads 0640 unquoted as the number 640)',
          })
          .check(
            z.regex(
              /^0?[0-7][0-7]0$/,
              'a mode is octal like "0600" or "0640", with nothing for others (the key is secret)',
            ),
          ),
      ),
      'Permissions of the installed key copies, quoted octal; default "0600". Certificates are 0644',
    ),
  }),
  'Staged install: a renewed chain is served only once its records are live',
);

const verify = described(
  z.strictObject({
    resolver: described(
      z._default(
        z.string().check(
          z.minLength(1),
          z.refine(
            (s) => s === 'system' || parseServer(s) !== undefined,
            'the resolver is "system", "IP", "IP:PORT" or "[IPv6]:PORT"',
          ),
        ),
        'system',
      ),
      'Validating resolver "IP", "IP:PORT" or "[IPv6]:PORT"; "system" = first nameserver of /etc/resolv.conf',
    ),
    authoritative_port: described(
      z._default(z.number().check(z.int(), z.gte(1), z.lte(65535)), 53),
      'Port of the authoritative servers (53)',
    ),
    propagation: described(
      z._default(z.boolean(), true),
      'A record is live only once every authoritative server serves it',
    ),
    probe: described(
      z._default(z.boolean(), true),
      'Before removing a record, connect to every address of the host and make sure no served chain still matches it',
    ),
    timeout_s: described(
      z._default(z.number().check(z.positive()), 5),
      "Time allowed for one verification, all its DNS queries (retried within it) and TLS probes together: `tlsa check` of one HOST:PORT, or the engine's look at one owner name's authoritative servers or at one host's live servers before a removal. A resolver or server that does not answer within it is a network failure (exit 3; for check, a failed check)",
    ),
  }),
  'How tlsa verifies DNS and the live servers',
);

const portNumber = z.number().check(z.int(), z.gte(1), z.lte(65535));

const portEntry = z.union([
  portNumber,
  z.strictObject({
    port: portNumber,
    protocol: described(
      z.optional(z.enum(PROTOCOLS)),
      "What this port speaks (default: the service's protocol, else the port's usual one)",
    ),
  }),
]);

/** Each port once; port 25 is always SMTP with STARTTLS (RFC 7672), whatever else is asked. */
function checkPorts(entries: z.infer<typeof portEntry>[], ctx: z.core.$RefinementCtx): void {
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
const acmeDirectory = described(
  z.string().check(
    z.minLength(1),
    z.refine(
      (s) =>
        s === 'letsencrypt' ||
        s === 'letsencrypt-staging' ||
        /^https:\/\/\S+$/.test(s) ||
        /^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?\//.test(s),
      'the ACME directory is "letsencrypt", "letsencrypt-staging" or an https:// URL',
    ),
  ),
  '"letsencrypt", "letsencrypt-staging", or the directory URL of an RFC 8555 CA',
);

const http01 = z.union([
  z.strictObject({
    webroot: described(
      nonEmpty(),
      'Directory served as http://NAME/; tokens go to .well-known/acme-challenge/',
    ),
  }),
  z.strictObject({
    standalone: described(
      z
        .string()
        .check(
          z.regex(
            /^(127\.\d+\.\d+\.\d+|\[::1\]|0\.0\.0\.0|\[::\]|[0-9.]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/,
            'standalone is "IP:PORT" (e.g. "127.0.0.1:8080" behind a proxy, or "0.0.0.0:80")',
          ),
        ),
      'IP:PORT where tlsa answers the HTTP-01 challenge for the duration of the order',
    ),
  }),
]);

/** DNS-01 (RFC 8555 §8.4): TXT records at _acme-challenge.NAME through a provider's TXT
 *  capability, answered only once every authoritative server serves them. */
const dns01 = described(
  z.strictObject({
    provider: described(
      z.optional(nonEmpty()),
      "Name of an entry under providers that writes the TXT records; default: the service's provider",
    ),
    ttl: described(
      z._default(z.number().check(z.int(), z.gte(1), z.lte(86400)), 60),
      'TTL of the _acme-challenge TXT records (default 60)',
    ),
    propagation_timeout_s: described(
      z._default(z.number().check(z.positive(), z.lte(86400)), 300),
      'How long to wait for every authoritative server to serve the TXT records before the order fails (exit 3; default 300)',
    ),
  }),
  'DNS-01: TXT records at _acme-challenge.NAME, written through the provider, removed after the order (also when it fails); needed for wildcard names',
);

/** Wildcards only as the whole first label, and only with DNS-01 (RFC 8555 §7.1.3). */
function checkAcmeNames(
  a: { names?: string[] | undefined; challenge: { http01?: unknown } },
  ctx: z.core.$RefinementCtx,
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

/** Exactly one of http01 and dns01. */
function checkChallenge(
  c: { http01?: unknown; dns01?: unknown },
  ctx: z.core.$RefinementCtx,
): void {
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
}

const acme = described(
  z
    .strictObject({
      directory: acmeDirectory,
      contact: described(
        z.optional(z.array(nonEmpty())),
        'Account contacts, e.g. "mailto:hostmaster@example.org"',
      ),
      key_types: described(
        z._default(z.array(z.enum(ACME_KEY_TYPES)).check(z.minLength(1)), ['ecdsa-p256']),
        'One lineage per key type (RSA and ECDSA side by side): ecdsa-p256 (default), …',
      ),
      names: described(
        z.optional(z.array(nonEmpty()).check(z.minLength(1))),
        'Names in the certificate (SANs); default: the service host. A wildcard ("*.example.org") needs dns01',
      ),
      profile: described(
        z.optional(nonEmpty()),
        "ACME profile (tlsserver, shortlived, classic, …): sent only when the directory's meta.profiles lists it, else exit 2",
      ),
      challenge: described(
        z
          .strictObject({
            http01: z.optional(http01),
            dns01: z.optional(dns01),
          })
          .check(z.superRefine(checkChallenge)),
        'How the CA validates the names: http01 {webroot} or {standalone}, or dns01',
      ),
      eab: described(
        z.optional(
          z.strictObject({
            kid: described(nonEmpty(), 'External Account Binding key id'),
            hmac_key: described(
              nonEmpty(),
              'EAB HMAC key (base64url), a secret: ${ENV} or hmac_key_file: PATH',
            ),
          }),
        ),
        'External Account Binding, for CAs that require it',
      ),
      ca_bundle: described(
        z.optional(nonEmpty()),
        "PEM file of the CA that signs a private ACME server's HTTPS certificate",
      ),
    })
    .check(z.superRefine(checkAcmeNames)),
  'Built-in ACME renewal ("tlsa renew"): lineages in STATE_DIR/acme/SERVICE/KEY_TYPE/ (certbot layout)',
);

/** One entry of services: (exported for the quick check of alike services, check-config.ts). */
export const service = z.strictObject({
  host: described(
    nonEmpty(),
    'The host name clients connect to (for SMTP the MX host, not the mail domain)',
  ),
  ports: described(
    z._default(z.array(portEntry).check(z.minLength(1), z.superRefine(checkPorts)), [25]),
    'TCP ports, each a number or {port, protocol}; each gets _PORT._tcp.HOST',
  ),
  protocol: described(
    z.optional(z.enum(PROTOCOLS)),
    'Default protocol of the ports without their own (else: 25 smtp, 587 submission, 465 smtps, 143 imap, 110 pop3, others tls); smtp, submission and smtps refuse usages 0 and 1',
  ),
  provider: described(nonEmpty(), 'Name of an entry under providers'),
  ttl: described(
    z.optional(z.number().check(z.int(), z.gte(1), z.lte(604800))),
    'TTL of the TLSA RRset (default: top-level ttl)',
  ),
  records: described(
    z.optional(z.array(recordSpec).check(z.minLength(1))),
    'Record kinds to publish (default "3 1 1" and "2 1 1")',
  ),
  issuers: described(
    z.optional(nonEmpty()),
    'Issuer catalog for the 2 x x family: "letsencrypt" (default), "none", or a path to a catalog.json',
  ),
  certificates: described(
    z.array(certificateSource).check(z.minLength(1)),
    'One source per key type served (e.g. an RSA and an ECDSA lineage)',
  ),
  install: z.optional(install),
  reload: described(
    z.optional(nonEmpty()),
    'Without install: command that makes the server load renewed files (run by the hook only when that is safe)',
  ),
  reload_timeout_s: described(
    z._default(z.number().check(z.positive()), 60),
    'Seconds the hook lets "reload" run before it counts as failed',
  ),
  grace_s: described(
    z.optional(z.number().check(z.int(), z.gte(0))),
    'How long a record stays after no chain needs it (default: its TTL)',
  ),
  acme: z.optional(acme),
});

const provider = described(
  z.looseObject({
    type: described(nonEmpty(), 'Provider type, e.g. zonefile'),
  }),
  "A DNS provider instance; other keys are the provider's options, checked by the provider when it is created (docs/providers-options.md)",
);

export const configSchema = z.strictObject({
  state_dir: described(
    z._default(nonEmpty(), '/var/lib/tlsa'),
    'State directory (records published, lock); relative to this file',
  ),
  ttl: described(
    z._default(z.number().check(z.int(), z.gte(1), z.lte(604800)), 3600),
    'Default TLSA RRset TTL in seconds',
  ),
  max_records_per_name: described(
    z._default(z.number().check(z.int(), z.gte(1), z.lte(100)), 12),
    'Cap on records per owner name',
  ),
  providers: described(z.record(z.string(), provider), 'DNS providers by name'),
  services: described(
    z.record(z.string(), service),
    'Services by name: host, ports, certificates, provider',
  ),
  verify: z._default(verify, {
    resolver: 'system',
    authoritative_port: 53,
    propagation: true,
    probe: true,
    timeout_s: 5,
  }),
  daemon: described(
    z._default(
      z.strictObject({
        interval_s: described(
          z._default(z.number().check(z.int(), z.gte(5)), 300),
          'Seconds between runs',
        ),
        schedule: described(
          z.optional(nonEmpty()),
          'Cron expression instead of interval_s, e.g. "*/10 * * * *"',
        ),
      }),
      { interval_s: 300 },
    ),
    'tlsa daemon',
  ),
  monitor: described(
    z._default(
      z.strictObject({
        listen: described(
          z.optional(
            z
              .string()
              .check(
                z.regex(/^(?:\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'HOST:PORT, or [IPv6]:PORT'),
              ),
          ),
          'Where tlsa daemon serves /metrics, /healthz and the status page, e.g. "127.0.0.1:9153" (off when absent)',
        ),
        allow_remote: described(
          z._default(z.boolean(), false),
          'Allow a listen address that is not loopback (no authentication: put a proxy in front)',
        ),
        check_interval_s: described(
          z._default(z.number().check(z.int(), z.gte(5)), 300),
          'Seconds between checks of the served chains against the published records (also after each run)',
        ),
      }),
      { allow_remote: false, check_interval_s: 300 },
    ),
    'tlsa daemon: metrics, health and status page (off unless listen is set)',
  ),
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
