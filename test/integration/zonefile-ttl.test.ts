/**
 * The zonefile provider through the built CLI, on a zone made before tlsa: its TLSA owner
 * already holds a hand-made line with a higher TTL than tlsa's `ttl:`. A server serves one TTL
 * per RRset (BIND the first line's, Knot the last's), so tlsa writes, records and waits on the
 * higher one, the plan says why, and a second publish writes nothing. tlsa's own lines never
 * pin the TTL; an adopted (unmarked) line does, as the provider cannot tell it from a
 * hand-made one. A zone with CR LF line endings keeps them.
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
  requireBuiltCli,
  runCli,
  show,
  type TestPki,
} from '../helpers/cli.js';
import { makeTempDir, removeTempDir, type LeafHandle } from '../helpers/pki.js';

const OWNER = '_25._tcp.mx.example.org.';
const HEAD =
  '$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 host 1 3600 600 86400 300\n@ IN NS ns1\nns1 IN A 192.0.2.1\n';
const HAND = '3 1 1 5E99B1F75CCC89FAE2AC99317C39445777827698896C15CBA6607A573F1D6A0C';

let root: string;
let pki: TestPki;
let leaf: LeafHandle;
let counter = 0;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-zonefile-ttl-');
  pki = makeTestPki(path.join(root, 'pki'));
  leaf = leafFor(pki, 'ecdsa');
});

afterAll(() => {
  if (root) removeTempDir(root);
});

interface PlanJson {
  owners: { owner: string; ttl: number; ttlWhy?: string; add: { rdata: string }[] }[];
}

function setup(zone: string, ttl = 3600) {
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
  const config = path.join(dir, 'tlsa.yaml');
  const writeConfig = (t: number) =>
    fs.writeFileSync(config, configYaml({ ttl: t, certificates: [`lineage: ${lineage}`] }));
  writeConfig(ttl);
  const zonePath = path.join(dir, 'zone.db');
  fs.writeFileSync(zonePath, zone);
  const cli = (...args: string[]) => runCli(['--config', config, ...args], { cwd: dir });
  const ok = (...args: string[]) => {
    const r = cli(...args);
    expect(r.code, show(r)).toBe(0);
    return r;
  };
  return {
    dir,
    zonePath,
    writeConfig,
    ok,
    zone: () => fs.readFileSync(zonePath, 'latin1'),
    plan: () => JSON.parse(ok('plan', '--json').stdout) as PlanJson,
    stateTtls: () =>
      (
        JSON.parse(fs.readFileSync(path.join(dir, 'state', 'state.json'), 'utf8')) as {
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
function publishTwice(c: ReturnType<typeof setup>) {
  c.ok('publish');
  const after = c.zone();
  const again = c.ok('publish');
  expect(again.stdout, show(again)).toContain('Published nothing');
  expect(c.zone()).toBe(after);
  return after;
}

describe('zonefile: the TTL the server serves at an owner with hand-made TLSA lines', () => {
  it('a hand-made line with a higher TTL: plan says so, tlsa writes, records and waits on it; the next run is a no-op', () => {
    const c = setup(`${HEAD}_25._tcp.mx 7200 IN TLSA ${HAND}\n`);
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
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([7200]));
    expect(tlsaTtls(zone).length).toBeGreaterThan(1);
    expect(new Set(c.stateTtls())).toEqual(new Set([7200]));
    // BIND loads it without "TTL set to prior TTL": one TTL for the RRset, as written.
    const check = execFileSync('named-checkzone', ['example.org', c.zonePath], {
      encoding: 'utf8',
    });
    expect(check).not.toContain('prior TTL');
  });

  it('a hand-made line with a lower TTL: tlsa keeps its own (the larger, waits are not shorter than served)', () => {
    const c = setup(`${HEAD}_25._tcp.mx 300 IN TLSA ${HAND}\n`);
    expect(c.plan().owners[0]).toMatchObject({ ttl: 3600 });
    expect(c.plan().owners[0]).not.toHaveProperty('ttlWhy');
    const zone = publishTwice(c);
    expect(tlsaTtls(zone)[0]).toBe(300);
    expect(new Set(tlsaTtls(zone).slice(1))).toEqual(new Set([3600]));
  });

  it("tlsa's own lines with an old TTL never pin it: a lowered `ttl:` rewrites them", () => {
    const c = setup(HEAD, 7200);
    publishTwice(c);
    c.writeConfig(1800);
    expect(c.plan().owners[0]).toMatchObject({ ttl: 1800 });
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([1800]));
    expect(new Set(c.stateTtls())).toEqual(new Set([1800]));
  });

  it('an adopted line (unmarked, owned through `tlsa adopt`) pins the TTL like a hand-made one', () => {
    const probe = setup(HEAD);
    const wanted = probe.plan().owners[0]!.add[0]!.rdata;
    const c = setup(`${HEAD}_25._tcp.mx 7200 IN TLSA ${wanted}\n`);
    c.ok('adopt');
    expect(c.plan().owners[0]).toMatchObject({ ttl: 7200 });
    const zone = publishTwice(c);
    expect(new Set(tlsaTtls(zone))).toEqual(new Set([7200]));
    expect(new Set(c.stateTtls())).toEqual(new Set([7200]));
  });

  it('a zone with CR LF line endings keeps them on the lines tlsa writes', () => {
    const text = `${HEAD}_25._tcp.mx 300 IN TLSA ${HAND}\n`.replace(/\n/g, '\r\n');
    const c = setup(text);
    const zone = publishTwice(c);
    expect(zone.startsWith(text)).toBe(true);
    expect(zone.length).toBeGreaterThan(text.length);
    expect(zone.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });
});
