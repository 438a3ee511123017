/**
 * Debian's chromium, headless, for pages served on loopback: the DOM after load (`--dump-dom`)
 * and a screenshot. Each call is one short-lived process with its own profile dir, stopped by
 * the spawn timeout. Nothing beyond loopback: every host name but 127.0.0.1 fails to resolve,
 * requests go to a proxy that does not exist, and background services (updates, sync, metrics)
 * are off. As root chromium needs --no-sandbox.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toolPath } from './lab.js';

const LOOPBACK_ONLY = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--disable-domain-reliability',
  '--metrics-recording-only',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--proxy-server=http://127.0.0.1:9',
  '--proxy-bypass-list=127.0.0.1',
];

/** Asynchronous: the page's server (and the servers it checks) may live in this very process. */
async function run(args: string[]): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'tlsa-chromium-'));
  try {
    const child = spawn(
      toolPath('chromium', 'chromium'),
      [...LOOPBACK_ONLY, `--user-data-dir=${profile}`, ...args],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    }).finally(() => clearTimeout(timer));
    if (code !== 0) throw new Error(`chromium exited ${code}: ${stderr}`);
    return stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

/** The document as chromium built it from `url`. */
export function dumpDom(url: string): Promise<string> {
  return run(['--dump-dom', url]);
}

/** A PNG of `url` at `width`×`height` written to `file`. */
export async function screenshot(
  url: string,
  file: string,
  width = 1400,
  height = 1000,
): Promise<void> {
  await run([`--screenshot=${file}`, `--window-size=${width},${height}`, '--hide-scrollbars', url]);
  if (!existsSync(file)) throw new Error(`chromium wrote no screenshot to ${file}`);
}
