/** src/config/check-config.ts: services written alike but for their host are checked once
 *  (a fleet has thousands); what loadConfig returns and every error it reports stay those of
 *  the whole schema. */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import * as schema from '../../src/config/schema.js';
import { readPlainYaml } from '../../src/config/plain-yaml.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = makeTempDir('tlsa-config-alike-');
});
afterAll(() => {
  if (dir) removeTempDir(dir);
});

function write(text: string): string {
  const file = path.join(dir, `c${++n}.yaml`);
  fs.writeFileSync(file, text);
  return file;
}

const service = (i: number, extra = '') =>
  [
    `  s${i}:`,
    `    host: mx${i}.example.org`,
    '    provider: local',
    '    records: ["3 1 1", "2 1 1"]',
    '    certificates:',
    '      - lineage: live/mx',
    '      - {lineage: live/mx-rsa, name: rsa}',
    extra,
  ]
    .filter(Boolean)
    .join('\n');

function fleet(services: string[]): string {
  return [
    'state_dir: state',
    'providers:',
    '  local: {type: zonefile, path: z.zone}',
    'services:',
    ...services,
    '',
  ].join('\n');
}

/** The outcome of the whole schema on the same text, as loadConfig reported it before. */
function wholeSchema(text: string) {
  const r = schema.configSchema.safeParse(readPlainYaml(text), { jitless: true });
  return r.success ? r.data : r.error.issues[0];
}

function loadError(file: string): string {
  try {
    loadConfig(file);
  } catch (e) {
    return (e as Error & { located: string }).located;
  }
  throw new Error('loaded');
}

describe('alike services', () => {
  it('are checked once, and each gets its own copy of the checked value', () => {
    const services = Array.from({ length: 40 }, (_, i) =>
      service(i, i % 7 === 3 ? '    ports: [25, 587]' : i === 11 ? '    ttl: 60' : ''),
    );
    const text = fleet(services);
    const parse = vi.spyOn(schema.service, 'safeParse');
    const c = loadConfig(write(text));
    // s0 and the first of the two other kinds (s3, s11) are checked; the rest are copies.
    expect(parse).toHaveBeenCalledTimes(3);
    parse.mockRestore();
    expect(c.raw).toEqual(wholeSchema(text));
    expect(Object.keys(c.raw.services)).toEqual(services.map((_, i) => `s${i}`));
    (c.raw.services.s1!.ports as number[]).push(465);
    c.raw.services.s1!.certificates[0]!.name = 'changed';
    expect(c.raw.services.s2!.ports).toEqual([25]);
    expect(c.raw.services.s2!.certificates[0]).toEqual({ lineage: 'live/mx' });
  });

  it.each([
    [
      'a later alike service with a bad port',
      service(5, '    ports: [0]'),
      /services\.s5\.ports\[0\]/,
    ],
    ['an unknown key', service(5, '    hots: x'), /services\.s5\.hots: unknown key "hots"/],
    [
      'an empty host',
      service(5).replace('host: mx5.example.org', 'host: ""'),
      /services\.s5\.host/,
    ],
    [
      'no host',
      service(5).replace('    host: mx5.example.org\n', ''),
      /missing required key "host"/,
    ],
    [
      'a host that is not text',
      service(5).replace('host: mx5.example.org', 'host: 5'),
      /services\.s5\.host/,
    ],
  ])('%s is reported as by the whole schema', (_what, bad, message) => {
    const services = Array.from({ length: 8 }, (_, i) => (i === 5 ? bad : service(i)));
    const file = write(fleet(services));
    const issue = wholeSchema(fleet(services)) as { path: PropertyKey[] };
    expect(issue.path.slice(0, 2)).toEqual(['services', 's5']);
    expect(loadError(file)).toMatch(message);
  });
});
