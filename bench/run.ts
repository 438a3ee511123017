// Wall-clock benchmark of the tlsa CLI against hash-slinger and a plain openssl pipeline.
// Every sample is a fresh (cold) process, timed with process.hrtime.bigint() around spawnSync.
// Run: npm run bench  (BENCH_RUNS=N sets the number of timed runs per command; default 30).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
const LIVE = 'docs/example/letsencrypt/live/mx.example.org';
const FULLCHAIN = `${LIVE}/fullchain.pem`;
const CERT = `${LIVE}/cert.pem`;
const CLI = 'dist/src/cli/main.cjs';
// Absolute path: our own package's bin is also called `tlsa`, so never rely on PATH here.
const HASH_SLINGER = '/usr/bin/tlsa';
const WARMUP = 3;

interface Cmd {
  label: string;
  file: string;
  args: string[];
  env?: Record<string, string>;
}

const NODE = process.execPath;
const ours: Cmd = {
  label: 'tlsa generate',
  file: NODE,
  args: [CLI, 'generate', '--chain', FULLCHAIN, '--host', 'mx.example.org'],
};
// hash-slinger has no "no DNS" switch; with --create --certificate it reads the file and never
// resolves or connects (it only execs `openssl verify` on the file). No --port: the 3 1 1 data is the same.
const slinger: Cmd = {
  label: 'hash-slinger tlsa --create',
  file: HASH_SLINGER,
  args: [
    '--create',
    '--certificate',
    CERT,
    '-u',
    '3',
    '-s',
    '1',
    '-m',
    '1',
    '--output',
    'rfc',
    'mx.example.org',
  ],
};
const pipeline: Cmd = {
  label: 'openssl pipeline (x509, pkey, dgst)',
  file: 'sh',
  args: [
    '-c',
    `openssl x509 -in ${CERT} -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256`,
  ],
};
const version: Cmd = { label: 'tlsa --version', file: NODE, args: [CLI, '--version'] };
// Config commands on config.example.yaml: read-only, and no DNS query (plan and status read the
// zone file; the hook is given a lineage no service uses, so it loads the config and stops).
const CONFIG = 'config.example.yaml';
const plan: Cmd = {
  label: 'tlsa plan (config.example.yaml)',
  file: NODE,
  args: [CLI, '--config', CONFIG, 'plan'],
};
const status: Cmd = {
  label: 'tlsa status (config.example.yaml)',
  file: NODE,
  args: [CLI, '--config', CONFIG, 'status'],
};
const hook: Cmd = {
  label: 'tlsa hook certbot (lineage of no service)',
  file: NODE,
  args: [CLI, '--config', CONFIG, 'hook', 'certbot'],
  env: { RENEWED_LINEAGE: 'docs/example' },
};
const floor: Cmd = { label: 'node -e 0 (floor)', file: NODE, args: ['-e', '0'] };

function parseRuns(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 30;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`BENCH_RUNS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** `cmd` run without NODE_EXTRA_CA_CERTS (see `withoutExtraCa`). */
const NO_EXTRA_CA = '\0unset';

function envOf(cmd: Cmd): NodeJS.ProcessEnv | undefined {
  if (!cmd.env) return undefined;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(cmd.env))
    if (v === NO_EXTRA_CA) delete env[k];
    else env[k] = v;
  return env;
}

/** The same command with NODE_EXTRA_CA_CERTS unset: Node reads that file at every start, before
 *  any script (Debian's 220 kB CA bundle: ≈ 80 % of a bare `node -e 0`'s instructions), so where it
 *  is set it weighs on the floor and on tlsa alike and shrinks every start-up ratio. */
const withoutExtraCa = (c: Cmd): Cmd => ({
  ...c,
  label: `${c.label}, without NODE_EXTRA_CA_CERTS`,
  env: { ...c.env, NODE_EXTRA_CA_CERTS: NO_EXTRA_CA },
});

function run(cmd: Cmd): { ms: number; stdout: string } {
  const start = process.hrtime.bigint();
  const env = envOf(cmd);
  const r = spawnSync(cmd.file, cmd.args, { cwd: ROOT, encoding: 'utf8', ...(env ? { env } : {}) });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error) throw new Error(`${cmd.label}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd.label}: exit ${r.status}\n${r.stderr}`);
  return { ms, stdout: r.stdout };
}

/** Output of a command, or undefined when it cannot run. */
function tryOutput(file: string, args: string[]): string | undefined {
  const r = spawnSync(file, args, { encoding: 'utf8' });
  return r.status === 0 ? `${r.stdout}${r.stderr}`.trim() : undefined;
}

/** The 64-hex data of the first match of `re` in `out`, or abort. */
function hashOf(cmd: Cmd, re: RegExp): string {
  const out = run(cmd).stdout;
  const hex = re.exec(out)?.[1];
  if (hex === undefined) throw new Error(`${cmd.label}: no SHA-256 found in output:\n${out}`);
  return hex.toLowerCase();
}

/** Warm up, then time `cmds` interleaved (A,B,C,A,B,C…) so they share the machine's noise. */
function bench(cmds: Cmd[], runs: number): Map<Cmd, number[]> {
  for (let i = 0; i < WARMUP; i++) for (const c of cmds) run(c);
  const samples = new Map<Cmd, number[]>(cmds.map((c) => [c, []]));
  for (let i = 0; i < runs; i++) for (const c of cmds) samples.get(c)?.push(run(c).ms);
  return samples;
}

/** Start-up against a bare node, in pairs: each round runs `floor` and every command next to
 *  each other (floor first in even rounds, second in odd ones), and each pair gives one ratio.
 *  A pair shares the machine's load of that moment, so the median of the ratios holds up on a
 *  busy machine where a ratio of two medians taken minutes apart would not. */
function pairedRatios(cmds: Cmd[], floor: Cmd, runs: number): Map<Cmd, number[]> {
  for (let i = 0; i < WARMUP; i++) for (const c of [...cmds, floor]) run(c);
  const ratios = new Map<Cmd, number[]>(cmds.map((c) => [c, []]));
  for (let i = 0; i < runs; i++)
    for (const c of cmds) {
      const floorFirst = i % 2 === 0;
      const before = run(floorFirst ? floor : c).ms;
      const after = run(floorFirst ? c : floor).ms;
      ratios.get(c)?.push(floorFirst ? after / before : before / after);
    }
  return ratios;
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
function percentile(xs: number[], p: number): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const v =
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  if (v === undefined) throw new Error('percentile of an empty list');
  return v;
}

/** 1, 5 and 15 minute load averages: other work on the machine shows up in the timings. */
const loadavg = (): string =>
  readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const fmt = (ms: number): string => ms.toFixed(1);
const verdict = (ok: boolean): string => (ok ? '**met**' : '**not met**');

function main(): void {
  const runs = parseRuns(process.env.BENCH_RUNS);
  const loadBefore = loadavg();
  if (!existsSync(`${ROOT}${CLI}`))
    throw new Error(`${CLI} is missing: run \`npx tsc -p .\` first`);
  const slingerVersion = existsSync(HASH_SLINGER)
    ? tryOutput(HASH_SLINGER, ['--version'])
    : undefined;
  const haveSlinger = slingerVersion !== undefined;

  // 3. All tools must agree on the DANE-EE SPKI SHA-256 before anything is timed.
  const rr311 = /\sTLSA\s+3\s+1\s+1\s+([0-9a-fA-F]{64})\b/;
  const hashes: [string, string][] = [
    [ours.label, hashOf(ours, rr311)],
    [pipeline.label, hashOf(pipeline, /=\s*([0-9a-fA-F]{64})\s*$/m)],
  ];
  if (haveSlinger) hashes.push([slinger.label, hashOf(slinger, rr311)]);
  const distinct = new Set(hashes.map(([, h]) => h));
  if (distinct.size !== 1) {
    throw new Error(`3 1 1 hashes differ:\n${hashes.map(([l, h]) => `  ${h}  ${l}`).join('\n')}`);
  }
  const agreed = hashes[0]?.[1] ?? '';

  // 1. and 2.
  const samples = bench(
    [ours, ...(haveSlinger ? [slinger] : []), pipeline, version, plan, status, hook, floor],
    runs,
  );
  const stat = (c: Cmd, p: number): number => percentile(samples.get(c) ?? [], p);

  const rows = [...samples.keys()].map(
    (c) => `| ${c.label} | ${fmt(stat(c, 0))} | ${fmt(stat(c, 50))} | ${fmt(stat(c, 90))} |`,
  );
  if (!haveSlinger)
    rows.push(`| hash-slinger | skipped: not installed (${HASH_SLINGER} missing) | | |`);
  const vsSlinger = haveSlinger ? stat(ours, 50) / stat(slinger, 50) : undefined;
  const vsOpenssl = stat(ours, 50) / stat(pipeline, 50);
  const versionMed = stat(version, 50);
  const startCmds = [plan, status, hook, version];
  const paired = pairedRatios(startCmds, floor, runs);
  const startRows = startCmds.map((c) => {
    // --version was ≈ 1.2× before the bundle and must stay there.
    const [target, text] = c === version ? [1.25, '≈ 1.2×'] : [1.6, '≤ 1.6×'];
    const ratios = paired.get(c) ?? [];
    const med = percentile(ratios, 50);
    const ofMedians = stat(c, 50) / stat(floor, 50);
    return `| ${c.label} / node -e 0 | ${med.toFixed(2)}× | ${percentile(ratios, 0).toFixed(2)}–${percentile(ratios, 100).toFixed(2)}× | ${ofMedians.toFixed(2)}× | ${text} | ${verdict(med <= target)} |`;
  });
  // Where the machine sets NODE_EXTRA_CA_CERTS, the same pairs without it, for reference.
  const bareRows: string[] = [];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const bareFloor = withoutExtraCa(floor);
    const bare = [plan, status, hook, version].map(withoutExtraCa);
    const pairedBare = pairedRatios(bare, bareFloor, runs);
    for (const c of bare) {
      const ratios = pairedBare.get(c) ?? [];
      bareRows.push(
        `| ${c.label} / node -e 0 (also without it) | ${percentile(ratios, 50).toFixed(2)}× | ${percentile(ratios, 0).toFixed(2)}–${percentile(ratios, 100).toFixed(2)}× | (reference) |`,
      );
    }
  }

  const cpu =
    /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  const md = [
    `# tlsa benchmark`,
    ``,
    `| machine | |`,
    `|---|---|`,
    `| date | ${new Date().toISOString()} |`,
    `| nproc | ${availableParallelism()} |`,
    `| CPU | ${cpu} |`,
    `| node | ${process.version} |`,
    `| openssl | ${tryOutput('openssl', ['version']) ?? 'unknown'} |`,
    `| hash-slinger | ${slingerVersion ?? 'not installed'} |`,
    `| NODE_EXTRA_CA_CERTS | ${process.env.NODE_EXTRA_CA_CERTS ? 'set: every node start loads it, included in the node timings' : 'unset'} |`,
    `| load average before / after | ${loadBefore} / ${loadavg()} |`,
    `| runs | ${WARMUP} warm-up + ${runs} timed per command, all interleaved, cold processes |`,
    `| 3 1 1 data (all tools agree) | \`${agreed}\` |`,
    ``,
    `| command | min ms | median ms | p90 ms |`,
    `|---|---:|---:|---:|`,
    ...rows,
    ``,
    `| comparison (medians) | value | target | result |`,
    `|---|---:|---|---|`,
    vsSlinger === undefined
      ? `| tlsa / hash-slinger | n/a | ≤ 0.5× | skipped (hash-slinger not installed) |`
      : `| tlsa / hash-slinger | ${vsSlinger.toFixed(2)}× | ≤ 0.5× | ${verdict(vsSlinger <= 0.5)} |`,
    `| tlsa / openssl pipeline | ${vsOpenssl.toFixed(2)}× | (reference) | |`,
    `| tlsa --version | ${fmt(versionMed)} ms | ≤ 150 ms | ${verdict(versionMed <= 150)} |`,
    ``,
    `Start-up: ${runs} pairs per command (3 warm-up), each a run of the command next to a run of`,
    `\`node -e 0\` (alternating which goes first); a pair's ratio is command ms / node ms. The`,
    `ratio of the two medians in the table above is given for reference.`,
    ``,
    `| start-up vs node -e 0 | median of paired ratios | min–max | ratio of medians | target (median) | result |`,
    `|---|---:|---:|---:|---|---|`,
    ...startRows,
    ``,
    ...(bareRows.length
      ? [
          `The same pairs with NODE_EXTRA_CA_CERTS unset for both sides (Node loads that file at`,
          `every start before any script, so where it is set the floor is heavier and every ratio`,
          `smaller):`,
          ``,
          `| start-up vs node -e 0 | median of paired ratios | min–max | |`,
          `|---|---:|---:|---|`,
          ...bareRows,
          ``,
        ]
      : []),
  ].join('\n');

  writeFileSync(`${ROOT}bench/results.md`, md);
  process.stdout.write(md);
}

try {
  main();
} catch (e) {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
