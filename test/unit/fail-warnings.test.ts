/** src/cli/fail.ts: the warnings a command printed are kept only for its `--json` envelope.
 *  Without --json nothing reads them, and a daemon (20,000 warnings a run at 10,000 services
 *  with the example chains) kept every run's for as long as it ran. */
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.restoreAllMocks();
  vi.resetModules();
});

/** fail.ts afresh (its mode is per process), with what it writes captured. */
async function freshFail() {
  const written: string[] = [];
  const capture = (chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  const fail = await import('../../src/cli/fail.js');
  return { fail, written };
}

describe('warnings kept for the envelope', () => {
  it('with --json: the envelope carries the warnings printed since the last one', async () => {
    const { fail, written } = await freshFail();
    fail.jsonOutput('daemon', { lines: true });
    fail.warn(['first', 'second']);
    fail.addWarning('third');
    fail.printJson('daemon', 0, {} as never);
    fail.printJson('daemon', 0, {} as never);
    const envelopes = written.filter((w) => w.startsWith('{')).map((w) => JSON.parse(w));
    expect(envelopes.map((e) => e.warnings)).toEqual([['first', 'second', 'third'], []]);
  });

  it('without --json: printed, not kept (a later envelope does not carry them)', async () => {
    const { fail, written } = await freshFail();
    fail.warn(['printed only']);
    fail.addWarning('not kept either');
    expect(written.some((w) => w.includes('tlsa: warning: printed only'))).toBe(true);
    fail.jsonOutput('daemon', { lines: true });
    fail.printJson('daemon', 0, {} as never);
    const envelope = JSON.parse(written.find((w) => w.startsWith('{'))!);
    expect(envelope.warnings).toEqual([]);
  });
});
