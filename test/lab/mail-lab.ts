/**
 * The mail lab that the e2e tests and bench:rollover share, all on loopback:
 *
 *   pebble (ACME CA) ──HTTP-01──▶ certbot ──deploy hook──▶ tlsa ──▶ a signed zone on Knot (tlsa's
 *   zonefile provider writes an $INCLUDEd fragment) or PowerDNS (its API) ◀── unbound
 *   (validating; 127.0.0.1:P, and 127.0.53.x:53 for posttls-finger) ◀── posttls-finger
 *   tlsa's staged install (installDir/mx/current/combined.pem) ──▶ Postfix (second instance).
 *
 * Postfix starts first: its port names the TLSA owner. It starts with a throwaway certificate
 * and is then pointed at tlsa's installed copy, which the first issuance creates.
 * Every server is stopped by its pid in close().
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { makeCertbot, type Certbot } from './certbot.js';
import { throwawayCert } from './certs.js';
import { makeDaneFinger, type DaneFinger } from './dane-finger.js';
import { query, rdataOf } from './dig.js';
import {
  freeLoopback53,
  makeTempDir,
  shellQuote,
  stopAll,
  toolPath,
  type ToolRequirement,
} from './lab.js';
import { startPebble, type PebbleServer } from './pebble.js';
import {
  type Authoritative,
  type AuthoritativeKind,
  knotAuthoritative,
  MAIL_ZONE,
  powerDnsAuthoritative,
} from './mail-zone.js';
import { POWERDNS_TOOLS } from './powerdns.js';
import { startPostfix, type PostfixServer } from './postfix.js';
import { runAsync, type Run, type RunOptions } from './run.js';
import { startUnbound, type UnboundServer } from './unbound.js';

export { MAIL_ZONE, type Authoritative, type AuthoritativeKind };
export const MAIL_HOST = 'mx.example.test';

const COMMON_TOOLS: readonly ToolRequirement[] = [
  ['kdig', 'knot-dnsutils'],
  ['unbound', 'unbound'],
  ['unbound-control', 'unbound'],
  ['unbound-checkconf', 'unbound'],
  ['pebble', 'pebble'],
  ['certbot', 'certbot'],
  ['postfix', 'postfix'],
  ['postconf', 'postfix'],
  ['posttls-finger', 'postfix'],
  ['setsid', 'util-linux'],
  ['unshare', 'util-linux'],
  ['openssl', 'openssl'],
];
const KNOT_TOOLS: readonly ToolRequirement[] = [
  ['knotd', 'knot'],
  ['knotc', 'knot'],
  ['keymgr', 'knot'],
];

/** What the mail lab needs installed (for labDescribe). */
export function mailLabTools(kind: AuthoritativeKind = 'knot'): ToolRequirement[] {
  return [...COMMON_TOOLS, ...(kind === 'knot' ? KNOT_TOOLS : POWERDNS_TOOLS)];
}

export interface MailLabOptions {
  /** Names the lab's temp dir. */
  name: string;
  /** Default knot. */
  authoritative?: AuthoritativeKind;
  /** The zone fragment's first text (Knot), given the TLSA owner name. */
  fragment?: (owner: string) => string;
  /** unbound's cache-max-ttl (default 30). */
  cacheMaxTtl?: number;
  /** A 127.0.53.x:53 listener on unbound and a posttls-finger client through it (default true). */
  finger?: boolean;
}

/** The lines of tlsa's config that differ between the tests; the rest is the lab's. */
export interface MailConfig {
  ttl: number;
  /** Top-level lines after `ttl:` (e.g. `max_records_per_name: 3`, a `daemon:` block). */
  top?: string[];
  /** The provider's reload command (Knot; default: knotc zone-reload). */
  providerReload?: string;
  /** The service's lines after `ttl:` (records, issuers, certificates, install), indented 4. */
  service: string[];
}

export interface MailLab {
  readonly dir: string;
  /** Postfix's STARTTLS port, and the TLSA owner name it makes: _PORT._tcp.mx.example.test. */
  readonly port: number;
  readonly owner: string;
  readonly stateDir: string;
  readonly installDir: string;
  readonly cfgPath: string;
  /** The Knot zone fragment tlsa's zonefile provider writes. */
  readonly fragmentPath: string;
  readonly postfix: PostfixServer;
  /** `postfix -c DIR reload`: the install's reload command. */
  readonly postfixReload: string;
  readonly auth: Authoritative;
  readonly unbound: UnboundServer;
  /** The 127.0.53.x address unbound also listens on (port 53), when `finger`. */
  readonly glibcResolver: string | undefined;
  readonly finger: DaneFinger | undefined;
  readonly pebble: PebbleServer;
  readonly certbot: Certbot;
  /** The repo's hooks/certbot-deploy. */
  readonly hook: string;
  /** Write tlsa's config to cfgPath. */
  writeConfig(c: MailConfig): void;
  /** `certificates:` lines for certbot lineages, and `install:` lines (reload default
   *  postfixReload), indented for MailConfig.service. */
  lineageLines(names: string[]): string[];
  installLines(reload?: string): string[];
  /** The usual service: issuers none (pebble's intermediates are in no catalog), lineage mx,
   *  staged install reloading Postfix. */
  stagedService(): string[];
  /** The zone fragment's text, and the RDATA of its lines tlsa manages (lower case, sorted). */
  fragment(): string;
  managedInFragment(): string[];
  /** `tlsa --config cfgPath ARGS` (built CLI, TLSA_DEBUG=1). */
  tlsa(args: string[], opts?: RunOptions): Promise<Run>;
  /** The TLSA RDATA (lower case, sorted) and the RRset's TTL the authoritative server serves
   *  at the owner (query timeout `timeoutS`, default 1). */
  served(timeoutS?: number): Promise<{ rdata: string[]; ttl: number }>;
  /** Stop every server by its pid and remove the temp dirs. */
  close(): Promise<void>;
}

/** The repository root, from test/lab (vitest) or dist/test/lab (a bench run with node). */
function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json'))) {
    const up = dirname(d);
    if (up === d) throw new Error('lab: no package.json above test/lab');
    d = up;
  }
  return d;
}

export async function startMailLab(opts: MailLabOptions): Promise<MailLab> {
  const root = repoRoot();
  const cli = join(root, 'dist', 'src', 'cli', 'main.cjs');
  const dir = makeTempDir(opts.name);
  chmodSync(dir, 0o755); // like the Postfix harness's dirs: its unprivileged processes may look here
  const stateDir = join(dir, 'state');
  const installDir = join(dir, 'installed');
  const cfgPath = join(dir, 'tlsa.yaml');
  const fragmentPath = join(dir, 'tlsa.fragment');

  const postfix = await startPostfix({
    chains: [throwawayCert(dir, MAIL_HOST)],
    hostname: MAIL_HOST,
  });
  const port = postfix.smtpPort;
  const owner = `_${port}._tcp.${MAIL_HOST}.`;
  execFileSync(toolPath('postconf', 'postfix'), [
    '-c',
    postfix.configDir,
    '-e',
    `smtpd_tls_chain_files = ${join(installDir, 'mx', 'current', 'combined.pem')}`,
  ]);
  const postfixReload = `${shellQuote(toolPath('postfix', 'postfix'))} -c ${shellQuote(postfix.configDir)} reload`;

  writeFileSync(fragmentPath, opts.fragment?.(owner) ?? '');
  const auth =
    opts.authoritative === 'powerdns'
      ? await powerDnsAuthoritative()
      : await knotAuthoritative(dir, fragmentPath);
  const glibcResolver = opts.finger === false ? undefined : await freeLoopback53();
  const unbound = await startUnbound({
    stubs: [{ zone: MAIL_ZONE, port: auth.port }],
    trustAnchors: auth.dsRecords(),
    ...(glibcResolver ? { extraListen: glibcResolver } : {}),
    cacheMaxTtl: opts.cacheMaxTtl ?? 30,
    cacheMaxNegativeTtl: 2,
  });
  const a = await query({
    server: unbound.host,
    port: unbound.port,
    name: MAIL_HOST,
    type: 'A',
    dnssec: true,
  });
  if (!a.flags.includes('ad') || !rdataOf(a, 'A').includes('127.0.0.1'))
    throw new Error(`unbound does not validate ${MAIL_HOST}:\n${a.raw}`);

  const pebble = await startPebble({ dnsServer: `127.0.0.1:${unbound.port}` });
  const certbot = makeCertbot({
    directoryUrl: pebble.directoryUrl,
    caBundle: pebble.tlsCaPath,
    httpPort: pebble.httpPort,
    dir: join(dir, 'certbot'),
  });
  const finger = glibcResolver
    ? makeDaneFinger({ dir, zone: MAIL_ZONE, resolverAddress: glibcResolver })
    : undefined;
  const s = JSON.stringify;
  const providerName = auth.kind;
  const lineageLines = (names: string[]): string[] => [
    '    certificates:',
    ...names.map((l) => `      - lineage: ${s(certbot.liveDir(l))}`),
  ];
  const installLines = (reload?: string): string[] => [
    '    install:',
    `      dir: ${s(installDir)}`,
    `      reload: ${s(reload ?? postfixReload)}`,
  ];

  return {
    dir,
    port,
    owner,
    stateDir,
    installDir,
    cfgPath,
    fragmentPath,
    postfix,
    postfixReload,
    auth,
    unbound,
    glibcResolver,
    finger,
    pebble,
    certbot,
    hook: join(root, 'hooks', 'certbot-deploy'),
    writeConfig(c) {
      writeFileSync(
        cfgPath,
        [
          `state_dir: ${s(stateDir)}`,
          `ttl: ${c.ttl}`,
          ...(c.top ?? []),
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${auth.port}`,
          '  propagation: true',
          '  probe: true',
          '  timeout_s: 3',
          'providers:',
          `  ${providerName}:`,
          ...auth.providerYaml(c.providerReload).map((l) => `    ${l}`),
          'services:',
          '  mx:',
          `    host: ${MAIL_HOST}`,
          `    ports: [${port}]`,
          '    protocol: smtp',
          `    provider: ${providerName}`,
          `    ttl: ${c.ttl}`,
          ...c.service,
          '',
        ].join('\n'),
      );
    },
    lineageLines,
    installLines,
    stagedService: () => ['    issuers: none', ...lineageLines(['mx']), ...installLines()],
    fragment: () => readFileSync(fragmentPath, 'utf8'),
    managedInFragment: () =>
      readFileSync(fragmentPath, 'utf8')
        .split('\n')
        .filter((l) => l.endsWith('; tlsa:managed'))
        .map((l) => {
          const m = /\sIN\s+TLSA\s+(\d \d \d [0-9a-fA-F]+)/.exec(l);
          if (!m) throw new Error(`unexpected managed line: ${l}`);
          return m[1]!.toLowerCase();
        })
        .sort(),
    tlsa: (args, o = {}) =>
      runAsync([process.execPath, cli, '--config', cfgPath, ...args], {
        ...o,
        env: { TLSA_DEBUG: '1', ...o.env },
      }),
    async served(timeoutS = 1) {
      const r = await query({
        server: auth.host,
        port: auth.port,
        name: owner,
        type: 'TLSA',
        recurse: false,
        timeoutS,
        retries: 1,
      });
      return {
        rdata: rdataOf(r, 'TLSA')
          .map((x) => x.toLowerCase().replace(/\s+/g, ' '))
          .sort(),
        ttl: Math.max(0, ...r.records.filter((x) => x.type === 'TLSA').map((x) => x.ttl)),
      };
    },
    async close() {
      await postfix.stop();
      await stopAll();
    },
  };
}
