/**
 * The loopback lab: common helpers for tests that start real servers (Knot, unbound, ...).
 *
 * Every server runs in the foreground as a direct child of the test process, so its pid is
 * known; it gets its own temp dir (config, pid file, log) and is stopped by that pid, never by
 * name. `stopAll()` belongs in `afterAll`; as a safety net, children are also SIGKILLed when
 * the test process exits, and (where util-linux `setpriv` exists) they get a parent-death
 * signal so that even a SIGKILLed test worker leaves no server behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describe } from 'vitest';

// ---------------------------------------------------------------------------------------------
// Tools

const EXTRA_BIN_DIRS = [
  '/usr/sbin',
  '/usr/bin',
  '/sbin',
  '/bin',
  '/usr/local/sbin',
  '/usr/local/bin',
];

/** Absolute path of an executable found on PATH or in the usual sbin/bin dirs, or undefined. */
export function findTool(binary: string): string | undefined {
  if (binary.includes('/')) return isExecutable(binary) ? binary : undefined;
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_BIN_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Like findTool, but throws (naming the Debian package) when the binary is missing. */
export function toolPath(binary: string, debianPackage: string): string {
  const p = findTool(binary);
  if (!p)
    throw new Error(
      `lab: "${binary}" not found; install the Debian package "${debianPackage}" (apt-get install ${debianPackage})`,
    );
  return p;
}

/** The lab is mandatory (CI): a missing tool is an error, not a skip. */
export function labRequired(): boolean {
  return process.env.TLSA_LAB === 'require';
}

/**
 * True when `binary` exists. When it is missing: throws an Error naming the Debian package if
 * `TLSA_LAB=require`, otherwise returns false (the caller skips, see `labDescribe`).
 */
export function requireTool(binary: string, debianPackage: string): boolean {
  if (findTool(binary)) return true;
  const msg = `lab: "${binary}" not found; install the Debian package "${debianPackage}" (apt-get install ${debianPackage})`;
  if (labRequired()) throw new Error(`${msg}. TLSA_LAB=require is set, so this is an error.`);
  return false;
}

/** A [binary, Debian package] pair. */
export type ToolRequirement = readonly [binary: string, debianPackage: string];

/**
 * Check several tools; returns the missing ones' packages (empty when all present). Throws under
 * TLSA_LAB=require; otherwise prints a visible notice for every missing package.
 */
export function missingTools(tools: readonly ToolRequirement[], what = 'lab tests'): string[] {
  const missing = tools.filter(([bin]) => !findTool(bin));
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  if (packages.length === 0) return [];
  const bins = missing.map(([bin]) => bin).join(', ');
  const msg = `lab: ${what} need ${bins}; install the Debian package(s): apt-get install ${packages.join(' ')}`;
  if (labRequired()) throw new Error(`${msg} (TLSA_LAB=require is set, so this is an error)`);
  console.warn(`SKIPPED ${msg}`);
  return packages;
}

/**
 * `describe` that is skipped (with a console.warn naming the packages) when a tool is missing,
 * and fails when TLSA_LAB=require. One line in a test file:
 *   labDescribe('zonefile + knot', [['knotd', 'knot'], ['unbound', 'unbound']], () => { ... });
 */
export function labDescribe(name: string, tools: readonly ToolRequirement[], fn: () => void): void {
  const missing = missingTools(tools, `"${name}"`);
  describe.skipIf(missing.length > 0)(
    missing.length > 0 ? `${name} [skipped: install ${missing.join(' ')}]` : name,
    fn,
  );
}

// ---------------------------------------------------------------------------------------------
// Ports and directories

const handedOut = new Set<number>();

/** True when a TCP listener could bind host:port right now. */
export function tcpFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => res(true)));
  });
}

/** True when a UDP socket could bind host:port right now. */
export function udpFree(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    s.once('error', () => res(false));
    s.bind({ address: host, port, exclusive: true }, () => s.close(() => res(true)));
  });
}

/** A loopback port on which both TCP and UDP are free right now (127.0.0.1), and TCP on the
 *  `alsoTcpOn` addresses (for a server that listens on several loopback addresses). */
export async function freePort(host = '127.0.0.1', alsoTcpOn: string[] = []): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolvePort, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen({ host, port: 0, exclusive: true }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolvePort(p));
      });
    });
    if (!port || handedOut.has(port)) continue;
    if (!(await udpFree(host, port))) continue;
    if (!(await everyTcpFree(alsoTcpOn, port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('lab: no free loopback port found (TCP and UDP) after 50 attempts');
}

async function everyTcpFree(hosts: string[], port: number): Promise<boolean> {
  for (const h of hosts) if (!(await tcpFree(h, port))) return false;
  return true;
}

const tempDirs: string[] = [];

/** A fresh private dir under the OS temp dir; removed by stopAll() unless TLSA_LAB_KEEP=1. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `tlsa-lab-${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}-`));
  tempDirs.push(dir);
  return dir;
}

/** Single-quote a string for /bin/sh. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Daemons

export interface DaemonOptions {
  /** Short name, used for the log and pid file names and in messages. */
  name: string;
  /** Program and arguments; the program must stay in the foreground. */
  argv: string[];
  /** Working dir = the server's temp dir: the log `<name>.log` and pid file go here. */
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Where to write the pid; default `<cwd>/<name>.pid`. */
  pidFile?: string;
  /** Readiness probe, polled every 100 ms; a throw counts as "not ready". */
  ready: () => Promise<boolean>;
  /** Give up after this long (default 15 s). */
  timeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop (default 3 s). */
  killGraceMs?: number;
}

export interface Daemon {
  readonly name: string;
  readonly pid: number;
  readonly dir: string;
  readonly logPath: string;
  readonly pidFile: string;
  /** True once the process has exited. */
  readonly exited: boolean;
  /** The last `lines` lines of the captured stdout+stderr. */
  logTail(lines?: number): string;
  /** SIGTERM, SIGKILL after the grace period, then wait for exit. Idempotent. */
  stop(): Promise<void>;
}

interface Running {
  daemon: Daemon;
  child: ChildProcess;
}

const registry = new Set<Running>();
let exitHooksInstalled = false;

function killAllSync(): void {
  for (const r of registry) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      try {
        process.kill(r.daemon.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAllSync();
      // Keep the default behaviour (terminate) unless someone else handles the signal.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}

function tailOf(path: string, lines = 30): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trimEnd();
  } catch {
    return '(no log)';
  }
}

/** Start a foreground server, wait until `ready()` says yes, return its handle. */
export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  installExitHooks();
  const [program, ...args] = opts.argv;
  if (!program) throw new Error(`lab: ${opts.name}: empty argv`);
  const logPath = join(opts.cwd, `${opts.name}.log`);
  const pidFile = opts.pidFile ?? join(opts.cwd, `${opts.name}.pid`);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const graceMs = opts.killGraceMs ?? 3_000;

  // Parent-death signal: a SIGKILLed test worker must not leave servers behind. setpriv execs
  // the program, so the pid stays the server's pid.
  const setpriv = process.platform === 'linux' ? findTool('setpriv') : undefined;
  const argv = setpriv
    ? [setpriv, '--pdeathsig', 'KILL', '--', program, ...args]
    : [program, ...args];

  const logFd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(argv[0]!, argv.slice(1), {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', logFd, logFd],
      detached: false,
    });
  } finally {
    closeSync(logFd);
  }
  const spawnError = new Promise<Error>((resolveErr) => child.once('error', resolveErr));
  const exitPromise = new Promise<void>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    child.once('exit', () => resolveExit());
    child.once('error', () => resolveExit());
  });
  let spawnFailure: Error | undefined;
  void spawnError.then((e) => {
    spawnFailure = e;
  });
  // Give the 'error' event (ENOENT) a chance before reading child.pid.
  await new Promise((r) => setImmediate(r));
  if (spawnFailure || child.pid === undefined) {
    throw new Error(
      `lab: ${opts.name}: cannot start ${program}: ${spawnFailure?.message ?? 'no pid'}`,
    );
  }
  const pid = child.pid;
  writeFileSync(pidFile, `${pid}\n`);

  let stopped: Promise<void> | undefined;
  const running: Running = {
    child,
    daemon: {
      name: opts.name,
      pid,
      dir: opts.cwd,
      logPath,
      pidFile,
      get exited() {
        return child.exitCode !== null || child.signalCode !== null;
      },
      logTail: (lines?: number) => tailOf(logPath, lines),
      stop() {
        stopped ??= (async () => {
          if (!running.daemon.exited) {
            try {
              process.kill(pid, 'SIGTERM');
            } catch {
              /* gone */
            }
            const graceful = await Promise.race([
              exitPromise.then(() => true),
              sleep(graceMs).then(() => false),
            ]);
            if (!graceful && !running.daemon.exited) {
              try {
                process.kill(pid, 'SIGKILL');
              } catch {
                /* gone */
              }
            }
            await exitPromise;
          }
          registry.delete(running);
          rmSync(pidFile, { force: true });
        })();
        return stopped;
      },
    },
  };
  registry.add(running);

  const deadline = Date.now() + timeoutMs;
  let lastProbeError: unknown;
  for (;;) {
    if (running.daemon.exited) {
      const how = child.signalCode ? `signal ${child.signalCode}` : `status ${child.exitCode}`;
      await running.daemon.stop();
      throw new Error(
        `lab: ${opts.name} exited with ${how} before it was ready (${argv.join(' ')})\n--- ${logPath} (tail) ---\n${tailOf(logPath)}`,
      );
    }
    try {
      if (await opts.ready()) break;
      lastProbeError = undefined;
    } catch (e) {
      lastProbeError = e;
    }
    if (Date.now() > deadline) {
      await running.daemon.stop();
      const probe = lastProbeError
        ? `; last probe error: ${(lastProbeError as Error).message ?? String(lastProbeError)}`
        : '';
      throw new Error(
        `lab: ${opts.name} (pid ${pid}) not ready after ${timeoutMs} ms${probe}\n--- ${logPath} (tail) ---\n${tailOf(logPath)}`,
      );
    }
    await sleep(100);
  }
  return running.daemon;
}

/** Stop every server started by this process (call in afterAll), then remove the temp dirs
 *  unless TLSA_LAB_KEEP=1. */
export async function stopAll(): Promise<void> {
  await Promise.all([...registry].map((r) => r.daemon.stop()));
  if (process.env.TLSA_LAB_KEEP === '1') return;
  for (const dir of tempDirs.splice(0)) {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Servers still running (for assertions and debugging). */
export function runningDaemons(): Daemon[] {
  return [...registry].map((r) => r.daemon);
}

/** Port 53 listeners (for glibc clients such as posttls-finger, which cannot be given a port)
 *  take a random address of 127.0.53.0/24, so that test files running in parallel never collide. */
export async function freeLoopback53(avoid: string[] = []): Promise<string> {
  for (let attempt = 0; attempt < 40; attempt++) {
    const addr = `127.0.53.${10 + Math.floor(Math.random() * 240)}`;
    if (avoid.includes(addr)) continue;
    if ((await tcpFree(addr, 53)) && (await udpFree(addr, 53))) return addr;
  }
  throw new Error('no free 127.0.53.x:53');
}
