/**
 * The zonefile provider through the built CLI: a zone it cannot parse, a missing zone and a
 * misspelt provider option are exit 2 with file:line, and nothing changes (no zone edit, no
 * state). The reproduction of issue 9: an unbalanced "(" made every publish append another
 * copy of all records, exit 0.
 *
 * A zone made before tlsa, whose TLSA owner holds a hand-made line with a higher TTL than
 * tlsa's `ttl:`: a server serves one TTL per RRset (BIND the first line's, Knot the last's), so
 * tlsa writes, records and waits on the higher one, the plan says why, and a second publish
 * writes nothing. tlsa's own lines never pin the TTL; an adopted (unmarked) line does, as the
 * provider cannot tell it from a hand-made one. A zone with CR LF line endings keeps them.
 */
import { execFileSync } from 'node:child_process';
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

const OWNER = '_25._tcp.mx.example.org.';
const HEAD =
  '$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 host 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n';
const HAND = '3 1 1 5E99B1F75CCC89FAE2AC99317C39445777827698896C15CBA6607A573F1D6A0C';

interface PlanJson {
  owners: {
    owner: string;
    ttl: number;
    ttlWhy?: string;
    wait: { seconds: number; ttl: number; why: string } | null;
    add: { rdata: string }[];
  }[];
}

/** `status --json`'s records: phase and wait. */
interface StatusJson {
  records: { phase: string; wait: { ttl: number; why: string } | null }[];
}

/** A case of zonefile-cli's setup() with `ttl` in its config, and what the tests below read. */
function ttlCase(zone: string, ttl = 3600) {
  const c = setup(zone);
  const writeConfig = (t: number) =>
    fs.writeFileSync(c.config, c.text.replace('ttl: 3600\n', `ttl: ${t}\n`));
  writeConfig(ttl);
  const cli = (...args: string[]) => runCli(['--config', c.config, ...args], { cwd: c.dir });
  const ok = (...args: string[]) => {
    const r = cli(...args);
    expect(r.code, show(r)).toBe(0);
    return r;
  };
  return {
    dir: c.dir,
    zonePath: c.zone,
    writeConfig,
    ok,
    zone: () => fs.readFileSync(c.zone, 'latin1'),
    plan: () => JSON.parse(ok('plan', '--json').stdout) as PlanJson,
    status: () => JSON.parse(ok('status', '--json').stdout) as StatusJson,
    stateRecords: () =>
      (
        JSON.parse(fs.readFileSync(path.join(c.dir, 'state', 'state.json'), 'utf8')) as {
          records: { ttl: number; ttlRaise?: { from: number; cause?: string } }[];
        }
      ).records,
    stateTtls: () =>
      (
        JSON.parse(fs.readFileSync(path.join(c.dir, 'state', 'state.json'), 'utf8')) as {
          records: { ttl: number }[];
        }
      ).records.map((r) => r.ttl),
  };
}

/** The TTL written on each TLSA line of the zone text. */
const tlsaTtls = (zone: string) =>
  zone
    .split(/\r?\n/)
    .filter((l) => /\sIN\s+TLSA\s/.test(l))
    .map((l) => Number(/\s(\d+)\s+IN\s+TLSA\s/.exec(l)?.[1]));

/** publish, then publish again: the second writes nothing. */
function publishTwice(c: ReturnType<typeof ttlCase>) {
  c.ok('publish');
  const after = c.zone();
  const again = c.ok('publish');
  expect(again.stdout, show(again)).toContain('Published nothing');
  expect(c.zone()).toBe(after);
  return after;
}

describe('zonefile: the TTL the server serves at an owner with hand-made TLSA lines', () => {
  it('a hand-made line with a higher TTL: plan says so, tlsa writes, records and waits on it; the next run is a no-op', () => {
    const c = ttlCase(`${HEAD}_25._tcp.mx 7200 IN TLSA ${HAND}\n`);
    const plan = c.plan();
    expect(plan.owners[0]).toMatchObject({
      owner: OWNER,
      ttl: 7200,
      wait: { seconds: 14400, ttl: 7200 },
    });
    expect(plan.owners[0]!.ttlWhy).toMatch(
      /raised from 3600: a TLSA line there not written by tlsa \(.*zone\.db line 6\) has TTL 7200/,
    );
    expect(c.ok('plan').stdout).toContain(`${OWNER}  (provider local, TTL 7200: raised from 3600`);
    // The wait names the raised TTL and why, as the TTL line does (not "as published").
    const cause = `a TLSA line there not written by tlsa (${c.zonePath} line 6) has TTL 7200`;
    const raised = `tlsa's TTL, raised from 3600: ${cause}`;
    expect(plan.owners[0]!.wait!.why).toBe(raised);
    expect(c.ok('plan').stdout).toContain(`new records live 2×7200 s: ${raised}; counted from`);
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([7200]));
    expect(tlsaTtls(zone).length).toBeGreaterThan(1);
    expect(new Set(c.stateTtls())).toEqual(new Set([7200]));
    expect(c.stateRecords().map((r) => r.ttlRaise)).toEqual(
      c.stateRecords().map(() => ({ from: 3600, cause })),
    );
    const status = c.status().records;
    expect(status.map((r) => [r.phase, r.wait])).toEqual(
      status.map(() => ['pending', { ttl: 7200, why: raised, seconds: 14400 }]),
    );
    expect(c.ok('status').stdout).toContain(`2×7200 s: ${raised}`);
    // BIND loads it without "TTL set to prior TTL": one TTL for the RRset, as written.
    const check = execFileSync('named-checkzone', ['example.org', c.zonePath], {
      encoding: 'utf8',
    });
    expect(check).not.toContain('prior TTL');
  });

  it('a hand-made line with a lower TTL: tlsa keeps its own (the larger, waits are not shorter than served)', () => {
    const c = ttlCase(`${HEAD}_25._tcp.mx 300 IN TLSA ${HAND}\n`);
    expect(c.plan().owners[0]).toMatchObject({ ttl: 3600 });
    expect(c.plan().owners[0]).not.toHaveProperty('ttlWhy');
    expect(c.plan().owners[0]!.wait!.why).toBe("tlsa's TTL, as published");
    const zone = publishTwice(c);
    expect(c.stateRecords()[0]).not.toHaveProperty('ttlRaise');
    expect(c.status().records[0]!.wait!.why).toBe("tlsa's TTL, as published");
    expect(tlsaTtls(zone)[0]).toBe(300);
    expect(new Set(tlsaTtls(zone).slice(1))).toEqual(new Set([3600]));
  });

  it("tlsa's own lines with an old TTL never pin it: a lowered `ttl:` rewrites them", () => {
    const c = ttlCase(HEAD, 7200);
    publishTwice(c);
    c.writeConfig(1800);
    expect(c.plan().owners[0]).toMatchObject({ ttl: 1800 });
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([1800]));
    expect(new Set(c.stateTtls())).toEqual(new Set([1800]));
  });

  it('an adopted line (unmarked, owned through `tlsa adopt`) pins the TTL like a hand-made one', () => {
    const probe = ttlCase(HEAD);
    const wanted = probe.plan().owners[0]!.add[0]!.rdata;
    const c = ttlCase(`${HEAD}_25._tcp.mx 7200 IN TLSA ${wanted}\n`);
    c.ok('adopt');
    expect(c.plan().owners[0]).toMatchObject({ ttl: 7200 });
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([7200]));
    expect(new Set(c.stateTtls())).toEqual(new Set([7200]));
  });

  it('a zone with CR LF line endings keeps them on the lines tlsa writes', () => {
    const text = `${HEAD}_25._tcp.mx 300 IN TLSA ${HAND}\n`.replace(/\n/g, '\r\n');
    const c = ttlCase(text);
    const zone = publishTwice(c);
    expect(zone.startsWith(text)).toBe(true);
    expect(zone.length).toBeGreaterThan(text.length);
    expect(zone.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });
});
