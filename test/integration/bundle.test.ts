/**
 * The bundled CLI (scripts/bundle.mjs, run by `npm run build`): one script run from V8's code
 * cache, behaving as the unbundled one. Built here into a throwaway package directory, so the
 * test does not depend on how dist/ was last built.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, show, type CliResult } from '../helpers/cli.js';

const LIVE = path.join(REPO_ROOT, 'docs', 'example', 'letsencrypt', 'live');
/** Prints, at exit, every file CommonJS loaded: the provider SDKs are CommonJS packages. */
const PROBE = `process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(Object.keys(require.cache)) + '\\n'));`;

/** Prints, at exit, the Node built-ins that were loaded, of those a config command never calls. */
const BUILTIN_PROBE = `process.on('exit', () => process.stderr.write('BUILTINS ' + JSON.stringify(process.moduleLoadList.filter((m) => /^NativeModule (child_process|dgram|dns\\/promises|tls)$/.test(m)).map((m) => m.slice(13))) + '\\n'));`;

let pkg: string;
/** config.example.yaml in the package directory: its zone file and state start absent there. */
let EXAMPLE: string;
let cliDir: string;
let probe: string;
let builtinProbe: string;

function runBundled(
  args: string[],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  entry = 'main.cjs',
): CliResult {
  const r = spawnSync(process.execPath, [...nodeArgs, path.join(cliDir, entry), ...args], {
    cwd: pkg,
    encoding: 'utf8',
    env: {
      ...process.env,
      TLSA_CONFIG: undefined,
      NODE_OPTIONS: undefined,
      ...env,
    } as NodeJS.ProcessEnv,
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, all: r.stdout + r.stderr };
}

function loaded(r: CliResult): string[] {
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  if (!line) throw new Error(`no LOADED line\n${show(r)}`);
  return JSON.parse(line.slice('LOADED '.length)) as string[];
}

function builtins(r: CliResult): string[] {
  const line = r.stderr.split('\n').find((l) => l.startsWith('BUILTINS '));
  if (!line) throw new Error(`no BUILTINS line\n${show(r)}`);
  return JSON.parse(line.slice('BUILTINS '.length)) as string[];
}

const sdk = (files: string[]) =>
  files.filter((f) => /node_modules\/(@aws-sdk|cloudflare|croner)\//.test(f));

/** A config in a new directory of the package: one provider (`provider`, its YAML line) and
 *  service mx on the example lineage; `quiet`: no resolver, no propagation, no probe. */
function configWith(prefix: string, provider: string, name: string, quiet: boolean): string {
  const dir = fs.mkdtempSync(path.join(pkg, `${prefix}-`));
  const cfg = path.join(dir, 'config.yaml');
  fs.writeFileSync(
    cfg,
    [
      'state_dir: state',
      ...(quiet ? ['verify: {resolver: "127.0.0.1:9", propagation: false, probe: false}'] : []),
      'providers:',
      provider,
      'services:',
      '  mx:',
      '    host: mx.example.org',
      `    provider: ${name}`,
      '    issuers: none',
      `    certificates: [{lineage: ${path.join(LIVE, 'mx.example.org')}}]`,
      '',
    ].join('\n'),
  );
  return cfg;
}

describe('bundled CLI', () => {
  beforeAll(() => {
    // A package directory as npm installs it: package.json, the issuer catalog, node_modules.
    pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsa-bundle-'));
    fs.copyFileSync(path.join(REPO_ROOT, 'package.json'), path.join(pkg, 'package.json'));
    fs.symlinkSync(path.join(REPO_ROOT, 'src'), path.join(pkg, 'src'));
    fs.symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(pkg, 'node_modules'));
    fs.symlinkSync(path.join(REPO_ROOT, 'docs'), path.join(pkg, 'docs'));
    EXAMPLE = path.join(pkg, 'config.example.yaml');
    fs.copyFileSync(path.join(REPO_ROOT, 'config.example.yaml'), EXAMPLE);
    cliDir = path.join(pkg, 'dist', 'src', 'cli');
    fs.mkdirSync(cliDir, { recursive: true });
    probe = path.join(pkg, 'probe.cjs');
    fs.writeFileSync(probe, PROBE);
    builtinProbe = path.join(pkg, 'builtin-probe.cjs');
    fs.writeFileSync(builtinProbe, BUILTIN_PROBE);
    const r = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'scripts', 'bundle.mjs'), '--out', cliDir],
      { encoding: 'utf8', timeout: 180_000 },
    );
    if (r.status !== 0 || !fs.existsSync(path.join(cliDir, 'main.cjs')))
      throw new Error(`bundle failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    if (!fs.readdirSync(cliDir).some((f) => f.endsWith('.cjs')))
      throw new Error(`no bundle written (is esbuild installed?):\n${r.stderr}`);
  }, 240_000);
  afterAll(() => fs.rmSync(pkg, { recursive: true, force: true }));

  const bundleFile = () => {
    const f = fs.readdirSync(cliDir).find((n) => /^cli-[A-Z0-9]+\.cjs$/.test(n));
    if (!f) throw new Error(`no bundle in ${cliDir}`);
    return path.join(cliDir, f);
  };

  it('is one script with its code cache, next to main.cjs and main.js', () => {
    const files = fs.readdirSync(cliDir).sort();
    const name = path.basename(bundleFile());
    expect(files).toEqual([name, `${name}.cache`, 'main.cjs', 'main.js'].sort());
  });

  it('main.cjs starts without an ES module; main.js (an ES module) runs the same CLI', () => {
    // Node's ESM loader costs ≈ 12 ms of CPU before the first line of an ES module runs.
    const esmProbe = path.join(pkg, 'esm-probe.cjs');
    fs.writeFileSync(
      esmProbe,
      `process.on('exit', () => process.stderr.write('ESM ' + process.moduleLoadList.includes('NativeModule internal/modules/esm/module_job') + '\\n'));`,
    );
    const viaCjs = runBundled(['--config', EXAMPLE, 'plan'], {}, ['--require', esmProbe]);
    const viaEsm = runBundled(
      ['--config', EXAMPLE, 'plan'],
      {},
      ['--require', esmProbe],
      'main.js',
    );
    expect(viaCjs.code, show(viaCjs)).toBe(0);
    expect(viaCjs.stderr).toContain('ESM false');
    expect(viaEsm.code, show(viaEsm)).toBe(0);
    expect(viaEsm.stderr).toContain('ESM true');
    expect(viaEsm.stdout).toBe(viaCjs.stdout);
    for (const entry of ['main.cjs', 'main.js']) {
      const status = runBundled(['--config', EXAMPLE, 'status'], {}, [], entry);
      expect([status.code, status.stdout], entry).toEqual([
        0,
        expect.stringContaining('No records owned by tlsa'),
      ]);
    }
  });

  it('is ASCII, already wrapped as the function V8 compiles: the text read is the one compiled', () => {
    // One non-ASCII character makes V8 hold the whole source as two-byte text (twice the
    // memory), and a wrapper added at start copies it once more.
    const text = fs.readFileSync(bundleFile(), 'latin1');
    expect(text.match(/[\u0080-\uffff]/g)).toBeNull();
    expect(text.startsWith('(function (exports, require, module, __filename, __dirname) {')).toBe(
      true,
    );
    expect(text.endsWith('\n})')).toBe(true);
  });

  it('plan on config.example.yaml: the plan, and no provider SDK loaded', () => {
    const r = runBundled(['--config', EXAMPLE, 'plan'], {}, ['--require', probe]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('_25._tcp.mx.example.org.');
    expect(r.stdout).toContain('Plan: 4 to add, 0 to remove.');
    expect(sdk(loaded(r))).toEqual([]);
  });

  it('daemon --once without a renewal due loads no ACME client (an idle daemon stays small)', () => {
    const cfg = configWith(
      'daemon',
      '  local: {type: zonefile, path: zone.db, create: true}',
      'local',
      true,
    );
    const r = runBundled(['--config', cfg, 'daemon', '--once'], {}, ['--require', probe]);
    expect(r.code, show(r)).toBe(0);
    expect(loaded(r).filter((f) => /node_modules\/(acme-client|axios)\//.test(f))).toEqual([]);
    expect(loaded(r).length).toBeGreaterThan(0);
  });

  it('plan and status load none of child_process, dgram, dns/promises and tls (start-up)', () => {
    for (const command of ['plan', 'status']) {
      const r = runBundled(['--config', EXAMPLE, command], {}, ['--require', builtinProbe]);
      expect(r.code, show(r)).toBe(0);
      expect(builtins(r)).toEqual([]);
    }
  });

  it('status and a hook of a lineage of no service load no node:crypto; plan does, for the chains', () => {
    const probe = path.join(pkg, 'crypto-probe.cjs');
    fs.writeFileSync(
      probe,
      `process.on('exit', () => process.stderr.write('CRYPTO ' + process.moduleLoadList.includes('NativeModule crypto') + '\\n'));`,
    );
    const runs: [string[], Record<string, string>, boolean][] = [
      [['status'], {}, false],
      [['hook', 'certbot'], { RENEWED_LINEAGE: path.join(REPO_ROOT, 'docs', 'example') }, false],
      [['plan'], {}, true],
    ];
    for (const [args, env, crypto] of runs) {
      const r = runBundled(['--config', EXAMPLE, ...args], env, ['--require', probe]);
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr, args.join(' ')).toContain(`CRYPTO ${crypto}`);
    }
  });

  it('an exec provider runs its program: child_process loads on first use', () => {
    const cfg = configWith(
      'exec',
      `  mine: {type: exec, command: ["${process.execPath}", "-e", "process.stdout.write(JSON.stringify({records: []}))"]}`,
      'mine',
      false,
    );
    const r = runBundled(['--config', cfg, 'plan'], {}, ['--require', builtinProbe]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('Plan: 2 to add, 0 to remove.');
    expect(builtins(r)).toContain('child_process');
  });

  it('a route53 provider loads its SDK when it runs (here: nothing listens, exit 3)', () => {
    const cfg = configWith(
      'r53',
      '  aws: {type: route53, hosted_zone_id: Z0000000000000000TEST, endpoint: "http://127.0.0.1:9", access_key_id: AKIDTEST, secret_access_key: secret-test-key-123}',
      'aws',
      true,
    );
    const r = runBundled(['--config', cfg, 'plan'], {}, ['--require', probe]);
    expect(r.code, show(r)).toBe(3);
    expect(r.all).not.toContain('secret-test-key-123');
    expect(sdk(loaded(r)).some((f) => f.includes('node_modules/@aws-sdk/client-route-53/'))).toBe(
      true,
    );
  });

  it('bad input keeps its file:line and exit 2 (one copy of the error classes)', () => {
    const cfg = path.join(pkg, 'bad.yaml');
    fs.writeFileSync(
      cfg,
      'providers: {}\nservices:\n  mx:\n    host: mx.example.org\n    provider: nope\n    certificates: [{lineage: /x}]\n',
    );
    const r = runBundled(['--config', cfg, 'plan']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/bad\.yaml:5\b/);
    expect(r.stderr).toContain('unknown provider "nope"');
  });

  it('--version alone answers like --version through the whole CLI', () => {
    const alone = runBundled(['--version']);
    const full = runBundled(['--version', '--json']);
    const esm = runBundled(['--version'], {}, [], 'main.js');
    const version = (
      JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
        version: string;
      }
    ).version;
    expect([alone.code, alone.stdout]).toEqual([0, `tlsa ${version}\n`]);
    expect([full.code, full.stdout]).toEqual([0, alone.stdout]);
    expect([esm.code, esm.stdout]).toEqual([0, alone.stdout]);
  });

  it('a code cache from other code is rejected and written anew; the run is unaffected', () => {
    const cache = `${bundleFile()}.cache`;
    fs.writeFileSync(cache, Buffer.alloc(4096, 7));
    const r = runBundled(['--config', EXAMPLE, 'status']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('No records owned by tlsa');
    const rewritten = fs.readFileSync(cache);
    expect(rewritten.length).toBeGreaterThan(4096);
    expect(rewritten.equals(Buffer.alloc(rewritten.length, 7))).toBe(false);
  });

  it('a damaged code cache of the right length (a write a power loss cut short: zeros) is not run: the command works and the cache is written anew', () => {
    // V8 checks a cache's header, not its bytes: such a cache crashed every start (SIGSEGV).
    const cache = `${bundleFile()}.cache`;
    expect(runBundled(['--config', EXAMPLE, 'status']).code).toBe(0);
    const damaged = fs.readFileSync(cache);
    damaged.fill(0, damaged.length >> 2, damaged.length >> 1);
    fs.writeFileSync(cache, damaged);
    const r = runBundled(['--config', EXAMPLE, 'status']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('No records owned by tlsa');
    expect(fs.readFileSync(cache).equals(damaged)).toBe(false);
    const again = runBundled(['--config', EXAMPLE, 'plan']);
    expect(again.code, show(again)).toBe(0);
  });

  it('a FIFO or a link to a device at the code cache path: the command neither waits nor fails, and puts a file where the link was', () => {
    const cache = `${bundleFile()}.cache`;
    fs.rmSync(cache);
    spawnSync('mkfifo', [cache]);
    expect(fs.statSync(cache).isFIFO()).toBe(true);
    const r = runBundled(['--config', EXAMPLE, 'status']);
    expect(r.code, show(r)).toBe(0);
    expect(fs.lstatSync(cache).isFile()).toBe(true);
    fs.rmSync(cache);
    fs.symlinkSync('/dev/zero', cache);
    const viaLink = runBundled(['--config', EXAMPLE, 'plan']);
    expect(viaLink.code, show(viaLink)).toBe(0);
    expect(fs.lstatSync(cache).isFile()).toBe(true);
    expect(fs.statSync(cache).size).toBeGreaterThan(100_000);
  });

  it('the code cache is written 0644 whatever the umask: it is code that root may run', () => {
    const cache = `${bundleFile()}.cache`;
    fs.rmSync(cache);
    const r = spawnSync(
      '/bin/sh',
      [
        '-c',
        'umask 000; exec "$@"',
        'sh',
        process.execPath,
        path.join(cliDir, 'main.cjs'),
        '--config',
        EXAMPLE,
        'status',
      ],
      { cwd: pkg, encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    expect(fs.statSync(cache).mode & 0o777).toBe(0o644);
  });

  it('--help, generate, a bad config or plan --help never write the code cache: plan does', () => {
    // V8 caches only what a run compiled, and an accepted cache is never written again: one
    // written by a run that compiled a fraction of the CLI would stay until the next build.
    const cache = `${bundleFile()}.cache`;
    const rejected = Buffer.alloc(4096, 7);
    fs.writeFileSync(cache, rejected);
    const bad = path.join(pkg, 'bad-for-cache.yaml');
    fs.writeFileSync(bad, 'providers: {}\nservices: {mx: {host: mx.example.org}}\n');
    const fullchain = path.join(LIVE, 'mx.example.org', 'fullchain.pem');
    const small: [string[], number][] = [
      [['--help'], 0],
      [['generate', '--chain', fullchain, '--host', 'mx.example.org'], 0],
      [['--config', EXAMPLE, 'plan', '--help'], 0],
      [['--config', EXAMPLE, 'plan', '-h'], 0],
      [['--config', bad, 'plan'], 2],
      [['--config', EXAMPLE, 'nope'], 2],
    ];
    for (const [args, code] of small) {
      const r = runBundled(args);
      expect(r.code, `${args.join(' ')}\n${show(r)}`).toBe(code);
      expect(fs.readFileSync(cache).equals(rejected), args.join(' ')).toBe(true);
    }
    const plan = runBundled(['--config', EXAMPLE, 'plan']);
    expect(plan.code, show(plan)).toBe(0);
    expect(fs.readFileSync(cache).equals(rejected)).toBe(false);
    expect(fs.statSync(cache).size).toBeGreaterThan(100_000);
  });

  it('without a code cache the run is the same, and leaves one behind', () => {
    const cache = `${bundleFile()}.cache`;
    fs.rmSync(cache);
    const r = runBundled(['--config', EXAMPLE, 'plan']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain('Plan: 4 to add, 0 to remove.');
    expect(fs.existsSync(cache)).toBe(true);
  });
});
