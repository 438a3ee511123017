/** rfc2136's options (read by rfc2136.ts, listed in the config schema without loading it). */
import type { ProviderOptions } from './options.js';

export const RFC2136_OPTIONS = {
  provider: 'rfc2136',
  options: {
    server: {
      type: 'string',
      default: '127.0.0.1',
      doc: 'Host or IP of the primary server (not a secondary)',
    },
    port: { type: 'number', default: 53, integer: true, min: 1, max: 65535, doc: 'Its DNS port' },
    zone: {
      type: 'string',
      doc: 'The zone; default: named by the signed answer to the read (RRSIG signer or SOA), else found by a signed SOA query for each owner name written to',
    },
    tsig_name: {
      type: 'string',
      doc: 'Name of the TSIG key on the server; default: from the key block in tsig_secret',
    },
    tsig_algorithm: {
      type: 'string',
      doc: 'hmac-sha256 (default) or hmac-sha512; default: from the key block in tsig_secret',
    },
    tsig_secret: {
      type: 'string',
      secret: true,
      doc: 'The base64 TSIG secret, or the key block tsig-keygen (BIND) or keymgr -t (Knot) prints',
      required:
        'rfc2136 needs a TSIG key: "tsig_secret_file: PATH" (chmod 600) or "tsig_secret: ${ENV_VAR}"',
      invalid: '"tsig_secret" must be the base64 secret of the TSIG key',
    },
    timeout_s: {
      type: 'number',
      default: 5,
      above: 0,
      max: 300,
      doc: 'Seconds per DNS exchange',
    },
  },
} as const satisfies ProviderOptions;
