/**
 * contrib/systemd: the units load without a single warning (`systemd-analyze verify`) and are
 * sandboxed (`systemd-analyze security --offline=yes` scores them, no running systemd needed).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';
const UNITS_DIR = path.join(REPO_ROOT, 'contrib', 'systemd');
const UNITS = ['tlsa.service', 'tlsa-once.service', 'tlsa-once.timer'];
const SERVICES = UNITS.filter((u) => u.endsWith('.service'));
/** systemd's own bands: up to 2.0 "OK", up to 5.0 "MEDIUM", above "EXPOSED"/"UNSAFE". */
const MAX_EXPOSURE = 2.5;

let dir: string;

function analyze(args: string[]) {
  const r = spawnSync(SYSTEMD_ANALYZE, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

describe.skipIf(!fs.existsSync(SYSTEMD_ANALYZE))('contrib/systemd units', () => {
  beforeAll(() => {
    // verify needs ExecStart's binary to exist: run the units with the node running this test.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsa-units-'));
    for (const u of UNITS) {
      const text = fs.readFileSync(path.join(UNITS_DIR, u), 'utf8');
      fs.writeFileSync(
        path.join(dir, u),
        text.replaceAll('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `),
      );
    }
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('systemd-analyze verify: no error and no warning', () => {
    const r = analyze(['verify', '--man=no', ...UNITS]);
    expect({ code: r.status, out: r.stdout + r.stderr }).toEqual({ code: 0, out: '' });
  });

  it.each(SERVICES)(`%s: exposure at most ${MAX_EXPOSURE} by systemd-analyze security`, (unit) => {
    const r = analyze(['security', '--offline=yes', '--no-pager', unit]);
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it("the service and the timer's one-shot share one sandbox", () => {
    const sandbox = (unit: string) =>
      fs
        .readFileSync(path.join(UNITS_DIR, unit), 'utf8')
        .split('\n')
        .filter((l) =>
          /^(Protect|Private|Restrict|ReadWritePaths|Capability|Ambient|NoNewPrivileges|SystemCall|LockPersonality|UMask|StateDirectory|User|DynamicUser)/.test(
            l,
          ),
        );
    const [first, ...others] = SERVICES.map(sandbox);
    expect(first).toContain('ProtectSystem=strict');
    expect(first).toContain('NoNewPrivileges=yes');
    for (const other of others) expect(other).toEqual(first);
  });
});
