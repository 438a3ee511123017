/**
 * One service, several protocols: `ports: [25, 587, {port: 465, protocol: smtps}]`. The config
 * (forms, defaults, errors at file:line), the protocol each port resolves to and is probed
 * with, the SMTP rule on usages 0/1 for every port that carries SMTP, and computeTargets.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { configuredProtocol, servicePorts } from '../../src/config/ports.js';
import { probeProtocol } from '../../src/verify/probe-protocol.js';
import { computeTargets } from '../../src/engine/targets.js';
import { InputError } from '../../src/errors.js';
import { checkUsageAllowed, PolicyError } from '../../src/tlsa/policy.js';
import { makeCa, makeLeaf, makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
let chainFile: string;
let n = 0;

beforeAll(() => {
  dir = makeTempDir('tlsa-ports-');
  const root = makeCa(dir, { name: 'Ports Root', key: 'p256' });
  const int = makeCa(dir, { name: 'Ports Int', key: 'p256', issuer: root });
  const leaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
  chainFile = path.join(dir, 'fullchain.pem');
  fs.writeFileSync(chainFile, `${leaf.certPem.trim()}\n${int.certPem.trim()}\n`);
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

/** A config whose service `mx` has the given lines (ports:, protocol:, records:) at line 10. */
function config(...serviceLines: string[]): string {
  const file = path.join(dir, `c${++n}.yaml`);
  fs.writeFileSync(
    file,
    [
      'state_dir: state', // 1
      'providers:', // 2
      '  local:', // 3
      '    type: zonefile', // 4
      '    path: zone.db', // 5
      'services:', // 6
      '  mx:', // 7
      '    host: mx.example.org', // 8
      '    provider: local', // 9
      ...serviceLines, // 10…
      '    issuers: none',
      '    certificates:',
      `      - fullchain: ${chainFile}`,
      '',
    ].join('\n'),
  );
  return file;
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

describe('ports: numbers and {port, protocol}', () => {
  it("mixes both forms; each port gets its own protocol, the service protocol, or the port's default", () => {
    const c = loadConfig(
      config(
        '    ports: [25, 587, 465, 143, 110, 993, 2525, {port: 2465, protocol: smtps}, {port: 8443}]',
      ),
    );
    expect(servicePorts(c.raw.services.mx!)).toEqual([
      { port: 25, protocol: 'smtp' },
      { port: 587, protocol: 'submission' },
      { port: 465, protocol: 'smtps' },
      { port: 143, protocol: 'imap' },
      { port: 110, protocol: 'pop3' },
      { port: 993, protocol: 'tls' },
      { port: 2525, protocol: 'tls' },
      { port: 2465, protocol: 'smtps' },
      { port: 8443, protocol: 'tls' },
    ]);
  });

  it('the service-level protocol is the default for the ports without their own; port 25 stays smtp', () => {
    const c = loadConfig(
      config('    ports: [25, 2525, {port: 465, protocol: tls}]', '    protocol: smtp'),
    );
    expect(servicePorts(c.raw.services.mx!)).toEqual([
      { port: 25, protocol: 'smtp' },
      { port: 2525, protocol: 'smtp' },
      { port: 465, protocol: 'tls' },
    ]);
    const https = loadConfig(config('    ports: [25, 443]', '    protocol: https'));
    expect(servicePorts(https.raw.services.mx!)).toEqual([
      { port: 25, protocol: 'smtp' },
      { port: 443, protocol: 'https' },
    ]);
  });

  it('each protocol is probed the way it reaches TLS: STARTTLS in its dialogue or implicit TLS', () => {
    const cases: [number, Parameters<typeof probeProtocol>[1], string][] = [
      [25, undefined, 'smtp'],
      [25, 'tls', 'smtp'],
      [587, undefined, 'smtp'],
      [465, undefined, 'tls'],
      [143, undefined, 'imap'],
      [110, undefined, 'pop3'],
      [993, undefined, 'tls'],
      [995, undefined, 'tls'],
      [2525, 'smtp', 'smtp'],
      [2525, undefined, 'tls'],
      [2465, 'smtps', 'tls'],
      [587, 'tls', 'tls'],
      [143, 'tls', 'tls'],
      [24, 'lmtp', 'lmtp'],
      [4190, 'submission', 'smtp'],
      [443, 'https', 'tls'],
    ];
    expect(cases.map(([port, protocol]) => probeProtocol(port, protocol))).toEqual(
      cases.map((c) => c[2]),
    );
  });

  it('check HOST:PORT finds the protocol the configuration gives that port of that host', () => {
    const c = loadConfig(
      config('    ports: [25, {port: 2525, protocol: smtp}, {port: 2465, protocol: smtps}]'),
    );
    const services = Object.values(c.raw.services);
    expect(configuredProtocol(services, 'mx.example.org', 2525)).toBe('smtp');
    expect(configuredProtocol(services, 'MX.Example.ORG.', 2465)).toBe('smtps');
    expect(configuredProtocol(services, 'mx.example.org', 2587)).toBeUndefined();
    expect(configuredProtocol(services, 'other.example.org', 2525)).toBeUndefined();
  });
});

describe('ports: errors point at file:line', () => {
  const cases: [string, string[], number, RegExp][] = [
    [
      'an unknown protocol on one port (flow list)',
      ['    ports: [25, {port: 465, protocol: smpts}]'],
      10,
      /services\.mx\.ports\[1\]\.protocol: .*expected one of .*"smtps"/,
    ],
    [
      "an unknown protocol on one port (block list: that port's line)",
      ['    ports:', '      - 25', '      - port: 465', '        protocol: imaps'],
      13,
      /services\.mx\.ports\[1\]\.protocol: .*expected one of/,
    ],
    [
      'a port listed twice, once as a number and once as an object',
      ['    ports:', '      - 465', '      - {port: 465, protocol: tls}'],
      12,
      /services\.mx\.ports\[1\]: port 465 is listed twice/,
    ],
    [
      'a port listed twice as numbers',
      ['    ports: [25, 587, 25]'],
      10,
      /services\.mx\.ports\[2\]: port 25 is listed twice/,
    ],
    [
      'port 25 as implicit TLS',
      ['    ports:', '      - port: 25', '        protocol: tls'],
      12,
      /services\.mx\.ports\[0\]\.protocol: port 25 is always smtp/,
    ],
    [
      'an unknown key in a port',
      ['    ports:', '      - 25', '      - {port: 465, protcol: tls}'],
      12,
      /services\.mx\.ports\[1\]\.protcol: unknown key "protcol"/,
    ],
    [
      'a port object without its port',
      ['    ports:', '      - protocol: tls'],
      11,
      /services\.mx\.ports\[0\]\.port: missing required key "port"/,
    ],
    [
      'a port out of range in an object',
      ['    ports: [{port: 70000, protocol: tls}]'],
      10,
      /services\.mx\.ports\[0\]\.port: .*65535/,
    ],
    [
      'a port that is neither a number nor an object',
      ['    ports: [25, "465"]'],
      10,
      /services\.mx\.ports\[1\]: .*expected number/,
    ],
  ];

  it.each(cases)('%s', (_name, lines, line, message) => {
    const file = config(...lines);
    const e = loadError(file);
    expect(e.message).toMatch(message);
    expect(e.line).toBe(line);
    expect(e.located.startsWith(`${file}:${line}: `)).toBe(true);
  });

  it('two services that give one port of one host different protocols', () => {
    const file = config('    ports: [25, 465]');
    fs.appendFileSync(
      file,
      [
        '  smtps:',
        '    host: MX.example.org',
        '    provider: local',
        '    ports:',
        '      - port: 465',
        '        protocol: tls',
        '    certificates:',
        `      - fullchain: ${chainFile}`,
        '',
      ].join('\n'),
    );
    const e = loadError(file);
    expect(e.message).toMatch(
      /services\.smtps\.ports\[0\]: port 465 of mx\.example\.org speaks tls here but smtps in service "mx"/,
    );
    expect(e.line).toBe(18);
  });
});

describe('usages 0 and 1 on every port that carries SMTP', () => {
  it('refused for smtp, submission and smtps, wherever they are configured; allowed for other protocols', () => {
    for (const [port, protocol] of [
      [25, undefined],
      [587, undefined],
      [465, undefined],
      [2525, 'smtp'],
      [2587, 'submission'],
      [2465, 'smtps'],
      [25, 'https'],
    ] as const) {
      expect(() => checkUsageAllowed(1, port, protocol), `${port} ${protocol}`).toThrow(
        PolicyError,
      );
    }
    for (const [port, protocol] of [
      [465, 'tls'],
      [443, undefined],
      [993, undefined],
      [143, undefined],
      [587, 'https'],
    ] as const) {
      expect(() => checkUsageAllowed(1, port, protocol), `${port} ${protocol}`).not.toThrow();
    }
    expect(() => checkUsageAllowed(0, 465)).toThrow(/refused for SMTP on port 465 \(smtps\)/);
  });

  it('computeTargets refuses "1 1 1" on a service whose 465 is bare (smtps), pointing at records:', () => {
    const file = config('    ports: [993, 465]', '    records: ["3 1 1", "1 1 1"]');
    const c = loadConfig(file);
    let err: unknown;
    try {
      computeTargets(c, ['mx'], new Date());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).message).toMatch(
      /services\.mx\.records: usage 1 \(PKIX-EE\) is refused for SMTP on port 465 \(smtps\)/,
    );
    expect((err as InputError).line).toBe(11);
  });

  it('computeTargets publishes "1 1 1" when 465 is configured as plain implicit TLS', () => {
    const c = loadConfig(
      config('    ports: [993, {port: 465, protocol: tls}]', '    records: ["3 1 1", "1 1 1"]'),
    );
    const t = computeTargets(c, ['mx'], new Date());
    expect([...new Set(t.records.map((r) => `${r.owner} ${r.usage}`))].sort()).toEqual([
      '_465._tcp.mx.example.org. 1',
      '_465._tcp.mx.example.org. 3',
      '_993._tcp.mx.example.org. 1',
      '_993._tcp.mx.example.org. 3',
    ]);
  });
});

describe('computeTargets', () => {
  it('records at every port, and each port of the service with the protocol it speaks', () => {
    const c = loadConfig(config('    ports: [25, 587, {port: 465}, {port: 2525, protocol: smtp}]'));
    const t = computeTargets(c, ['mx'], new Date());
    expect([...new Set(t.records.map((r) => r.owner))].sort()).toEqual([
      '_25._tcp.mx.example.org.',
      '_2525._tcp.mx.example.org.',
      '_465._tcp.mx.example.org.',
      '_587._tcp.mx.example.org.',
    ]);
    expect(t.services.map((s) => s.ports)).toEqual([
      [
        { port: 25, protocol: 'smtp' },
        { port: 587, protocol: 'submission' },
        { port: 465, protocol: 'smtps' },
        { port: 2525, protocol: 'smtp' },
      ],
    ]);
  });
});
