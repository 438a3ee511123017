#!/usr/bin/env node
/** Entry point. Kept tiny: `--version` and `--help` must not load the engine, and every
 *  command module is imported only when it runs (a certbot hook is a cold process). */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { packageRoot } from '../util/package-root.js';
import { fail } from './fail.js';

export const USAGE = `Usage: tlsa [--config FILE] COMMAND [options]

Commands:
  generate --chain FILE [--chain FILE…] --host NAME [--port N…]   print records, no config needed
  plan                 the diff publish would apply (nothing is changed)
  publish              publish new records next to the old ones; retire what is due
  status               published / pending / retiring records, with ages
  retire [--dry-run]   remove the records that are due now (grace over, no server needs them)
  adopt [--dry-run]    take ownership of published records equal to desired ones (and of
                       records carrying tlsa's marker), after a migration or a lost state
  check [HOST[:PORT]…] DNSSEC, every authoritative server, live TLS per address and key type
  hook CLIENT          run by an ACME client after a renewal: certbot, acme.sh or lego
  daemon [--once]      the engine on a schedule: install staged chains, retire, re-check
  doctor postfix [--postfix-dir DIR] [--tlsa-file FILE] [--host MX]   explain TLS/DANE mistakes in Postfix's config

Options:
  -c, --config FILE    configuration (YAML); see config.example.yaml
  --service NAME       only this service (repeatable)
  --json               machine-readable output
  --force              publish although a certificate is expired or not yet valid
  --lock-wait SECONDS  how long to wait for another run holding the lock (default 60)
  --dry-run            retire, adopt: show what would change, change nothing
  --once               daemon: one run, then exit (for systemd timers and cron)
  --log-format F       daemon, hook: text (timestamped lines, default) or json (one object a line)
  --resolver IP[:PORT] check: the validating resolver (default: verify.resolver, else the system's)
  --auth-port N        check: port of the authoritative servers (default 53)
  --timeout SECONDS    check: time allowed per HOST:PORT, DNS and TLS together (default verify.timeout_s, 5)
  --protocol P         check: what HOST:PORT speaks (default: as configured for it, else by port)
  --offline            doctor: ask no DNS question (TLSA from --tlsa-file only)
  -V, --version        print the version
  -h, --help           this help

generate options:
  --chain FILE         fullchain PEM (leaf first); repeat for RSA + ECDSA
  --key FILE           the leaf's private key, checked to match (with one --chain)
  --host NAME          host name (for SMTP the MX host)
  --port N             port (repeatable; default 25)
  --protocol P         smtp|lmtp|imap|pop3|submission|smtps|tls|https (port 25 is always smtp)
  --records "U S M"    record kind (repeatable; default "3 1 1" and "2 1 1")
  --issuers CA         issuer catalog for the 2 x x family: letsencrypt (default), none, or a catalog.json
  --ttl SECONDS        TTL to print (default 3600)
  --explain            add a comment saying why each record is there

Exit codes: 0 ok, 1 check failed, 2 bad input (nothing changed),
            3 provider/network failure (state consistent), 4 waiting needed.
`;

export const OPTIONS = {
  config: { type: 'string', short: 'c' },
  service: { type: 'string', multiple: true },
  json: { type: 'boolean' },
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

export type CliValues = ReturnType<typeof parseCli>['values'];

function parseCli(argv: string[]) {
  return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(argv);
  } catch (e) {
    process.stderr.write(`tlsa: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.version) {
    const pkg = JSON.parse(readFileSync(`${packageRoot()}/package.json`, 'utf8')) as { version: string };
    process.stdout.write(`tlsa ${pkg.version}\n`);
    return 0;
  }
  const command = positionals[0];
  if (values.help || !command) {
    (command || values.help ? process.stdout : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  const takesArgs = new Set(['hook', 'check', 'doctor']);
  if (positionals.length > 1 && !takesArgs.has(command)) {
    process.stderr.write(`tlsa: unexpected argument "${positionals.at(-1)}"\n`);
    return 2;
  }
  const commands: Record<string, () => Promise<{ run: (v: CliValues, args: string[]) => Promise<number> }>> = {
    generate: () => import('./generate.js'),
    plan: () => import('./plan.js'),
    publish: () => import('./publish.js'),
    status: () => import('./status.js'),
    retire: () => import('./retire.js'),
    adopt: () => import('./adopt.js'),
    hook: () => import('./hook.js'),
    daemon: () => import('./daemon.js'),
    check: () => import('./check.js'),
    doctor: () => import('./doctor.js'),
  };
  const load = commands[command];
  if (!load) {
    process.stderr.write(`tlsa: unknown command "${command}" (commands: ${Object.keys(commands).join(', ')})\n`);
    return 2;
  }
  return (await load()).run(values, positionals.slice(1));
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: unknown) => { process.exitCode = fail(e); },
);
