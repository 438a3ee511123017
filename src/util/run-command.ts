import { execFile } from 'node:child_process';

/** Run a user's shell command (reload hooks); never throws, says why it failed. */
export function runCommand(
  command: string,
  timeoutMs: number,
  cwd: string,
): Promise<{ ok: true } | { ok: false; message: string }> {
  return new Promise((resolve) => {
    execFile('/bin/sh', ['-c', command], { timeout: timeoutMs, cwd }, (err, _stdout, stderr) => {
      if (!err) return resolve({ ok: true });
      const why = err.killed ? `timed out after ${timeoutMs / 1000} s` : `exited with ${err.code}`;
      const detail = String(stderr).trim().split('\n').slice(-3).join(' | ');
      resolve({ ok: false, message: `"${command}" ${why}${detail ? `: ${detail}` : ''}` });
    });
  });
}
