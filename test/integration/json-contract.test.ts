/**
 * The one `--json` contract: every command, run for real (the built CLI on a copy of the README
 * quick start: config.example.yaml, the zonefile provider, the example chains; DNS verification
 * off, the resolver on a closed loopback port, so nothing leaves the machine), prints on stdout
 * one envelope (the daemon: one line per run) that validates against its schema in docs/json,
 * read as JSON Schema, and against the zod contract it is generated from. A success and a
 * failure each; `exitCode` is the process's exit code; on failure stderr keeps the human message.
 * `check` with a verified server: test/integration/check.test.ts validates its outputs too, and
 * `renew` against pebble test/integration/acme-renew.test.ts.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type JsonCommand, outputSchema } from '../../src/cli/json-contract.js';
import { REPO_ROOT, requireBuiltCli, runCli, show, type CliResult } from '../helpers/cli.js';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
const LIVE = 'docs/example/letsencrypt/live';

function quickStart(staged: boolean): string {
  const example = fs.readFileSync(path.join(REPO_ROOT, 'config.example.yaml'), 'utf8');
  let text = example
    .replace('resolver: system', 'resolver: 127.0.0.1:9')
    .replace('propagation: true', 'propagation: false')
    .replace('probe: true', 'probe: false');
  if (staged)
    text = text.replace(
      '    # install:\n    #   dir: /etc/postfix/tls\n',
      '    install:\n      dir: installed\n',
    );
  expect(text).not.toBe(example);
  return text;
}

beforeAll(() => {
  requireBuiltCli();
  dir = makeTempDir('tlsa-json-contract-');
  fs.cpSync(path.join(REPO_ROOT, 'docs', 'example'), path.join(dir, 'docs', 'example'), {
    recursive: true,
  });
  fs.writeFileSync(path.join(dir, 'config.yaml'), quickStart(false));
  fs.writeFileSync(path.join(dir, 'staged.yaml'), quickStart(true));
  expect(fs.readFileSync(path.join(dir, 'staged.yaml'), 'utf8')).toMatch(/^ {4}install:$/m);
  // A Postfix configuration serving the example chains, and their records as a zone file.
  const pf = path.join(dir, 'postfix');
  fs.mkdirSync(pf);
  const live = path.join(dir, LIVE);
  const files = (d: string) => [`${live}/${d}/privkey.pem`, `${live}/${d}/fullchain.pem`];
  const main = (chains: string[]) =>
    [
      'compatibility_level = 3.6',
      'myhostname = mx.example.org',
      'smtpd_tls_security_level = may',
      `smtpd_tls_chain_files = ${chains.join(', ')}`,
      'smtp_tls_security_level = dane',
      'smtp_dns_support_level = dnssec',
      '',
    ].join('\n');
  fs.writeFileSync(
    path.join(pf, 'main.cf'),
    main([...files('mx.example.org-rsa'), ...files('mx.example.org')]),
  );
  fs.writeFileSync(
    path.join(pf, 'master.cf'),
    'smtp inet n - y - - smtpd\nsmtp unix - - y - - smtp\n',
  );
  const broken = path.join(dir, 'postfix-broken');
  fs.mkdirSync(broken);
  fs.writeFileSync(path.join(broken, 'main.cf'), main([`${live}/mx.example.org/fullchain.pem`]));
  fs.copyFileSync(path.join(pf, 'master.cf'), path.join(broken, 'master.cf'));
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

const docSchemas = new Map<string, z.ZodType>();
/** docs/json/NAME.schema.json as a validator. */
function docSchema(name: string): z.ZodType {
  if (!docSchemas.has(name))
    docSchemas.set(
      name,
      z.fromJSONSchema(
        JSON.parse(
          fs.readFileSync(path.join(REPO_ROOT, 'docs', 'json', `${name}.schema.json`), 'utf8'),
        ),
      ),
    );
  return docSchemas.get(name)!;
}

interface Envelope {
  ok: boolean;
  exitCode: number;
  command: string;
  warnings: string[];
  error?: { message: string; kind: string };
  [field: string]: unknown;
}

/** Every stdout line (the daemon) or the whole stdout, validated; the exit code matches. */
function envelopes(command: JsonCommand, r: CliResult, o: { lines?: boolean } = {}): Envelope[] {
  const texts = o.lines ? r.stdout.split('\n').filter(Boolean) : [r.stdout];
  expect(texts.length, show(r)).toBeGreaterThan(0);
  return texts.map((t) => {
    let value: unknown;
    try {
      value = JSON.parse(t);
    } catch {
      throw new Error(`stdout is not JSON\n${show(r)}`);
    }
    for (const [name, schema] of [
      [`docs/json/${command}.schema.json`, docSchema(command)],
      ['docs/json/envelope.schema.json', docSchema('envelope')],
      [`the zod contract of ${command}`, outputSchema(command)],
    ] as const) {
      const checked = schema.safeParse(value);
      expect(checked.success, `${name}: ${checked.error?.message}\n${show(r)}`).toBe(true);
    }
    const e = value as Envelope;
    expect(e.command).toBe(command);
    expect(e.ok).toBe(e.exitCode === 0);
    return e;
  });
}

function one(command: JsonCommand, r: CliResult, code: number): Envelope {
  expect(r.code, show(r)).toBe(code);
  const [e] = envelopes(command, r);
  expect(e!.exitCode).toBe(code);
  return e!;
}

/** A failure: the error on stdout, the same message (its first line) on stderr. */
function failed(command: JsonCommand, r: CliResult, code: number, kind: string): Envelope {
  const e = one(command, r, code);
  expect(e.error, show(r)).toMatchObject({ kind });
  expect(r.stderr).toContain(e.error!.message.split('\n')[0]);
  return e;
}

const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
  runCli(args, { cwd: dir, env, timeout: 60_000 });
const cfg = (...args: string[]) => cli(['--config', 'config.yaml', ...args, '--json']);

/** Another run holding the lock: this test process (alive, on this host). */
function holdLock(): () => void {
  const state = path.join(dir, '.tlsa-state');
  fs.mkdirSync(state, { recursive: true });
  const lock = path.join(state, 'lock');
  fs.writeFileSync(
    lock,
    JSON.stringify({
      pid: process.pid,
      host: hostname(),
      command: 'daemon',
      since: new Date().toISOString(),
    }),
  );
  return () => fs.rmSync(lock, { force: true });
}

// The commands change the zone and the state: in this order.
describe('every command with --json: one envelope on stdout, valid against docs/json', () => {
  it('generate: the records; without --chain a failure of kind input', () => {
    const ok = one(
      'generate',
      cli([
        'generate',
        '--chain',
        `${LIVE}/mx.example.org/fullchain.pem`,
        '--host',
        'mx.example.org',
        '--json',
      ]),
      0,
    );
    expect((ok.records as unknown[]).length).toBeGreaterThan(0);
    failed('generate', cli(['generate', '--host', 'mx.example.org', '--json']), 2, 'input');
  });

  it('plan: the diff; an option plan does not take is a failure on stdout too', () => {
    const ok = one('plan', cfg('plan'), 0);
    expect(ok.summary).toMatchObject({ add: 4 });
    const bad = failed('plan', cfg('plan', '--force'), 2, 'input');
    expect(bad.error!.message).toMatch(/plan does not take --force/);
  });

  it('publish: what it did; another run holding the lock is a failure of kind wait (exit 4)', () => {
    const release = holdLock();
    try {
      failed('publish', cfg('publish', '--lock-wait', '0'), 4, 'wait');
    } finally {
      release();
    }
    const ok = one('publish', cfg('publish'), 0);
    expect(ok.added).toBe(4);
  });

  it('status: the records; a missing configuration is a failure naming the file', () => {
    const ok = one('status', cfg('status'), 0);
    expect((ok.records as { phase: string }[]).map((x) => x.phase)).toEqual(
      Array(4).fill('pending'),
    );
    const bad = failed('status', cli(['--config', 'missing.yaml', 'status', '--json']), 2, 'input');
    expect(bad.error).toMatchObject({ file: 'missing.yaml' });
  });

  it('renew: no service with acme: is a failure of kind input (a success: acme-renew.test.ts)', () => {
    const bad = failed('renew', cfg('renew'), 2, 'input');
    expect(bad.error!.message).toMatch(/no service has an acme: block/);
  });

  it('retire and adopt: dry runs; a bad --lock-wait is a failure', () => {
    expect(one('retire', cfg('retire', '--dry-run'), 0).dryRun).toBe(true);
    failed('retire', cfg('retire', '--lock-wait', 'soon'), 2, 'input');
    expect(one('adopt', cfg('adopt', '--dry-run'), 0)).toMatchObject({ dryRun: true, missing: 0 });
    failed('adopt', cfg('adopt', '--lock-wait', 'soon'), 2, 'input');
  });

  it('daemon --once: exactly one line for the run, also when the run fails', () => {
    const r = cfg('daemon', '--once');
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    const [run] = envelopes('daemon', r, { lines: true });
    expect(run!.next).toMatchObject({ why: expect.stringMatching(/turn live/) });
    const release = holdLock();
    try {
      const f = cfg('daemon', '--once', '--lock-wait', '0');
      expect(f.code, show(f)).toBe(4);
      expect(f.stdout.trim().split('\n')).toHaveLength(1);
      const [bad] = envelopes('daemon', f, { lines: true });
      expect(bad).toMatchObject({ ok: false, exitCode: 4, error: { kind: 'wait' } });
    } finally {
      release();
    }
  });

  it('hook certbot: staged (exit 0); served before live (exit 1, problems); nothing to do; no RENEWED_LINEAGE a failure', () => {
    const lineage = path.join(dir, LIVE, 'mx.example.org');
    const staged = cli(['--config', 'staged.yaml', 'hook', 'certbot', '--json'], {
      RENEWED_LINEAGE: lineage,
    });
    expect(one('hook', staged, 0).services).toEqual(['mx']);
    const exposed = one(
      'hook',
      cli(['--config', 'config.yaml', 'hook', 'certbot', '--json'], {
        RENEWED_LINEAGE: lineage,
      }),
      1,
    );
    expect((exposed.problems as string[]).join('\n')).toMatch(
      /no record that matches it is live yet/,
    );
    const none = one(
      'hook',
      cli(['--config', 'config.yaml', 'hook', 'certbot', '--json'], {
        RENEWED_LINEAGE: dir,
      }),
      0,
    );
    expect(none).toMatchObject({ services: [], added: 0, problems: [] });
    failed(
      'hook',
      cli(['--config', 'config.yaml', 'hook', 'certbot', '--json'], { RENEWED_LINEAGE: undefined }),
      2,
      'input',
    );
  });

  it('check: a resolver that does not answer is a failed report (exit 1); a bad --protocol a failure', () => {
    const r = cfg('check', 'mx.example.org', '--timeout', '2');
    const e = one('check', r, 1);
    expect(e.ok).toBe(false);
    expect(e.error).toBeUndefined();
    expect((e.reports as { ok: boolean }[]).map((x) => x.ok)).toEqual([false]);
    failed('check', cfg('check', 'mx.example.org', '--protocol', 'gopher'), 2, 'input');
  });

  it('doctor postfix --offline: a clean configuration (exit 0), one with an error finding (exit 1), a missing directory a failure', () => {
    const zone = cli([
      'generate',
      '--chain',
      `${LIVE}/mx.example.org-rsa/fullchain.pem`,
      '--chain',
      `${LIVE}/mx.example.org/fullchain.pem`,
      '--host',
      'mx.example.org',
    ]);
    expect(zone.code, show(zone)).toBe(0);
    fs.writeFileSync(path.join(dir, 'tlsa.zone'), zone.stdout);
    const doctor = (pf: string) =>
      cli([
        'doctor',
        'postfix',
        '--postfix-dir',
        pf,
        '--offline',
        '--tlsa-file',
        'tlsa.zone',
        '--json',
      ]);
    const clean = one('doctor', doctor('postfix'), 0);
    expect((clean.findings as { level: string }[]).filter((f) => f.level === 'error')).toEqual([]);
    const broken = one('doctor', doctor('postfix-broken'), 1);
    expect((broken.findings as { level: string }[]).some((f) => f.level === 'error')).toBe(true);
    failed('doctor', doctor('no-such-dir'), 2, 'input');
  });
});

describe('--json on a command line that does not parse', () => {
  it('an unknown option or command: the failure envelope with the usage left to stderr', () => {
    const r = cli(['--bogus', 'plan', '--json']);
    expect(r.code, show(r)).toBe(2);
    const e = JSON.parse(r.stdout) as Envelope;
    expect(docSchema('envelope').safeParse(e).success, show(r)).toBe(true);
    expect(e).toMatchObject({ ok: false, exitCode: 2, command: 'plan', error: { kind: 'input' } });
    expect(e.error!.message).not.toMatch(/Usage:/);
    expect(r.stderr).toMatch(/Usage:/);
    const u = cli(['frob', '--json']);
    expect(u.code).toBe(2);
    expect(JSON.parse(u.stdout)).toMatchObject({ ok: false, command: 'frob' });
  });
});
