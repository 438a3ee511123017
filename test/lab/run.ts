/**
 * Child processes that tests and benches wait for without blocking the event loop (pollers and
 * watchers keep running meanwhile): the output is captured, a timeout SIGKILLs the child.
 */
import { spawn } from 'node:child_process';

export interface Run {
  argv: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  pid: number;
  /** Start and end, ms since the epoch, and the difference. */
  start: number;
  end: number;
  ms: number;
}

export interface RunOptions {
  /** Added to process.env. */
  env?: Record<string, string>;
  /** SIGKILL after this long (default 90 s). */
  timeoutMs?: number;
  /** Called with the pid as soon as the child exists. */
  onSpawn?: (pid: number) => void;
}

export function runAsync(argv: string[], opts: RunOptions = {}): Promise<Run> {
  const start = Date.now();
  return new Promise((resolveRun) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const end = Date.now();
      resolveRun({
        argv,
        code,
        signal,
        stdout,
        stderr,
        pid: child.pid ?? -1,
        start,
        end,
        ms: end - start,
      });
    });
  });
}

/** A run for a failure message: the command, how it ended, its output. */
export const showRun = (r: Run): string =>
  `$ ${r.argv.join(' ')}\nexit ${r.code ?? r.signal} after ${r.ms} ms\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
