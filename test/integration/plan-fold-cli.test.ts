/**
 * `tlsa plan` and `tlsa publish` on a fleet, through the built CLI with the zonefile provider:
 * more than 50 owner names with nothing to do fold into one line giving their number and their
 * records; owners with something to do are listed in full; `--all` lists every record as a small
 * setup sees it; at 50 nothing folds; `--json` always lists every owner.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outputSchema } from '../../src/cli/json-contract.js';
import { REPO_ROOT, requireBuiltCli, runCli, show } from '../helpers/cli.js';
import { fleetConfigLines } from '../helpers/fleet-config.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const SERVICES = 52;
const LIVE = path.join(REPO_ROOT, 'docs', 'example', 'letsencrypt', 'live');
const owner = (i: number) => `_25._tcp.mx${i}.example.org.`;

let dir: string;

/** The fleet's config, with the services in `changed` switched to "3 1 1" + "3 0 1". */
function writeConfig(changed: number[] = []): void {
  const lines = fleetConfigLines(SERVICES, 'state_dir: state', LIVE);
  for (const i of changed) {
    const at = lines.indexOf(`  s${i}:`) + 4;
    expect(lines[at]).toBe('    records: ["3 1 1", "2 1 1"]');
    lines[at] = '    records: ["3 1 1", "3 0 1"]';
  }
  fs.writeFileSync(path.join(dir, 'c.yaml'), `${lines.join('\n')}\n`);
}

const cli = (...args: string[]) =>
  runCli(['--config', 'c.yaml', ...args], { cwd: dir, timeout: 120_000 });

/** The owner names a plan text lists (their header lines), in order. */
const listedOwners = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.startsWith('_25._tcp.'))
    .map((l) => l.split(' ')[0]);

const folded = (owners: number, records: number) =>
  `${owners} owner names with nothing to do, ${records} records in place: not listed ("tlsa plan --all" lists every record).\n`;

beforeAll(() => {
  requireBuiltCli();
  dir = makeTempDir('tlsa-plan-fold-');
  writeConfig();
  const first = cli('publish');
  expect(first.code, show(first)).toBe(0);
  // Every owner has records to add: each is listed in full, nothing folds.
  expect(listedOwners(first.stdout)).toHaveLength(SERVICES);
  expect(first.stdout).not.toContain('not listed');
}, 180_000);

afterAll(() => {
  if (dir) removeTempDir(dir);
});

describe(`a fleet of ${SERVICES} services, one owner name each`, () => {
  it('no-op plan: one line for the unchanged owners, then the summary', () => {
    const r = cli('plan');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(
      `${folded(SERVICES, 4 * SERVICES)}Nothing to do: ${4 * SERVICES} records in place.\n`,
    );
  });

  it('no-op publish: the same line, then "Published nothing"', () => {
    const r = cli('publish');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(
      `${folded(SERVICES, 4 * SERVICES)}Nothing to do: ${4 * SERVICES} records in place.\nPublished nothing: already in place.\n`,
    );
  });

  it('--all lists every owner name and record, plan and publish alike', () => {
    for (const command of ['plan', 'publish']) {
      const r = cli(command, '--all');
      expect(r.code, show(r)).toBe(0);
      expect(listedOwners(r.stdout)).toEqual(
        Array.from({ length: SERVICES }, (_, i) => owner(i)).sort(),
      );
      expect(r.stdout.match(/^ {2}= 3 1 1 /gm), command).toHaveLength(2 * SERVICES);
      expect(r.stdout.match(/^ {2}= 2 1 1 /gm), command).toHaveLength(2 * SERVICES);
      expect(r.stdout).not.toContain('not listed');
      expect(r.stdout).toContain(`Nothing to do: ${4 * SERVICES} records in place.\n`);
    }
  });

  it('--json lists every owner name, with or without --all, and keeps its schema', () => {
    const plain = cli('plan', '--json');
    const all = cli('plan', '--json', '--all');
    expect(plain.code, show(plain)).toBe(0);
    const value = JSON.parse(plain.stdout) as { owners: unknown[] };
    expect(value.owners).toHaveLength(SERVICES);
    const checked = outputSchema('plan').safeParse(value);
    expect(checked.success, checked.error?.message).toBe(true);
    expect(JSON.parse(all.stdout)).toEqual(value);
  });

  it('one service changed: its owner in full, the other 51 folded', () => {
    writeConfig([7]);
    const r = cli('plan');
    expect(r.code, show(r)).toBe(0);
    expect(listedOwners(r.stdout)).toEqual([owner(7)]);
    const lines = r.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith(owner(7)));
    expect(lines.slice(at + 1, at + 8).map((l) => l.slice(0, 10))).toEqual([
      '  + 3 0 1 ',
      '  + 3 0 1 ',
      '    new re', // new records live in …
      '  ~ 2 1 1 ',
      '  ~ 2 1 1 ',
      '  = 3 1 1 ',
      '  = 3 1 1 ',
    ]);
    expect(r.stdout).toContain(
      `${folded(SERVICES - 1, 4 * (SERVICES - 1))}Plan: 2 to add, 0 to remove, 2 retiring later.\n`,
    );
  });

  it('two services changed: 50 unchanged owners are listed as before, the same as --all', () => {
    writeConfig([7, 8]);
    const r = cli('plan');
    expect(r.code, show(r)).toBe(0);
    expect(listedOwners(r.stdout)).toHaveLength(SERVICES);
    expect(r.stdout).not.toContain('not listed');
    expect(r.stdout).toBe(cli('plan', '--all').stdout);
    expect(r.stdout).toMatch(/Plan: 4 to add, 0 to remove, 4 retiring later\.\n$/);
  });
});
