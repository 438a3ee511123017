/**
 * Adoption and recovery through the built CLI (zonefile provider): a lost state, records written
 * by hand, records a tlsa wrote that are no longer wanted, and a damaged state file. Hashes come
 * from the openssl CLI (test/helpers/pki.ts).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configYaml,
  FOREIGN_ZONE,
  leafFor,
  lineageFor,
  managedRdata,
  makeTestPki,
  OWNER_25,
  requireBuiltCli,
  runCli,
  show,
  stackLines,
  type TestPki,
} from '../helpers/cli.js';
import { makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';

let root: string;
let pki: TestPki;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-adopt-');
  pki = makeTestPki(path.join(root, 'pki'));
});

afterAll(() => {
  if (root) removeTempDir(root);
});

interface StatusJson {
  records: { owner: string; rdata: string; phase: string }[];
}
interface PlanJson {
  summary: {
    add: number;
    remove: number;
    keep: number;
    unowned: number;
    foreign: number;
    retiring: number;
  };
}
interface AdoptJson {
  dryRun: boolean;
  adopted: { owner: string; rdata: string }[];
  retiring: { owner: string; rdata: string }[];
  foreign: { owner: string; rdata: string }[];
}

function site(name: string, zone: string) {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const leaf = leafFor(pki, 'ecdsa');
  const live = lineageFor(
    pki,
    `mx-${name}`,
    'ecdsa',
    leaf,
    undefined,
    path.join(dir, 'letsencrypt'),
  );
  const config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, configYaml({ certificates: [`lineage: ${live}`] }));
  fs.writeFileSync(path.join(dir, 'zone.db'), zone);
  const cli = (...args: string[]) => runCli(['--config', config, ...args], { cwd: dir });
  const json = <T>(...args: string[]): T => {
    const r = cli(...args, '--json');
    expect(r.code, show(r)).toBe(0);
    const parsed = JSON.parse(r.stdout) as T;
    expect(parsed, show(r)).toMatchObject({ ok: true, exitCode: 0, command: args[0] });
    return parsed;
  };
  return {
    dir,
    cli,
    json,
    leaf,
    stateFile: path.join(dir, 'state', 'state.json'),
    zone: () => fs.readFileSync(path.join(dir, 'zone.db'), 'utf8'),
    wanted: [
      `3 1 1 ${opensslSpkiSha256(leaf.certPath)}`,
      `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`,
    ].sort(),
  };
}

describe('a lost state', () => {
  it('status and plan agree on what tlsa owns; adopt takes the records back and they retire again', () => {
    const s = site('lost', FOREIGN_ZONE);
    expect(s.cli('publish').code).toBe(0);
    expect(managedRdata(s.zone()).sort()).toEqual(s.wanted);
    fs.rmSync(s.stateFile);

    // Before: status owns nothing, and plan says the same in its own words.
    expect(s.json<StatusJson>('status').records).toHaveLength(0);
    const before = s.json<PlanJson>('plan').summary;
    expect(before).toMatchObject({ add: 0, keep: 2, unowned: 2, foreign: 1 });
    const plan = s.cli('plan');
    expect(plan.stdout).toMatch(/2 of the records in place are not owned by tlsa .*tlsa adopt/);
    expect(s.cli('status').stdout).toMatch(/No records owned by tlsa.*tlsa adopt/s);

    // A dry run changes nothing.
    const zoneBefore = s.zone();
    const dry = s.json<AdoptJson>('adopt', '--dry-run');
    expect(dry.adopted.map((r) => r.rdata).sort()).toEqual(s.wanted);
    expect(dry.foreign.map((r) => r.rdata)).toEqual([`3 1 1 ${'ab'.repeat(32)}`]);
    expect(fs.existsSync(s.stateFile)).toBe(false);

    const r = s.cli('adopt');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/2 record\(s\) adopted \(2 in use, 0 retiring\), 1 left alone/);
    expect(s.zone()).toBe(zoneBefore); // adopt never changes DNS
    const owned = s.json<StatusJson>('status').records;
    expect(owned.map((x) => x.rdata).sort()).toEqual(s.wanted);
    expect(owned.every((x) => x.phase === 'pending')).toBe(true);
    expect(s.json<PlanJson>('plan').summary).toMatchObject({ keep: 2, unowned: 0 });
    // Adopting twice takes nothing twice.
    expect(s.json<AdoptJson>('adopt').adopted).toHaveLength(0);

    // Owned again: a new key retires the old records by the normal rules (grace 0 here).
    fs.writeFileSync(
      path.join(s.dir, 'tlsa.yaml'),
      fs
        .readFileSync(path.join(s.dir, 'tlsa.yaml'), 'utf8')
        .replace('issuers: none', 'issuers: none\n    grace_s: 0'),
    );
    const newLeaf = leafFor(pki, 'ecdsa');
    lineageFor(pki, 'mx-lost', 'ecdsa', newLeaf, 2, path.join(s.dir, 'letsencrypt'));
    expect(s.cli('publish').code).toBe(0);
    const p2 = s.cli('publish');
    expect(p2.code, show(p2)).toBe(0);
    expect(managedRdata(s.zone())).not.toContain(`3 1 1 ${opensslSpkiSha256(s.leaf.certPath)}`);
    expect(managedRdata(s.zone())).toContain(`3 1 1 ${opensslSpkiSha256(newLeaf.certPath)}`);
    expect(s.zone().startsWith(FOREIGN_ZONE)).toBe(true);
  });
});

describe('records tlsa did not publish in this state', () => {
  it('takes over hand-made records equal to desired ones and marked records no longer wanted; leaves the rest', () => {
    const stale = `${'cd'.repeat(32)}`;
    const s0 = site('mixed', FOREIGN_ZONE);
    const handMade = `_25._tcp.mx IN TLSA ${s0.wanted[0]}`; // 2 1 1 of the issuer, written by hand
    fs.writeFileSync(
      path.join(s0.dir, 'zone.db'),
      `${FOREIGN_ZONE}${handMade}\n${OWNER_25} 3600 IN TLSA 3 1 1 ${stale} ; tlsa:managed\n`,
    );
    const r = s0.json<AdoptJson>('adopt');
    expect(r.adopted.map((x) => x.rdata)).toEqual([s0.wanted[0]]);
    expect(r.retiring.map((x) => x.rdata)).toEqual([`3 1 1 ${stale}`]);
    expect(r.foreign.map((x) => x.rdata)).toEqual([`3 1 1 ${'ab'.repeat(32)}`]);
    const phases = Object.fromEntries(
      s0.json<StatusJson>('status').records.map((x) => [x.rdata, x.phase]),
    );
    expect(phases).toEqual({ [s0.wanted[0]!]: 'pending', [`3 1 1 ${stale}`]: 'retiring' });
  });
});

describe('a damaged state', () => {
  const cases: [string, string, RegExp][] = [
    ['not JSON', '{"version": 1, "records": [', /not JSON/],
    [
      'a record with usage 7',
      JSON.stringify({
        version: 1,
        records: [
          {
            owner: OWNER_25,
            usage: 7,
            selector: 1,
            matching: 1,
            data: 'ab',
            provider: 'local',
            service: 'mx',
            ttl: 60,
            status: 'published',
            addedAt: '2026-01-01T00:00:00Z',
            publishedAt: '2026-01-01T00:00:00Z',
            by: 'x',
          },
        ],
      }),
      /records\[0\]: "usage"/,
    ],
    ['records not a list', '{"version": 1, "records": {}}', /"records" is not a list/],
  ];
  for (const [name, text, why] of cases) {
    it(`${name}: exit 2, the file named, the recovery command given, nothing changed`, () => {
      const s = site(`damaged-${cases.findIndex((c) => c[0] === name)}`, FOREIGN_ZONE);
      fs.mkdirSync(path.dirname(s.stateFile), { recursive: true });
      fs.writeFileSync(s.stateFile, text);
      for (const cmd of ['publish', 'status', 'plan']) {
        const r = s.cli(cmd);
        expect(r.code, show(r)).toBe(2);
        expect(r.stderr).toContain(s.stateFile);
        expect(r.stderr).toMatch(why);
        expect(r.stderr).toMatch(/tlsa adopt/);
        expect(stackLines(r.all)).toEqual([]);
      }
      expect(s.zone()).toBe(FOREIGN_ZONE);
      expect(fs.readFileSync(s.stateFile, 'utf8')).toBe(text);
    });
  }
});

describe('the state directory holds something tlsa did not make', () => {
  for (const [name, file] of [
    ['state.json', 'state.json'],
    ['the lock', 'lock'],
  ] as const) {
    it(`${name} as a FIFO: exit 2 naming it, no hang, nothing changed`, () => {
      const s = site(`fifo-${file}`, FOREIGN_ZONE);
      const dir = path.dirname(s.stateFile);
      fs.mkdirSync(dir, { recursive: true });
      const fifo = path.join(dir, file);
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      for (const cmd of ['publish', 'status']) {
        if (file === 'lock' && cmd === 'status') continue; // status reads the state without the lock
        const r = runCli(
          [
            '--config',
            path.join(s.dir, 'tlsa.yaml'),
            cmd,
            ...(cmd === 'publish' ? ['--lock-wait', '2'] : []),
          ],
          { cwd: s.dir, timeout: 20_000 },
        );
        expect(r.code, show(r)).toBe(2);
        expect(r.stderr).toContain(fifo);
        expect(r.stderr).toMatch(/not a regular file|FIFO/);
        expect(stackLines(r.all)).toEqual([]);
      }
      expect(s.zone()).toBe(FOREIGN_ZONE);
      expect(fs.lstatSync(fifo).isFIFO()).toBe(true);
    });
  }
});
