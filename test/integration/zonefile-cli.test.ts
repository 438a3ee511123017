/**
 * The zonefile provider through the built CLI: a zone it cannot parse, a missing zone and a
 * misspelt provider option are exit 2 with file:line, and nothing changes (no zone edit, no
 * state). The reproduction of issue 9: an unbalanced "(" made every publish append another
 * copy of all records, exit 0.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  requireBuiltCli,
  runCli,
  show,
  snapshot,
  stackLines,
  type TestPki,
} from '../helpers/cli.js';
import { makeTempDir, removeTempDir, type LeafHandle } from '../helpers/pki.js';

let root: string;
let pki: TestPki;
let leaf: LeafHandle;
let counter = 0;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-zonefile-');
  pki = makeTestPki(path.join(root, 'pki'));
  leaf = leafFor(pki, 'ecdsa');
});

afterAll(() => {
  if (root) removeTempDir(root);
});

/** A case dir with a lineage, `zone.db` holding `zone` (unless undefined) and a config whose
 *  provider block gets `providerLines` (instead of the helper's path + create). */
function setup(zone: string | undefined, providerLines?: string[]) {
  const dir = path.join(root, `case-${++counter}`);
  fs.mkdirSync(dir, { recursive: true });
  const lineage = lineageFor(
    pki,
    'mx.example.org',
    'ecdsa',
    leaf,
    undefined,
    path.join(dir, 'letsencrypt'),
  );
  let text = configYaml({ certificates: [`lineage: ${lineage}`] });
  if (providerLines)
    text = text.replace(
      / {4}type: zonefile\n {4}path: zone\.db\n {4}create: true\n/,
      providerLines.map((l) => `    ${l}\n`).join(''),
    );
  const config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, text);
  if (zone !== undefined) fs.writeFileSync(path.join(dir, 'zone.db'), zone);
  return { dir, config, text, zone: path.join(dir, 'zone.db') };
}

const lineOf = (text: string, needle: string) =>
  text.split('\n').findIndex((l) => l.includes(needle)) + 1;

/** Exit 2, one message naming `place`, no stack, and no file in the case dir changed. */
function expectRefused(
  c: { dir: string; config: string },
  args: string[],
  place: string,
  message: RegExp,
): void {
  const before = snapshot(c.dir);
  const r = runCli(['--config', c.config, ...args], { cwd: c.dir });
  expect(r.code, show(r)).toBe(2);
  expect(r.stderr, show(r)).toContain(place);
  expect(r.stderr, show(r)).toMatch(message);
  expect(stackLines(r.all), show(r)).toEqual([]);
  expect(snapshot(c.dir)).toEqual(before);
}

describe('zonefile through the CLI', () => {
  it('an unbalanced "(" is exit 2 with zone:line on every publish, and the zone never grows', () => {
    const zone = [
      '$ORIGIN example.org.',
      '$TTL 300',
      '@ IN SOA ns1 hostmaster ( 2024010101 3600 600 86400 300',
      '  IN NS ns1',
      '',
    ].join('\n');
    const c = setup(zone);
    for (let run = 0; run < 3; run++)
      expectRefused(c, ['publish'], `${c.zone}:3:`, /"\(" is never closed/);
    expectRefused(c, ['plan'], `${c.zone}:3:`, /"\(" is never closed/);
    expect(fs.readFileSync(c.zone, 'utf8')).toBe(zone);
  });

  it('a zone with its SOA across parentheses and records spread over lines: publish twice adds each record once', () => {
    const zone = [
      '$ORIGIN example.org.',
      '@ IN SOA ns1 hostmaster (',
      '      2024010101 ; serial',
      '      3600 600 86400 300 )',
      '',
    ].join('\n');
    const c = setup(zone);
    for (let run = 0; run < 2; run++) {
      const r = runCli(['--config', c.config, 'publish'], { cwd: c.dir });
      expect(r.code, show(r)).toBe(0);
    }
    const text = fs.readFileSync(c.zone, 'utf8');
    expect(text.startsWith(zone)).toBe(true);
    const records = managedRdata(text);
    expect(records.length).toBeGreaterThan(0);
    expect(new Set(records).size).toBe(records.length);
  });

  it('a missing zone file is exit 2 naming it, unless create: true', () => {
    const c = setup(undefined, ['type: zonefile', 'path: zone.db']);
    expectRefused(c, ['publish'], c.zone, /does not exist.*create: true/);
    const created = setup(undefined);
    const r = runCli(['--config', created.config, 'publish'], { cwd: created.dir });
    expect(r.code, show(r)).toBe(0);
    expect(managedRdata(fs.readFileSync(created.zone, 'utf8')).length).toBeGreaterThan(0);
  });

  for (const [provider, lines] of [
    ['zonefile', ['type: zonefile', 'path: zone.db', 'relaod: "knotc zone-reload example.org"']],
    ['exec', ['type: exec', 'command: ["/bin/false"]', 'relaod: "x"']],
  ] as const) {
    it(`${provider}: a misspelt option is exit 2 at its config line, suggesting the right key`, () => {
      const c = setup('', [...lines]);
      const suggestion =
        provider === 'zonefile'
          ? /has no option "relaod"; did you mean "reload"\?/
          : /has no option "relaod"/;
      expectRefused(c, ['publish'], `${c.config}:${lineOf(c.text, 'relaod:')}:`, suggestion);
    });
  }
});
