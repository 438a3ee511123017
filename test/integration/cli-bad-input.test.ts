/**
 * Bad input through the built CLI: each case must exit 2 with one clear message on stderr that
 * names the file (and the line, for YAML and PEM), print no stack trace, and change nothing:
 * the zone file (pre-filled with foreign lines) stays byte-identical and no state is written.
 */
import * as fs from 'node:fs';
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
import {
  generateKey,
  makeTempDir,
  opensslSpkiSha256,
  removeTempDir,
  type LeafHandle,
} from '../helpers/pki.js';

let root: string;
let pki: TestPki;
/** One valid ECDSA leaf shared by the cases that only break something else. */
let goodLeaf: LeafHandle;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-bad-');
  pki = makeTestPki(path.join(root, 'pki'));
  goodLeaf = leafFor(pki, 'ecdsa');
});

afterAll(() => {
  if (root) removeTempDir(root);
});

interface Case {
  dir: string;
  config: string;
  zone: string;
  stateDir: string;
  /** The config text, for line look-ups. */
  text: string;
}

let counter = 0;

/** A fresh dir: a good lineage, the zone with foreign lines, and a config built from `opts`
 *  (or replaced wholesale by `rawConfig`). */
function setup(
  opts: Partial<ConfigOptions> & {
    rawConfig?: (c: { lineage: string }) => string;
    lineageLeaf?: LeafHandle;
  } = {},
): Case & { lineage: string } {
  const dir = path.join(root, `case-${++counter}`);
  fs.mkdirSync(dir, { recursive: true });
  const lineage = lineageFor(
    pki,
    'mx.example.org',
    'ecdsa',
    opts.lineageLeaf ?? goodLeaf,
    undefined,
    path.join(dir, 'letsencrypt'),
  );
  const text = opts.rawConfig
    ? opts.rawConfig({ lineage })
    : configYaml({ certificates: [`lineage: ${lineage}`], ...opts });
  const config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, text);
  const zone = path.join(dir, 'zone.db');
  fs.writeFileSync(zone, FOREIGN_ZONE);
  return { dir, config, zone, stateDir: path.join(dir, 'state'), text, lineage };
}

/** 1-based line of the first line of `text` containing `needle`. */
function lineOf(text: string, needle: string, nth = 1): number {
  const lines = text.split('\n');
  let seen = 0;
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.includes(needle) && ++seen === nth) return i + 1;
  }
  throw new Error(`"${needle}" (#${nth}) not in text`);
}

/** Run args against the case; assert exit 2, file (and line) named, no stack, nothing changed. */
function expectBadInput(
  c: Case,
  args: string[],
  want: { file: string; line?: number; message?: RegExp; env?: Record<string, string | undefined> },
): CliResult {
  const before = snapshot(c.dir);
  const r = runCli(args, { cwd: c.dir, ...(want.env ? { env: want.env } : {}) });
  expect(r.code, show(r)).toBe(2);
  // The file as given, or relative to the working directory when that is shorter.
  const names = [want.file, path.relative(c.dir, want.file)].filter(
    (n) => n && !n.startsWith('..'),
  );
  const places = names.map((n) => (want.line === undefined ? n : `${n}:${want.line}`));
  expect(
    places.some((p) => r.stderr.includes(p)),
    `stderr should name ${places.join(' or ')}\n${show(r)}`,
  ).toBe(true);
  if (want.message) expect(r.stderr, show(r)).toMatch(want.message);
  expect(stackLines(r.all), show(r)).toEqual([]);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(fs.readFileSync(c.zone, 'utf8')).toBe(FOREIGN_ZONE);
  // No file anywhere in the case dir appeared, changed or vanished (an empty state dir may be
  // created: snapshot() lists files only). In particular no state.json, no lock left behind.
  expect(snapshot(c.dir)).toEqual(before);
  return r;
}

const publish = (c: Case, ...extra: string[]) => ['--config', c.config, 'publish', ...extra];

/** Split a PEM bundle's text into its blocks (each ending in a newline). */
const pemBlocks = (pem: string) =>
  pem.match(/-----BEGIN [^-]+-----[\s\S]*?-----END [^-]+-----\n?/g) ?? [];

describe('certificate input', () => {
  it('broken PEM (garbage base64) names file and line of the block', () => {
    const c = setup();
    const fullchain = path.join(c.dir, 'broken.pem');
    const [leaf, inter] = pemBlocks(goodLeaf.certPem + pki.ecdsa.intermediate.certPem);
    const lines = inter!.split('\n');
    lines[3] = '!!!! this is not base64 !!!!';
    const text = `# bundle for mx.example.org\n${leaf}${lines.join('\n')}`;
    fs.writeFileSync(fullchain, text);
    fs.writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${fullchain}`] }));
    expectBadInput(c, publish(c), {
      file: fullchain,
      line: lineOf(text, '-----BEGIN CERTIFICATE-----', 2),
      message: /base64/,
    });
  });

  it('truncated PEM (no END line)', () => {
    const c = setup();
    const fullchain = path.join(c.dir, 'truncated.pem');
    const full = goodLeaf.certPem + pki.ecdsa.intermediate.certPem;
    const text = full.slice(0, full.lastIndexOf('-----END CERTIFICATE-----'));
    fs.writeFileSync(fullchain, text);
    fs.writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${fullchain}`] }));
    expectBadInput(c, publish(c), {
      file: fullchain,
      line: lineOf(text, '-----BEGIN CERTIFICATE-----', 2),
      message: /truncated/i,
    });
  });

  it('chain in the wrong order (issuer first)', () => {
    const c = setup();
    const fullchain = path.join(c.dir, 'reversed.pem');
    const text = `# reversed\n\n${pki.ecdsa.intermediate.certPem}${goodLeaf.certPem}`;
    fs.writeFileSync(fullchain, text);
    fs.writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${fullchain}`] }));
    expectBadInput(c, publish(c), { file: fullchain, line: 3, message: /wrong order/ });
  });

  it('chain with a missing issuer (leaf only)', () => {
    const c = setup();
    const certOnly = path.join(c.dir, 'leaf-only.pem');
    const text = `# leaf only\n${goodLeaf.certPem}`;
    fs.writeFileSync(certOnly, text);
    fs.writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${certOnly}`] }));
    expectBadInput(c, publish(c), { file: certOnly, line: 2, message: /issuer .* is missing/ });
  });

  it('private key that does not match the leaf (lineage privkey.pem swapped)', () => {
    const c = setup();
    const target = fs.realpathSync(path.join(c.lineage, 'privkey.pem'));
    generateKey('p256', target);
    expectBadInput(c, publish(c), {
      file: path.join(c.lineage, 'privkey.pem'),
      message: /does not match/,
    });
  });

  it('expired leaf: publish refuses (exit 2, mentions --force), plan warns, publish --force publishes', () => {
    const expired = leafFor(pki, 'ecdsa', { expired: true });
    const c = setup({ lineageLeaf: expired });
    const r = expectBadInput(c, publish(c), {
      file: path.join(c.lineage, 'fullchain.pem'),
      line: 1,
      message: /--force/,
    });
    expect(r.stderr).toMatch(/expired/);

    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(0);
    expect(plan.stderr).toMatch(/warning: .*expired/);
    expect(fs.readFileSync(c.zone, 'utf8')).toBe(FOREIGN_ZONE);

    const forced = runCli(publish(c, '--force'), { cwd: c.dir });
    expect(forced.code, show(forced)).toBe(0);
    const zone = fs.readFileSync(c.zone, 'utf8');
    expect(zone.startsWith(FOREIGN_ZONE)).toBe(true);
    expect(managedRdata(zone)).toContain(`3 1 1 ${opensslSpkiSha256(expired.certPath)}`);
  });
});

describe('configuration input', () => {
  it('unknown provider type names providers.X.type and its line', () => {
    const c = setup({
      rawConfig: ({ lineage }) =>
        configYaml({ certificates: [`lineage: ${lineage}`] }).replace(
          'type: zonefile',
          'type: route66',
        ),
    });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'type: route66'),
      message: /providers\.local\.type: unknown provider type "route66"/,
    });
  });

  it('service referencing an undefined provider', () => {
    const c = setup({
      rawConfig: ({ lineage }) =>
        configYaml({ certificates: [`lineage: ${lineage}`] }).replace(
          'provider: local',
          'provider: elsewhere',
        ),
    });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'provider: elsewhere'),
      message: /services\.mx\.provider: unknown provider "elsewhere"/,
    });
  });

  it('unknown service name via --service', () => {
    const c = setup();
    expectBadInput(c, publish(c, '--service', 'nope'), {
      file: c.config,
      message: /unknown service "nope"/,
    });
    const st = runCli(['--config', c.config, 'status', '--service', 'nope'], { cwd: c.dir });
    expect(st.code, show(st)).toBe(2);
  });

  it('YAML syntax error: the line is right', () => {
    const c = setup({
      rawConfig: ({ lineage }) =>
        configYaml({ certificates: [`lineage: ${lineage}`] }).replace(
          '    provider: local',
          '   provider: local',
        ),
    });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, '   provider: local'),
      message: /YAML syntax error/,
    });
  });

  it('YAML type error: ttl: "abc" points at the ttl line', () => {
    const c = setup({ serviceExtra: ['ttl: "abc"'] });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'ttl: "abc"'),
      message: /services\.mx\.ttl: .*number/,
    });
  });

  it('unknown key in a service points at the key', () => {
    const c = setup({ serviceExtra: ['hots: mx2.example.org'] });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'hots:'),
      message: /unknown key "hots"/,
    });
  });

  it('missing required key host', () => {
    const c = setup({
      rawConfig: ({ lineage }) =>
        configYaml({ certificates: [`lineage: ${lineage}`] }).replace(
          '    host: mx.example.org\n',
          '',
        ),
    });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, '  mx:'),
      message: /missing required key "host"/,
    });
  });

  it('usage 0 on port 25 is refused citing RFC 7672', () => {
    const c = setup({ serviceExtra: ['records: ["0 1 1"]'] });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'records:'),
      message: /RFC 7672/,
    });
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir });
    expect(plan.code, show(plan)).toBe(2);
  });

  it('a state_dir that cannot be used (below a regular file)', () => {
    const c = setup({ stateDir: 'somefile/state' });
    fs.writeFileSync(path.join(c.dir, 'somefile'), 'not a directory\n');
    expectBadInput(c, publish(c), {
      file: path.join(c.dir, 'somefile', 'state'),
      message: /state directory/,
    });
  });

  it('${NOT_SET_VAR} in a provider option names the variable and the line', () => {
    const c = setup({ providerExtra: ['reload: "${TLSA_TEST_NOT_SET}"'] });
    expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'reload:'),
      message: /TLSA_TEST_NOT_SET is not set/,
      env: { TLSA_TEST_NOT_SET: undefined },
    });
  });

  it('a secret from the environment never appears in an error (bad input)', () => {
    const c = setup({
      rawConfig: ({ lineage }) =>
        configYaml({ certificates: [`lineage: ${lineage}`] }).replace(
          'type: zonefile',
          'type: "${TLSA_TEST_SECRET}"',
        ),
    });
    const r = expectBadInput(c, publish(c), {
      file: c.config,
      line: lineOf(c.text, 'type:'),
      message: /unknown provider type/,
      env: { TLSA_TEST_SECRET: 's3cr3t-value' },
    });
    expect(r.all).not.toContain('s3cr3t-value');
  });

  it('missing config file', () => {
    const c = setup();
    const missing = path.join(c.dir, 'nope.yaml');
    expectBadInput(c, ['--config', missing, 'publish'], { file: missing, message: /not found/ });
    const viaEnv = runCli(['plan'], { cwd: c.dir, env: { TLSA_CONFIG: missing } });
    expect(viaEnv.code, show(viaEnv)).toBe(2);
    expect(viaEnv.stderr).toContain(missing);
  });
});

describe('secrets in provider failures', () => {
  it('a failing reload exits 3 and never prints the secret it was given', () => {
    const c = setup({ providerExtra: ['reload: "${TLSA_TEST_SECRET}; exit 1"'] });
    const env = { TLSA_TEST_SECRET: 's3cr3t-value' };
    const r = runCli(publish(c), { cwd: c.dir, env });
    expect(r.code, show(r)).toBe(3);
    expect(r.stderr).toMatch(/reload command/);
    expect(r.all).not.toContain('s3cr3t-value');
    expect(stackLines(r.all)).toEqual([]);
    // The zone is written (the reload is retried on the next run), and the retry is as quiet.
    expect(managedRdata(fs.readFileSync(c.zone, 'utf8'))).toHaveLength(2);
    const again = runCli(publish(c), { cwd: c.dir, env });
    expect(again.code, show(again)).toBe(3);
    expect(again.all).not.toContain('s3cr3t-value');
  });

  // Regression: stdout once printed ${VAR} values; everything printed now goes through redact().
  it('a ${VAR} value never appears in stdout either (plan, publish --json, status)', () => {
    const c = setup();
    const secret = 's3cr3t-value';
    const live = lineageFor(
      pki,
      secret,
      'ecdsa',
      goodLeaf,
      undefined,
      path.join(c.dir, 'letsencrypt'),
    );
    expect(live.endsWith(secret)).toBe(true);
    fs.writeFileSync(
      c.config,
      configYaml({ certificates: ['lineage: letsencrypt/live/${TLSA_TEST_SECRET}'] }),
    );
    const env = { TLSA_TEST_SECRET: secret };
    const plan = runCli(['--config', c.config, 'plan'], { cwd: c.dir, env });
    expect(plan.code, show(plan)).toBe(0);
    const pub = runCli(publish(c, '--json'), { cwd: c.dir, env });
    expect(pub.code, show(pub)).toBe(0);
    const status = runCli(['--config', c.config, 'status'], { cwd: c.dir, env });
    expect(status.code, show(status)).toBe(0);
    for (const r of [plan, pub, status]) expect(r.all, show(r)).not.toContain(secret);
  });
});
