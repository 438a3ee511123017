/**
 * The desec provider through the built CLI, against desec-api-fake (an HTTP fake of deSEC's
 * documented API on loopback; not deSEC): a service's `ttl` below the domain's minimum_ttl is
 * raised to it, and tlsa says so once and where a user looks: on the plan's TTL line (`--json`:
 * `ttlWhy`) and in every wait counted from it (plan, status), not as a stderr warning besides.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDesecApiFake, type DesecApiFake } from '../fakes/desec-api-fake.js';
import {
  CLI_PATH,
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  requireBuiltCli,
  type CliResult,
} from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

const OWNER = '_25._tcp.mx.example.org.';
const MINIMUM = 3600;
const CAUSE = `deSEC's minimum TTL for example.org (its minimum_ttl) is ${MINIMUM}`;
const RAISED = `tlsa's TTL, raised from 300: ${CAUSE}`;

let root: string;
let fake: DesecApiFake;
let dir: string;
let config: string;

/** The CLI in a child process, without blocking this one: the fake answers from here. */
function cli(...args: string[]): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DESEC_TOKEN: fake.token };
  delete env.TLSA_CONFIG;
  delete env.TLSA_DEBUG;
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_PATH, '--config', config, ...args],
      { cwd: dir, env, encoding: 'utf8', timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr, all: stdout + stderr });
      },
    );
  });
}

async function ok(...args: string[]): Promise<CliResult> {
  const r = await cli(...args);
  expect(r.code, `${args.join(' ')}: ${r.all}`).toBe(0);
  return r;
}

beforeAll(async () => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-desec-ttl-');
  fake = await startDesecApiFake({ domains: [{ name: 'example.org', minimum_ttl: MINIMUM }] });
  const pki = makeTestPki(path.join(root, 'pki'));
  dir = path.join(root, 'case');
  fs.mkdirSync(dir, { recursive: true });
  const lineage = lineageFor(
    pki,
    'mx.example.org',
    'ecdsa',
    leafFor(pki, 'ecdsa'),
    undefined,
    path.join(dir, 'letsencrypt'),
  );
  const text = configYaml({ certificates: [`lineage: ${lineage}`], ttl: 300 }).replace(
    / {4}type: zonefile\n {4}path: zone\.db\n {4}create: true\n/,
    ['type: desec', 'token: ${DESEC_TOKEN}', `api_url: ${fake.url}`, 'settle_ms: 50']
      .map((l) => `    ${l}\n`)
      .join(''),
  );
  expect(text).toContain('type: desec');
  config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, text);
}, 60_000);

afterAll(async () => {
  await fake?.close();
  if (root) removeTempDir(root);
});

describe("desec (desec-api-fake): a ttl below the domain's minimum_ttl, through the CLI", () => {
  it('plan names the raise on the TTL line and in the wait; publish writes the minimum; status waits on it, saying why; one message, no stderr warning besides', async () => {
    const planJson = JSON.parse((await ok('plan', '--json')).stdout) as {
      owners: { owner: string; ttl: number; ttlWhy?: string; wait: { why: string } | null }[];
    };
    expect(planJson.owners[0]).toMatchObject({
      owner: OWNER,
      ttl: MINIMUM,
      ttlWhy: `raised from 300: ${CAUSE}, deSEC refuses lower ones; set the service's ttl to at least ${MINIMUM}`,
      wait: { ttl: MINIMUM, seconds: 2 * MINIMUM, why: RAISED },
    });
    const plan = await ok('plan');
    expect(plan.stdout).toContain(
      `${OWNER}  (provider local, TTL ${MINIMUM}: raised from 300: ${CAUSE}`,
    );
    expect(plan.stdout).toContain(`new records live 2×${MINIMUM} s: ${RAISED}; counted from`);
    expect(plan.stderr).not.toMatch(/minimum/);

    const publish = await ok('publish');
    expect(publish.stderr).not.toMatch(/minimum/);
    expect(fake.rrset('example.org', '_25._tcp.mx', 'TLSA')?.ttl).toBe(MINIMUM);
    const status = JSON.parse((await ok('status', '--json')).stdout) as {
      records: { phase: string; ttl: number; wait: { ttl: number; why: string } | null }[];
    };
    expect(status.records.length).toBeGreaterThan(0);
    expect(status.records.map((r) => [r.phase, r.ttl, r.wait])).toEqual(
      status.records.map(() => [
        'pending',
        MINIMUM,
        { ttl: MINIMUM, seconds: 2 * MINIMUM, why: RAISED },
      ]),
    );
    const text = await ok('status');
    expect(text.stdout).toContain(`2×${MINIMUM} s: ${RAISED}`);
    expect(text.stderr).not.toMatch(/minimum/);

    // Nothing left to do; the TTL line still says why it is not the configured one.
    const again = await ok('plan');
    expect(again.stdout).toContain('Nothing to do');
    expect(again.stdout).toContain(`TTL ${MINIMUM}: raised from 300: ${CAUSE}`);
  }, 120_000);
});
