/** Steps the e2e tests share: the hook run of a certbot run, `check --json`, driving the daemon. */
import { expect } from 'vitest';
import type { CertbotRun, HookRun } from '../lab/certbot.js';
import { sleep } from '../lab/lab.js';
import type { MailLab } from '../lab/mail-lab.js';
import { showRun, type Run } from '../lab/run.js';

/** The single deploy-hook run of a certbot run (fails the test when there is not exactly one). */
export function theHook(r: CertbotRun): HookRun {
  expect(r.hooks.length, `deploy hook runs in certbot's log:\n${r.output}`).toBe(1);
  return r.hooks[0]!;
}

/** A run's stdout as JSON (`tlsa check --json`); a run that printed none fails with its output. */
export async function checkJson<T>(run: Promise<Run>): Promise<{ run: Run; json: T }> {
  const r = await run;
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`check did not print JSON:\n${showRun(r)}`);
  }
  return { run: r, json };
}

/** `tlsa daemon --once` about once a second until `done()`; after `timeoutMs` it fails with the
 *  last run, `status` and the zone fragment. Resolves with the last run. */
export async function driveUntil(
  lab: MailLab,
  label: string,
  done: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<Run> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await lab.tlsa(['daemon', '--once']);
    if (await done()) return r;
    if (Date.now() > deadline)
      throw new Error(
        `${label}: not done after ${timeoutMs} ms\n${showRun(r)}\n--- status ---\n${showRun(await lab.tlsa(['status']))}\n--- fragment ---\n${lab.fragment()}`,
      );
    await sleep(1000);
  }
}
