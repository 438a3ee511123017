/** The command line: every option, which commands take which, and the help texts. Imported by
 *  main.ts before any command is loaded, so it imports nothing of the engine; the commands
 *  import only its types. */
import { parseArgs } from 'node:util';

/** Every option of any command, as node:util's parseArgs takes them. */
export const OPTIONS = {
  config: { type: 'string', short: 'c' },
  service: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  all: { type: 'boolean' },
  force: { type: 'boolean' },
  'lock-wait': { type: 'string' },
  version: { type: 'boolean', short: 'V' },
  help: { type: 'boolean', short: 'h' },
  chain: { type: 'string', multiple: true },
  key: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string', multiple: true },
  protocol: { type: 'string' },
  records: { type: 'string', multiple: true },
  issuers: { type: 'string' },
  ttl: { type: 'string' },
  explain: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  once: { type: 'boolean' },
  'log-format': { type: 'string' },
  resolver: { type: 'string' },
  'auth-port': { type: 'string' },
  timeout: { type: 'string' },
  'postfix-dir': { type: 'string' },
  'tlsa-file': { type: 'string' },
  offline: { type: 'boolean' },
} as const;

export type OptionName = keyof typeof OPTIONS;

function parseAll(argv: string[]) {
  return parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
}

export type CliValues = ReturnType<typeof parseAll>['values'];

/** What a string option's value is, as its help shows it. */
const VALUE: Partial<Record<OptionName, string>> = {
  config: 'FILE',
  service: 'NAME',
  'lock-wait': 'SECONDS',
  chain: 'FILE',
  key: 'FILE',
  host: 'NAME',
  port: 'N',
  protocol: 'P',
  records: '"U S M"',
  issuers: 'CA',
  ttl: 'SECONDS',
  resolver: 'IP[:PORT]',
  'auth-port': 'N',
  timeout: 'SECONDS',
  'postfix-dir': 'DIR',
  'tlsa-file': 'FILE',
  'log-format': 'F',
};

const LOG_FORMAT =
  'text (timestamped lines, default) or json (one object a line, for journald or Loki)';

/** Options that every command understands: they never reach a command. */
const GENERAL = ['help', 'version'] as const satisfies readonly OptionName[];

interface CommandSpec {
  /** The synopsis after `tlsa `. */
  synopsis: string;
  /** One line for the overview. */
  summary: string;
  /** Whether positional arguments follow the command name (the command checks them). */
  takesArgs?: boolean;
  /** The options the command reads, each with what it means for this command. */
  options: Partial<Record<OptionName, string>>;
  /** Why an option the command does not take is not the one meant, where that helps. */
  insteadOf?: Partial<Record<OptionName, string>>;
  examples: string[];
}

const CONFIG = 'configuration (YAML; default $TLSA_CONFIG, else /etc/tlsa/config.yaml)';
const SERVICE = 'only this service (repeatable)';
const LOCK_WAIT = 'how long to wait for another run holding the lock (default 60)';

/** How many owner names with nothing to do `plan` and `publish` list one by one without `--all`.
 *  A small setup (a few dozen hosts, a name per port) keeps seeing every record in place; a
 *  fleet's thousands of such names, tens of thousands of `=` lines nobody reads, fold into one
 *  line. */
export const QUIET_OWNERS_LISTED = 50;
const ALL = `list every owner name (without it, more than ${QUIET_OWNERS_LISTED} with nothing to do fold into one line)`;

export const COMMANDS: Record<string, CommandSpec> = {
  generate: {
    synopsis: 'generate --chain FILE [--chain FILE…] --host NAME [--port N…] [options]',
    summary: 'print records for certificate chains, no config needed',
    options: {
      chain: 'fullchain PEM (leaf first); repeat for RSA + ECDSA',
      key: "the leaf's private key, checked to match (with one --chain)",
      host: 'host name (for SMTP the MX host)',
      port: 'port (repeatable; default 25)',
      protocol: 'smtp|lmtp|imap|pop3|submission|smtps|tls|https (port 25 is always smtp)',
      records: 'record kind (repeatable; default "3 1 1" and "2 1 1")',
      issuers:
        'issuer catalog for the 2 x x family: letsencrypt (default), none, or a catalog.json',
      ttl: 'TTL to print (default 3600)',
      explain: 'add a comment saying why each record is there',
      json: 'machine-readable output',
    },
    insteadOf: { config: 'generate needs no configuration: give --chain and --host' },
    examples: [
      'tlsa generate --chain /etc/letsencrypt/live/mx/fullchain.pem --host mx.example.org',
      'tlsa generate --chain rsa.pem --chain ecdsa.pem --host mail.example.org --port 25 --port 465 --explain',
    ],
  },
  plan: {
    synopsis: '[--config FILE] plan [options]',
    summary: 'the diff publish would apply (nothing is changed)',
    options: { config: CONFIG, service: SERVICE, json: 'machine-readable output', all: ALL },
    examples: [
      'tlsa --config /etc/tlsa/config.yaml plan',
      'tlsa plan --service mail --json',
      'tlsa plan --all   (every record in place, also on a large fleet)',
    ],
  },
  publish: {
    synopsis: '[--config FILE] publish [options]',
    summary: 'publish new records next to the old ones; retire what is due',
    options: {
      config: CONFIG,
      service: SERVICE,
      json: 'machine-readable output',
      all: ALL,
      force: 'publish although a certificate is expired or not yet valid',
      'lock-wait': LOCK_WAIT,
    },
    insteadOf: { 'dry-run': '"tlsa plan" shows what publish would change' },
    examples: [
      'tlsa --config /etc/tlsa/config.yaml publish',
      'tlsa publish --service mail --lock-wait 300',
    ],
  },
  renew: {
    synopsis: '[--config FILE] renew [options]',
    summary: 'built-in ACME: renew the due certificates of services with acme:, then publish',
    options: {
      config: CONFIG,
      service: SERVICE,
      force: 'renew even when not due',
      'lock-wait': LOCK_WAIT,
      json: 'machine-readable output',
    },
    examples: ['tlsa renew', 'tlsa renew --service mail --force', 'tlsa renew --json'],
  },
  status: {
    synopsis: '[--config FILE] status [options]',
    summary: 'published / pending / retiring records, with ages',
    options: { config: CONFIG, service: SERVICE, json: 'machine-readable output' },
    examples: ['tlsa status', 'tlsa --config /etc/tlsa/config.yaml status --service mail --json'],
  },
  retire: {
    synopsis: '[--config FILE] retire [--dry-run] [options]',
    summary: 'remove the records that are due now (grace over, no server needs them)',
    options: {
      config: CONFIG,
      service: SERVICE,
      json: 'machine-readable output',
      'dry-run': 'show what would be removed, change nothing',
      'lock-wait': LOCK_WAIT,
    },
    examples: ['tlsa retire --dry-run', 'tlsa --config /etc/tlsa/config.yaml retire'],
  },
  adopt: {
    synopsis: '[--config FILE] adopt [--dry-run] [options]',
    summary:
      "take over published records (equal to desired ones, or with tlsa's marker): after a migration or a lost state",
    options: {
      config: CONFIG,
      service: SERVICE,
      json: 'machine-readable output',
      'dry-run': 'show what would be taken over, change nothing',
      'lock-wait': LOCK_WAIT,
    },
    examples: ['tlsa adopt --dry-run', 'tlsa --config /etc/tlsa/config.yaml adopt'],
  },
  check: {
    synopsis: '[--config FILE] check [HOST[:PORT]…] [options]',
    summary: 'DNSSEC, every authoritative server, live TLS per address and key type',
    takesArgs: true,
    options: {
      config: 'configuration (YAML): its services are checked when no HOST is given',
      json: 'machine-readable output',
      resolver: "the validating resolver (default: verify.resolver, else the system's)",
      'auth-port': 'port of the authoritative servers (default 53)',
      timeout: 'time allowed per HOST:PORT, DNS and TLS together (default verify.timeout_s, 5)',
      protocol: 'what HOST:PORT speaks (default: as configured for it, else by port)',
    },
    examples: [
      'tlsa check',
      'tlsa check mx.example.org',
      'tlsa check mail.example.org:465 --protocol smtps --resolver 127.0.0.1:53',
    ],
  },
  hook: {
    synopsis: '[--config FILE] hook certbot|acme.sh|lego [options]',
    summary: 'run by an ACME client after a renewal: certbot, acme.sh or lego',
    takesArgs: true,
    options: {
      config: CONFIG,
      json: 'machine-readable output',
      force: 'publish although a certificate is expired or not yet valid',
      'lock-wait': 'how long to wait for another run holding the lock (default 120)',
      'log-format': LOG_FORMAT,
    },
    examples: [
      "tlsa --config /etc/tlsa/config.yaml hook certbot   (as certbot's deploy hook: see hooks/certbot-deploy)",
      'tlsa hook lego --lock-wait 300',
    ],
  },
  daemon: {
    synopsis: '[--config FILE] daemon [--once] [options]',
    summary: 'the engine on a schedule: install staged chains, retire, re-check',
    options: {
      config: CONFIG,
      service: SERVICE,
      json: 'one JSON object per run on stdout (JSON lines)',
      once: 'one run, then exit (for systemd timers and cron)',
      force: 'publish although a certificate is expired or not yet valid',
      'lock-wait': LOCK_WAIT,
      'log-format': LOG_FORMAT,
    },
    examples: [
      'tlsa --config /etc/tlsa/config.yaml daemon',
      'tlsa daemon --once   (from a systemd timer or cron)',
    ],
  },
  doctor: {
    synopsis: 'doctor postfix [options]',
    summary: "explain TLS/DANE mistakes in Postfix's config",
    takesArgs: true,
    options: {
      'postfix-dir': "another Postfix instance: postconf -c DIR (-c itself is tlsa's --config)",
      'tlsa-file': 'the published TLSA records as zone-file lines; no DNS query for them',
      host: "the MX name for the owner names _PORT._tcp.NAME (default: each service's myhostname)",
      json: 'machine-readable output',
      resolver: 'the validating resolver (default: the first nameserver of /etc/resolv.conf)',
      offline: 'ask no DNS question (TLSA from --tlsa-file only)',
      timeout: 'per DNS query (default 5)',
    },
    insteadOf: {
      config:
        "doctor postfix takes --postfix-dir DIR for another Postfix instance; -c/--config is tlsa's own configuration",
    },
    examples: [
      'tlsa doctor postfix',
      'tlsa doctor postfix --postfix-dir /etc/postfix-out --host mx.example.org --json',
      'tlsa doctor postfix --offline --tlsa-file records.zone',
    ],
  },
};

const EXIT_CODES = `Exit codes: 0 ok, 1 check failed, 2 bad input (nothing changed),
            3 provider/network failure (state consistent), 4 waiting needed.
`;

function flag(name: OptionName): string {
  const short = (OPTIONS[name] as { short?: string }).short;
  return `${short ? `-${short}, ` : ''}--${name}${VALUE[name] ? ` ${VALUE[name]}` : ''}`;
}

function table(rows: [string, string][]): string {
  const width = Math.max(...rows.map(([a]) => a.length)) + 2;
  return rows.map(([a, b]) => `  ${a.padEnd(width)}${b}`).join('\n');
}

/** `tlsa --help`: every command in one line each. */
export const USAGE = `Usage: tlsa [--config FILE] COMMAND [options]

Commands:
${table(Object.entries(COMMANDS).map(([name, c]) => [name, c.summary]))}

Options:
${table([
  ['-c, --config FILE', 'configuration (YAML); see config.example.yaml'],
  ['-V, --version', 'print the version'],
  ['-h, --help', 'this help'],
])}

"tlsa COMMAND --help" lists the options of COMMAND, with examples.

${EXIT_CODES}`;

/** `tlsa COMMAND --help`. */
export function commandHelp(name: string): string {
  const c = COMMANDS[name]!;
  const rows = (Object.entries(c.options) as [OptionName, string][]).map(
    ([o, doc]): [string, string] => [flag(o), doc],
  );
  rows.push(['-h, --help', 'this help']);
  return `Usage: tlsa ${c.synopsis}

${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.

Options:
${table(rows)}

Examples:
${c.examples.map((e) => `  ${e}`).join('\n')}

${EXIT_CODES}`;
}

export type CommandLine =
  | { kind: 'version' }
  | { kind: 'help'; text: string; code: 0 | 2 }
  | {
      kind: 'error';
      message: string;
      /** Whether `--json` was asked for: the error is then also the JSON envelope on stdout. */
      json?: { command: string };
    }
  | { kind: 'run'; command: string; values: CliValues; args: string[] };

/** `--json` on a command line that did not parse: the word that names the command (or the
 *  first word, for an unknown command), so that a script still gets its envelope. */
function jsonAsked(argv: string[], command?: string): { command: string } | undefined {
  if (!argv.includes('--json')) return undefined;
  return { command: command ?? argv.find((a) => a in COMMANDS) ?? 'tlsa' };
}

const withJson = (json: { command: string } | undefined) => (json ? { json } : {});

/** Reads argv into what main.ts does: an error (exit 2), help, the version, or a command with
 *  only options it takes. */
export function parseCommandLine(argv: string[]): CommandLine {
  let parsed;
  try {
    parsed = parseAll(argv);
  } catch (e) {
    return {
      kind: 'error',
      message: `${(e as Error).message}\n\n${USAGE}`,
      ...withJson(jsonAsked(argv)),
    };
  }
  const { values, positionals, tokens } = parsed;
  if (values.version) return { kind: 'version' };
  const command = positionals[0];
  if (!command) return { kind: 'help', text: USAGE, code: values.help ? 0 : 2 };
  const spec = COMMANDS[command];
  if (!spec)
    return {
      kind: 'error',
      message: `unknown command "${command}" (commands: ${Object.keys(COMMANDS).join(', ')})\n`,
      ...withJson(values.json ? { command } : undefined),
    };
  if (values.help) return { kind: 'help', text: commandHelp(command), code: 0 };
  if (positionals.length > 1 && !spec.takesArgs)
    return {
      kind: 'error',
      message: `unexpected argument "${positionals.at(-1)}"\n`,
      ...withJson(values.json ? { command } : undefined),
    };
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    const name = t.name as OptionName;
    if (name in spec.options || (GENERAL as readonly string[]).includes(name)) continue;
    const takes = Object.keys(spec.options)
      .map((o) => `--${o}`)
      .join(', ');
    const why = spec.insteadOf?.[name] ? `: ${spec.insteadOf[name]}` : '';
    const given = t.rawName === `--${name}` ? t.rawName : `${t.rawName} (--${name})`;
    return {
      kind: 'error',
      message: `${command} does not take ${given}${why}\n  ${command} takes ${takes}; see "tlsa ${command} --help"\n`,
      ...withJson(values.json ? { command } : undefined),
    };
  }
  return { kind: 'run', command, values, args: positionals.slice(1) };
}
