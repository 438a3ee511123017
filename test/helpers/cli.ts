/**
 * Running the built CLI (`dist/src/cli/main.cjs`) as a child process, plus the small fixtures
 * the CLI tests share: a throwaway RSA + ECDSA PKI with certbot lineages, temp configs for the
 * `zonefile` provider, and snapshots of the files a run must not touch.
 *
 * The CLI is never imported: tests see exactly what a user (or a certbot hook) sees, exit
 * codes and stdout/stderr included. `npm test` builds first; run `npm run build` before
 * `npx vitest run` on its own.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  makeCa,
  makeLeaf,
  makeLineage,
  type CaHandle,
  type KeySpec,
  type LeafHandle,
} from './pki.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_PATH = path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.cjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout + stderr, for "never printed anywhere" checks. */
  all: string;
}

export interface CliOptions {
  cwd?: string;
  /** Added to (or, with undefined values, removed from) the test process's environment. */
  env?: Record<string, string | undefined>;
  /** Milliseconds; default 30 s. */
  timeout?: number;
}

/** Throws (failing the suite's beforeAll) when the CLI has not been built. */
export function requireBuiltCli(): void {
  if (!fs.existsSync(CLI_PATH)) {
    throw new Error(
      `${path.relative(REPO_ROOT, CLI_PATH)} not found: run npm run build first (npm test builds first)`,
    );
  }
}

export function runCli(args: string[], opts: CliOptions = {}): CliResult {
  const env: Record<string, string | undefined> = { ...process.env };
  // Nothing from the developer's shell may change what the CLI reads or prints.
  delete env.TLSA_CONFIG;
  delete env.TLSA_DEBUG;
  delete env.NODE_OPTIONS;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const r = spawnSync(process.execPath, [CLI_PATH, ...args], {
    cwd: opts.cwd ?? REPO_ROOT,
    env: env as NodeJS.ProcessEnv,
    encoding: 'utf8',
    timeout: opts.timeout ?? 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.error) throw r.error;
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  return { code: r.status, stdout, stderr, all: stdout + stderr };
}

/** A one-line description of a run, for assertion messages. */
export function show(r: CliResult): string {
  return `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Lines that look like a JavaScript stack trace. */
export function stackLines(text: string): string[] {
  return text.split('\n').filter((l) => /^\s{2,}at\s/.test(l));
}

/* ------------------------------------------------------------------------------------------ */
/* PKI: an RSA and an ECDSA hierarchy, as Let's Encrypt has                                    */
/* ------------------------------------------------------------------------------------------ */

export interface Hierarchy {
  root: CaHandle;
  intermediate: CaHandle;
}

export interface TestPki {
  dir: string;
  rsa: Hierarchy;
  ecdsa: Hierarchy;
  /** certbot config dir holding live/ and archive/. */
  letsencrypt: string;
}

export function makeTestPki(dir: string): TestPki {
  const hierarchy = (label: string, key: KeySpec): Hierarchy => {
    const root = makeCa(dir, { name: `Test Root ${label}`, key });
    const intermediate = makeCa(dir, {
      name: `Test Intermediate ${label}`,
      key,
      issuer: root,
      days: 1000,
    });
    return { root, intermediate };
  };
  return {
    dir,
    rsa: hierarchy('R1', 'rsa2048'),
    ecdsa: hierarchy('E1', 'p256'),
    letsencrypt: path.join(dir, 'letsencrypt'),
  };
}

export function leafFor(
  pki: TestPki,
  family: 'rsa' | 'ecdsa',
  opts: { cn?: string; expired?: boolean; outDir?: string } = {},
): LeafHandle {
  const h = pki[family];
  return makeLeaf(opts.outDir ?? pki.dir, {
    ca: h.intermediate,
    cn: opts.cn ?? 'mx.example.org',
    key: family === 'rsa' ? 'rsa2048' : 'p256',
    ...(opts.expired ? { expired: true } : {}),
  });
}

/** A certbot lineage `<letsencrypt>/live/<name>` (fullchain = leaf + intermediate). */
export function lineageFor(
  pki: TestPki,
  name: string,
  family: 'rsa' | 'ecdsa',
  leaf: LeafHandle,
  version?: number,
  letsencryptDir = pki.letsencrypt,
): string {
  return makeLineage(
    letsencryptDir,
    name,
    leaf,
    [pki[family].intermediate],
    version === undefined ? {} : { version },
  );
}

/* ------------------------------------------------------------------------------------------ */
/* configs and zone files                                                                      */
/* ------------------------------------------------------------------------------------------ */

export const OWNER_25 = '_25._tcp.mx.example.org.';

/** Lines tlsa does not own; each must survive every run byte for byte. */
export const FOREIGN_ZONE = [
  '; zone written by hand; tlsa must keep every line it did not write',
  '$ORIGIN example.org.',
  '$TTL 300',
  '@ IN SOA ns1.example.org. hostmaster.example.org. ( 2024010101 3600 600 86400 300 ) ; the SOA',
  '  IN NS ns1.example.org.',
  '; a record published by someone else:',
  `_25._tcp.mx IN TLSA 3 1 1 ${'ab'.repeat(32)}`,
  '',
].join('\n');

export interface ConfigOptions {
  zone?: string;
  stateDir?: string;
  ttl?: number;
  /** YAML list items under `certificates:`, e.g. `lineage: /x/live/mx`. */
  certificates: string[];
  issuers?: string;
  /** Extra lines under providers.local (already indented by 4 spaces by the caller or not). */
  providerExtra?: string[];
  /** Extra lines under services.mx. */
  serviceExtra?: string[];
  /** Lines under verify:. Default: no DNS or TLS checks (a test never leaves loopback). */
  verify?: string[];
}

/** The YAML of a one-provider, one-service config; paths as given (relative ones resolve
 *  against the config's directory). */
export function configYaml(o: ConfigOptions): string {
  return [
    `state_dir: ${o.stateDir ?? 'state'}`,
    `ttl: ${o.ttl ?? 3600}`,
    'verify:',
    ...(o.verify ?? ['resolver: "127.0.0.1:9"', 'propagation: false', 'probe: false']).map(
      (l) => `  ${l}`,
    ),
    'providers:',
    '  local:',
    '    type: zonefile',
    `    path: ${o.zone ?? 'zone.db'}`,
    '    create: true',
    ...(o.providerExtra ?? []).map((l) => `    ${l}`),
    'services:',
    '  mx:',
    '    host: mx.example.org',
    '    ports: [25]',
    '    provider: local',
    `    issuers: ${o.issuers ?? 'none'}`,
    ...(o.serviceExtra ?? []).map((l) => `    ${l}`),
    '    certificates:',
    ...o.certificates.map((c) => `      - ${c}`),
    '',
  ].join('\n');
}

/** Every regular file under dir (recursively) with its content; {} when dir does not exist. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[path.relative(dir, p)] = fs.readFileSync(p, 'base64');
    }
  };
  walk(dir);
  return out;
}

/** TLSA lines of a zone file tlsa wrote (`; tlsa:managed`), as `U S M data`. */
export function managedRdata(zoneText: string): string[] {
  return zoneText
    .split('\n')
    .filter((l) => l.endsWith('; tlsa:managed'))
    .map((l) => {
      const m = /\sIN\s+TLSA\s+(\d)\s+(\d)\s+(\d)\s+([0-9a-f]+)\s/.exec(l);
      if (!m) throw new Error(`unexpected managed line: ${l}`);
      return `${m[1]} ${m[2]} ${m[3]} ${m[4]}`;
    });
}
