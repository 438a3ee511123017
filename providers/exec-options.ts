/** exec's options (read by exec.ts, listed in the config schema without loading it). */
import type { ProviderOptions } from './options.js';

const COMMAND_NEEDED =
  'exec needs "command": an argv list such as ["/usr/local/bin/my-dns", "--zone", "example.org"] or a shell command string';

export const EXEC_OPTIONS = {
  provider: 'exec',
  options: {
    command: {
      type: 'command',
      doc: "Your program: an argv list, or a string run by /bin/sh -c; run in the config file's directory",
      required: COMMAND_NEEDED,
      invalid: COMMAND_NEEDED,
    },
    timeout_s: {
      type: 'number',
      default: 30,
      above: 0,
      doc: 'Seconds one run of the program may take',
    },
  },
} as const satisfies ProviderOptions;
