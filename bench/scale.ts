// Scale benchmark: one tlsa configuration with N services (one owner name each, two lineages per
// service, records "3 1 1" and "2 1 1"), run as fresh CLI processes: publish from empty, a no-op
// plan, a no-op publish, `daemon --once`, the daemon's RSS after its first run, and a 1 % change
// (1 % of the services switch their record set to "3 1 1" + "3 0 1"). On three providers:
//   zonefile  one zone file (every owner in one zone);
//   powerdns  a real pdns_server (test/lab/powerdns.ts, HTTP API) on loopback;
//   knot      a real knotd (test/lab/knot.ts, RFC 2136 UPDATE with TSIG) on loopback;
// on PowerDNS and Knot the services are spread over min(N, 1,000) zones (Knot's signed by Knot
// itself, ECDSA P-256, as DANE needs signed zones; PowerDNS's unsigned). Runs whose requests are
// counted pass a counting proxy on loopback (reads: HTTP GET / DNS queries; writes: HTTP PATCH /
// DNS UPDATE): the first publish, one no-op publish and the 1 % change. The timed no-op runs
// (plan, publish, daemon --once) and the daemon's RSS go straight to the server: the proxy
// shares the machine's two cores with tlsa and the server, and its CPU is not tlsa's.
//
// Run: npm run bench:scale   (SCALE_N=1000,5000,10000 chooses the sizes, default 1000;
// SCALE_PROVIDERS=zonefile,powerdns,knot, default all three; SCALE_NO_WRITE=1 only prints.)
// Writes bench/results-scale.md with the machine and date.
//
// Each process is run under /usr/bin/time (GNU time) for wall, user and system CPU seconds and
// peak RSS: CPU time is what to compare, the machine is shared. Zonefile writes: the zone file's
// inode, mtime and size before and after a run (tlsa writes it by rename) — 0 when nothing
// changed, else 1. The state file's load time is readState() in this process (median of 5). The
// daemon's RSS: `tlsa daemon` is started, and after its first run (its "next run" line)
// /proc/PID/status gives VmRSS (now) and VmHWM (peak); it is then stopped by its pid.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readState, STATE_FILE } from '../src/engine/state.js';
import { startKnot } from '../test/lab/knot.js';
import { stopAll } from '../test/lab/lab.js';
import { startPowerDns } from '../test/lab/powerdns.js';
import { countingHttpProxy, countingProxy, type Counts } from './counting-proxy.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
// SCALE_CLI: another build's main.cjs (to time a baseline side by side).
const CLI = process.env.SCALE_CLI ?? join(ROOT, 'dist/src/cli/main.cjs');
const LIVE = join(ROOT, 'docs/example/letsencrypt/live');
const TIME = '/usr/bin/time';

function sizes(): number[] {
  const raw = process.env.SCALE_N ?? '1000';
  return raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`SCALE_N: not a positive integer: ${s}`);
    return n;
  });
}

/** Where the services' records go: the provider block (through the counting proxy, and
 *  straight to the server), each service's host, the zone of each service, and what the
 *  provider was sent through the proxy (lab servers). */
interface Backend {
  name: 'zonefile' | 'powerdns' | 'knot';
  zones: number;
  provider: string;
  direct: string;
  host(i: number): string;
  zoneOf(i: number): number;
  counts?: Counts;
  close(): Promise<void>;
}

const SCALE_ZONES = 1000;
const labHost = (i: number, zones: number) => `mx${i}.z${i % zones}.scale.test`;
const labZone = (k: number) => `z${k}.scale.test.`;

function zonefileBackend(): Backend {
  return {
    name: 'zonefile',
    zones: 1,
    provider: '{type: zonefile, path: z.zone, create: true}',
    direct: '{type: zonefile, path: z.zone, create: true}',
    host: (i) => `mx${i}.example.org`,
    zoneOf: () => 0,
    close: async () => {},
  };
}

/** Runs `fn` over items, a few at a time (creating a thousand zones one by one is slow). */
async function few<T>(items: T[], fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

async function powerdnsBackend(n: number): Promise<Backend> {
  const zones = Math.min(n, SCALE_ZONES);
  const pdns = await startPowerDns({ timeoutMs: 60_000 });
  await few([...Array(zones).keys()], async (k) => {
    const z = labZone(k);
    const res = await fetch(`${pdns.apiUrl}/api/v1/servers/localhost/zones`, {
      method: 'POST',
      headers: { 'X-API-Key': pdns.apiKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        name: z,
        kind: 'Native',
        nameservers: [`ns.${z}`],
        rrsets: [
          {
            name: `ns.${z}`,
            type: 'A',
            ttl: 300,
            records: [{ content: '127.0.0.1', disabled: false }],
          },
        ],
      }),
    });
    if (res.status !== 201)
      throw new Error(`creating ${z} on PowerDNS: HTTP ${res.status} ${await res.text()}`);
  });
  const proxy = await countingHttpProxy(pdns.apiUrl);
  return {
    name: 'powerdns',
    zones,
    provider: `{type: powerdns, url: "${proxy.url}", api_key: "${pdns.apiKey}", settle_ms: 0}`,
    direct: `{type: powerdns, url: "${pdns.apiUrl}", api_key: "${pdns.apiKey}", settle_ms: 0}`,
    host: (i) => labHost(i, zones),
    zoneOf: (i) => i % zones,
    counts: proxy.counts,
    close: async () => {
      await proxy.close();
      await pdns.daemon.stop();
    },
  };
}

async function knotBackend(n: number): Promise<Backend> {
  const zones = Math.min(n, SCALE_ZONES);
  const key = { name: 'tlsa-scale.', secret: randomBytes(32).toString('base64') };
  // Signed (Knot's online signing, the lab's ECDSA P-256 policy): DANE users' zones are, and a
  // signed answer is what names an owner's zone to rfc2136 without an SOA query.
  const t0 = process.hrtime.bigint();
  const knot = await startKnot({
    zones: [...Array(zones).keys()].map((k) => ({ name: labZone(k), dnssec: true })),
    tsig: { ...key, algorithm: 'hmac-sha256', updateTypes: ['TLSA'] },
    timeoutMs: 900_000,
  });
  const upS = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`knot: ${zones} signed zones served after ${upS.toFixed(1)} s\n`);
  const proxy = await countingProxy(knot.port);
  const rfc2136 = (port: number) =>
    `{type: rfc2136, server: 127.0.0.1, port: ${port}, tsig_name: "${key.name}", tsig_algorithm: hmac-sha256, tsig_secret: "${key.secret}", timeout_s: 10}`;
  return {
    name: 'knot',
    zones,
    provider: rfc2136(proxy.port),
    direct: rfc2136(knot.port),
    host: (i) => labHost(i, zones),
    zoneOf: (i) => i % zones,
    counts: proxy.counts,
    close: async () => {
      await proxy.close();
      await knot.stop();
    },
  };
}

/** The configuration; `direct` points it straight at the server instead of the counting proxy
 *  (the same provider name and state directory: the two files share one state). */
function config(b: Backend, n: number, changed: (i: number) => boolean, direct = false): string {
  const lines = [
    'state_dir: state',
    'providers:',
    `  local: ${direct ? b.direct : b.provider}`,
    'verify: {propagation: false, probe: false}',
    'services:',
  ];
  for (let i = 0; i < n; i++) {
    const records = changed(i) ? '["3 1 1", "3 0 1"]' : '["3 1 1", "2 1 1"]';
    lines.push(
      `  s${i}:`,
      `    host: ${b.host(i)}`,
      '    ports: [25]',
      '    provider: local',
      `    records: ${records}`,
      '    certificates:',
      `      - lineage: ${LIVE}/mx.example.org`,
      `      - lineage: ${LIVE}/mx.example.org-rsa`,
    );
  }
  return `${lines.join('\n')}\n`;
}

interface Run {
  step: string;
  exit: number;
  wall: number;
  user: number;
  sys: number;
  rssMb: number;
  /** Zonefile: 1 when the zone file was rewritten; lab servers: UPDATEs / PATCHes sent
   *  (undefined for a run straight to the server, not counted). */
  writes?: number;
  /** Lab servers: DNS queries / HTTP GETs sent (undefined for the zonefile). */
  reads?: number;
}

function zoneId(dir: string): string {
  const f = join(dir, 'z.zone');
  if (!existsSync(f)) return 'absent';
  const s = statSync(f);
  return `${s.ino} ${s.mtimeMs} ${s.size}`;
}

/** The CLI is run asynchronously: the counting proxies live in this process's event loop. */
function spawned(
  argv: string[],
  cwd: string,
): Promise<{ code: number; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout = (stdout + d.toString()).slice(-4000);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** One CLI run; `counted` sends it through the counting proxy (tlsa.yaml), else straight to the
 *  server (direct.yaml), where a lab server's requests are not counted. */
async function run(
  b: Backend,
  dir: string,
  step: string,
  args: string[],
  counted: boolean,
): Promise<Run> {
  const out = join(dir, 'time.out');
  const before = zoneId(dir);
  const sent = { ...(b.counts ?? { reads: 0, writes: 0 }) };
  const file = counted ? 'tlsa.yaml' : 'direct.yaml';
  const r = await spawned(
    [TIME, '-f', '%e %U %S %M', '-o', out, process.execPath, CLI, '--config', file, ...args],
    dir,
  );
  const [wall, user, sys, rssKb] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ');
  if (r.code !== 0 && r.code !== 4)
    throw new Error(`${step}: exit ${r.code}\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-1000)}`);
  const base = {
    step,
    exit: r.code,
    wall: Number(wall),
    user: Number(user),
    sys: Number(sys),
    rssMb: Number(rssKb) / 1024,
  };
  if (!b.counts) return { ...base, writes: zoneId(dir) === before ? 0 : 1 };
  if (!counted) return base;
  return { ...base, writes: b.counts.writes - sent.writes, reads: b.counts.reads - sent.reads };
}

/** `tlsa daemon` until its first run is done: VmRSS and VmHWM from /proc, in MB, at the end of
 *  that run and again IDLE_MS later, while it waits for the next: what a run leaves behind
 *  before V8's idle collection gives it back varies from run to run, what the daemon holds
 *  between runs much less. */
const IDLE_MS = 5000;
async function daemonRss(
  dir: string,
): Promise<{ rssMb: number; idleRssMb: number; hwmMb: number }> {
  const child = spawn(process.execPath, [CLI, '--config', 'direct.yaml', 'daemon'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  try {
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err = (err + d.toString()).slice(-4000);
        if (/next run/.test(err)) resolve();
      });
      child.on('close', (code) => reject(new Error(`daemon exited ${code}: ${err}`)));
    });
    const kb = (field: string) => {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
    };
    const rssMb = kb('VmRSS') / 1024;
    await new Promise((r) => setTimeout(r, IDLE_MS));
    return { rssMb, idleRssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode === null ? child.once('close', r) : r(null)));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function stateFigures(dir: string): { kb: number; loadMs: number; records: number } {
  const stateDir = join(dir, 'state');
  const file = join(stateDir, STATE_FILE);
  const times: number[] = [];
  let records = 0;
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    records = readState(stateDir).records.length;
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { kb: statSync(file).size / 1024, loadMs: median(times), records };
}

interface Result {
  runs: Run[];
  state: ReturnType<typeof stateFigures>;
  daemon: { rssMb: number; idleRssMb: number; hwmMb: number };
  changedZones: number;
}

async function benchOne(b: Backend, n: number): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `tlsa-scale-${b.name}-${n}-`));
  try {
    writeFileSync(
      join(dir, 'tlsa.yaml'),
      config(b, n, () => false),
    );
    writeFileSync(
      join(dir, 'direct.yaml'),
      config(b, n, () => false, true),
    );
    const runs: Run[] = [];
    const step = async (label: string, args: string[], counted: boolean) => {
      process.stderr.write(`${b.name} N=${n}: ${label}…\n`);
      const r = await run(b, dir, label, args, counted);
      process.stderr.write(
        `  wall ${r.wall} s, CPU ${(r.user + r.sys).toFixed(2)} s, RSS ${r.rssMb.toFixed(0)} MB${r.writes === undefined ? '' : `, writes ${r.writes}`}${r.reads === undefined ? '' : `, reads ${r.reads}`}\n`,
      );
      runs.push(r);
    };
    const relay = b.counts ? ', through the counting proxy' : '';
    await step(`publish (from empty${relay})`, ['publish'], true);
    await step('plan (no-op)', ['plan'], false);
    await step('publish (no-op)', ['publish'], false);
    await step('daemon --once (no-op)', ['daemon', '--once'], false);
    if (b.counts) await step(`publish (no-op${relay})`, ['publish'], true);
    process.stderr.write(`${b.name} N=${n}: daemon RSS after its first run…\n`);
    const daemon = await daemonRss(dir);
    const state = stateFigures(dir);
    const changed = (i: number) => i % 100 === 0;
    writeFileSync(join(dir, 'tlsa.yaml'), config(b, n, changed));
    await step(`publish (1 % of services changed${relay})`, ['publish'], true);
    const zones = new Set<number>();
    for (let i = 0; i < n; i++) if (changed(i)) zones.add(b.zoneOf(i));
    return { runs, state, daemon, changedZones: zones.size };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const BACKENDS = {
  zonefile: async () => zonefileBackend(),
  powerdns: powerdnsBackend,
  knot: knotBackend,
} as const;

function backendNames(): (keyof typeof BACKENDS)[] {
  const raw = process.env.SCALE_PROVIDERS ?? 'zonefile,powerdns,knot';
  return raw.split(',').map((s) => {
    const name = s.trim();
    if (!(name in BACKENDS)) throw new Error(`SCALE_PROVIDERS: unknown provider: ${name}`);
    return name as keyof typeof BACKENDS;
  });
}

async function main(): Promise<void> {
  const cpu = cpus();
  const rows: string[] = [];
  // Written after each size, so a long run that is stopped keeps what it measured.
  const report = (): string =>
    [
      '# bench:scale results',
      '',
      `Date: ${new Date().toISOString()}. Machine: ${cpu.length} × ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (other work shares this machine: compare CPU time, not wall time).`,
      '',
      'One owner name per service, two lineages per service (the example chains), records "3 1 1" + "2 1 1"; the 1 % change switches every 100th service to "3 1 1" + "3 0 1". Zonefile: every owner in one zone file. PowerDNS (HTTP API) and Knot (RFC 2136 UPDATE, TSIG): real servers on loopback, the services spread over min(N, 1,000) zones (on Knot DNSSEC-signed by Knot itself, ECDSA P-256; on PowerDNS unsigned). Each step is a fresh `tlsa` process (GNU time: wall, user + sys CPU, peak RSS). Writes: zonefile 1 when the zone file changed in that run; PowerDNS PATCH requests, Knot UPDATE messages. Reads and writes are counted only on the runs through the counting proxy (the first publish, one no-op publish, the 1 % change); the other no-op runs and the daemon go straight to the server. Reads: PowerDNS GET requests, Knot DNS queries (the TLSA records of each owner name, with DNSSEC OK: the RRSIG over them names the zone a write goes to; an SOA query only where an answer names no zone). Exit 4 = published, waiting for the TTL. Daemon RSS: `tlsa daemon` at the end of its first run and 5 s later, waiting for the next (VmRSS; VmHWM the peak).',
      '',
      '| provider | N services | step | wall s | CPU s (user+sys) | peak RSS MB | writes | reads | exit |',
      '|---|---:|---|---:|---:|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n');
  try {
    for (const name of backendNames())
      for (const n of sizes()) {
        process.stderr.write(`${name} N=${n}: starting…\n`);
        const b = await BACKENDS[name](n);
        let result: Result;
        try {
          result = await benchOne(b, n);
        } finally {
          await b.close();
        }
        const { runs, state, daemon, changedZones } = result;
        for (const r of runs)
          rows.push(
            `| ${name} | ${n} | ${r.step} | ${r.wall.toFixed(2)} | ${(r.user + r.sys).toFixed(2)} | ${r.rssMb.toFixed(0)} | ${r.writes ?? ''} | ${r.reads ?? ''} | ${r.exit} |`,
          );
        const last = runs.at(-1)!;
        const lastWrites = last.writes ?? 0;
        // Requests a change costs: its writes, and its reads beyond those of a no-op run.
        const noop = runs.find((r) => r.step.startsWith('publish (no-op') && r.reads !== undefined);
        const calls =
          last.reads !== undefined && noop?.reads !== undefined
            ? `, ${((lastWrites + last.reads - noop.reads) / changedZones).toFixed(2)} requests per changed zone beyond a no-op run's reads`
            : '';
        rows.push(
          `| ${name} | ${n} | 1 % change: ${changedZones} zone(s) changed, ${(lastWrites / changedZones).toFixed(2)} writes per changed zone${calls} | | | | | | |`,
          `| ${name} | ${n} | daemon after its first run: RSS ${daemon.rssMb.toFixed(0)} MB, ${daemon.idleRssMb.toFixed(0)} MB ${IDLE_MS / 1000} s later while it waits (peak ${daemon.hwmMb.toFixed(0)} MB) | | | | | | |`,
          `| ${name} | ${n} | state file: ${state.records} records, ${state.kb.toFixed(0)} KiB, load ${state.loadMs.toFixed(1)} ms | | | | | | |`,
        );
        if (!process.env.SCALE_NO_WRITE)
          writeFileSync(join(ROOT, 'bench/results-scale.md'), report());
      }
  } finally {
    await stopAll();
  }
  process.stdout.write(report());
}

await main();
