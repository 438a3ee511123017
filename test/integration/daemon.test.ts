/** `tlsa daemon`: --once for timers, the loop with SIGHUP (reload config) and SIGTERM (finish
 *  the step, exit), and the acme.sh / lego hooks mapping their environments to services. */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';
import { CLI_PATH, configYaml, leafFor, lineageFor, makeTestPki, managedRdata, requireBuiltCli, runCli, show, type TestPki } from '../helpers/cli.js';

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
  const write = (ports: number[]) => writeFileSync(config, configYaml({ certificates: [`lineage: ${live}`], serviceExtra: [`ports: [${ports.join(', ')}]`] }).replace('    ports: [25]\n', '') + 'daemon:\n  interval_s: 5\n');
  write([25]);
  return { dir, config, live, leaf, write, zone: () => readFileSync(join(dir, 'zone.db'), 'utf8') };
}

function waitFor(get: () => string, re: RegExp, ms: number): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (re.test(get())) { clearInterval(t); resolve(); }
      else if (Date.now() - start > ms) { clearInterval(t); reject(new Error(`timed out waiting for ${re}: ${get()}`)); }
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
    const child = spawn(process.execPath, [CLI_PATH, '--config', c.config, 'daemon'], { cwd: c.dir });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
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
});

describe('acme.sh and lego hooks', () => {
  it('map CERT_FULLCHAIN_PATH (acme.sh) and LEGO_HOOK_CERT_PATH (lego) to the service using that file', () => {
    const c = setup('acme');
    const full = join(c.live, 'fullchain.pem');
    writeFileSync(c.config, configYaml({ certificates: [`fullchain: ${full}`] }));
    const a = runCli(['--config', c.config, 'hook', 'acme.sh'], { cwd: c.dir, env: { CERT_FULLCHAIN_PATH: full, CERT_PATH: join(c.live, 'cert.pem'), Le_Domain: 'mx.example.org' } });
    expect(a.code, show(a)).toBe(1); // published, not live yet: the exposure warning
    expect(managedRdata(c.zone())).toHaveLength(2);
    const l = runCli(['--config', c.config, 'hook', 'lego'], { cwd: c.dir, env: { LEGO_HOOK_CERT_PATH: join(c.dir, 'other.crt') } });
    expect(l.code, show(l)).toBe(0);
    expect(l.stdout).toMatch(/no service .* uses lego certificate/);
    const bad = runCli(['--config', c.config, 'hook', 'lego'], { cwd: c.dir, env: { LEGO_HOOK_CERT_PATH: undefined } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/LEGO_HOOK_CERT_PATH is not set/);
  });
});
