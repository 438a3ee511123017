/** zonefile's options (read by zonefile.ts, listed in the config schema without loading it). */
import type { ProviderOptions } from './options.js';
import { SERIAL_POLICIES } from './zonefile-serial.js';

export const ZONEFILE_OPTIONS = {
  provider: 'zonefile',
  options: {
    path: {
      type: 'string',
      doc: 'The zone file, or a fragment the zone $INCLUDEs; relative to the config file',
      required: 'zonefile needs "path": the zone file to write',
    },
    create: {
      type: 'boolean',
      default: false,
      doc: 'Start a missing file empty (false: a missing file is an error, exit 2)',
    },
    origin: {
      type: 'string',
      doc: 'The zone name, for a file that uses relative names without $ORIGIN (the server supplies it)',
    },
    reload: {
      type: 'string',
      doc: 'Shell command run after the file changed (in the config file\'s directory), e.g. "knotc zone-reload example.org"',
    },
    reload_timeout_s: {
      type: 'number',
      default: 60,
      above: 0,
      doc: 'Seconds the reload command may take',
    },
    serial: {
      type: 'string',
      default: 'keep',
      oneOf: SERIAL_POLICIES,
      doc: 'Bump the SOA serial in "path" on each write, for servers that do not: keep, increment, unixtime or dateserial (YYYYMMDDnn)',
    },
  },
} as const satisfies ProviderOptions;
