/**
 * The built CLI end to end, as a child process: plan → publish → plan, a key rollover with a
 * short TTL, `generate`, `--version`, the README quick start, and the state lock.
 * Ground truth for every hash is the openssl CLI (test/helpers/pki.ts), never the project's code.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configYaml,
  FOREIGN_ZONE,
  leafFor,
  lineageFor,
  managedRdata,
  OWNER_25,
  REPO_ROOT,
  requireBuiltCli,
  runCli,
  show,
  snapshot,
  stackLines,
  type TestPki,
  makeTestPki,
} from '../helpers/cli.js';
import {
  makeTempDir,
  openssl,
  opensslSpkiSha256,
  opensslSpkiSha512,
  removeTempDir,
  type CaHandle,
  type LeafHandle,
} from '../helpers/pki.js';

let root: string;
let pki: TestPki;

beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-cli-');
  pki = makeTestPki(path.join(root, 'pki'));
});

afterAll(() => {
  if (root) removeTempDir(root);
});

interface Site {
  dir: string;
  config: string;
  zone: string;
  stateDir: string;
}

/** A temp dir with a config (zonefile provider, state in the dir), a zone pre-filled with
 *  foreign lines, and the given certificate sources. */
function site(
  name: string,
  certificates: string[],
  opts: { ttl?: number; issuers?: string } = {},
): Site {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const config = path.join(dir, 'tlsa.yaml');
  fs.writeFileSync(config, configYaml({ certificates, ...opts }));
  const zone = path.join(dir, 'zone.db');
  fs.writeFileSync(zone, FOREIGN_ZONE);
  return { dir, config, zone, stateDir: path.join(dir, 'state') };
}

const cli = (s: Site, ...args: string[]) => runCli(['--config', s.config, ...args], { cwd: s.dir });

const readZone = (s: Site) => fs.readFileSync(s.zone, 'utf8');

interface StatusJson {
  records: {
    owner: string;
    rdata: string;
    phase: string;
    service: string;
    provider: string;
    ttl: number;
  }[];
}

interface PlanJson {
  summary: { add: number; remove: number; retiring: number; keep: number; foreign: number };
  owners: {
    owner: string;
    add: { rdata: string }[];
    keep: { rdata: string }[];
    foreign: { rdata: string }[];
  }[];
}

describe('plan → publish → plan (RSA + ECDSA lineages)', () => {
  let s: Site;
  let ecLeaf: LeafHandle;
  let rsaLeaf: LeafHandle;
  let expected: string[];

  beforeAll(() => {
    const le = path.join(root, 'basic', 'letsencrypt');
    ecLeaf = leafFor(pki, 'ecdsa');
    rsaLeaf = leafFor(pki, 'rsa');
    const ecLive = lineageFor(pki, 'mx.example.org', 'ecdsa', ecLeaf, undefined, le);
    const rsaLive = lineageFor(pki, 'mx.example.org-rsa', 'rsa', rsaLeaf, undefined, le);
    s = site('basic', [`lineage: ${ecLive}`, `lineage: ${rsaLive}`]);
    expected = [
      `3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`,
      `3 1 1 ${opensslSpkiSha256(rsaLeaf.certPath)}`,
      `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`,
      `2 1 1 ${opensslSpkiSha256(pki.rsa.intermediate.certPath)}`,
    ].sort();
  });

  it('plan shows the four additions and changes nothing', () => {
    const r = cli(s, 'plan');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(OWNER_25);
    expect(r.stdout).toMatch(/Plan: 4 to add, 0 to remove/);
    expect(r.stdout).toMatch(/^\s+! 3 1 1 abab/m); // the foreign record is shown as foreign
    const j = cli(s, 'plan', '--json');
    expect(j.code, show(j)).toBe(0);
    const plan = JSON.parse(j.stdout) as PlanJson;
    expect(plan.summary).toMatchObject({ add: 4, remove: 0, foreign: 1 });
    expect(plan.owners.flatMap((o) => o.add.map((a) => a.rdata)).sort()).toEqual(expected);
    expect(readZone(s)).toBe(FOREIGN_ZONE);
    expect(snapshot(s.stateDir)['state.json']).toBeUndefined();
  });

  it('publish writes 3 1 1 of each leaf and 2 1 1 of each issuer, next to the foreign lines', () => {
    const r = cli(s, 'publish');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/Published 4 record\(s\)\. New records are pending/);
    const zone = readZone(s);
    // Every line tlsa did not write is still there, byte for byte, in front.
    expect(zone.startsWith(FOREIGN_ZONE)).toBe(true);
    const added = zone.slice(FOREIGN_ZONE.length).split('\n').filter(Boolean);
    expect(added).toHaveLength(4);
    for (const line of added)
      expect(line).toMatch(
        new RegExp(
          `^${OWNER_25.replace(/\./g, '\\.')} 3600 IN TLSA [23] 1 1 [0-9a-f]{64} ; tlsa:managed$`,
        ),
      );
    expect(managedRdata(zone).sort()).toEqual(expected);
  });

  it('plan again says nothing to do; publish again changes nothing', () => {
    const before = readZone(s);
    const r = cli(s, 'plan');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/Nothing to do: 4 records in place/);
    const j = cli(s, 'plan', '--json');
    const plan = JSON.parse(j.stdout) as PlanJson;
    expect(plan.summary).toMatchObject({ add: 0, remove: 0, retiring: 0, keep: 4, foreign: 1 });
    const p = cli(s, 'publish');
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toMatch(/Published nothing/);
    expect(readZone(s)).toBe(before);
  });

  it('status lists the records as pending', () => {
    const r = cli(s, 'status');
    expect(r.code, show(r)).toBe(0);
    const rows = r.stdout.split('\n').filter((l) => l.startsWith(OWNER_25));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row).toMatch(/\bpending\b/);
    expect(r.stdout).toMatch(/^4 pending$/m);
    const j = cli(s, 'status', '--json');
    expect(j.code, show(j)).toBe(0);
    const st = JSON.parse(j.stdout) as StatusJson;
    expect(st.records.map((x) => x.rdata).sort()).toEqual(expected);
    for (const x of st.records)
      expect(x).toMatchObject({
        phase: 'pending',
        owner: OWNER_25,
        service: 'mx',
        provider: 'local',
        ttl: 3600,
      });
  });
});

describe('rollover: renewal with a new key', () => {
  it('publishes the new 3 1 1 beside the old, retires the old one and removes it after the TTL', async () => {
    const le = path.join(root, 'rollover', 'letsencrypt');
    const leaf1 = leafFor(pki, 'ecdsa');
    const live = lineageFor(pki, 'mx.example.org', 'ecdsa', leaf1, 1, le);
    const s = site('rollover', [`lineage: ${live}`], { ttl: 1 });
    // The hand-made line at TTL 1 too: at the $TTL (300) it would be the RRset's TTL, tlsa's too.
    const foreignZone = FOREIGN_ZONE.replace('_25._tcp.mx IN TLSA', '_25._tcp.mx 1 IN TLSA');
    fs.writeFileSync(s.zone, foreignZone);
    const old = `3 1 1 ${opensslSpkiSha256(leaf1.certPath)}`;
    const ta = `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`;

    const first = cli(s, 'publish');
    expect(first.code, show(first)).toBe(0);
    expect(managedRdata(readZone(s)).sort()).toEqual([ta, old].sort());

    // certbot renews with a new key: archive/…/cert2.pem etc., live/ symlinks re-pointed.
    const leaf2 = leafFor(pki, 'ecdsa');
    lineageFor(pki, 'mx.example.org', 'ecdsa', leaf2, 2, le);
    const renewed = `3 1 1 ${opensslSpkiSha256(leaf2.certPath)}`;
    expect(renewed).not.toBe(old);

    const second = cli(s, 'publish');
    expect(second.code, show(second)).toBe(0);
    expect(managedRdata(readZone(s)).sort()).toEqual([ta, old, renewed].sort());
    expect(readZone(s).startsWith(foreignZone)).toBe(true);
    const st = JSON.parse(cli(s, 'status', '--json').stdout) as StatusJson;
    expect(st.records.find((x) => x.rdata === old)?.phase).toBe('retiring');
    expect(['pending', 'live']).toContain(st.records.find((x) => x.rdata === renewed)?.phase);
    const text = cli(s, 'status');
    expect(text.stdout).toMatch(/3 1 1 \S+\s+retiring/);

    await new Promise((r) => setTimeout(r, 1500));
    const third = cli(s, 'publish');
    expect(third.code, show(third)).toBe(0);
    expect(third.stdout).toMatch(/Removed 1 record\(s\) no server needs any more/);
    const zone = readZone(s);
    expect(managedRdata(zone).sort()).toEqual([ta, renewed].sort());
    expect(zone.startsWith(foreignZone)).toBe(true);
    const after = JSON.parse(cli(s, 'status', '--json').stdout) as StatusJson;
    expect(after.records.map((x) => x.rdata).sort()).toEqual([ta, renewed].sort());
    const plan = cli(s, 'plan');
    expect(plan.stdout).toMatch(/Nothing to do/);
  });
});

describe('generate', () => {
  let ecChain: string;
  let rsaChain: string;
  let ecLeaf: LeafHandle;
  let rsaLeaf: LeafHandle;
  const le = (f: string) =>
    opensslSpkiSha256(path.join(REPO_ROOT, 'src', 'issuers', 'letsencrypt', f));
  let ye: string[];
  let yr: string[];

  beforeAll(() => {
    const dir = path.join(root, 'generate');
    ecLeaf = leafFor(pki, 'ecdsa');
    rsaLeaf = leafFor(pki, 'rsa');
    ecChain = path.join(
      lineageFor(pki, 'mx.example.org', 'ecdsa', ecLeaf, undefined, path.join(dir, 'le')),
      'fullchain.pem',
    );
    rsaChain = path.join(
      lineageFor(pki, 'mx.example.org-rsa', 'rsa', rsaLeaf, undefined, path.join(dir, 'le')),
      'fullchain.pem',
    );
    ye = ['gen-y-int-ye1.pem', 'gen-y-int-ye2.pem', 'gen-y-int-ye3.pem'].map(le);
    yr = ['gen-y-int-yr1.pem', 'gen-y-int-yr2.pem', 'gen-y-int-yr3.pem'].map(le);
  });

  const gen = (...args: string[]) => runCli(['generate', ...args]);
  const lines = (out: string) => out.split('\n').filter(Boolean);

  /** The built-in catalog plus the test intermediates (retired: they add nothing themselves),
   *  so that the test chains belong to it (a catalog applies only to its own issuers). */
  function catalogWithTestIssuers(): string {
    const cdir = path.join(root, 'generate', 'catalog');
    fs.mkdirSync(cdir, { recursive: true });
    const leDir = path.join(REPO_ROOT, 'src', 'issuers', 'letsencrypt');
    const json = JSON.parse(fs.readFileSync(path.join(leDir, 'catalog.json'), 'utf8')) as {
      intermediates: Record<string, string>[];
    };
    for (const e of json.intermediates)
      fs.copyFileSync(path.join(leDir, e.file!), path.join(cdir, e.file!));
    for (const [key, ca] of [
      ['ecdsa', pki.ecdsa.intermediate],
      ['rsa', pki.rsa.intermediate],
    ] as [string, CaHandle][]) {
      const file = `test-${key}.pem`;
      fs.copyFileSync(ca.certPath, path.join(cdir, file));
      const end = openssl(['x509', '-in', ca.certPath, '-noout', '-enddate'])
        .trim()
        .replace(/^notAfter=/, '');
      json.intermediates.push({
        name: ca.name,
        key,
        status: 'retired',
        notAfter: new Date(end).toISOString(),
        file,
      });
    }
    fs.writeFileSync(path.join(cdir, 'catalog.json'), JSON.stringify(json));
    return path.join(cdir, 'catalog.json');
  }

  it('prints zone-file lines with the openssl hashes, plus the catalog family of the key type', () => {
    const r = gen(
      '--chain',
      ecChain,
      '--host',
      'mx.example.org',
      '--issuers',
      catalogWithTestIssuers(),
    );
    expect(r.code, show(r)).toBe(0);
    const out = lines(r.stdout);
    for (const l of out)
      expect(l).toMatch(/^_25\._tcp\.mx\.example\.org\. 3600 IN TLSA [23] 1 1 [0-9a-f]{64}$/);
    expect(out).toContain(
      `_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`,
    );
    expect(out).toContain(
      `_25._tcp.mx.example.org. 3600 IN TLSA 2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`,
    );
    for (const h of ye) expect(out).toContain(`_25._tcp.mx.example.org. 3600 IN TLSA 2 1 1 ${h}`);
    for (const h of yr) expect(r.stdout).not.toContain(h); // no RSA intermediates for an ECDSA-only chain
    expect(out).toHaveLength(2 + ye.length);
  });

  it("a chain from another CA gets no Let's Encrypt family, and a note says why (issue 14)", () => {
    const r = gen('--chain', ecChain, '--chain', rsaChain, '--host', 'mx.example.org');
    expect(r.code, show(r)).toBe(0);
    for (const h of [...ye, ...yr]) expect(r.stdout).not.toContain(h);
    expect(lines(r.stdout)).toHaveLength(4);
    expect(r.stderr).toMatch(
      new RegExp(
        `note: .*is issued by ${pki.ecdsa.intermediate.name}, not a letsencrypt intermediate`,
      ),
    );
    expect(r.stderr).toMatch(
      new RegExp(
        `note: .*is issued by ${pki.rsa.intermediate.name}, not a letsencrypt intermediate`,
      ),
    );
  });

  it('two chains: both leaves, both issuers, both families', () => {
    const r = gen(
      '--chain',
      ecChain,
      '--chain',
      rsaChain,
      '--host',
      'mx.example.org',
      '--issuers',
      catalogWithTestIssuers(),
    );
    expect(r.code, show(r)).toBe(0);
    for (const h of [ecLeaf, rsaLeaf].map((l) => opensslSpkiSha256(l.certPath)))
      expect(r.stdout).toContain(`TLSA 3 1 1 ${h}`);
    for (const h of [...ye, ...yr]) expect(r.stdout).toContain(`TLSA 2 1 1 ${h}`);
  });

  it('--port 25 --port 465 gives two owner names', () => {
    const r = gen(
      '--chain',
      ecChain,
      '--host',
      'mx.example.org',
      '--port',
      '25',
      '--port',
      '465',
      '--issuers',
      'none',
    );
    expect(r.code, show(r)).toBe(0);
    const owners = [...new Set(lines(r.stdout).map((l) => l.split(' ')[0]))].sort();
    expect(owners).toEqual(['_25._tcp.mx.example.org.', '_465._tcp.mx.example.org.']);
    const leaf = opensslSpkiSha256(ecLeaf.certPath);
    expect(r.stdout).toContain(`_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${leaf}`);
    expect(r.stdout).toContain(`_465._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${leaf}`);
  });

  // Regression: a repeated port once printed every record twice.
  it('--port 25 --port 25 prints each record once', () => {
    const r = gen(
      '--chain',
      ecChain,
      '--host',
      'mx.example.org',
      '--port',
      '25',
      '--port',
      '25',
      '--issuers',
      'none',
    );
    expect(r.code, show(r)).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(2);
    expect(new Set(out).size).toBe(out.length);
  });

  it('--json parses', () => {
    const r = gen(
      '--chain',
      ecChain,
      '--host',
      'mx.example.org',
      '--json',
      '--issuers',
      catalogWithTestIssuers(),
    );
    expect(r.code, show(r)).toBe(0);
    const j = JSON.parse(r.stdout) as {
      records: { owner: string; ttl: number; rdata: string; data: string; usage: number }[];
      chains: { keyType: string }[];
    };
    expect(j.records.length).toBe(2 + ye.length);
    expect(j.records.every((x) => x.owner === OWNER_25 && x.ttl === 3600)).toBe(true);
    expect(j.records.map((x) => x.rdata)).toContain(`3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`);
    expect(j.chains).toHaveLength(1);
    expect(j.chains[0]!.keyType).toMatch(/ECDSA/);
  });

  it('--records "3 1 2" adds 3 1 1 as well (digest agility)', () => {
    const r = gen('--chain', ecChain, '--host', 'mx.example.org', '--records', '3 1 2');
    expect(r.code, show(r)).toBe(0);
    const out = lines(r.stdout);
    expect(out.sort()).toEqual(
      [
        `_25._tcp.mx.example.org. 3600 IN TLSA 3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`,
        `_25._tcp.mx.example.org. 3600 IN TLSA 3 1 2 ${opensslSpkiSha512(ecLeaf.certPath)}`,
      ].sort(),
    );
  });

  it("--issuers none has no Let's Encrypt family records", () => {
    const r = gen(
      '--chain',
      ecChain,
      '--chain',
      rsaChain,
      '--host',
      'mx.example.org',
      '--issuers',
      'none',
    );
    expect(r.code, show(r)).toBe(0);
    for (const h of [...ye, ...yr]) expect(r.stdout).not.toContain(h);
    const rdata = lines(r.stdout)
      .map((l) => l.split(' ').slice(4).join(' '))
      .sort();
    expect(rdata).toEqual(
      [
        `3 1 1 ${opensslSpkiSha256(ecLeaf.certPath)}`,
        `3 1 1 ${opensslSpkiSha256(rsaLeaf.certPath)}`,
        `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`,
        `2 1 1 ${opensslSpkiSha256(pki.rsa.intermediate.certPath)}`,
      ].sort(),
    );
  });
});

describe('the issuer catalog applies only to its own issuers (issue 14)', () => {
  it('issuers: letsencrypt with a chain from another CA: plan adds only its own records and notes why', () => {
    const live = lineageFor(
      pki,
      'mx.example.org',
      'ecdsa',
      leafFor(pki, 'ecdsa'),
      undefined,
      path.join(root, 'other-ca', 'le'),
    );
    const s = site('other-ca', [`lineage: ${live}`], { issuers: 'letsencrypt' });
    const r = cli(s, 'plan');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/Plan: 2 to add/);
    expect(r.stderr).toMatch(
      new RegExp(
        `tlsa: note: mx: .*\\(ECDSA P-256\\) is issued by ${pki.ecdsa.intermediate.name}, not a letsencrypt intermediate of the issuer catalog: no catalog records for it`,
      ),
    );
    const j = JSON.parse(cli(s, 'plan', '--json').stdout) as PlanJson & { notes: string[] };
    expect(j.summary.add).toBe(2);
    expect(j.notes).toHaveLength(1);
  });
});

describe('duplicate ports in the configuration', () => {
  // Regression: a repeated port in the config was once planned twice.
  it('ports: [25, 25] is refused at its line, or each record is planned and counted once', () => {
    const live = lineageFor(
      pki,
      'mx.example.org',
      'ecdsa',
      leafFor(pki, 'ecdsa'),
      undefined,
      path.join(root, 'dup-ports', 'le'),
    );
    const s = site('dup-ports', [`lineage: ${live}`]);
    const text = fs.readFileSync(s.config, 'utf8').replace('ports: [25]', 'ports: [25, 25]');
    fs.writeFileSync(s.config, text);
    const r = cli(s, 'publish');
    if (r.code === 2) {
      const line = text.split('\n').findIndex((l) => l.includes('ports:')) + 1;
      expect(r.stderr, show(r)).toContain(`${s.config}:${line}:`);
      expect(readZone(s)).toBe(FOREIGN_ZONE);
      return;
    }
    expect(r.code, show(r)).toBe(0);
    expect(managedRdata(readZone(s))).toHaveLength(2);
    expect(r.stdout).toMatch(/Plan: 2 to add/);
    expect(r.stdout).toMatch(/Published 2 record\(s\)/);
    const plan = JSON.parse(cli(s, 'plan', '--json').stdout) as PlanJson;
    expect(plan.summary).toMatchObject({ add: 0, keep: 2 });
  });
});

describe('version and usage', () => {
  it('--version prints the package.json version', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const flag of ['--version', '-V']) {
      const r = runCli([flag]);
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toBe(`tlsa ${pkg.version}\n`);
    }
  });

  it('an unknown command exits 2 and names it', () => {
    const r = runCli(['frobnicate']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toContain('frobnicate');
    expect(stackLines(r.stderr)).toEqual([]);
  });

  it('an unknown option exits 2', () => {
    const r = runCli(['--no-such-option', 'plan']);
    expect(r.code, show(r)).toBe(2);
    expect(stackLines(r.stderr)).toEqual([]);
  });
});

describe('README quick start', () => {
  it('publishes the example chains into example.zone, then publishes nothing', () => {
    const dir = path.join(root, 'quickstart');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(
      path.join(REPO_ROOT, 'config.example.yaml'),
      path.join(dir, 'config.example.yaml'),
    );
    fs.cpSync(path.join(REPO_ROOT, 'docs', 'example'), path.join(dir, 'docs', 'example'), {
      recursive: true,
    });
    const r = runCli(['--config', 'config.example.yaml', 'publish'], { cwd: dir });
    expect(r.code, show(r)).toBe(0);
    const zone = fs.readFileSync(path.join(dir, 'example.zone'), 'utf8');
    const tlsa = zone.split('\n').filter((l) => /\sIN TLSA\s/.test(l));
    // The example chains come from an example CA, not Let's Encrypt: no catalog family.
    expect(tlsa).toHaveLength(4);
    for (const l of tlsa)
      expect(l).toMatch(
        /^_25\._tcp\.mx\.example\.org\. 3600 IN TLSA [23] 1 1 [0-9a-f]{64} ; tlsa:managed$/,
      );
    const exampleLeaf = path.join(dir, 'docs/example/letsencrypt/live/mx.example.org/cert.pem');
    expect(zone).toContain(`3 1 1 ${opensslSpkiSha256(exampleLeaf)}`);
    expect(fs.existsSync(path.join(dir, '.tlsa-state', 'state.json'))).toBe(true);
    const again = runCli(['--config', 'config.example.yaml', 'publish'], { cwd: dir });
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toMatch(/Published nothing/);
    expect(fs.readFileSync(path.join(dir, 'example.zone'), 'utf8')).toBe(zone);
  });
});

describe('lock', () => {
  let ecLive: string;
  const children: ChildProcess[] = [];

  beforeAll(() => {
    ecLive = lineageFor(
      pki,
      'mx.example.org',
      'ecdsa',
      leafFor(pki, 'ecdsa'),
      undefined,
      path.join(root, 'lock-le'),
    );
  });

  afterAll(() => {
    for (const c of children) if (c.pid && c.exitCode === null) c.kill('SIGKILL');
  });

  const writeLock = (s: Site, pid: number, host = hostname()) => {
    fs.mkdirSync(s.stateDir, { recursive: true });
    const text = JSON.stringify({ pid, host, command: 'test', since: new Date().toISOString() });
    fs.writeFileSync(path.join(s.stateDir, 'lock'), text);
    return text;
  };

  it('a lock held by a live pid makes publish exit 4 naming the pid, changing nothing', () => {
    const s = site('lock-live', [`lineage: ${ecLive}`]);
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(sleeper);
    const pid = sleeper.pid!;
    const lock = writeLock(s, pid);
    const before = snapshot(s.dir);
    const start = Date.now();
    const r = cli(s, 'publish', '--lock-wait', '1');
    expect(r.code, show(r)).toBe(4);
    expect(r.stderr).toContain(`pid ${pid}`);
    expect(stackLines(r.stderr)).toEqual([]);
    expect(Date.now() - start).toBeLessThan(15_000);
    expect(readZone(s)).toBe(FOREIGN_ZONE);
    expect(snapshot(s.dir)).toEqual(before);
    expect(fs.readFileSync(path.join(s.stateDir, 'lock'), 'utf8')).toBe(lock);
    sleeper.kill('SIGKILL');
  });

  it('a lock from another host is not taken over even if the pid is unknown here', () => {
    const s = site('lock-remote', [`lineage: ${ecLive}`]);
    const dead = spawnSync('true').pid;
    writeLock(s, dead, `not-${hostname()}`);
    const r = cli(s, 'publish', '--lock-wait', '0');
    expect(r.code, show(r)).toBe(4);
    expect(readZone(s)).toBe(FOREIGN_ZONE);
  });

  it('a lock from a dead pid on this host is taken over', () => {
    const s = site('lock-dead', [`lineage: ${ecLive}`]);
    const dead = spawnSync('true').pid;
    writeLock(s, dead);
    const r = cli(s, 'publish', '--lock-wait', '1');
    expect(r.code, show(r)).toBe(0);
    expect(managedRdata(readZone(s))).toHaveLength(2);
    expect(readZone(s).startsWith(FOREIGN_ZONE)).toBe(true);
    // Released at the end of the run.
    expect(fs.existsSync(path.join(s.stateDir, 'lock'))).toBe(false);
  });
});
