/** The ACME hooks through the built CLI and the real hook script: certbot's environment, the
 *  three outcomes (installed / staged / exposed), and the failure cases of the issue. */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';
import {
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

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-hook-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

let n = 0;
function setup(o: { ttl?: number; serviceExtra?: string[]; providerExtra?: string[] } = {}) {
  const dir = join(root, `c${++n}`);
  mkdirSync(dir, { recursive: true });
  const le = join(dir, 'le');
  const leaf = leafFor(pki, 'ecdsa', { outDir: dir });
  const live = lineageFor(pki, 'mx.example.org', 'ecdsa', leaf, 1, le);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    configYaml({
      certificates: [`lineage: ${live}`],
      ttl: o.ttl ?? 3600,
      serviceExtra: o.serviceExtra ?? [],
      providerExtra: o.providerExtra ?? [],
    }),
  );
  const renew = (opts: { reuseKey?: boolean } = {}) => {
    const next = opts.reuseKey
      ? leafFor(pki, 'ecdsa', { outDir: join(dir, `k${Date.now()}`) })
      : leafFor(pki, 'ecdsa', { outDir: dir });
    if (opts.reuseKey) {
      // Same key, new certificate: re-sign a CSR made from the old key.
      const csr = join(dir, 'reuse.csr');
      const cert = join(dir, 'reuse.crt');
      spawnSync(
        'openssl',
        ['req', '-new', '-key', leaf.keyPath, '-subj', '/CN=mx.example.org', '-out', csr],
        { env: { ...process.env, OPENSSL_CONF: '/dev/null' } },
      );
      writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:mx.example.org\n');
      spawnSync('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        pki.ecdsa.intermediate.certPath,
        '-CAkey',
        pki.ecdsa.intermediate.keyPath,
        '-CAcreateserial',
        '-days',
        '30',
        '-extfile',
        join(dir, 'ext.cnf'),
        '-out',
        cert,
      ]);
      return lineageFor(
        pki,
        'mx.example.org',
        'ecdsa',
        { ...leaf, certPem: readFileSync(cert, 'utf8'), certPath: cert },
        undefined,
        le,
      );
    }
    lineageFor(pki, 'mx.example.org', 'ecdsa', next, undefined, le);
    return next;
  };
  return {
    dir,
    live,
    config,
    leaf,
    renew,
    zone: () =>
      existsSync(join(dir, 'zone.db')) ? readFileSync(join(dir, 'zone.db'), 'utf8') : '',
  };
}

const hook = (
  c: { dir: string; config: string },
  env: Record<string, string | undefined>,
  extra: string[] = [],
) => runCli(['--config', c.config, 'hook', 'certbot', ...extra], { cwd: c.dir, env });

describe('tlsa hook certbot', () => {
  it('runs through hooks/certbot-deploy with TLSA_CONFIG and publishes the renewed chain beside the old one', () => {
    const c = setup({
      serviceExtra: ['install:', '  dir: installed', '  reload: "echo reload >> reloads.log"'],
    });
    const first = hook(c, { RENEWED_LINEAGE: c.live, RENEWED_DOMAINS: 'mx.example.org' });
    expect(first.code, show(first)).toBe(0);
    const next = c.renew();
    const r = spawnSync(join(REPO_ROOT, 'hooks', 'certbot-deploy'), {
      cwd: c.dir,
      env: {
        ...process.env,
        TLSA_CONFIG: c.config,
        RENEWED_LINEAGE: c.live,
        RENEWED_DOMAINS: 'mx.example.org',
      },
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const rdata = managedRdata(c.zone());
    expect(rdata).toContain(`3 1 1 ${opensslSpkiSha256(c.leaf.certPath)}`);
    expect(rdata).toContain(`3 1 1 ${opensslSpkiSha256(next.certPath)}`);
    // Staged, not installed: nothing matching the new key is live yet (TTL 3600).
    expect(r.stdout).toMatch(/staged .* waits for its records to be 2×TTL old/);
    expect(readFileSync(join(c.dir, 'installed/mx.example.org/current/cert.pem'), 'utf8')).toBe(
      `${c.leaf.certPem.trimEnd()}\n`,
    );
  });

  it('without staged install, a new key served before its records are live exits 1 with the exposure and the fix, and does not reload', () => {
    const c = setup({ serviceExtra: ['reload: "echo reload >> reloads.log"'] });
    expect(hook(c, { RENEWED_LINEAGE: c.live }).code).toBe(1); // first issuance: nothing live yet either
    c.renew();
    const r = hook(c, { RENEWED_LINEAGE: c.live });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(
      /no record that matches it is live yet: DANE clients that cached the old TLSA RRset may refuse mail for about \d+ s/,
    );
    expect(r.stderr).toMatch(/configure "install:" .*--reuse-key.*2 1 1/s);
    expect(existsSync(join(c.dir, 'reloads.log'))).toBe(false);
    expect(managedRdata(c.zone()).filter((x) => x.startsWith('3 1 1'))).toHaveLength(2);
  });

  it('without staged install, records ["2 1 1"] only: the advice names no --reuse-key (no 3 1 1 to keep matching) (issue 14)', () => {
    const c = setup({
      serviceExtra: ['records: ["2 1 1"]', 'reload: "echo reload >> reloads.log"'],
    });
    expect(hook(c, { RENEWED_LINEAGE: c.live }).code).toBe(1); // the issuer's 2 1 1 is not live yet (TTL 3600)
    c.renew();
    const r = hook(c, { RENEWED_LINEAGE: c.live });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/configure "install:"/);
    expect(r.stderr).toMatch(/issuer catalog listing the intermediates your CA issues from/);
    expect(r.stderr).not.toMatch(/reuse-key/);
  });

  it('without staged install, a reused key matches a live record: the hook reloads and exits 0', async () => {
    const c = setup({ ttl: 1, serviceExtra: ['reload: "echo reload >> reloads.log"'] });
    hook(c, { RENEWED_LINEAGE: c.live });
    await new Promise((r) => setTimeout(r, 2100)); // 2×TTL
    c.renew({ reuseKey: true });
    const r = hook(c, { RENEWED_LINEAGE: c.live });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/matches a live record; reloaded/);
    expect(readFileSync(join(c.dir, 'reloads.log'), 'utf8')).toBe('reload\n');
  });

  it("without staged install, the hook's reload gets the service's reload_timeout_s (not a fixed 60 s)", async () => {
    const c = setup({
      ttl: 1,
      serviceExtra: ['reload: "sleep 4; echo late >> reloads.log"', 'reload_timeout_s: 1'],
    });
    hook(c, { RENEWED_LINEAGE: c.live });
    await new Promise((r) => setTimeout(r, 2100)); // 2×TTL
    c.renew({ reuseKey: true });
    const r = hook(c, { RENEWED_LINEAGE: c.live });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(
      /reload failed: "sleep 4; echo late >> reloads.log" timed out after 1 s/,
    );
    expect(existsSync(join(c.dir, 'reloads.log'))).toBe(false);
  });

  it('a lineage no service uses: exit 0 with a notice, nothing changed', () => {
    const c = setup();
    const r = hook(c, { RENEWED_LINEAGE: join(c.dir, 'le/live/other.example.org') });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(
      /no service in .* uses certbot lineage .*other\.example\.org.*nothing to do/,
    );
    expect(c.zone()).toBe('');
  });

  it('bad input: no RENEWED_LINEAGE, or lineage files missing: exit 2, nothing published', () => {
    const c = setup();
    const a = hook(c, { RENEWED_LINEAGE: undefined });
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/RENEWED_LINEAGE is not set/);
    rmSync(join(c.live, 'fullchain.pem'));
    const b = hook(c, { RENEWED_LINEAGE: c.live });
    expect(b.code, show(b)).toBe(2);
    expect(b.stderr).toMatch(/no fullchain\.pem/);
    expect(c.zone()).toBe('');
  });

  it('a provider failure exits 3 with the state consistent; the re-run completes', () => {
    const c = setup({ providerExtra: ['reload: "test -e reload-ok && echo ok >> reloads.log"'] });
    const a = hook(c, { RENEWED_LINEAGE: c.live });
    expect(a.code, show(a)).toBe(3);
    expect(a.stderr).toMatch(/reload command .* exited with 1.*retried on the next run/);
    writeFileSync(join(c.dir, 'reload-ok'), '');
    const b = hook(c, { RENEWED_LINEAGE: c.live });
    expect(b.code).toBe(1); // records published but not live yet: the exposure warning, not a failure to publish
    expect(readFileSync(join(c.dir, 'reloads.log'), 'utf8')).toBe('ok\n');
    const state = JSON.parse(readFileSync(join(c.dir, 'state/state.json'), 'utf8')) as {
      records: { status: string }[];
    };
    expect(state.records.map((r) => r.status)).toEqual(['published', 'published']);
  });

  it('two hook runs at once: the second waits for the lock, bounded, then exits 4', async () => {
    const c = setup();
    const holder = spawn('sleep', ['30']);
    mkdirSync(join(c.dir, 'state'), { recursive: true });
    writeFileSync(
      join(c.dir, 'state/lock'),
      JSON.stringify({
        pid: holder.pid,
        host: hostname(),
        command: 'hook certbot',
        since: new Date().toISOString(),
      }),
    );
    try {
      const r = hook(c, { RENEWED_LINEAGE: c.live }, ['--lock-wait', '1']);
      expect(r.code, show(r)).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`locked by pid ${holder.pid}`));
      expect(c.zone()).toBe('');
    } finally {
      holder.kill();
    }
  });
});
