/**
 * Inputs that must not hang or be misread, through the built CLI: a FIFO, device, directory or
 * oversized file where a chain, key, catalog, secret or the configuration is expected (exit 2
 * naming the path, never a hang: each run's own timeout is the guard, and a hung run would
 * leave the lock behind); host names a DANE client cannot look up; a Unicode host; a leaf
 * whose names miss the host; secrets echoed in encoded forms.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configYaml,
  FOREIGN_ZONE,
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  requireBuiltCli,
  runCli,
  show,
  snapshot,
  stackLines,
  type CliResult,
  type ConfigOptions,
  type TestPki,
} from '../helpers/cli.js';
import { makeLeaf, makeTempDir, removeTempDir, type LeafHandle } from '../helpers/pki.js';
import { outputSchema } from '../../src/cli/json-contract.js';

let root: string;
let pki: TestPki;
let goodLeaf: LeafHandle;
let idnLeaf: LeafHandle;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-inputs-');
  pki = makeTestPki(path.join(root, 'pki'));
  goodLeaf = leafFor(pki, 'ecdsa');
  idnLeaf = makeLeaf(pki.dir, {
    ca: pki.ecdsa.intermediate,
    cn: 'xn--bcher-kva.example.org',
    key: 'p256',
  });
});

afterAll(() => {
  if (root) removeTempDir(root);
});

interface Case {
  dir: string;
  config: string;
  zone: string;
  lineage: string;
  text: string;
}

let counter = 0;

function setup(
  opts: Partial<ConfigOptions> & {
    leaf?: LeafHandle;
    edit?: (text: string, c: { lineage: string; dir: string }) => string;
  } = {},
): Case {
  const dir = path.join(root, `case-${++counter}`);
  fs.mkdirSync(dir, { recursive: true });
  const lineage = lineageFor(
    pki,
    'mx.example.org',
    'ecdsa',
    opts.leaf ?? goodLeaf,
    undefined,
    path.join(dir, 'letsencrypt'),
  );
  let text = configYaml({ certificates: [`lineage: ${lineage}`], ...opts });
  if (opts.edit) text = opts.edit(text, { lineage, dir });
  const config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, text);
  const zone = path.join(dir, 'zone.db');
  fs.writeFileSync(zone, FOREIGN_ZONE);
  return { dir, config, zone, lineage, text };
}

/** Services on one lineage, appended to a configuration's services. */
function fleetYaml(
  services: { name: string; host: string; port: number }[],
  lineage: string,
  ...extra: string[]
): string {
  return services
    .map((s) =>
      [
        `  ${s.name}:`,
        `    host: ${s.host}`,
        `    ports: [${s.port}]`,
        '    provider: local',
        ...extra,
        '    certificates:',
        `      - lineage: ${lineage}`,
        '',
      ].join('\n'),
    )
    .join('');
}

function mkfifo(p: string): string {
  execFileSync('mkfifo', [p]);
  return p;
}

function lineOf(text: string, needle: string): number {
  const i = text.split('\n').findIndex((l) => l.includes(needle));
  if (i < 0) throw new Error(`"${needle}" not in text`);
  return i + 1;
}

/** Exit 2 naming `file` (and line), what is wrong, no stack, nothing changed: no zone change,
 *  no state, no lock left behind. */
function expectRefused(
  c: Case,
  args: string[],
  want: { file: string; line?: number; message: RegExp },
): CliResult {
  const before = snapshot(c.dir);
  const r = runCli(args, { cwd: c.dir });
  expect(r.code, show(r)).toBe(2);
  const names = [want.file, path.relative(c.dir, want.file)].filter(
    (n) => n && !n.startsWith('..'),
  );
  const places = names.map((n) => (want.line === undefined ? n : `${n}:${want.line}`));
  expect(
    places.some((p) => r.stderr.includes(p)),
    `stderr should name ${places.join(' or ')}\n${show(r)}`,
  ).toBe(true);
  expect(r.stderr, show(r)).toMatch(want.message);
  expect(stackLines(r.all), show(r)).toEqual([]);
  expect(fs.readFileSync(c.zone, 'utf8')).toBe(FOREIGN_ZONE);
  expect(snapshot(c.dir)).toEqual(before);
  return r;
}

const publish = (c: Case, ...extra: string[]) => ['--config', c.config, 'publish', ...extra];
const FIFO = /it is a FIFO \(named pipe\), not a regular file/;

describe('files that are not regular files, or too big', () => {
  it('a FIFO as fullchain: publish exits 2 at once, naming it', () => {
    const c = setup({
      edit: (t, { dir }) =>
        t.replace(/lineage: .*/, `fullchain: ${mkfifo(path.join(dir, 'chain.pem'))}`),
    });
    expectRefused(c, publish(c), { file: path.join(c.dir, 'chain.pem'), message: FIFO });
  });

  it('a FIFO as key: publish exits 2', () => {
    const c = setup({
      edit: (t, { lineage, dir }) =>
        t.replace(
          /lineage: .*/,
          `fullchain: ${lineage}/fullchain.pem\n        key: ${mkfifo(path.join(dir, 'key.pem'))}`,
        ),
    });
    expectRefused(c, publish(c), {
      file: path.join(c.dir, 'key.pem'),
      message: /private key file: it is a FIFO/,
    });
  });

  it('a certbot lineage whose privkey.pem is a FIFO, or a directory, is refused (not taken as "no key")', () => {
    for (const make of [(p: string) => mkfifo(p), (p: string) => fs.mkdirSync(p)]) {
      const c = setup();
      const key = path.join(c.lineage, 'privkey.pem');
      fs.rmSync(key);
      make(key);
      expectRefused(c, publish(c), {
        file: key,
        message: /private key file: it is (a FIFO|a directory)/,
      });
    }
  });

  it('a FIFO as the issuer catalog', () => {
    const c = setup({
      edit: (t, { dir }) =>
        t.replace('issuers: none', `issuers: ${mkfifo(path.join(dir, 'catalog.json'))}`),
    });
    expectRefused(c, publish(c), {
      file: path.join(c.dir, 'catalog.json'),
      message: /issuer catalog: it is a FIFO/,
    });
  });

  it('a FIFO as a *_file secret: the config file and line', () => {
    const c = setup({ providerExtra: ['reload_file: secret.fifo'] });
    mkfifo(path.join(c.dir, 'secret.fifo'));
    expectRefused(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'reload_file'),
      message: /cannot read secret file .*secret\.fifo: it is a FIFO/,
    });
  });

  it('a FIFO as the configuration itself', () => {
    const c = setup();
    const fifo = mkfifo(path.join(c.dir, 'fifo.yaml'));
    expectRefused(c, ['--config', fifo, 'plan'], {
      file: fifo,
      message: /cannot read the configuration: it is a FIFO/,
    });
  });

  it('a huge (sparse) fullchain is refused by its size, not read', () => {
    const c = setup({
      edit: (t, { dir }) => t.replace(/lineage: .*/, `fullchain: ${path.join(dir, 'huge.pem')}`),
    });
    const huge = path.join(c.dir, 'huge.pem');
    fs.writeFileSync(huge, '');
    fs.truncateSync(huge, 64 * 1024 * 1024);
    expectRefused(c, publish(c), { file: huge, message: /more than 1 MiB/ });
  });

  it('bad input is reported at once while another run holds the lock (read before the lock)', () => {
    const c = setup({
      edit: (t, { dir }) =>
        t.replace(/lineage: .*/, `fullchain: ${mkfifo(path.join(dir, 'chain.pem'))}`),
    });
    const state = path.join(c.dir, 'state');
    fs.mkdirSync(state);
    // A live holder: this test process.
    fs.writeFileSync(
      path.join(state, 'lock'),
      JSON.stringify({
        pid: process.pid,
        host: hostname(),
        command: 'publish',
        since: new Date().toISOString(),
      }),
    );
    expectRefused(c, publish(c, '--lock-wait', '3'), {
      file: path.join(c.dir, 'chain.pem'),
      message: FIFO,
    });
  });

  it('generate: a FIFO as --chain, --key or --issuers exits 2 naming it', () => {
    const dir = path.join(root, 'gen-fifo');
    fs.mkdirSync(dir);
    const fifo = mkfifo(path.join(dir, 'x.pem'));
    const chain = path.join(
      lineageFor(pki, 'mx.example.org', 'ecdsa', goodLeaf, undefined, path.join(dir, 'le')),
      'fullchain.pem',
    );
    for (const args of [
      ['--chain', fifo],
      ['--chain', chain, '--key', fifo],
      ['--chain', chain, '--issuers', fifo],
    ]) {
      const r = runCli(['generate', '--host', 'mx.example.org', ...args], { cwd: dir });
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr, show(r)).toContain(`${fifo}: cannot read`);
      expect(r.stderr, show(r)).toMatch(/it is a FIFO/);
      expect(r.stdout).toBe('');
    }
  });
});

describe('host names', () => {
  it.each([
    ['192.0.2.25', /is an IP address, not a host name/],
    ['"[2001:db8::25]"', /is an IP address, not a host name/],
    ['"*.example.org"', /is a wildcard, not a host name/],
    ['localhost', /RFC 6761/],
    ['mx_1.example.org', /label "mx_1" has "_"/],
  ])('host: %s is refused at its line', (host, why) => {
    const c = setup({ edit: (t) => t.replace('host: mx.example.org', `host: ${host}`) });
    expectRefused(c, publish(c), { file: c.config, line: lineOf(c.text, 'host:'), message: why });
  });

  it('generate --host and check HOST refuse an IP address, a wildcard and localhost', () => {
    const chain = path.join(
      lineageFor(pki, 'mx.example.org', 'ecdsa', goodLeaf, undefined, path.join(root, 'gen-host')),
      'fullchain.pem',
    );
    for (const host of ['192.0.2.25', '*.example.org', 'localhost']) {
      const g = runCli(['generate', '--chain', chain, '--host', host]);
      expect(g.code, show(g)).toBe(2);
      expect(g.stderr).toMatch(/--host: .*(IP address|wildcard|RFC 6761)/);
      expect(g.stdout).toBe('');
    }
    // No DNS query is sent: the resolver is a closed loopback port anyway.
    for (const target of ['192.0.2.25:25', '[::1]:25', 'localhost']) {
      const r = runCli(['check', '--resolver', '127.0.0.1:9', '--timeout', '1', target]);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(/IP address|RFC 6761/);
    }
  });

  it('a Unicode host is published at its A-label owner and shown both ways', () => {
    const c = setup({
      leaf: idnLeaf,
      edit: (t) => t.replace('host: mx.example.org', 'host: Bücher.example.org.'),
    });
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(0);
    expect(plan.stdout).toContain(
      '_25._tcp.xn--bcher-kva.example.org. (_25._tcp.bücher.example.org.)',
    );
    expect(plan.stderr, show(plan)).not.toMatch(/does not cover/);
    const pub = runCli(publish(c, '--json'), { cwd: c.dir });
    expect(pub.code, show(pub)).toBe(0);
    const j = JSON.parse(pub.stdout) as { owners: { owner: string; ownerUnicode?: string }[] };
    expect(j.owners.map((o) => [o.owner, o.ownerUnicode])).toEqual([
      ['_25._tcp.xn--bcher-kva.example.org.', '_25._tcp.bücher.example.org.'],
    ]);
    const zone = fs.readFileSync(c.zone, 'utf8');
    expect(managedRdata(zone)).toHaveLength(2);
    for (const l of zone.split('\n').filter((x) => x.endsWith('; tlsa:managed')))
      expect(l).toMatch(/^_25\._tcp\.xn--bcher-kva(\.example\.org\.)?\s/);
    expect(zone).not.toContain('ü');
    const status = runCli(['--config', c.config, 'status'], { cwd: c.dir });
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toContain(
      '_25._tcp.xn--bcher-kva.example.org. (_25._tcp.bücher.example.org.)',
    );
  });

  it('generate --host with a Unicode name: A-label owners, both forms in a comment and in --json', () => {
    const chain = path.join(
      lineageFor(pki, 'buecher', 'ecdsa', idnLeaf, undefined, path.join(root, 'gen-idn')),
      'fullchain.pem',
    );
    const r = runCli([
      'generate',
      '--chain',
      chain,
      '--host',
      'bücher.example.org',
      '--issuers',
      'none',
    ]);
    expect(r.code, show(r)).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toBe(
      '; host xn--bcher-kva.example.org (bücher.example.org): DNS and certificates use the A-label form',
    );
    for (const l of lines.slice(1))
      expect(l).toMatch(
        /^_25\._tcp\.xn--bcher-kva\.example\.org\. 3600 IN TLSA [23] 1 1 [0-9a-f]{64}$/,
      );
    expect(lines).toHaveLength(3);
    const j = JSON.parse(
      runCli([
        'generate',
        '--chain',
        chain,
        '--host',
        'bücher.example.org',
        '--issuers',
        'none',
        '--json',
      ]).stdout,
    ) as { host: unknown; records: { owner: string }[] };
    expect(j.host).toEqual({ ascii: 'xn--bcher-kva.example.org', unicode: 'bücher.example.org' });
    expect(j.records.every((x) => x.owner === '_25._tcp.xn--bcher-kva.example.org.')).toBe(true);
  });

  it('a leaf whose names do not cover the host: a warning naming 2 x x (stderr and --json), none for 3 x x only', () => {
    const c = setup({ edit: (t) => t.replace('host: mx.example.org', 'host: other.example.org') });
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(0);
    expect(plan.stderr).toMatch(
      /tlsa: warning: .*the leaf certificate \(DNS names mx\.example\.org\) does not cover the host other\.example\.org: .*DANE-TA \(2 x x\).*RFC 7672 §3\.2\.3/,
    );
    const pj = runCli(['--config', c.config, 'plan', '--json'], { cwd: c.dir });
    expect(
      (JSON.parse(pj.stdout) as { warnings: string[] }).warnings.some((w) =>
        /does not cover the host other\.example\.org/.test(w),
      ),
    ).toBe(true);
    const chain = path.join(c.lineage, 'fullchain.pem');
    const g = runCli([
      'generate',
      '--chain',
      chain,
      '--host',
      'other.example.org',
      '--issuers',
      'none',
      '--json',
    ]);
    expect(g.code, show(g)).toBe(0);
    expect(g.stderr).toMatch(/does not cover the host other\.example\.org/);
    expect(
      (JSON.parse(g.stdout) as { warnings: string[] }).warnings.some((w) => /2 x x/.test(w)),
    ).toBe(true);
    const eeOnly = runCli([
      'generate',
      '--chain',
      chain,
      '--host',
      'other.example.org',
      '--issuers',
      'none',
      '--records',
      '3 1 1',
    ]);
    expect(eeOnly.code, show(eeOnly)).toBe(0);
    expect(eeOnly.stderr).not.toMatch(/does not cover/);
    const covered = runCli([
      'generate',
      '--chain',
      chain,
      '--host',
      'mx.example.org',
      '--issuers',
      'none',
    ]);
    expect(covered.stderr).not.toMatch(/does not cover/);
  });

  it('services sharing a lineage whose leaf misses their hosts: one warning for the lineage, with the count and the first hosts (stderr and --json)', () => {
    // A fleet's shared chain: 12 services on hosts the leaf (mx.example.org) does not name,
    // one it does. One line per service and lineage said the same thing thousands of times.
    const hosts = Array.from({ length: 12 }, (_, i) => `h${i}.example.org`);
    const c = setup({
      edit: (t, { lineage }) =>
        t +
        fleetYaml(
          hosts.map((host, i) => ({ name: `s${i}`, host, port: 25 })),
          lineage,
          '    issuers: none',
        ),
    });
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(0);
    const coverage = plan.stderr.split('\n').filter((l) => /does not cover/.test(l));
    expect(coverage, show(plan)).toHaveLength(1);
    const shown = hosts.slice(0, 10).join(', ');
    expect(coverage[0]).toContain(
      `tlsa: warning: ${path.relative(c.dir, c.lineage)}: the leaf certificate (DNS names mx.example.org) does not cover 12 hosts: ${shown} and 2 more: with DANE-TA (2 x x)`,
    );
    expect(coverage[0]).toMatch(/RFC 7672 §3\.2\.3.*DANE-EE \(3 x x\) records do not check names$/);
    const pj = runCli(['--config', c.config, 'plan', '--json'], { cwd: c.dir });
    expect(pj.code, show(pj)).toBe(0);
    const value = JSON.parse(pj.stdout) as unknown;
    const checked = outputSchema('plan').safeParse(value);
    expect(checked.success, checked.error?.message).toBe(true);
    const warnings = (value as { warnings: string[] }).warnings.filter((w) =>
      /does not cover/.test(w),
    );
    expect(warnings).toEqual([coverage[0]!.replace(/^tlsa: warning: /, '')]);
  });
  it('services sharing a lineage from another CA than the issuer catalog: one note for the lineage, with the count and the first services (stderr and --json)', () => {
    // The example chain is not from Let's Encrypt: with the catalog on (the default), each
    // service on it got its own note, thousands of times the same words on a fleet.
    const names = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const c = setup({
      edit: (t, { lineage }) =>
        t +
        fleetYaml(
          names.map((name, i) => ({ name, host: 'mx.example.org', port: 2500 + i })),
          lineage,
        ),
    });
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(0);
    const notes = plan.stderr
      .split('\n')
      .filter((l) => /intermediate of the issuer catalog/.test(l));
    const shared = notes.filter((l) => / \(12 services: /.test(l));
    expect(shared, show(plan)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^tlsa: note: ${path.relative(c.dir, c.lineage).replace(/[.]/g, '\\.')} \\(.+\\) is issued by .+, not a letsencrypt intermediate of the issuer catalog: no catalog records for it, only its own \\(12 services: ${names.slice(0, 10).join(', ')} and 2 more\\)$`,
        ),
      ),
    ]);
    // No per-service line for the shared lineage is left beside it.
    expect(notes.filter((l) => /^tlsa: note: s\d+: /.test(l))).toEqual([]);
    const pj = runCli(['--config', c.config, 'plan', '--json'], { cwd: c.dir });
    expect(pj.code, show(pj)).toBe(0);
    const value = JSON.parse(pj.stdout) as unknown;
    const checked = outputSchema('plan').safeParse(value);
    expect(checked.success, checked.error?.message).toBe(true);
    expect((value as { notes: string[] }).notes).toContain(shared[0]!.replace(/^tlsa: note: /, ''));
  });
});

describe('secrets in encoded forms', () => {
  it('a command echoing the secret URL-encoded, form-encoded or in base64 (alone or as basic auth) shows none of them', () => {
    const secret = 'k3y/with+special chars=&x~!';
    const forms = [
      encodeURIComponent(secret),
      new URLSearchParams({ k: secret }).toString().slice(2),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('base64url'),
      Buffer.from(`apiuser:${secret}`).toString('base64'),
    ];
    const c = setup({
      providerExtra: [`reload: "'${process.execPath}' echo.mjs '\${TLSA_TEST_SECRET}'; exit 1"`],
    });
    fs.writeFileSync(
      path.join(c.dir, 'echo.mjs'),
      [
        'const s = process.argv[2];',
        'const forms = [encodeURIComponent(s), new URLSearchParams({ k: s }).toString().slice(2), Buffer.from(s).toString("base64"), Buffer.from(s).toString("base64url"), Buffer.from("apiuser:" + s).toString("base64")];',
        'console.error("server said: " + forms.join(" "));',
        '',
      ].join('\n'),
    );
    const r = runCli(publish(c), { cwd: c.dir, env: { TLSA_TEST_SECRET: secret } });
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr, show(r)).toMatch(/server said: \*\*\*/);
    expect(r.all).not.toContain(secret);
    for (const f of forms) expect(r.all, `${f}\n${show(r)}`).not.toContain(f);
  });
});
