/** A reader that goes away early (`tlsa status | head -1`): the command finishes with its own
 *  exit code and no stack trace, and a publish still does all its work. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT, requireBuiltCli, runCli } from '../helpers/cli.js';

let dir: string;

beforeAll(() => {
  requireBuiltCli();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tlsa-pipe-'));
  fs.cpSync(path.join(REPO_ROOT, 'docs', 'example'), path.join(dir, 'docs', 'example'), {
    recursive: true,
  });
  fs.copyFileSync(path.join(REPO_ROOT, 'config.example.yaml'), path.join(dir, 'tlsa.yaml'));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Runs the CLI with both of its output pipes closed by the reader before it writes. */
function runWithReaderGone(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, '-c', path.join(dir, 'tlsa.yaml'), ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // Closing our end of stdout at once: every write of the child's gets EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('output to a reader that went away', () => {
  it('publish writes its records and exits 0 although nobody reads what it prints', async () => {
    const r = await runWithReaderGone(['publish']);
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|at .*\.cjs/);
    expect(r.code).toBe(0);
    const zone = fs.readFileSync(path.join(dir, 'example.zone'), 'utf8');
    expect(zone.match(/ TLSA /g)).toHaveLength(4);
    // The state knows them too: the next plan has nothing to add.
    const plan = runCli(['-c', path.join(dir, 'tlsa.yaml'), 'plan', '--json'], { cwd: dir });
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout).summary.add).toBe(0);
  });

  it('status and plan exit with their own code, no stack trace', async () => {
    for (const cmd of ['status', 'plan']) {
      const r = await runWithReaderGone([cmd]);
      expect(r.stderr, cmd).not.toMatch(/EPIPE|Unhandled|at .*\.cjs/);
      expect(r.code, cmd).toBe(0);
    }
  });
});
