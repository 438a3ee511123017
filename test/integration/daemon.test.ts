/** `tlsa daemon`: --once for timers, the loop with SIGHUP (reload config) and SIGTERM (finish
 *  the step, exit), waking when a step is due (real Knot and unbound), and the acme.sh / lego
 *  hooks mapping their environments to services. */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  opensslSpkiSha256,
  removeTempDir,
} from '../helpers/pki.js';
import {
  CLI_PATH,
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  requireBuiltCli,
  runCli,
  show,
  type TestPki,
} from '../helpers/cli.js';
import { startFragmentZone } from '../lab/fragment-zone.js';
import { labDescribe, stopAll } from '../lab/lab.js';

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-daemon-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

function setup(name: string) {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  const leaf = leafFor(pki, 'ecdsa', { outDir: dir });
  const live = lineageFor(pki, 'mx.example.org', 'ecdsa', leaf, 1, join(dir, 'le'));
  const config = join(dir, 'config.yaml');
  const write = (ports: number[]) =>
    writeFileSync(
      config,
      `${configYaml({ certificates: [`lineage: ${live}`], serviceExtra: [`ports: [${ports.join(', ')}]`] }).replace('    ports: [25]\n', '')}daemon:\n  interval_s: 5\n`,
    );
  write([25]);
  return { dir, config, live, leaf, write, zone: () => readFileSync(join(dir, 'zone.db'), 'utf8') };
}

function waitFor(get: () => string, re: RegExp, ms: number): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (re.test(get())) {
        clearInterval(t);
        resolve();
      } else if (Date.now() - start > ms) {
        clearInterval(t);
        reject(new Error(`timed out waiting for ${re}: ${get()}`));
      }
    }, 50);
  });
}

describe('tlsa daemon', () => {
  it('--once runs one step and exits', () => {
    const c = setup('once');
    const r = runCli(['--config', c.config, 'daemon', '--once'], { cwd: c.dir });
    expect(r.code, show(r)).toBe(0);
    expect(managedRdata(c.zone())).toHaveLength(2);
    expect(r.stderr).toMatch(/published 2, removed 0/);
  });

  it('reloads its configuration on SIGHUP and stops on SIGTERM', async () => {
    const c = setup('loop');
    const child = spawn(process.execPath, [CLI_PATH, '--config', c.config, 'daemon'], {
      cwd: c.dir,
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor(() => err, /next run in 5s/, 15_000);
      c.write([25, 465]);
      child.kill('SIGHUP');
      await waitFor(() => err, /reloaded .*config\.yaml/, 10_000);
      await waitFor(() => c.zone(), /_465\._tcp\.mx\.example\.org\./, 10_000);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(err).toMatch(/stopping after the current step/);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('retries a failed run after a short backoff, not a whole interval (interval_s 300)', async () => {
    const c = setup('retry');
    // The zone file is written but the reload fails until reload-ok exists: a provider failure.
    writeFileSync(
      c.config,
      `${configYaml({ certificates: [`lineage: ${c.live}`], providerExtra: ['reload: "test -e reload-ok"'] })}daemon:\n  interval_s: 300\n`,
    );
    const child = spawn(process.execPath, [CLI_PATH, '--config', c.config, 'daemon'], {
      cwd: c.dir,
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor(
        () => err,
        /next run in 5s \(.*\): retry after 1 failed run\(s\) in a row/,
        30_000,
      );
      writeFileSync(join(c.dir, 'reload-ok'), '');
      // The owed reload runs at the next retry; then nothing is due for a whole interval.
      await waitFor(() => err, /next run in 5m \(.*\): daemon\.interval_s 300/, 90_000);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 150_000);
});

const ISO_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

labDescribe(
  'tlsa daemon wakes when a step is due (Knot, unbound)',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
  ],
  () => {
    afterAll(() => stopAll());

    // With the default interval (300 s) the daemon used to install a staged chain up to 300 s
    // after its records were live. TTL 2: live 4 s after every authoritative server has them.
    it('interval_s 300: installs a staged chain once its records are live, and removes the old records once their grace is over, well before the interval', async () => {
      const dir = join(root, 'wake');
      mkdirSync(dir, { recursive: true });
      const zone = 'example.test.';
      const { fragment, knot, unbound } = await startFragmentZone(dir, {
        zone,
        dnssec: false,
        unbound: { cacheMaxNegativeTtl: 1 },
      });

      const le = join(dir, 'le');
      const leaf1 = makeLeaf(dir, {
        ca: pki.ecdsa.intermediate,
        cn: 'mx.example.test',
        key: 'p256',
      });
      const live = makeLineage(le, 'mx.example.test', leaf1, [pki.ecdsa.intermediate], {
        version: 1,
      });
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          'state_dir: state',
          'ttl: 2',
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  propagation: true',
          '  probe: false',
          '  timeout_s: 5',
          'daemon:',
          '  interval_s: 300',
          'providers:',
          '  knot:',
          '    type: zonefile',
          `    path: ${JSON.stringify(fragment)}`,
          `    reload: ${JSON.stringify(knot.reloadCommand(zone))}`,
          'services:',
          '  mx:',
          '    host: mx.example.test',
          '    ports: [25]',
          '    provider: knot',
          '    issuers: none',
          '    certificates:',
          `      - lineage: ${JSON.stringify(live)}`,
          '    install:',
          '      dir: installed',
          '      reload: "echo reload >> reloads.log"',
          '',
        ].join('\n'),
      );
      const current = join(dir, 'installed', 'mx.example.test', 'current');
      const installedLeaf = () =>
        new X509Certificate(readFileSync(join(current, 'cert.pem'))).fingerprint256;
      const managed = () => managedRdata(readFileSync(fragment, 'utf8'));

      const child = spawn(process.execPath, [CLI_PATH, '--config', config, 'daemon'], { cwd: dir });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      try {
        // First run: publishes and installs the first chain; once its records are live nothing
        // is due, and the daemon sleeps a whole interval.
        await waitFor(() => err, /next run in 5m/, 60_000);
        expect(installedLeaf()).toBe(new X509Certificate(leaf1.certPem).fingerprint256);

        // Renewal with a new key and a new intermediate: nothing live matches it, the hook stages it.
        const intB = makeCa(dir, {
          name: 'Test Intermediate E2',
          key: 'p256',
          issuer: pki.ecdsa.root,
        });
        const leaf2 = makeLeaf(dir, { ca: intB, cn: 'mx.example.test', key: 'p256' });
        makeLineage(le, 'mx.example.test', leaf2, [intB], { version: 2 });
        const hook = runCli(['--config', config, 'hook', 'certbot'], {
          cwd: dir,
          env: { RENEWED_LINEAGE: live, RENEWED_DOMAINS: 'mx.example.test' },
        });
        expect(hook.code, show(hook)).toBe(0);
        expect(hook.stdout).toMatch(/staged .* for mx: waits for/);
        expect(installedLeaf()).toBe(new X509Certificate(leaf1.certPem).fingerprint256);

        // Installed by the daemon once its records are live (on the old code: 300 s later).
        const fp2 = new X509Certificate(leaf2.certPem).fingerprint256;
        await waitFor(() => (installedLeaf() === fp2 ? 'installed' : ''), /installed/, 120_000);
        // …and not before: the switch happened after every authoritative server served a
        // record matching it, plus 2×TTL.
        const state = JSON.parse(readFileSync(join(dir, 'state', 'state.json'), 'utf8')) as {
          records: { data: string; seenAt?: string }[];
        };
        const ee2 = state.records.find((r) => r.data === opensslSpkiSha256(leaf2.certPath));
        expect(ee2?.seenAt, JSON.stringify(state)).toBeDefined();
        expect(lstatSync(current).mtimeMs).toBeGreaterThanOrEqual(
          Date.parse(ee2!.seenAt!) + 2 * 2 * 1000,
        );
        expect(readFileSync(join(dir, 'reloads.log'), 'utf8')).toBe('reload\nreload\n');

        // The old chain's records go once their grace (the TTL) is over.
        const ee1 = `3 1 1 ${opensslSpkiSha256(leaf1.certPath)}`;
        await waitFor(() => (managed().includes(ee1) ? '' : 'removed'), /removed/, 120_000);
        expect(managed()).toContain(`3 1 1 ${opensslSpkiSha256(leaf2.certPath)}`);

        // Timestamped lines saying when and why it wakes, from the daemon and the hook.
        expect(err).toMatch(/next run in 5m \(.*\): daemon\.interval_s 300/);
        expect(err).toMatch(
          /the state changed: next run in \d+s \(.*\): .*record\(s\) at _25\._tcp\.mx\.example\.test\./,
        );
        expect(err).toMatch(
          /next run in \d+s \(.*\): 2 record\(s\) at _25\._tcp\.mx\.example\.test\. turn live/,
        );
        expect(err).toMatch(/next run in \d+s \(.*\): the grace of 2 retiring record\(s\)/);
        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        for (const l of [...err.split('\n'), ...hook.all.split('\n')].filter(Boolean))
          expect(l).toMatch(ISO_LINE);
        if (process.env.SHOW_DAEMON) console.log(`${hook.all}\n${err}`);
      } finally {
        child.kill('SIGKILL');
      }
    }, 300_000);
  },
);

describe('acme.sh and lego hooks', () => {
  it('map CERT_FULLCHAIN_PATH (acme.sh) and LEGO_HOOK_CERT_PATH (lego) to the service using that file', () => {
    const c = setup('acme');
    const full = join(c.live, 'fullchain.pem');
    writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${full}`] }));
    const a = runCli(['--config', c.config, 'hook', 'acme.sh'], {
      cwd: c.dir,
      env: {
        CERT_FULLCHAIN_PATH: full,
        CERT_PATH: join(c.live, 'cert.pem'),
        Le_Domain: 'mx.example.org',
      },
    });
    expect(a.code, show(a)).toBe(1); // published, not live yet: the exposure warning
    expect(managedRdata(c.zone())).toHaveLength(2);
    const l = runCli(['--config', c.config, 'hook', 'lego'], {
      cwd: c.dir,
      env: { LEGO_HOOK_CERT_PATH: join(c.dir, 'other.crt') },
    });
    expect(l.code, show(l)).toBe(0);
    expect(l.stdout).toMatch(/no service .* uses lego certificate/);
    const bad = runCli(['--config', c.config, 'hook', 'lego'], {
      cwd: c.dir,
      env: { LEGO_HOOK_CERT_PATH: undefined },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/LEGO_HOOK_CERT_PATH is not set/);
  });
});
