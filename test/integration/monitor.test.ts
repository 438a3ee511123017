/** `tlsa daemon` with `monitor.listen`: the listen rules, /healthz and provider errors after a
 *  failed run (zonefile), and, during a lab rollover (real Knot, unbound, a TLS server
 *  on loopback serving the installed chain): the status page in headless chromium (record
 *  phases, the pending records' ETA, the staged chain, the served chain's verdict; a
 *  screenshot is kept in test-artifacts/), and /metrics scraped and parsed while a record is
 *  removed from the zone behind tlsa's back (the mismatch gauge goes to 1) and put back by
 *  the daemon's next run (back to 0). */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer as createTlsServer, createSecureContext, type Server } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI_PATH,
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  managedRdata,
  REPO_ROOT,
  requireBuiltCli,
  runCli,
  show,
  type TestPki,
} from '../helpers/cli.js';
import {
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  opensslSpkiSha256,
  removeTempDir,
} from '../helpers/pki.js';
import { dumpDom, screenshot } from '../lab/chromium.js';
import { startFragmentZone } from '../lab/fragment-zone.js';
import { freePort, labDescribe, stopAll } from '../lab/lab.js';

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-monitor-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

function waitFor<T>(
  what: string,
  get: () => Promise<T | undefined> | T | undefined,
  ms: number,
): Promise<T> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      let v: T | undefined;
      let err: unknown;
      try {
        v = await get();
      } catch (e) {
        err = e;
      }
      if (v !== undefined && v !== false) return resolve(v);
      if (Date.now() - start > ms)
        return reject(
          new Error(`timed out waiting for ${what}${err ? `: ${(err as Error).message}` : ''}`),
        );
      setTimeout(tick, 250);
    };
    void tick();
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text format (as prom-client writes it) → samples. */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

async function startDaemon(dir: string, config: string) {
  const child = spawn(process.execPath, [CLI_PATH, '--config', config, 'daemon'], { cwd: dir });
  const out = { err: '' };
  child.stderr.on('data', (d: Buffer) => {
    out.err += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, out, exited };
}

describe('tlsa daemon monitor (zonefile)', () => {
  function setup(name: string, monitor: string[], providerExtra: string[] = []) {
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    const leaf = leafFor(pki, 'ecdsa', { outDir: dir });
    const live = lineageFor(pki, 'mx.example.org', 'ecdsa', leaf, 1, join(dir, 'le'));
    const config = join(dir, 'config.yaml');
    writeFileSync(
      config,
      `${configYaml({ certificates: [`lineage: ${live}`], providerExtra })}daemon:\n  interval_s: 300\nmonitor:\n${monitor.map((l) => `  ${l}\n`).join('')}`,
    );
    return { dir, config, leaf };
  }

  it('refuses a listen address other hosts can reach unless allow_remote (exit 2, at its line); --once does not listen', async () => {
    const c = setup('remote', ['listen: "0.0.0.0:9153"']);
    const r = runCli(['--config', c.config, 'daemon']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(
      /config\.yaml:\d+: monitor\.listen: 0\.0\.0\.0:9153 is not a loopback address/,
    );
    expect(r.stderr).toMatch(/hint: .*monitor\.allow_remote: true/);
    const port = await freePort();
    const once = setup('once', [`listen: "127.0.0.1:${port}"`]);
    const o = runCli(['--config', once.config, 'daemon', '--once'], { cwd: once.dir });
    expect(o.code, show(o)).toBe(0);
    expect(o.stderr).not.toMatch(/serving \/metrics/);
  });

  it('/healthz is 503 after a failed run and 200 after a good one; provider errors by kind; the configured chain (verify.probe: false) checked against the zone file', async () => {
    const port = await freePort();
    const c = setup(
      'health',
      [`listen: "127.0.0.1:${port}"`, 'check_interval_s: 5'],
      ['reload: "test -e reload-ok"'],
    );
    const d = await startDaemon(c.dir, c.config);
    const base = `http://127.0.0.1:${port}`;
    const get = async (path: string) => {
      const r = await fetch(`${base}${path}`);
      return { status: r.status, text: await r.text() };
    };
    try {
      const failing = await waitFor(
        '/healthz 503',
        async () => {
          const h = await get('/healthz');
          return h.status === 503 ? h : undefined;
        },
        60_000,
      );
      expect(failing.text).toMatch(/^failing: last run .* exited 3: zonefile\(local\): .*reload/);
      const metrics = await waitFor(
        'the configured chain checked',
        async () => {
          const m = parseMetrics((await get('/metrics')).text);
          return m.some((s) => s.name === 'tlsa_served_chain_unmatched') ? m : undefined;
        },
        60_000,
      );
      expect(metrics.find((s) => s.name === 'tlsa_last_run_exit_code')?.value).toBe(3);
      const errors = metrics.filter((s) => s.name === 'tlsa_provider_errors_total');
      expect(errors.map((s) => s.labels)).toEqual([
        { provider: 'zonefile(local)', kind: 'reload' },
      ]);
      expect(errors[0]!.value).toBeGreaterThanOrEqual(1);
      const served = {
        service: 'mx',
        host: 'mx.example.org',
        port: '25',
        address: 'configured',
        key_type: 'ecdsa',
      };
      expect(metrics.find((s) => s.name === 'tlsa_served_chain_unmatched')).toEqual({
        name: 'tlsa_served_chain_unmatched',
        labels: served,
        value: 0,
      });
      expect(
        metrics.find((s) => s.name === 'tlsa_check_verdict' && s.value === 1)?.labels.verdict,
      ).toBe('match');
      const days = metrics.find((s) => s.name === 'tlsa_certificate_expiry_days')?.value ?? 0;
      expect(days).toBeGreaterThan(80);
      expect(days).toBeLessThanOrEqual(90);
      expect(
        metrics.find((s) => s.name === 'tlsa_records' && s.labels.phase === 'pending')?.value,
      ).toBe(2);

      writeFileSync(join(c.dir, 'reload-ok'), '');
      const ok = await waitFor(
        '/healthz 200',
        async () => {
          const h = await get('/healthz');
          return h.status === 200 ? h : undefined;
        },
        60_000,
      );
      expect(ok.text).toMatch(/^ok: last run .* exited 0/);
      const after = parseMetrics((await get('/metrics')).text);
      expect(
        after.find((s) => s.name === 'tlsa_seconds_since_last_successful_run')!.value,
      ).toBeLessThan(60);
      expect((await get('/nope')).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
      d.child.kill('SIGTERM');
      expect(await d.exited).toBe(0);
    } finally {
      d.child.kill('SIGKILL');
    }
  }, 150_000);
});

labDescribe(
  'tlsa daemon monitor: status page in chromium, /metrics during a rollover (Knot, unbound)',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ['chromium', 'chromium'],
  ],
  () => {
    afterAll(() => stopAll());

    it('shows the rollover on the page and flips the mismatch gauge when a record vanishes behind its back', async () => {
      const dir = join(root, 'lab');
      mkdirSync(dir, { recursive: true });
      const zone = 'example.test.';
      const { fragment, knot, unbound } = await startFragmentZone(dir, {
        zone,
        dnssec: false,
        unbound: { cacheMaxNegativeTtl: 1 },
      });
      const tlsPort = await freePort();
      const monitorPort = await freePort();
      const base = `http://127.0.0.1:${monitorPort}`;

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
      // TTL 60: the renewal's records stay pending for 2 minutes after every server has them.
      writeFileSync(
        config,
        [
          'state_dir: state',
          'ttl: 60',
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  propagation: true',
          '  probe: true',
          '  timeout_s: 5',
          'daemon:',
          '  interval_s: 300',
          'monitor:',
          `  listen: "127.0.0.1:${monitorPort}"`,
          '  check_interval_s: 5',
          'providers:',
          '  knot:',
          '    type: zonefile',
          `    path: ${JSON.stringify(fragment)}`,
          `    reload: ${JSON.stringify(knot.reloadCommand(zone))}`,
          'services:',
          '  mx:',
          '    host: mx.example.test',
          `    ports: [{port: ${tlsPort}, protocol: tls}]`,
          '    provider: knot',
          '    issuers: none',
          '    certificates:',
          `      - lineage: ${JSON.stringify(live)}`,
          '    install:',
          '      dir: installed',
          '      reload: "true"',
          '',
        ].join('\n'),
      );
      const current = join(dir, 'installed', 'mx.example.test', 'current');
      // The mail server: serves whatever is installed as current, read at each handshake.
      const context = () =>
        createSecureContext({
          cert: readFileSync(join(current, 'fullchain.pem')),
          key: readFileSync(join(current, 'privkey.pem')),
        });
      let tls: Server | undefined;

      const child = spawn(process.execPath, [CLI_PATH, '--config', config, 'daemon'], { cwd: dir });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const get = async (path: string) => {
        const r = await fetch(`${base}${path}`);
        return {
          status: r.status,
          type: r.headers.get('content-type') ?? '',
          text: await r.text(),
        };
      };
      const served = async () =>
        parseMetrics((await get('/metrics')).text).filter(
          (s) =>
            s.name === 'tlsa_served_chain_unmatched' &&
            s.labels.host === 'mx.example.test' &&
            s.labels.address === '127.0.0.1' &&
            s.labels.key_type === 'ecdsa' &&
            s.labels.port === String(tlsPort),
        );
      try {
        await waitFor(
          'the listener',
          () => (/serving \/metrics/.test(err) ? true : undefined),
          30_000,
        );
        expect(err).toContain(`on http://127.0.0.1:${monitorPort}/`);
        // First run: the first chain is installed at once (nothing was served from there).
        await waitFor(
          'the first install',
          () => (/installed .* for mx/.test(err) ? true : undefined),
          60_000,
        );
        tls = createTlsServer({
          cert: readFileSync(join(current, 'fullchain.pem')),
          key: readFileSync(join(current, 'privkey.pem')),
          SNICallback: (_name, cb) => cb(null, context()),
        });
        await new Promise<void>((r) => tls!.listen(tlsPort, '127.0.0.1', () => r()));

        // Renewal: a new key from a new intermediate, which nothing published matches: staged.
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

        // The daemon has seen the staged chain (its records on every server, an ETA) and has
        // checked the served chain: it matches a published record.
        await waitFor(
          'the staged chain with its ETA in the metrics',
          async () =>
            parseMetrics((await get('/metrics')).text).some(
              (s) => s.name === 'tlsa_staged_chain_install_in_seconds' && s.value > 0,
            ) || undefined,
          60_000,
        );
        expect(
          (await waitFor('a check of the served chain', async () => (await served())[0], 30_000))
            .value,
        ).toBe(0);

        const health = await get('/healthz');
        expect(health.status, health.text).toBe(200);

        // The page, in a real browser.
        const dom = await dumpDom(`${base}/`);
        const rows = [
          ...dom.matchAll(
            /<tr class="record" data-owner="([^"]+)" data-record="([^"]+)" data-phase="([^"]+)">([\s\S]*?)<\/tr>/g,
          ),
        ];
        const ee2 = `3 1 1 ${opensslSpkiSha256(leaf2.certPath)}`;
        const ee1 = `3 1 1 ${opensslSpkiSha256(leaf1.certPath)}`;
        const row2 = rows.find((r) => r[2] === ee2);
        expect(row2, dom).toBeDefined();
        expect(row2![1]).toBe(`_${tlsPort}._tcp.mx.example.test.`);
        expect(row2![3]).toBe('pending');
        // The moment it turns live: about 2×60 s after every authoritative server had it.
        const eta =
          /live at <time datetime="([^"]+)">[\s\S]*?class="eta" data-eta="[^"]+">\(in (\d+m \d+s|\d+m|\d+s)\)/.exec(
            row2![4]!,
          );
        expect(eta, row2![4]).not.toBeNull();
        const left = (Date.parse(eta![1]!) - Date.now()) / 1000;
        expect(left).toBeGreaterThan(0);
        expect(left).toBeLessThanOrEqual(120);
        expect(rows.find((r) => r[2] === ee1)?.[3]).toMatch(/^(pending|live)$/);
        // The staged chain and what it waits for.
        expect(dom).toMatch(
          /<li class="staged" data-chain="[^"]*mx\.example\.test[^"]*" data-eta="[^"]+"><code>[^<]+<\/code> waits for its records/,
        );
        // The served chain, per address and key type, with its verdict.
        expect(dom).toMatch(
          new RegExp(
            `<tr class="served" data-address="127.0.0.1" data-port="${tlsPort}" data-key-type="ecdsa" data-verdict="match">`,
          ),
        );
        expect(dom).toContain('next run');
        mkdirSync(ARTIFACTS, { recursive: true });
        await screenshot(`${base}/`, join(ARTIFACTS, 'monitor-status-page.png'));

        // Behind tlsa's back: the records matching the served (first) chain leave the zone.
        const issuer1 = `2 1 1 ${opensslSpkiSha256(pki.ecdsa.intermediate.certPath)}`;
        expect(managedRdata(readFileSync(fragment, 'utf8'))).toEqual(
          expect.arrayContaining([ee1, issuer1]),
        );
        writeFileSync(
          fragment,
          readFileSync(fragment, 'utf8')
            .split('\n')
            .filter((l) => !l.includes(ee1.slice(6)) && !l.includes(issuer1.slice(6)))
            .join('\n'),
        );
        await waitFor(
          'the mismatch gauge at 1',
          async () => ((await served())[0]?.value === 1 ? true : undefined),
          60_000,
        );
        const verdicts = parseMetrics((await get('/metrics')).text).filter(
          (s) =>
            s.name === 'tlsa_check_verdict' && s.labels.address === '127.0.0.1' && s.value === 1,
        );
        expect(verdicts.map((s) => s.labels.verdict)).toEqual(['mismatch']);
        expect(await dumpDom(`${base}/`)).toContain('no published record matches');

        // The next run (SIGHUP starts one) puts them back: the gauge returns to 0.
        child.kill('SIGHUP');
        await waitFor(
          'the mismatch gauge back at 0',
          async () => ((await served())[0]?.value === 0 ? true : undefined),
          60_000,
        );
        expect(managedRdata(readFileSync(fragment, 'utf8'))).toEqual(
          expect.arrayContaining([ee1, issuer1]),
        );
        const installed = new X509Certificate(readFileSync(join(current, 'cert.pem')))
          .fingerprint256;
        expect([
          new X509Certificate(leaf1.certPem).fingerprint256,
          new X509Certificate(leaf2.certPem).fingerprint256,
        ]).toContain(installed);

        child.kill('SIGTERM');
        expect(await exited).toBe(0);
        if (process.env.SHOW_DAEMON) console.log(err);
      } finally {
        child.kill('SIGKILL');
        await new Promise<void>((r) => (tls ? tls.close(() => r()) : r()));
      }
    }, 300_000);
  },
);
