/** `--log-format text|json` of the daemon and the certbot hook (zonefile provider): timestamped
 *  text lines, or one JSON object per stderr line (time, level, service, event, message,
 *  fields) for journald/Loki; `--json` stdout never carries a log line; secrets redacted. */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, removeTempDir } from '../helpers/pki.js';
import {
  configYaml,
  leafFor,
  lineageFor,
  makeTestPki,
  requireBuiltCli,
  runCli,
  show,
  type CliResult,
  type TestPki,
} from '../helpers/cli.js';

let root: string;
let pki: TestPki;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-logs-');
  pki = makeTestPki(root);
});
afterAll(() => removeTempDir(root));

let n = 0;
function setup(o: { top?: string[]; serviceExtra?: string[]; providerExtra?: string[] } = {}) {
  const dir = join(root, `c${++n}`);
  mkdirSync(dir, { recursive: true });
  const leaf = leafFor(pki, 'ecdsa', { outDir: dir });
  const live = lineageFor(pki, 'mx.example.org', 'ecdsa', leaf, 1, join(dir, 'le'));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      ...(o.top ?? []),
      configYaml({
        certificates: [`lineage: ${live}`],
        serviceExtra: o.serviceExtra ?? [],
        providerExtra: o.providerExtra ?? [],
      }),
    ].join('\n'),
  );
  return { dir, config, live };
}

const daemonOnce = (
  c: { dir: string; config: string },
  extra: string[],
  env: Record<string, string | undefined> = {},
) => runCli(['--config', c.config, 'daemon', '--once', ...extra], { cwd: c.dir, env });
const hook = (
  c: { dir: string; config: string; live: string },
  extra: string[],
  env: Record<string, string | undefined> = {},
) =>
  runCli(['--config', c.config, 'hook', 'certbot', ...extra], {
    cwd: c.dir,
    env: { RENEWED_LINEAGE: c.live, ...env },
  });

interface LogEntry {
  time: string;
  level: string;
  service?: string;
  event: string;
  message: string;
  fields?: Record<string, unknown>;
}

const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Every stderr line as a log entry; fails the test on a line that is not one. */
function logEntries(r: CliResult, o: { mayBeEmpty?: boolean } = {}): LogEntry[] {
  const lines = r.stderr.split('\n').filter(Boolean);
  if (!o.mayBeEmpty) expect(lines.length, show(r)).toBeGreaterThan(0);
  return lines.map((l) => {
    let e: LogEntry;
    try {
      e = JSON.parse(l) as LogEntry;
    } catch {
      throw new Error(`stderr line is not JSON: ${l}\n${show(r)}`);
    }
    expect(e.time, l).toMatch(ISO_TIME);
    expect(['info', 'warn', 'error'], l).toContain(e.level);
    expect(e.event, l).toMatch(/^[a-z][a-z-]*$/);
    expect(typeof e.message, l).toBe('string');
    return e;
  });
}

describe('--log-format json', () => {
  it('daemon --once: every stderr line is a JSON event; the run and a warning (level warn) are events; stdout stays empty', () => {
    // A cap of 1 record per name under the 2 records the served chain needs: a warning.
    const c = setup({ top: ['max_records_per_name: 1'] });
    const r = daemonOnce(c, ['--log-format', 'json']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe('');
    const log = logEntries(r);
    const warning = log.find((e) => e.event === 'warning');
    expect(warning?.level, show(r)).toBe('warn');
    expect(warning?.message).toMatch(/over the cap of 1/);
    expect(
      log.find((e) => e.event === 'published'),
      show(r),
    ).toMatchObject({ level: 'info', fields: { added: 2, removed: 0 } });
    expect(log.filter((e) => e.level === 'error')).toEqual([]);
  });

  it('daemon --once, a broken chain: exit 2 and one level-error line naming the file', () => {
    const c = setup();
    writeFileSync(
      join(c.live, 'fullchain.pem'),
      '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n',
    );
    const r = daemonOnce(c, ['--log-format', 'json']);
    expect(r.code, show(r)).toBe(2);
    const log = logEntries(r);
    expect(log, show(r)).toHaveLength(1);
    expect(log[0]).toMatchObject({
      level: 'error',
      event: 'error',
      fields: { exitCode: 2, file: join(c.live, 'fullchain.pem'), line: 1 },
    });
    expect(log[0]!.message).toContain(join(c.live, 'fullchain.pem'));
  });

  it('hook certbot with --json: stdout is the usual JSON and nothing else; the served-before-live problem is a level-error event of the service', () => {
    const c = setup({ serviceExtra: ['reload: "echo reload >> reloads.log"'] });
    const r = hook(c, ['--log-format', 'json', '--json']);
    expect(r.code, show(r)).toBe(1); // first issuance, no staged install: served before its records are live
    const doc = JSON.parse(r.stdout) as { services: string[]; problems: string[] };
    expect(doc.services).toEqual(['mx']);
    expect(doc.problems.join('\n')).toMatch(/no record that matches it is live yet/);
    logEntries(r, { mayBeEmpty: true });

    const t = hook(c, ['--log-format', 'json']);
    expect(t.code, show(t)).toBe(1);
    expect(t.stdout).toBe('');
    const exposed = logEntries(t).filter((e) => e.event === 'exposed');
    expect(exposed, show(t)).toHaveLength(1);
    expect(exposed[0]).toMatchObject({ level: 'error', service: 'mx' });
    expect(exposed[0]!.message).toMatch(/no record that matches it is live yet/);
  });

  it('a secret from the config that a failing reload command echoes is redacted in the JSON line', () => {
    const token = 'tok-Secret-4f9a1c';
    const c = setup({ providerExtra: ['reload: "echo token=${TLSA_LOG_TOKEN} >&2; exit 1"'] });
    const r = hook(c, ['--log-format', 'json'], { TLSA_LOG_TOKEN: token });
    expect(r.code, show(r)).toBe(3);
    expect(r.all).not.toContain(token);
    const errors = logEntries(r).filter((e) => e.level === 'error');
    expect(errors, show(r)).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/exited with 1/);
    expect(errors[0]!.message).toContain('token=***');
  });

  it('a run waiting for the lock says so as a "waiting" event, then exits 4 with one error', async () => {
    const c = setup();
    const holder = spawn('sleep', ['60']);
    mkdirSync(join(c.dir, 'state'), { recursive: true });
    writeFileSync(
      join(c.dir, 'state/lock'),
      JSON.stringify({
        pid: holder.pid,
        host: hostname(),
        command: 'daemon',
        since: new Date().toISOString(),
      }),
    );
    try {
      const r = hook(c, ['--log-format', 'json', '--json', '--lock-wait', '6']);
      expect(r.code, show(r)).toBe(4);
      const log = logEntries(r);
      expect(
        log.find((e) => e.event === 'waiting'),
        show(r),
      ).toMatchObject({ level: 'info' });
      expect(log.find((e) => e.event === 'waiting')!.message).toMatch(
        new RegExp(`waiting for the lock held by pid ${holder.pid}`),
      );
      expect(log.filter((e) => e.level === 'error')).toHaveLength(1);
      expect(r.stdout).not.toMatch(/waiting for the lock/);
    } finally {
      holder.kill();
    }
  }, 60_000);

  it('an unknown format is bad input (exit 2), nothing published', () => {
    const c = setup();
    const r = daemonOnce(c, ['--log-format', 'xml']);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/--log-format must be text or json, got "xml"/);
  });
});

describe('--log-format text (the default)', () => {
  it("daemon and hook lines start with an ISO time, on stderr and on the hook's stdout", () => {
    for (const extra of [['--log-format', 'text'], []]) {
      const c = setup({ serviceExtra: ['install:', '  dir: installed'] });
      const d = daemonOnce(c, extra);
      expect(d.code, show(d)).toBe(0);
      const h = hook(c, extra);
      expect(h.code, show(h)).toBe(0);
      const lines = [...d.stderr.split('\n'), ...h.all.split('\n')].filter(Boolean);
      expect(lines.length).toBeGreaterThan(1);
      for (const l of lines)
        expect(l, show(h)).toMatch(
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tlsa: |^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z [a-z]/,
        );
      for (const l of lines) expect(() => JSON.parse(l)).toThrow();
    }
  });
});
