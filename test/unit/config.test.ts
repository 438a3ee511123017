/** loadConfig (src/config/load.ts) directly: where errors point, secrets, relative paths. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { readPlainYaml } from '../../src/config/plain-yaml.js';
import { InputError } from '../../src/errors.js';
import { redact } from '../../src/util/redact.js';
import { fleetConfigLines } from '../helpers/fleet-config.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
let n = 0;

beforeAll(() => {
  dir = makeTempDir('tlsa-config-');
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

const setEnv: string[] = [];
afterEach(() => {
  for (const k of setEnv.splice(0)) delete process.env[k];
});

function env(name: string, value: string): void {
  process.env[name] = value;
  setEnv.push(name);
}

function write(text: string, name = `c${++n}.yaml`, sub = ''): string {
  const d = path.join(dir, sub);
  fs.mkdirSync(d, { recursive: true });
  const file = path.join(d, name);
  fs.writeFileSync(file, text);
  return file;
}

/** The config as lines; `lines` are joined with newlines. */
const yaml = (...lines: string[]) => `${lines.join('\n')}\n`;

const GOOD = [
  'state_dir: state', // 1
  'ttl: 3600', // 2
  'providers:', // 3
  '  local:', // 4
  '    type: zonefile', // 5
  '    path: zone.db', // 6
  'services:', // 7
  '  mx:', // 8
  '    host: mx.example.org', // 9
  '    ports: [25]', // 10
  '    provider: local', // 11
  '    certificates:', // 12
  '      - lineage: live/mx', // 13
];

/** GOOD with line `line` (1-based) replaced by `replacement` (several lines allowed, or none). */
function variant(line: number, ...replacement: string[]): string {
  const lines = [...GOOD];
  lines.splice(line - 1, 1, ...replacement);
  return yaml(...lines);
}

function loadError(file: string): InputError {
  try {
    loadConfig(file);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`${file} loaded without an error`);
}

describe('loadConfig: a good file', () => {
  it('loads, with defaults filled in', () => {
    const file = write(yaml(...GOOD));
    const c = loadConfig(file);
    expect(c.file).toBe(file);
    expect(c.baseDir).toBe(dir);
    expect(c.warnings).toEqual([]);
    expect(c.raw.max_records_per_name).toBe(12);
    expect(c.raw.services.mx).toMatchObject({
      host: 'mx.example.org',
      ports: [25],
      provider: 'local',
    });
    expect(c.raw.providers.local).toEqual({ type: 'zonefile', path: 'zone.db' });
  });

  it('ports default to [25] and state_dir to /var/lib/tlsa', () => {
    const file = write(yaml(...GOOD.slice(1).filter((l) => !l.includes('ports:'))));
    const c = loadConfig(file);
    expect(c.raw.services.mx!.ports).toEqual([25]);
    expect(c.stateDir).toBe('/var/lib/tlsa');
  });
});

describe('loadConfig: errors point at file:line', () => {
  const cases: [string, string, number, RegExp][] = [
    ['top-level type error', variant(2, 'ttl: "abc"'), 2, /^ttl: .*expected number/],
    ['top-level unknown key', variant(2, 'ttl: 3600', 'tll: 5'), 3, /^tll: unknown key "tll"/],
    [
      "provider without type (depth 2: the provider's line)",
      variant(5),
      4,
      /providers\.local\.type: missing required key "type"/,
    ],
    [
      'service type error (depth 3)',
      variant(11, '    provider: local', '    ttl: "abc"'),
      12,
      /services\.mx\.ttl: .*expected number/,
    ],
    [
      'service unknown key (depth 3)',
      variant(9, '    host: mx.example.org', '    hots: x'),
      10,
      /services\.mx\.hots: unknown key "hots"/,
    ],
    [
      "missing host (the service's line)",
      variant(9),
      8,
      /services\.mx\.host: missing required key "host"/,
    ],
    [
      'a port in a block list (depth 4)',
      variant(10, '    ports:', '      - 25', '      - "x"'),
      12,
      /services\.mx\.ports\[1\]: .*expected number/,
    ],
    [
      'a port out of range in a flow list',
      variant(10, '    ports: [25, 70000]'),
      10,
      /services\.mx\.ports\[1\]/,
    ],
    [
      'a certificate source of no known shape (depth 4)',
      variant(13, '      - lineage: live/mx', '      - lineage: 5'),
      14,
      /services\.mx\.certificates\[1\]: a certificate source is one of/,
    ],
    [
      'an unknown key in a certificate source (depth 5)',
      variant(13, '      - fullchain: a.pem', '        kye: a.key'),
      14,
      /services\.mx\.certificates\[0\]\.kye: unknown key "kye"/,
    ],
    [
      'a service naming an undefined provider',
      variant(11, '    provider: remote'),
      11,
      /services\.mx\.provider: unknown provider "remote" \(defined: local\)/,
    ],
    ['YAML syntax: bad indentation', variant(11, '   provider: local'), 11, /YAML syntax error/],
    [
      'YAML syntax: duplicate key',
      variant(11, '    provider: local', '    host: other.example.org'),
      12,
      /YAML syntax error: .*unique/,
    ],
    [
      'an unset ${VAR} in a provider option',
      variant(6, '    path: zone.db', '    reload: "rndc -k ${TLSA_UNIT_UNSET} reload"'),
      7,
      /providers\.local\.reload: environment variable TLSA_UNIT_UNSET is not set/,
    ],
  ];

  it.each(cases)('%s', (_name, text, line, message) => {
    delete process.env.TLSA_UNIT_UNSET;
    const file = write(text);
    const e = loadError(file);
    expect(e.file).toBe(file);
    expect(e.line).toBe(line);
    expect(e.message).toMatch(message);
    expect(e.located.startsWith(`${file}:${line}: `)).toBe(true);
  });

  it('a missing file names the file, without a line', () => {
    const file = path.join(dir, 'absent.yaml');
    const e = loadError(file);
    expect(e.file).toBe(file);
    expect(e.line).toBeUndefined();
    expect(e.message).toMatch(/file not found/);
  });

  it('a file that is not a mapping', () => {
    const e = loadError(write('- just\n- a list\n'));
    expect(e.message).toMatch(/must be a YAML mapping/);
  });
});

describe('loadConfig: secrets', () => {
  it('${VAR} is replaced and registered for redaction', () => {
    env('TLSA_UNIT_TOKEN', 'env-secret-123');
    const c = loadConfig(
      write(variant(6, '    path: zone.db', '    reload: "notify --token ${TLSA_UNIT_TOKEN}"')),
    );
    expect(c.raw.providers.local!.reload).toBe('notify --token env-secret-123');
    expect(redact('failed: notify --token env-secret-123')).toBe('failed: notify --token ***');
  });

  it('<option>_file reads the option from a file (relative to the config), chmod 600: no warning', () => {
    const sub = `secrets-${++n}`;
    const secretFile = path.join(dir, sub, 'token.txt');
    fs.mkdirSync(path.dirname(secretFile), { recursive: true });
    fs.writeFileSync(secretFile, 'file-secret-456\n', { mode: 0o600 });
    fs.chmodSync(secretFile, 0o600);
    const c = loadConfig(
      write(variant(6, '    path: zone.db', '    token_file: token.txt'), 'tlsa.yaml', sub),
    );
    const opts = c.raw.providers.local!;
    expect(opts.token).toBe('file-secret-456');
    expect(opts).not.toHaveProperty('token_file');
    expect(c.warnings).toEqual([]);
    expect(redact('got file-secret-456 back')).toBe('got *** back');
  });

  it('a group/world readable secret file (0644) gives a warning', () => {
    const secretFile = path.join(dir, `open-${++n}.txt`);
    fs.writeFileSync(secretFile, 'open-secret-789');
    fs.chmodSync(secretFile, 0o644);
    const c = loadConfig(write(variant(6, '    path: zone.db', `    token_file: ${secretFile}`)));
    expect(c.raw.providers.local!.token).toBe('open-secret-789');
    expect(c.warnings).toHaveLength(1);
    expect(c.warnings[0]).toContain(secretFile);
    expect(c.warnings[0]).toMatch(/readable by group or others; chmod 600/);
    expect(c.warnings[0]).not.toContain('open-secret-789');
  });

  it("an unreadable secret file is an error at its key's line", () => {
    const e = loadError(
      write(variant(6, '    path: zone.db', '    token_file: does-not-exist.txt')),
    );
    expect(e.line).toBe(7);
    expect(e.message).toMatch(
      /providers\.local\.token_file: cannot read secret file .*does-not-exist\.txt: file not found/,
    );
  });
});

describe("loadConfig: relative paths resolve against the config file's directory", () => {
  it('state_dir relative, absolute, and with a config path given relative to the cwd', () => {
    const sub = `rel-${++n}`;
    const file = write(yaml(...GOOD), 'tlsa.yaml', sub);
    expect(loadConfig(file).stateDir).toBe(path.join(dir, sub, 'state'));
    expect(loadConfig(file).baseDir).toBe(path.join(dir, sub));

    const abs = write(variant(1, 'state_dir: /srv/tlsa-state'), 'abs.yaml', sub);
    expect(loadConfig(abs).stateDir).toBe('/srv/tlsa-state');

    const up = write(variant(1, 'state_dir: ../shared/state'), 'up.yaml', sub);
    expect(loadConfig(up).stateDir).toBe(path.join(dir, 'shared', 'state'));

    // Given relative to the working directory, it still resolves against the file's own dir.
    const relToCwd = path.relative(process.cwd(), file);
    expect(path.isAbsolute(relToCwd)).toBe(false);
    const c = loadConfig(relToCwd);
    expect(c.stateDir).toBe(path.join(dir, sub, 'state'));
    expect(c.file).toBe(relToCwd);
  });
});

describe('loadConfig: the acme block', () => {
  const withAcme = (...acme: string[]) =>
    yaml(...GOOD, '    acme:', ...acme.map((l) => `      ${l}`));
  it('accepts directory, key types, names, profile, http01 and defaults the key type', () => {
    const c = loadConfig(
      write(
        withAcme(
          'directory: letsencrypt-staging',
          'contact: ["mailto:hostmaster@example.org"]',
          'names: [mx.example.org]',
          'profile: tlsserver',
          'challenge: {http01: {standalone: "127.0.0.1:8080"}}',
        ),
      ),
    );
    expect(c.raw.services.mx!.acme).toMatchObject({
      directory: 'letsencrypt-staging',
      key_types: ['ecdsa-p256'],
      challenge: { http01: { standalone: '127.0.0.1:8080' } },
    });
  });

  it('accepts dns01 with defaults (the service provider, TTL 60, 300 s) and wildcard names', () => {
    const c = loadConfig(
      write(
        withAcme(
          'directory: letsencrypt',
          'names: [example.org, "*.example.org"]',
          'challenge: {dns01: {}}',
        ),
      ),
    );
    expect(c.raw.services.mx!.acme!.challenge).toEqual({
      dns01: { ttl: 60, propagation_timeout_s: 300 },
    });
    const d = loadConfig(
      write(
        withAcme(
          'directory: letsencrypt',
          'challenge:',
          '  dns01: {provider: local, ttl: 30, propagation_timeout_s: 90}',
        ),
      ),
    );
    expect(d.raw.services.mx!.acme!.challenge.dns01).toEqual({
      provider: 'local',
      ttl: 30,
      propagation_timeout_s: 90,
    });
  });

  it('refuses an unknown dns01 provider, both challenges, or none, at their lines (exit 2)', () => {
    let e = loadError(
      write(withAcme('directory: letsencrypt', 'challenge:', '  dns01: {provider: nowhere}')),
    );
    expect(e.exitCode).toBe(2);
    expect(e.located).toMatch(
      /:17: services\.mx\.acme\.challenge\.dns01\.provider: unknown provider "nowhere" \(defined: local\)/,
    );
    e = loadError(
      write(
        withAcme('directory: letsencrypt', 'challenge:', '  http01: {webroot: /w}', '  dns01: {}'),
      ),
    );
    expect(e.located).toMatch(/:18: services\.mx\.acme\.challenge\.dns01: give one challenge/);
    e = loadError(write(withAcme('directory: letsencrypt', 'challenge: {}')));
    expect(e.located).toMatch(/:16: services\.mx\.acme\.challenge: the challenge is/);
    e = loadError(write(withAcme('directory: letsencrypt', 'challenge: {dns01: {ttl: 0}}')));
    expect(e.located).toMatch(/:16: services\.mx\.acme\.challenge\.dns01\.ttl/);
    e = loadError(
      write(withAcme('directory: letsencrypt', 'challenge: {dns01: {ttl: 60, zone: x}}')),
    );
    expect(e.located).toMatch(/dns01\.zone: unknown key "zone"/);
  });

  it('refuses a wildcard name with http01: wildcards need dns01 (exit 2, at the name)', () => {
    let e = loadError(
      write(
        withAcme(
          'directory: letsencrypt',
          'names:',
          '  - mx.example.org',
          '  - "*.example.org"',
          'challenge: {http01: {webroot: /w}}',
        ),
      ),
    );
    expect(e.exitCode).toBe(2);
    expect(e.located).toMatch(
      /:18: services\.mx\.acme\.names\[1\]: "\*\.example\.org" is a wildcard name: the CA validates it only by DNS-01/,
    );
    e = loadError(
      write(
        withAcme('directory: letsencrypt', 'names: ["a.*.example.org"]', 'challenge: {dns01: {}}'),
      ),
    );
    expect(e.located).toMatch(/names\[0\]: "a\.\*\.example\.org": a wildcard is "\*\." followed/);
  });

  it('refuses an unknown key type and a malformed http01 at their lines', () => {
    let e = loadError(
      write(
        withAcme(
          'directory: letsencrypt',
          'key_types: [ed25519]',
          'challenge: {http01: {webroot: /w}}',
        ),
      ),
    );
    expect(e.located).toMatch(/:16: services\.mx\.acme\.key_types\[0\]/);
    e = loadError(write(withAcme('directory: letsencrypt', 'challenge: {http01: {port: 80}}')));
    expect(e.located).toMatch(/:16: .*http01 is one of \{webroot: DIR\} or \{standalone/);
    e = loadError(write(withAcme('directory: ftp://ca/dir', 'challenge: {http01: {webroot: /w}}')));
    expect(e.located).toMatch(/:15: .*acme\.directory: the ACME directory is/);
  });

  it('reads the EAB HMAC key from hmac_key_file and redacts it', () => {
    const secret = write('c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw\n', 'eab.key');
    fs.chmodSync(secret, 0o600);
    const c = loadConfig(
      write(
        withAcme(
          'directory: letsencrypt',
          'challenge: {http01: {webroot: /w}}',
          `eab: {kid: kid-1, hmac_key_file: ${secret}}`,
        ),
      ),
    );
    expect(c.raw.services.mx!.acme!.eab).toEqual({
      kid: 'kid-1',
      hmac_key: 'c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw',
    });
    expect(redact('key c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw')).not.toContain('c2VjcmV0');
  });

  it('refuses a service name that is not a plain directory name, at its line (exit 2)', () => {
    for (const name of ['"../escape"', '"a/b"', 'accounts', '".hidden"']) {
      const text = withAcme('directory: letsencrypt', 'challenge: {http01: {webroot: /w}}');
      const e = loadError(write(text.replace('\n  mx:\n', `\n  ${name}:\n`)));
      expect(e.exitCode).toBe(2);
      expect(e.located).toMatch(/:8: services\..*a service with acme: needs a plain name/);
    }
    // Without acme: the name is only a label.
    const plain = yaml(...GOOD).replace('\n  mx:\n', '\n  "mx/25":\n');
    expect(Object.keys(loadConfig(write(plain)).raw.services)).toEqual(['mx/25']);
  });
});

describe('loadConfig: plain block YAML is read quickly, the rest through the yaml document', () => {
  const PLAIN = yaml(
    'state_dir: state',
    'providers:',
    '  local: {type: zonefile, path: zone.db}',
    'services:',
    '  a:',
    '    host: a.example.org',
    '    provider: local',
    '    ports: [25, {port: 465, protocol: smtps}]',
    '    certificates:',
    '      - lineage: live/mx',
    '  b:',
    '    host: b.example.org',
    '    provider: local',
    '    ports: [25, {port: 465, protocol: smtps}]',
    '    certificates:',
    '      - lineage: live/mx',
  );
  // The same configuration with anchors, aliases and a tag: outside the quick reader.
  const ALIASED = yaml(
    'state_dir: !!str state',
    'providers:',
    '  local: {type: zonefile, path: zone.db}',
    'services:',
    '  a:',
    '    host: a.example.org',
    '    provider: &p local',
    '    ports: &ports [25, {port: 465, protocol: smtps}]',
    '    certificates: &certs',
    '      - lineage: live/mx',
    '  b:',
    '    host: b.example.org',
    '    provider: *p',
    '    ports: *ports',
    '    certificates: *certs',
  );

  it('both ways give one configuration', () => {
    expect(readPlainYaml(PLAIN)).not.toBeUndefined();
    expect(readPlainYaml(ALIASED)).toBeUndefined();
    const quick = loadConfig(write(PLAIN));
    const full = loadConfig(write(ALIASED));
    expect(quick.raw).toStrictEqual(full.raw);
    expect([...quick.installs]).toEqual([...full.installs]);
  });

  it('expands ${ENV} in a value reached through two aliases, in both places', () => {
    env('TLSA_TEST_ZONE', 'zones/example.org.zone');
    const c = loadConfig(
      write(
        yaml(
          'providers:',
          '  a: &zone {type: zonefile, path: "${TLSA_TEST_ZONE}"}',
          '  b: *zone',
          'services: {}',
        ),
      ),
    );
    expect(c.raw.providers.a).toEqual({ type: 'zonefile', path: 'zones/example.org.zone' });
    expect(c.raw.providers.b).toEqual(c.raw.providers.a);
  });

  const lineOfService = (i: number) => 6 + 8 * i;

  it.each([
    ['read quickly', 'state_dir: state'],
    ['through the yaml document', 'state_dir: &s state'],
  ])('an error deep in a config of 2,000 services names its line (%s)', (_way, head) => {
    const ports = fleetConfigLines(2000, head);
    ports[lineOfService(1500) + 1] = '    ports: [25, 0]';
    let e = loadError(write(yaml(...ports)));
    expect(e.line).toBe(lineOfService(1500) + 2);
    expect(e.message).toMatch(/^services\.s1500\.ports\[1\]: /);

    const unknown = fleetConfigLines(2000, head);
    unknown.splice(lineOfService(1700) + 3, 0, '    colour: blue');
    e = loadError(write(yaml(...unknown)));
    expect(e.line).toBe(lineOfService(1700) + 4);
    expect(e.message).toBe('services.s1700.colour: unknown key "colour"');

    const repeated = fleetConfigLines(2000, head);
    repeated.splice(lineOfService(1900) + 3, 0, '    provider: local');
    e = loadError(write(yaml(...repeated)));
    expect(e.line).toBe(lineOfService(1900) + 4);
    expect(e.message).toMatch(/YAML syntax error: .*unique/);

    const unset = fleetConfigLines(2000, head);
    unset[lineOfService(1999) + 6] = '      - lineage: ${TLSA_TEST_UNSET_LIVE}/mx';
    e = loadError(write(yaml(...unset)));
    expect(e.line).toBe(lineOfService(1999) + 7);
    expect(e.message).toMatch(/environment variable TLSA_TEST_UNSET_LIVE is not set/);
  });
});
