/** A lock file: one holder at a time, created exclusively (O_EXCL) and holding who took it.
 *  A lock whose holder died (same host, pid gone) is taken over. The engine's run lock and the
 *  zonefile provider's per-file lock are both this. */
import { closeSync, lstatSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { InputError, WaitError, errnoCode } from '../errors.js';

export interface LockInfo {
  pid: number;
  host: string;
  command: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) === 'EPERM';
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function readLock(file: string): LockInfo | undefined {
  // The lock is only ever a small regular file tlsa created; anything else (a FIFO would block
  // the read for ever, a directory or a link someone put there) is for the operator to remove.
  let st;
  try {
    st = lstatSync(file);
  } catch {
    return undefined;
  }
  if (!st.isFile())
    throw new InputError(
      'the lock file is not a regular file; tlsa never makes it so: remove it once no tlsa runs',
      file,
    );
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as LockInfo;
  } catch {
    return undefined;
  }
}

export interface LockOptions {
  command: string;
  /** How long to wait for another run, in seconds. */
  waitSeconds: number;
  onWait?: (holder: LockInfo | undefined, waitedMs: number) => void;
}

/** Create `file` exclusively (O_EXCL), waiting up to `waitSeconds` for a live holder. */
export async function acquireLockFile(file: string, opts: LockOptions): Promise<() => void> {
  const start = Date.now();
  let lastReport = 0;
  for (;;) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      const info: LockInfo = {
        pid: process.pid,
        host: hostname(),
        command: opts.command,
        since: new Date().toISOString(),
      };
      try {
        writeSync(fd, JSON.stringify(info));
      } catch (e) {
        closeSync(fd);
        rmSync(file, { force: true });
        throw e;
      }
      closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.removeListener('exit', release);
        let current: LockInfo | undefined;
        try {
          current = readLock(file);
        } catch {
          return; // replaced by something that is not ours: leave it to the operator
        }
        if (current?.pid === process.pid) rmSync(file, { force: true });
      };
      process.on('exit', release);
      return release;
    } catch (e) {
      const code = errnoCode(e);
      if (code !== 'EEXIST')
        throw new InputError(
          `cannot create the lock file: ${code} (is its directory writable?)`,
          file,
        );
    }
    const holder = readLock(file);
    if (holder && holder.host === hostname() && !alive(holder.pid)) {
      rmSync(file, { force: true });
      continue;
    }
    // An unreadable lock is one whose writer died between creating and filling it (or a full
    // disk); it is taken over once it is clearly not being written any more.
    if (!holder && ageMs(file) > 10_000) {
      rmSync(file, { force: true });
      continue;
    }
    const waited = Date.now() - start;
    if (waited >= opts.waitSeconds * 1000) {
      const who = holder
        ? `pid ${holder.pid} on ${holder.host} (${holder.command}, since ${holder.since})`
        : 'another run';
      throw new WaitError(
        `${file} is locked by ${who}; waited ${Math.round(waited / 1000)} s. Re-run when it finishes, or raise --lock-wait`,
      );
    }
    if (opts.onWait && waited - lastReport >= 5000) {
      lastReport = waited;
      opts.onWait(holder, waited);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
