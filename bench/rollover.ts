// Rollover benchmark, in the loopback lab (the issues' targets):
//   "Measure, in the lab with TTL = 5 s, the wall time from the deploy hook to the reload of the
//    new chain against the lower bound 2×TTL + measured propagation; target within 5 % + one poll
//    interval. Daemon idle RSS ≤ 80 MB."
//   Issue 9: the daemon wakes when the next step is due; "in bench:rollover with the default
//    interval_s: hook → reload within 1 s of the lower bound".
//
// Lab (test/lab/*): Knot (example.test., DNSSEC-signed, tlsa's zonefile provider writes an
// $INCLUDEd fragment and runs `knotc zone-reload`), unbound (validating), pebble, certbot with the
// repo's hooks/certbot-deploy (through a wrapper that timestamps it), Postfix serving
// install.dir/mx/current/combined.pem, tlsa with TTL 5, staged install (reload = postfix reload),
// verify.propagation true, verify.probe true.
//
// Scenario, per run: wait until everything is settled, wait a stagger ((n − ½)/runs of the poll
// interval, so that the runs meet the poller at different phases), restart pebble (new root and
// intermediate, so nothing live matches the next chain), `certbot renew --force-renewal
// --no-reuse-key`: the hook publishes and stages; the chain is installed by the poller once its
// records are live. Two pollers, one after the other:
//   - daemon: a background `tlsa daemon` with the default daemon.interval_s (300 s): it wakes when
//             a step is due (the hook's state change, the records turning live);
//   - once:   `tlsa daemon --once` started every 1 s (start to start) by this script.
// Timestamps (ms, this machine's clock):
//   t_hook        the wrapper around hooks/certbot-deploy starts (date +%s%N);
//   t_published   the new records are in the zone fragment (polled every 100 ms);
//   t_propagated  Knot serves all the new records (kdig polled every 100 ms);
//   t_installed   the `current` symlink points at the new chain (the symlink's own mtime);
//   t_reload      Postfix's master writes "reload -- version" to its maillog (inotify on the file:
//                 the line's own time stamp has whole seconds only);
//   t_served      a STARTTLS handshake first gets the new leaf (polled every 50 ms after install).
// measured = t_reload − t_hook; lower bound = 2×TTL + (t_propagated − t_hook);
// target: daemon: measured ≤ lower bound + 1 s; once: measured ≤ 1.05 × lower bound + 1 s (its
// poll interval).
//
// Idle RSS: `tlsa daemon` on a copy of config.example.yaml (paths made absolute into a temp dir,
// verify.resolver pointed at the lab's unbound so nothing leaves loopback; `tlsa publish` first,
// so the daemon has nothing to do), VmRSS and VmHWM from /proc/PID/status 10 s after its first
// step; measured between the two pollers' runs. Also the lab daemon's RSS after its rollovers.
//
// Needs root (Postfix master) and the Debian packages knot knot-dnsutils unbound pebble certbot
// postfix openssl util-linux. Every server listens on 127.0.0.1 and is stopped by its pid.
// Then the built-in ACME case (bench/rollover-acme.ts): the service moved to `acme:`, each run
// `tlsa renew --force` with the next key's 3 1 1 live after a pebble restart; measured from the
// issuance to Postfix's reload (target under 1 s), beside the certbot staged case above.
//
// Run: npx tsc -p . && node dist/bench/rollover.js
//   BENCH_ROLLOVER_RUNS=N (default 3) runs per case; BENCH_ROLLOVER_MODES=daemon,once,acme
//   (default all three); BENCH_ROLLOVER_NO_WRITE=1 prints without writing
//   bench/results-rollover.md.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  existsSync,
  lstatSync,
  openSync,
  readFileSync,
  readSync,
  readlinkSync,
  statSync,
  watch,
  writeFileSync,
  type FSWatcher,
} from 'node:fs';
import { availableParallelism, release as osRelease } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertbotRun } from '../test/lab/certbot.js';
import { chainRecords, pemCerts } from '../test/lab/certs.js';
import { makeTempDir, shellQuote, sleep, toolPath } from '../test/lab/lab.js';
import {
  MAIL_HOST as HOST,
  mailLabTools,
  startMailLab,
  type MailLab,
} from '../test/lab/mail-lab.js';
import { type OwnedRecordJson, rdataOfOwned, readOwnedRecords } from '../test/lab/owned-records.js';
import type { Run } from '../test/lab/run.js';
import { servedLeaf } from '../test/lab/starttls.js';
import { ACME_TARGET_MS, type AcmeRunResult, acmeRollover, moveToAcme } from './rollover-acme.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.cjs');
const TTL = 5;
/** config.example.yaml's and the schema's default: the config leaves daemon: out. */
const DAEMON_INTERVAL_S = 300;
/** The daemon has no poll phase to sample any more; the hook's start is still spread over this
 *  window so that runs meet it doing different things. */
const DAEMON_STAGGER_MS = 5000;
/** Issue 9's target for the daemon: hook → reload within this much of the lower bound. */
const DAEMON_TARGET_SLACK_MS = 1000;
const ONCE_INTERVAL_MS = 1000;
const WATCH_MS = 100;
const RSS_IDLE_MS = 10_000;
const RSS_TARGET_MB = 80;

type Mode = 'daemon' | 'once';

// ---------------------------------------------------------------------------------------------
// Small helpers

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const secs = (ms: number): string => (ms / 1000).toFixed(2);
const loadavg = (): string =>
  readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const log = (s: string): void => {
  process.stderr.write(`[rollover ${new Date().toISOString().slice(11, 23)}] ${s}\n`);
};

/** VmRSS and VmHWM of a process, in MB (1 MB = 1024 kB as /proc reports kB). */
function memOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${k}`);
    return Number(m[1]) / 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
/** A maillog line's time stamp ("Nov 24 10:55:28 host …", local time; Postfix 3.7 writes whole
 *  seconds, a fraction is read if present), ms since the epoch. */
function maillogTime(line: string): number | undefined {
  const m = /^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? /.exec(line);
  if (!m) return undefined;
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return undefined;
  const now = new Date();
  const ms = m[6] ? Number(`0.${m[6]}`) * 1000 : 0;
  let t =
    new Date(
      now.getFullYear(),
      month,
      Number(m[2]),
      Number(m[3]),
      Number(m[4]),
      Number(m[5]),
    ).getTime() + ms;
  if (t - now.getTime() > 180 * 86_400_000)
    t =
      new Date(
        now.getFullYear() - 1,
        month,
        Number(m[2]),
        Number(m[3]),
        Number(m[4]),
        Number(m[5]),
      ).getTime() + ms;
  return t;
}

// ---------------------------------------------------------------------------------------------
// The lab

interface Lab extends MailLab {
  /** What certbot runs: hooks/certbot-deploy behind a wrapper that times it into hookTimes. */
  hookWrapper: string;
  hookTimes: string;
}

async function startLab(): Promise<Lab> {
  const lab = await startMailLab({
    name: 'bench-rollover',
    finger: false,
    fragment: () => '; TLSA records: tlsa writes the lines marked tlsa:managed\n',
  });
  const hookWrapper = join(lab.dir, 'certbot-deploy-timed');
  const hookTimes = join(lab.dir, 'hook-times.log');
  // certbot runs this instead of hooks/certbot-deploy: start and end (ns since the epoch) and the
  // exit code of the real hook, one line per run.
  writeFileSync(
    hookWrapper,
    [
      '#!/bin/sh',
      't0=$(date +%s%N)',
      `${shellQuote(lab.hook)} "$@"`,
      'rc=$?',
      `echo "$t0 $(date +%s%N) $rc" >> ${shellQuote(hookTimes)}`,
      'exit $rc',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  lab.writeConfig({
    ttl: TTL,
    // pebble's intermediates are in no catalog: the 2 1 1 records are the served and staged
    // chains' issuers.
    service: lab.stagedService(),
  });
  log(
    `lab up: Knot :${lab.auth.port}, unbound :${lab.unbound.port}, pebble :${lab.pebble.port}, Postfix :${lab.port}; TLSA owner ${lab.owner}`,
  );
  return { ...lab, hookWrapper, hookTimes };
}

// ---------------------------------------------------------------------------------------------
// What is where

function readState(lab: Lab): OwnedRecordJson[] {
  return readOwnedRecords(lab.stateDir);
}

function managedInFragment(lab: Lab): string[] {
  return lab.managedInFragment();
}

async function knotRdata(lab: Lab): Promise<string[]> {
  return (await lab.served()).rdata;
}

const livePem = (lab: Lab): string =>
  readFileSync(join(lab.certbot.liveDir('mx'), 'fullchain.pem'), 'utf8');
function installedLeafFp(lab: Lab): string | undefined {
  const f = join(lab.installDir, 'mx', 'current', 'fullchain.pem');
  return existsSync(f) ? pemCerts(readFileSync(f, 'utf8'))[0]?.fingerprint256 : undefined;
}

/** Nothing left to do: certbot's chain installed; exactly its records in the fragment, the state
 *  (all published) and on Knot. */
async function settled(lab: Lab): Promise<boolean> {
  const live = chainRecords(livePem(lab));
  if (installedLeafFp(lab) !== live.leaf.fingerprint256) return false;
  const want = JSON.stringify([live.ee, live.ta].sort());
  const st = readState(lab);
  if (
    JSON.stringify(st.map(rdataOfOwned).sort()) !== want ||
    !st.every((r) => r.status === 'published')
  )
    return false;
  if (JSON.stringify(managedInFragment(lab)) !== want) return false;
  return JSON.stringify(await knotRdata(lab).catch(() => [])) === want;
}

async function waitSettled(lab: Lab, driver: Driver, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await settled(lab))) {
    if (Date.now() > deadline) {
      throw new Error(
        `not settled after ${timeoutMs / 1000} s\n--- state ---\n${JSON.stringify(readState(lab), null, 1)}\n--- fragment ---\n${readFileSync(lab.fragmentPath, 'utf8')}\n--- ${driver.mode} (tail) ---\n${driver.tail()}`,
      );
    }
    driver.check();
    await sleep(250);
  }
}

// ---------------------------------------------------------------------------------------------
// The watcher: zone fragment, Knot, the `current` symlink and Postfix's maillog, every 100 ms

interface Seen {
  first: number;
  last: number;
}

class Watcher {
  readonly inFile = new Map<string, Seen>();
  readonly onKnot = new Map<string, Seen>();
  readonly reloads: { seenAt: number; logAt: number | undefined; line: string }[] = [];
  ticks = 0;
  slowTicks = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private maillogOffset = 0;
  private partial = '';

  private fsWatcher: FSWatcher | undefined;

  constructor(private readonly lab: Lab) {
    try {
      this.maillogOffset = statSync(lab.postfix.maillogPath).size;
    } catch {
      /* not yet */
    }
  }

  private static mark(m: Map<string, Seen>, keys: string[], now: number): void {
    for (const k of keys) {
      const s = m.get(k);
      if (s) s.last = now;
      else m.set(k, { first: now, last: now });
    }
  }

  private readMaillog(now: number): void {
    let fd: number;
    try {
      fd = openSync(this.lab.postfix.maillogPath, 'r');
    } catch {
      return;
    }
    try {
      const size = statSync(this.lab.postfix.maillogPath).size;
      if (size <= this.maillogOffset) return;
      const buf = Buffer.alloc(size - this.maillogOffset);
      const n = readSync(fd, buf, 0, buf.length, this.maillogOffset);
      this.maillogOffset += n;
      const text = this.partial + buf.subarray(0, n).toString('utf8');
      const lines = text.split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (/postfix\/master\[\d+\]: reload -- /.test(line))
          this.reloads.push({ seenAt: now, logAt: maillogTime(line), line });
      }
    } finally {
      closeSync(fd);
    }
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    try {
      Watcher.mark(this.inFile, managedInFragment(this.lab), now);
    } catch {
      /* mid-write: next tick */
    }
    try {
      Watcher.mark(this.onKnot, await knotRdata(this.lab), now);
    } catch {
      /* during a reload: next tick */
    }
    this.readMaillog(now);
    this.ticks++;
    if (Date.now() - now > 2 * WATCH_MS) this.slowTicks++;
  }

  start(): void {
    this.running = true;
    // The maillog's time stamps have whole seconds only: inotify tells when a line is written.
    try {
      this.fsWatcher = watch(this.lab.postfix.maillogPath, () => this.readMaillog(Date.now()));
    } catch {
      /* the 100 ms tick reads it too */
    }
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        await this.tick();
        await sleep(Math.max(0, WATCH_MS - (Date.now() - t)));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.fsWatcher?.close();
    await this.loop;
  }
}

// ---------------------------------------------------------------------------------------------
// Pollers: a background `tlsa daemon`, or `tlsa daemon --once` every second

interface Driver {
  readonly mode: Mode;
  /** Nominal poll interval, ms. */
  readonly intervalMs: number;
  /** The hook's start is spread over this window (see rollover()). */
  readonly staggerMs: number;
  /** The target for a run with this lower bound, ms. */
  target(lowerBoundMs: number): number;
  start(): void;
  stop(): Promise<void>;
  /** Throws when the poller died. */
  check(): void;
  tail(): string;
  /** Start-to-start times of its engine runs since `since` (ms), for the measured period. */
  periods(since: number): number[];
}

class DaemonDriver implements Driver {
  readonly mode = 'daemon' as const;
  readonly intervalMs = DAEMON_INTERVAL_S * 1000;
  readonly staggerMs = DAEMON_STAGGER_MS;
  target(lowerBoundMs: number): number {
    return lowerBoundMs + DAEMON_TARGET_SLACK_MS;
  }
  readonly lines: { at: number; line: string }[] = [];
  child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(private readonly lab: Lab) {}

  start(): void {
    const child = spawn(process.execPath, [CLI, '--config', this.lab.cfgPath, 'daemon'], {
      env: { ...process.env, TLSA_DEBUG: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    let partial = '';
    const onData = (d: string): void => {
      const at = Date.now();
      const parts = (partial + d).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) this.lines.push({ at, line });
    };
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.stderr!.setEncoding('utf8').on('data', onData);
    this.exited = new Promise((r) => child.on('exit', () => r()));
    log(`tlsa daemon started (pid ${child.pid}, interval_s ${DAEMON_INTERVAL_S})`);
  }

  check(): void {
    if (this.child && this.child.exitCode !== null)
      throw new Error(`tlsa daemon exited ${this.child.exitCode}\n${this.tail()}`);
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const done = await Promise.race([
      this.exited!.then(() => true),
      sleep(15_000).then(() => false),
    ]);
    if (!done) {
      c.kill('SIGKILL');
      await this.exited;
    }
  }

  tail(): string {
    return this.lines
      .slice(-15)
      .map((l) => `${new Date(l.at).toISOString()} ${l.line}`)
      .join('\n');
  }

  periods(since: number): number[] {
    // Each step ends with "next run in …" (not "the state changed: next run in …", printed while asleep).
    const ends = this.lines
      .filter((l) => l.at >= since && /tlsa: next run in/.test(l.line))
      .map((l) => l.at);
    return ends.slice(1).map((t, i) => t - ends[i]!);
  }
}

class OnceDriver implements Driver {
  readonly mode = 'once' as const;
  readonly intervalMs = ONCE_INTERVAL_MS;
  readonly staggerMs = ONCE_INTERVAL_MS;
  target(lowerBoundMs: number): number {
    return 1.05 * lowerBoundMs + this.intervalMs;
  }
  readonly runs: Run[] = [];
  private running = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly lab: Lab) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const t = Date.now();
        this.runs.push(await this.lab.tlsa(['daemon', '--once'], { timeoutMs: 90_000 }));
        if (this.running) await sleep(Math.max(0, this.intervalMs - (Date.now() - t)));
      }
    })();
    log(`tlsa daemon --once loop started (every ${ONCE_INTERVAL_MS} ms, start to start)`);
  }

  check(): void {
    /* a failing --once run is shown in tail(); the loop goes on */
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  tail(): string {
    return this.runs
      .slice(-3)
      .map(
        (r) =>
          `${new Date(r.start).toISOString()} exit ${r.code} in ${r.end - r.start} ms\n${r.stderr.trim()}`,
      )
      .join('\n');
  }

  periods(since: number): number[] {
    const starts = this.runs.filter((r) => r.start >= since).map((r) => r.start);
    return starts.slice(1).map((t, i) => t - starts[i]!);
  }

  durations(since: number): number[] {
    return this.runs.filter((r) => r.start >= since).map((r) => r.end - r.start);
  }
}

// ---------------------------------------------------------------------------------------------
// One rollover

interface RunResult {
  mode: Mode;
  n: number;
  intervalMs: number;
  targetMs: number;
  /** Delay between "settled" and the pebble restart, ms. */
  stagger: number;
  hookMs: number;
  stagedByHook: boolean;
  /** All relative to t_hook, ms. */
  published: number;
  statePublished: number;
  /** tlsa's seenAt: every authoritative server served the records (the 2×TTL count starts here). */
  stateSeen: number;
  propagated: number;
  installed: number;
  reload: number;
  served: number;
  lowerBound: number;
  measured: number;
}

function hookTimeLines(lab: Lab): { start: number; end: number; code: number }[] {
  if (!existsSync(lab.hookTimes)) return [];
  return readFileSync(lab.hookTimes, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [t0, t1, rc] = l.split(' ');
      // nanoseconds since the epoch: keep milliseconds (Number cannot hold 19 digits exactly)
      return {
        start: Number(t0!.slice(0, -6)) + Number(t0!.slice(-6)) / 1e6,
        end: Number(t1!.slice(0, -6)) + Number(t1!.slice(-6)) / 1e6,
        code: Number(rc),
      };
    });
}

async function rollover(
  lab: Lab,
  watcher: Watcher,
  driver: Driver,
  n: number,
  runs: number,
): Promise<RunResult> {
  await waitSettled(lab, driver);
  // "Settled" is seen right after a poll, and pebble's restart plus certbot take about the same
  // time every run, so without this the hook would meet the poller at the same phase each time
  // (with 2×TTL = 2 × interval_s, just before its tick: the best case). Stagger the start over
  // the poll interval so the runs sample its phases evenly.
  const stagger = Math.round(((n - 0.5) / runs) * driver.staggerMs);
  await sleep(stagger);
  const before = chainRecords(livePem(lab));
  const linkBefore = readlinkSync(join(lab.installDir, 'mx', 'current'));
  const reloadsBefore = watcher.reloads.length;
  await lab.pebble.restart(); // new root and intermediate: nothing live matches the next chain
  const account = await lab.certbot.resetAccount();
  const hooksBefore = hookTimeLines(lab).length;
  const cb: CertbotRun = await lab.certbot.renew({
    certName: 'mx',
    reuseKey: false,
    account,
    deployHook: lab.hookWrapper,
    env: { TLSA_CONFIG: lab.cfgPath },
  });
  if (cb.code !== 0) throw new Error(`certbot renew failed:\n${cb.output}`);
  const hookRun = cb.hooks.at(-1);
  const times = hookTimeLines(lab).slice(hooksBefore);
  if (times.length !== 1 || !hookRun)
    throw new Error(`expected one deploy hook run, got ${times.length}:\n${cb.output}`);
  const t = times[0]!;
  if (t.code !== 0) throw new Error(`the deploy hook exited ${t.code}:\n${cb.output}`);
  const tHook = t.start;
  const after = chainRecords(livePem(lab));
  if (after.ta === before.ta)
    throw new Error("pebble's intermediate did not change: the scenario needs a staged chain");
  if (after.ee === before.ee)
    throw new Error('certbot reused the key: the scenario needs a new key');
  const newFp = after.leaf.fingerprint256;
  const linkPath = join(lab.installDir, 'mx', 'current');
  // The hook stages (returns at once); it installs only when a live record already matches.
  const stagedByHook =
    installedLeafFp(lab) !== newFp || /staged/.test(`${hookRun.stdout}\n${hookRun.stderr}`);

  const deadline = Date.now() + 90_000;
  const until = async (
    what: string,
    cond: () => boolean | Promise<boolean>,
    stepMs = 20,
  ): Promise<void> => {
    while (!(await cond())) {
      if (Date.now() > deadline)
        throw new Error(
          `run ${driver.mode} #${n}: ${what} did not happen within 90 s\n--- ${driver.mode} (tail) ---\n${driver.tail()}\n--- state ---\n${JSON.stringify(readState(lab), null, 1)}`,
        );
      driver.check();
      await sleep(stepMs);
    }
  };
  await until('the install of the new chain', () => installedLeafFp(lab) === newFp);
  // The symlink's own mtime: when tlsa made it, just before the atomic rename.
  const tInstalled = lstatSync(linkPath).mtimeMs;
  if (readlinkSync(linkPath) === linkBefore) throw new Error('the current symlink did not change');
  let tServed = 0;
  await until(
    'a STARTTLS handshake presenting the new leaf',
    async () => {
      try {
        const c = await servedLeaf({ port: lab.port, servername: HOST });
        if (c.fingerprint256 === newFp) {
          tServed = Date.now();
          return true;
        }
      } catch {
        /* smtpd restarting: next try */
      }
      return false;
    },
    50,
  );
  // When the reload line was written (inotify on the maillog; its own time stamp has whole seconds).
  const reloadAfterInstall = (r: { seenAt: number }): boolean => r.seenAt >= tInstalled - 5;
  await until("Postfix's reload line in the maillog", () =>
    watcher.reloads.slice(reloadsBefore).some(reloadAfterInstall),
  );
  await until(
    'the watcher to have seen the new records on Knot',
    () => watcher.onKnot.has(after.ee) && watcher.onKnot.has(after.ta),
    50,
  );
  const reload = watcher.reloads.slice(reloadsBefore).find(reloadAfterInstall)!;
  const tReload = reload.seenAt;
  if (
    reload.logAt !== undefined &&
    (reload.logAt > tReload + 50 || tReload - reload.logAt > 1500)
  ) {
    throw new Error(
      `the maillog says ${new Date(reload.logAt).toISOString()} but the line was seen at ${new Date(tReload).toISOString()}: ${reload.line}`,
    );
  }
  const tPublished = Math.max(
    watcher.inFile.get(after.ee)?.first ?? NaN,
    watcher.inFile.get(after.ta)?.first ?? NaN,
  );
  const tPropagated = Math.max(
    watcher.onKnot.get(after.ee)!.first,
    watcher.onKnot.get(after.ta)!.first,
  );
  const stateEe = readState(lab).find((r) => rdataOfOwned(r) === after.ee);
  const tStatePublished = stateEe?.publishedAt ? Date.parse(stateEe.publishedAt) : NaN;
  const stateTa = readState(lab).find((r) => rdataOfOwned(r) === after.ta);
  const tStateSeen = Math.min(
    ...[stateEe?.seenAt, stateTa?.seenAt].map((x) => (x ? Date.parse(x) : NaN)),
  );

  const r: RunResult = {
    mode: driver.mode,
    n,
    intervalMs: driver.intervalMs,
    targetMs: NaN,
    stagger,
    hookMs: t.end - t.start,
    stagedByHook,
    published: tPublished - tHook,
    statePublished: tStatePublished - tHook,
    stateSeen: tStateSeen - tHook,
    propagated: tPropagated - tHook,
    installed: tInstalled - tHook,
    reload: tReload - tHook,
    served: tServed - tHook,
    lowerBound: 2 * TTL * 1000 + (tPropagated - tHook),
    measured: tReload - tHook,
  };
  r.targetMs = driver.target(r.lowerBound);
  if (driver instanceof DaemonDriver)
    for (const l of driver.lines.filter((x) => x.at >= tHook - 1000)) log(`  daemon: ${l.line}`);
  log(
    `run ${r.mode} #${n}: measured ${secs(r.measured)} s, lower bound ${secs(r.lowerBound)} s (propagation ${secs(r.propagated)} s), installed ${secs(r.installed)} s, served ${secs(r.served)} s; hook ${r.hookMs.toFixed(0)} ms${stagedByHook ? ', staged' : ', INSTALLED BY THE HOOK'}`,
  );
  return r;
}

// ---------------------------------------------------------------------------------------------
// Idle RSS of `tlsa daemon` on the example configuration

interface RssResult {
  rss: number;
  hwm: number;
  afterMs: number;
  note: string;
}

async function idleRss(resolverPort: number): Promise<RssResult> {
  const dir = makeTempDir('bench-rss');
  const src = readFileSync(join(ROOT, 'config.example.yaml'), 'utf8');
  const replace = (text: string, from: string, to: string): string => {
    const parts = text.split(from);
    if (parts.length !== 2)
      throw new Error(
        `config.example.yaml: expected "${from}" exactly once, found it ${parts.length - 1} times`,
      );
    return parts.join(to);
  };
  // The same configuration, with its relative paths made absolute (state and zone file in a temp
  // dir, never the repo) and the resolver on loopback (the lab's unbound: it refuses example.org).
  let cfg = src;
  cfg = replace(cfg, 'state_dir: .tlsa-state', `state_dir: ${JSON.stringify(join(dir, 'state'))}`);
  cfg = replace(
    cfg,
    '    path: example.zone',
    `    path: ${JSON.stringify(join(dir, 'example.zone'))}`,
  );
  cfg = replace(
    cfg,
    '      - lineage: docs/example/letsencrypt/live/mx.example.org\n',
    `      - lineage: ${JSON.stringify(join(ROOT, 'docs/example/letsencrypt/live/mx.example.org'))}\n`,
  );
  cfg = replace(
    cfg,
    '      - lineage: docs/example/letsencrypt/live/mx.example.org-rsa\n',
    `      - lineage: ${JSON.stringify(join(ROOT, 'docs/example/letsencrypt/live/mx.example.org-rsa'))}\n`,
  );
  cfg = replace(cfg, '  resolver: system', `  resolver: "127.0.0.1:${resolverPort}"`);
  const cfgPath = join(dir, 'config.yaml');
  writeFileSync(cfgPath, cfg);
  const pub = spawnSync(process.execPath, [CLI, '--config', cfgPath, 'publish'], {
    encoding: 'utf8',
  });
  if (pub.status !== 0)
    throw new Error(
      `tlsa publish on the example config: exit ${pub.status}\n${pub.stdout}${pub.stderr}`,
    );

  const child = spawn(process.execPath, [CLI, '--config', cfgPath, 'daemon'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  let out = '';
  let firstStepDone = 0;
  const onData = (d: string): void => {
    out += d;
    if (!firstStepDone && /next run in/.test(out)) firstStepDone = Date.now();
  };
  child.stdout.setEncoding('utf8').on('data', onData);
  child.stderr.setEncoding('utf8').on('data', onData);
  try {
    const deadline = Date.now() + 60_000;
    while (!firstStepDone) {
      if (child.exitCode !== null)
        throw new Error(`tlsa daemon (example config) exited ${child.exitCode}:\n${out}`);
      if (Date.now() > deadline)
        throw new Error(`tlsa daemon (example config): no "next run in" after 60 s:\n${out}`);
      await sleep(50);
    }
    await sleep(RSS_IDLE_MS);
    if (child.exitCode !== null)
      throw new Error(`tlsa daemon (example config) exited ${child.exitCode}:\n${out}`);
    const m = memOf(child.pid!);
    const published = /published (\d+)/.exec(out)?.[1];
    const note = published
      ? `its first step published ${published}: ${out.trim().split('\n').join(' | ')}`
      : 'its first step had nothing to publish';
    // The lab's resolver refuses example.org: the daemon keeps re-checking the records it cannot
    // see on the authoritative servers (from 2 s, backing off), so it is not entirely idle.
    const runs = (out.match(/tlsa: next run in/g) ?? []).length;
    const busy =
      runs > 1
        ? `; ${runs} runs by then, re-checking records the lab's resolver cannot confirm`
        : '';
    log(
      `idle RSS (example config, pid ${child.pid}): VmRSS ${m.rss.toFixed(1)} MB, VmHWM ${m.hwm.toFixed(1)} MB; daemon said: ${out.trim().split('\n').join(' | ')}`,
    );
    return { ...m, afterMs: Date.now() - firstStepDone, note: note + busy };
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

// ---------------------------------------------------------------------------------------------

function pkgVersion(pkg: string): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : 'unknown';
}

function parseRuns(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 3;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`BENCH_ROLLOVER_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** The certbot pollers to run, and whether the built-in ACME case runs (after them). */
function parseModes(raw: string | undefined): { pollers: Mode[]; acme: boolean } {
  if (raw === undefined || raw === '') return { pollers: ['daemon', 'once'], acme: true };
  const modes = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const m of modes)
    if (m !== 'daemon' && m !== 'once' && m !== 'acme')
      throw new Error(
        `BENCH_ROLLOVER_MODES: unknown mode ${JSON.stringify(m)} (daemon, once, acme)`,
      );
  return { pollers: modes.filter((m): m is Mode => m !== 'acme'), acme: modes.includes('acme') };
}

const verdict = (ok: boolean): string => (ok ? '**met**' : '**not met**');

/** The built-in ACME case's tables: each run, then its median beside the certbot staged case's. */
function acmeSection(acmeResults: AcmeRunResult[], certbot: RunResult[]): string[] {
  const rows = acmeResults.map(
    (r) =>
      `| ${r.n} | ${secs(r.renewMs)} | ${secs(r.orderMs)} | ${r.nextKey ? 'next (live)' : 'fresh: staged'} | ${secs(r.next)} | ${secs(r.installed)} | **${secs(r.reload)}** | ${secs(r.served)} | < ${secs(ACME_TARGET_MS)} | ${verdict(r.reload < ACME_TARGET_MS)} |`,
  );
  const m = median(acmeResults.map((r) => r.reload));
  const compare = (['daemon', 'once'] as const).flatMap((mode) => {
    const rs = certbot.filter((r) => r.mode === mode);
    if (!rs.length) return [];
    return [
      `| certbot, staged install, ${mode === 'daemon' ? 'background `tlsa daemon`' : '`daemon --once` every 1 s'} | ${rs.length} | the deploy hook starts | **${secs(median(rs.map((r) => r.measured)))}** | 2×TTL + propagation: ${secs(median(rs.map((r) => r.lowerBound)))} (lower bound) | |`,
    ];
  });
  return [
    `## Built-in ACME`,
    ``,
    `The same lab, the service moved from certbot to \`acme:\` as docs/acme.md says (the ACME lineage in certbot's place, the same installed copy), key type ecdsa-p256. Each run waits (\`tlsa daemon --once\` every second) until the chain is installed and every record is live, the next key's \`3 1 1\` included, restarts pebble (new intermediate: only that \`3 1 1\` matches the new chain) and runs \`tlsa renew --force\`, which orders with the next key and installs in its own engine run. Seconds after t_issued (the lineage's symlink switched to the CA's new chain, the counterpart of certbot's t_hook), except renew (the whole process) and order (renew's start → t_issued): next = the new next key's \`3 1 1\` in the zone fragment (written after the install: a chain whose record is live is served before the run's DNS writes); installed = the \`current\` symlink switched; **reload** = Postfix's "reload" line in the maillog; served = first STARTTLS handshake with the new leaf. Target: reload under ${secs(ACME_TARGET_MS)} s after the issuance.`,
    ``,
    `| run | renew | order | key | next | installed | **reload** | served | target | result |`,
    `|---:|---:|---:|---|---:|---:|---:|---:|---:|---|`,
    ...rows,
    ``,
    `| case | runs | from | to Postfix's reload (median, s) | wait it replaces | result |`,
    `|---|---:|---|---:|---|---|`,
    ...compare,
    `| built-in ACME, the next key's \`3 1 1\` live | ${acmeResults.length} | the issuance | **${secs(m)}** | none (target < ${secs(ACME_TARGET_MS)}) | ${verdict(m < ACME_TARGET_MS)} (${acmeResults.filter((r) => r.reload < ACME_TARGET_MS).length}/${acmeResults.length} runs) |`,
    ``,
  ];
}

interface PhaseInfo {
  mode: Mode;
  periods: number[];
  onceDurations: number[];
  labDaemonMem?: { rss: number; hwm: number; pid: number };
}

async function main(): Promise<void> {
  const runs = parseRuns(process.env.BENCH_ROLLOVER_RUNS);
  const { pollers: modes, acme } = parseModes(process.env.BENCH_ROLLOVER_MODES);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npx tsc -p .\` first`);
  if (process.getuid?.() !== 0) throw new Error("the lab's Postfix master must run as root");
  for (const [bin, pkg] of mailLabTools()) toolPath(bin, pkg);
  const started = new Date();
  const loadBefore = loadavg();

  const results: RunResult[] = [];
  const acmeResults: AcmeRunResult[] = [];
  const phases: PhaseInfo[] = [];
  let rss: RssResult | undefined;
  let watcher: Watcher | undefined;
  let driver: Driver | undefined;
  let lab: Lab | undefined;
  const onSignal = (): void => {
    // the lab's exit hooks SIGKILL its servers; the daemon is ours
    if (driver instanceof DaemonDriver) driver.child?.kill('SIGKILL');
  };
  process.once('exit', onSignal);
  // Interrupted: kill our daemon; exiting runs the lab's exit hook, which SIGKILLs its servers.
  const onInterrupt = (): void => {
    onSignal();
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  try {
    lab = await startLab();
    watcher = new Watcher(lab);
    watcher.start();

    // First issuance: the hook publishes and bootstraps the install (Postfix starts serving it).
    const first = await lab.certbot.certonly({
      certName: 'mx',
      domains: [HOST],
      keyType: 'ecdsa',
      deployHook: lab.hookWrapper,
      env: { TLSA_CONFIG: lab.cfgPath },
    });
    if (first.code !== 0 || hookTimeLines(lab).at(-1)?.code !== 0)
      throw new Error(`first issuance failed:\n${first.output}`);
    if (installedLeafFp(lab) !== chainRecords(livePem(lab)).leaf.fingerprint256)
      throw new Error(`the first issuance was not installed:\n${first.output}`);
    log('first issuance installed');

    for (const [i, mode] of modes.entries()) {
      driver = mode === 'daemon' ? new DaemonDriver(lab) : new OnceDriver(lab);
      const since = Date.now();
      driver.start();
      for (let n = 1; n <= runs; n++) results.push(await rollover(lab, watcher, driver, n, runs));
      await waitSettled(lab, driver);
      const info: PhaseInfo = {
        mode,
        periods: driver.periods(since),
        onceDurations: driver instanceof OnceDriver ? driver.durations(since) : [],
      };
      if (driver instanceof DaemonDriver && driver.child?.pid)
        info.labDaemonMem = { ...memOf(driver.child.pid), pid: driver.child.pid };
      phases.push(info);
      await driver.stop();
      driver = undefined;
      // Idle RSS between the runs (the lab is idle now), or at the end with a single mode.
      if (!rss && (i < modes.length - 1 || modes.length === 1))
        rss = await idleRss(lab.unbound.port);
    }
    if (acme) {
      await moveToAcme(lab, TTL, log);
      for (let n = 1; n <= runs; n++) acmeResults.push(await acmeRollover(lab, watcher, n, log));
    }
    if (!rss) rss = await idleRss(lab.unbound.port);
  } finally {
    await driver?.stop().catch(() => undefined);
    await watcher?.stop().catch(() => undefined);
    await lab?.close().catch(() => undefined);
    process.removeListener('exit', onSignal);
    process.removeListener('SIGINT', onInterrupt);
    process.removeListener('SIGTERM', onInterrupt);
  }
  if (!rss) throw new Error('no RSS measured');

  // ---- report
  const cpu =
    /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  const target = (r: RunResult): number => r.targetMs;
  const runRows = results.map((r) => {
    const over = r.measured - r.lowerBound;
    return `| ${r.mode} | ${r.n} | ${secs(r.stagger)} | ${secs(r.published)} | ${secs(r.statePublished)} | ${secs(r.propagated)} | ${secs(r.stateSeen)} | ${secs(r.installed)} | **${secs(r.measured)}** | ${secs(r.served)} | ${secs(r.lowerBound)} | ${over >= 0 ? '+' : ''}${secs(over)} | ${over >= 0 ? '+' : ''}${((100 * over) / r.lowerBound).toFixed(1)} % | ${secs(target(r))} | ${verdict(r.measured <= target(r))} |`;
  });
  const summaryRows = modes.map((mode) => {
    const rs = results.filter((r) => r.mode === mode);
    const ph = phases.find((p) => p.mode === mode);
    const m = median(rs.map((r) => r.measured));
    const lb = median(rs.map((r) => r.lowerBound));
    const prop = median(rs.map((r) => r.propagated));
    const over = m - lb;
    const interval = rs[0]?.intervalMs ?? NaN;
    const tgt = mode === 'daemon' ? lb + DAEMON_TARGET_SLACK_MS : 1.05 * lb + interval;
    const period = ph?.periods.length ? `${secs(median(ph.periods))} s` : 'n/a';
    const what =
      mode === 'daemon'
        ? `background \`tlsa daemon\`, default interval_s (${DAEMON_INTERVAL_S}), wakes when a step is due`
        : `\`tlsa daemon --once\` every ${ONCE_INTERVAL_MS / 1000} s (median run ${ph ? secs(median(ph.onceDurations)) : '?'} s)`;
    return `| ${what} | ${secs(interval)} s / ${period} | ${rs.length} | ${secs(prop)} | ${secs(lb)} | **${secs(m)}** | ${over >= 0 ? '+' : ''}${secs(over)} s (${over >= 0 ? '+' : ''}${((100 * over) / lb).toFixed(1)} %) | ≤ ${secs(tgt)} s | ${verdict(m <= tgt)} (${rs.filter((r) => r.measured <= target(r)).length}/${rs.length} runs) |`;
  });
  const labMem = phases.find((p) => p.labDaemonMem)?.labDaemonMem;
  const md = [
    `## Rollover`,
    ``,
    `\`node dist/bench/rollover.js\` (bench/rollover.ts): the loopback lab (Knot with a signed zone and the zonefile provider, validating unbound, pebble, certbot with hooks/certbot-deploy, Postfix on tlsa's staged install), TTL ${TTL} s, verify.propagation and verify.probe on. Each run restarts pebble (new intermediate) and runs \`certbot renew --force-renewal --no-reuse-key\`: the hook stages the chain; the poller installs it once its records are live.`,
    ``,
    `| machine | |`,
    `|---|---|`,
    `| date | ${started.toISOString()} |`,
    `| nproc | ${availableParallelism()} |`,
    `| CPU | ${cpu} |`,
    `| kernel | ${osRelease()} |`,
    `| node | ${process.version} |`,
    `| knot / unbound / pebble / certbot / postfix | ${['knot', 'unbound', 'pebble', 'certbot', 'postfix'].map(pkgVersion).join(' / ')} |`,
    `| load average before / after | ${loadBefore} / ${loadavg()} |`,
    `| watcher | ${watcher?.ticks ?? 0} ticks of ${WATCH_MS} ms (kdig on Knot, zone fragment, maillog), ${watcher?.slowTicks ?? 0} over ${2 * WATCH_MS} ms |`,
    ``,
    `Seconds after t_hook (certbot starts the deploy hook), except stagger: the wait between "settled" (seen right after a poll) and the pebble restart, spread over the poll interval (--once) or ${DAEMON_STAGGER_MS / 1000} s (daemon) so that the hook meets the poller at different phases. file = the new records in the zone fragment; state = tlsa's publishedAt; Knot = Knot serves them (measured propagation); seen = tlsa's seenAt, when it saw every authoritative server serve them (it counts 2×TTL from here); installed = the \`current\` symlink switched; **reload** = Postfix's master writes its "reload" line to the maillog (inotify; measured); served = first STARTTLS handshake with the new leaf. Lower bound = 2×TTL + measured propagation; target: daemon (default interval_s ${DAEMON_INTERVAL_S}, wakes when a step is due) ≤ lower bound + ${DAEMON_TARGET_SLACK_MS / 1000} s; --once poller ≤ 1.05 × lower bound + its poll interval.`,
    ``,
    `| poller | run | stagger | file | state | Knot | seen | installed | **reload** | served | lower bound | overshoot | overshoot % | target | result |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|`,
    ...runRows,
    ``,
    `| poller | poll interval (nominal / median gap between runs) | runs | propagation (median) | lower bound (median) | measured (median) | overshoot (of the medians) | target | result |`,
    `|---|---|---:|---:|---:|---:|---:|---:|---|`,
    ...summaryRows,
    ``,
    `| daemon memory | VmRSS | VmHWM | target | result |`,
    `|---|---:|---:|---|---|`,
    `| \`tlsa daemon\` on config.example.yaml, idle ${secs(rss.afterMs)} s after its first step (${rss.note}) | ${rss.rss.toFixed(1)} MB | ${rss.hwm.toFixed(1)} MB | VmRSS ≤ ${RSS_TARGET_MB} MB | ${verdict(rss.rss <= RSS_TARGET_MB)} |`,
    ...(labMem
      ? [
          `| the lab's \`tlsa daemon\` after its ${results.filter((r) => r.mode === 'daemon').length} rollovers (reference, not idle) | ${labMem.rss.toFixed(1)} MB | ${labMem.hwm.toFixed(1)} MB | | |`,
        ]
      : []),
    ``,
    ...(acme ? acmeSection(acmeResults, results) : []),
  ].join('\n');

  process.stdout.write(`${md}\n`);
  if (process.env.BENCH_ROLLOVER_NO_WRITE !== '1') {
    writeFileSync(
      join(ROOT, 'bench', 'results-rollover.md'),
      `# tlsa benchmark: rollover\n\n${md}`,
    );
  }
}

try {
  await main();
} catch (e) {
  process.stderr.write(`bench rollover: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
