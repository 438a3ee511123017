// Scale benchmark: one tlsa configuration with N services (one owner name each, two lineages per
// service, records "3 1 1" and "2 1 1") on the zonefile provider, run as fresh CLI processes:
// publish from empty, a no-op plan, a no-op publish, `daemon --once`, and a 1 % change (1 % of
// the services switch their record set to "3 1 1" + "3 0 1").
//
// Run: npm run bench:scale   (SCALE_N=1000,5000,10000 chooses the sizes; default 1000,5000,10000.
// SCALE_NO_WRITE=1 only prints.) Writes bench/results-scale.md with the machine and date.
//
// Each process is run under /usr/bin/time (GNU time) for wall, user and system CPU seconds and
// peak RSS. Zone writes: the zone file's inode, mtime and size before and after a run (tlsa
// writes it by rename, so any write changes the inode) — 0 when nothing changed, else 1 (the
// provider writes all changes of a run in one read-modify-write). The state file's load time is
// readState() in this process (median of 5).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readState, STATE_FILE } from '../src/engine/state.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
// SCALE_CLI: another build's main.js (to time a baseline side by side).
const CLI = process.env.SCALE_CLI ?? join(ROOT, 'dist/src/cli/main.js');
const LIVE = join(ROOT, 'docs/example/letsencrypt/live');
const TIME = '/usr/bin/time';

function sizes(): number[] {
  const raw = process.env.SCALE_N ?? '1000,5000,10000';
  return raw.split(',').map((s) => {
    const n = Number(s.trim());
    if (!Number.isInteger(n) || n < 1) throw new Error(`SCALE_N: not a positive integer: ${s}`);
    return n;
  });
}

function config(n: number, changed: (i: number) => boolean): string {
  const lines = [
    'state_dir: state',
    'providers:',
    '  local: {type: zonefile, path: z.zone, create: true}',
    'verify: {propagation: false, probe: false}',
    'services:',
  ];
  for (let i = 0; i < n; i++) {
    const records = changed(i) ? '["3 1 1", "3 0 1"]' : '["3 1 1", "2 1 1"]';
    lines.push(
      `  s${i}:`,
      `    host: mx${i}.example.org`,
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
  zoneWrites: number;
}

function zoneId(dir: string): string {
  const f = join(dir, 'z.zone');
  if (!existsSync(f)) return 'absent';
  const s = statSync(f);
  return `${s.ino} ${s.mtimeMs} ${s.size}`;
}

function run(dir: string, step: string, args: string[]): Run {
  const out = join(dir, 'time.out');
  const before = zoneId(dir);
  const r = spawnSync(
    TIME,
    ['-f', '%e %U %S %M', '-o', out, process.execPath, CLI, '--config', 'tlsa.yaml', ...args],
    { cwd: dir, encoding: 'utf8', maxBuffer: 1 << 30 },
  );
  const [wall, user, sys, rssKb] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ');
  const exit = r.status ?? -1;
  if (exit !== 0 && exit !== 4)
    throw new Error(`${step}: exit ${exit}\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-1000)}`);
  return {
    step,
    exit,
    wall: Number(wall),
    user: Number(user),
    sys: Number(sys),
    rssMb: Number(rssKb) / 1024,
    zoneWrites: zoneId(dir) === before ? 0 : 1,
  };
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

function benchOne(n: number): { runs: Run[]; state: ReturnType<typeof stateFigures> } {
  const dir = mkdtempSync(join(tmpdir(), `tlsa-scale-${n}-`));
  try {
    writeFileSync(
      join(dir, 'tlsa.yaml'),
      config(n, () => false),
    );
    const runs: Run[] = [];
    const step = (label: string, args: string[]) => {
      process.stderr.write(`N=${n}: ${label}…\n`);
      const r = run(dir, label, args);
      process.stderr.write(
        `  wall ${r.wall} s, CPU ${(r.user + r.sys).toFixed(2)} s, RSS ${r.rssMb.toFixed(0)} MB, zone writes ${r.zoneWrites}\n`,
      );
      runs.push(r);
    };
    step('publish (from empty)', ['publish']);
    step('plan (no-op)', ['plan']);
    step('publish (no-op)', ['publish']);
    step('daemon --once (no-op)', ['daemon', '--once']);
    const state = stateFigures(dir);
    writeFileSync(
      join(dir, 'tlsa.yaml'),
      config(n, (i) => i % 100 === 0),
    );
    step('publish (1 % of services changed)', ['publish']);
    return { runs, state };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function main(): void {
  const cpu = cpus();
  const rows: string[] = [];
  // Written after each size, so a long run that is stopped keeps what it measured.
  const report = (): string =>
    [
      '# bench:scale results',
      '',
      `Date: ${new Date().toISOString()}. Machine: ${cpu.length} × ${cpu[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}; load average ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')} (other work shares this machine: read CPU time beside wall time).`,
      '',
      'Zonefile provider, one owner name per service, two lineages per service (the example chains), records "3 1 1" + "2 1 1"; the 1 % change switches every 100th service to "3 1 1" + "3 0 1". Each step is a fresh `tlsa` process (GNU time: wall, user + sys CPU, peak RSS). Zone writes: 1 when the zone file changed in that run (one read-modify-write per run), 0 when not. Exit 4 = published, waiting for the TTL.',
      '',
      '| N services | step | wall s | CPU s (user+sys) | peak RSS MB | zone writes | exit |',
      '|---:|---|---:|---:|---:|---:|---:|',
      ...rows,
      '',
    ].join('\n');
  for (const n of sizes()) {
    const { runs, state } = benchOne(n);
    for (const r of runs)
      rows.push(
        `| ${n} | ${r.step} | ${r.wall.toFixed(2)} | ${(r.user + r.sys).toFixed(2)} | ${r.rssMb.toFixed(0)} | ${r.zoneWrites} | ${r.exit} |`,
      );
    rows.push(
      `| ${n} | state file: ${state.records} records, ${state.kb.toFixed(0)} KiB, load ${state.loadMs.toFixed(1)} ms | | | | | |`,
    );
    if (!process.env.SCALE_NO_WRITE) writeFileSync(join(ROOT, 'bench/results-scale.md'), report());
  }
  process.stdout.write(report());
}

main();
