// Provider batch benchmark: reconcile 1,000 TLSA owner names in one zone on a real PowerDNS
// (HTTP API, sqlite3, DNSSEC) and a real Knot DNS (RFC 2136 UPDATE with TSIG, DNSSEC), counting
// API calls and wall time for (a) no change and (b) 10 % of the names changed, done the way the
// engine does it (listMany + applyMany) and as a naive per-name loop (list + apply).
//
// Run: npx tsc -p . && node dist/bench/providers.js   (BENCH_RUNS=N, default 3; BENCH_OWNERS=N,
// default 1000). Needs pdns_server + pdns-backend-sqlite3 + sqlite3 and knotd/knotc (Debian
// packages pdns-server pdns-backend-sqlite3 sqlite3 knot). Everything listens on 127.0.0.1 in a
// temp dir and is stopped by its pid. Writes bench/results-providers.md and prints the table.
//
// The servers are the lab's (test/lab), with the zone's 1,000 owner names loaded at start.
//
// Counting: PowerDNS requests at an HTTP proxy in front of its API (test/lab/http-tap.ts; GET =
// read, PATCH = write); Knot DNS messages with a counting UDP/TCP proxy on loopback in front of knotd
// (opcode QUERY = read, UPDATE = write). Each run uses a fresh provider instance, as a CLI run
// does, so zone discovery is counted: PowerDNS `GET /zones` once; rfc2136 without the option
// "zone" one SOA query per owner name written to (also shown with "zone" set).
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DnsProvider, OwnerChange } from '../providers/index.js';
import { createProvider as createPowerDns } from '../providers/powerdns.js';
import { createProvider as createRfc2136 } from '../providers/rfc2136.js';
import { rdataText, type TlsaRecord } from '../src/tlsa/record.js';
import { type Counts, countingProxy } from './counting-proxy.js';
import { type HttpTap, startHttpTap } from '../test/lab/http-tap.js';
import { startKnot } from '../test/lab/knot.js';
import { stopAll, toolPath } from '../test/lab/lab.js';
import { startPowerDns } from '../test/lab/powerdns.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> repo root
const HOST = '127.0.0.1';
const ZONE = 'bench.test.';
const TTL = 300;

function positiveInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}
const RUNS = positiveInt('BENCH_RUNS', 3);
const OWNERS = positiveInt('BENCH_OWNERS', 1000);

const ctx = (instance: string) => ({
  instance,
  baseDir: ROOT,
  optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
});

// ---------------------------------------------------------------------------------------------
// The records: owner i holds `3 1 1` of its key generation gen[i] and one `2 1 1` (the CA).
// Each server has its own generations (Gen): what it should hold now.

type Gen = number[];
const owners = Array.from({ length: OWNERS }, (_, i) => `_25._tcp.mx${i}.${ZONE}`);
const newGen = (): Gen => owners.map(() => 0);
const hex = (s: string) => createHash('sha256').update(s).digest('hex');
const ee = (i: number, g: number): TlsaRecord => ({
  owner: owners[i]!,
  usage: 3,
  selector: 1,
  matching: 1,
  data: hex(`ee ${i} ${g}`),
});
const ta = (i: number): TlsaRecord => ({
  owner: owners[i]!,
  usage: 2,
  selector: 1,
  matching: 1,
  data: hex('ta'),
});
const desired = (gen: Gen, i: number): TlsaRecord[] => [ee(i, gen[i]!), ta(i)];

/** A key rollover at every 10th name (offset `r`): a new `3 1 1`, the old one removed. */
function rollTenPercent(gen: Gen, r: number): number {
  let n = 0;
  owners.forEach((_, i) => {
    if (i % 10 === r % 10) {
      gen[i]!++;
      n++;
    }
  });
  return n;
}

function diff(gen: Gen, i: number, current: TlsaRecord[]): OwnerChange | undefined {
  const want = desired(gen, i);
  const have = new Set(current.map(rdataText));
  const need = new Set(want.map(rdataText));
  const add = want.filter((r) => !have.has(rdataText(r)));
  const remove = current.filter((r) => !need.has(rdataText(r)));
  return add.length || remove.length ? { owner: owners[i]!, add, remove } : undefined;
}

/** What the engine does (src/engine/reconcile.ts): listMany over all names, then applyMany
 *  over the changed ones (apply when only one changed). */
async function reconcileEngine(p: DnsProvider, gen: Gen): Promise<number> {
  const listed = await p.listMany!(owners);
  const changes = owners.flatMap((o, i) => diff(gen, i, listed.get(o) ?? []) ?? []);
  if (changes.length > 1) await p.applyMany!(changes, () => TTL);
  else for (const c of changes) await p.apply(c.owner, c, TTL);
  return changes.length;
}

/** The naive loop: list and, when it differs, apply, one name at a time. */
async function reconcileNaive(p: DnsProvider, gen: Gen): Promise<number> {
  let n = 0;
  for (let i = 0; i < owners.length; i++) {
    const c = diff(gen, i, await p.list(owners[i]!));
    if (c) {
      await p.apply(c.owner, c, TTL);
      n++;
    }
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// PowerDNS (test/lab/powerdns.ts: sqlite3, every cache off, API on loopback) with the zone

interface Pdns {
  apiUrl: string;
  apiKey: string;
  version: string;
}

async function startPowerDnsWithOwners(): Promise<Pdns> {
  const pdns = await startPowerDns({ timeoutMs: 30_000 });
  // The lab's api() gives up after 10 s; a zone of 1,000 signed RRsets may take longer.
  const res = await fetch(`${pdns.apiUrl}/api/v1/servers/localhost/zones`, {
    method: 'POST',
    headers: { 'X-API-Key': pdns.apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      name: ZONE,
      kind: 'Native',
      dnssec: true,
      nameservers: [`ns.${ZONE}`],
      rrsets: [
        {
          name: `ns.${ZONE}`,
          type: 'A',
          ttl: TTL,
          records: [{ content: '127.0.0.1', disabled: false }],
        },
        ...owners.map((o, i) => ({
          name: o,
          type: 'TLSA',
          ttl: TTL,
          records: desired(newGen(), i).map((r) => ({ content: rdataText(r), disabled: false })),
        })),
      ],
    }),
  });
  if (res.status !== 201)
    throw new Error(
      `bench: creating zone ${ZONE} on PowerDNS: HTTP ${res.status} ${await res.text()}`,
    );
  const version =
    /PowerDNS Authoritative Server (\S+)/.exec(
      spawnText(toolPath('pdns_server', 'pdns-server'), ['--version']),
    )?.[1] ?? '?';
  return { apiUrl: pdns.apiUrl, apiKey: pdns.apiKey, version };
}

function spawnText(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return `${err.stdout ?? ''}${err.stderr ?? ''}`;
  }
}

/** The TLSA records of every owner as the API has them (not counted, not through the provider). */
async function pdnsState(p: Pdns): Promise<Map<string, string[]>> {
  const res = await fetch(`${p.apiUrl}/api/v1/servers/localhost/zones/${ZONE}`, {
    headers: { 'X-API-Key': p.apiKey },
  });
  const body = (await res.json()) as {
    rrsets: { name: string; type: string; records: { content: string }[] }[];
  };
  return new Map(
    body.rrsets
      .filter((r) => r.type === 'TLSA')
      .map((r) => [r.name, r.records.map((x) => x.content)]),
  );
}

// ---------------------------------------------------------------------------------------------
// Knot DNS (test/lab/knot.ts: online signing, TSIG-signed updates), behind a counting proxy

interface Knot {
  port: number;
  key: { name: string; secret: string };
  version: string;
}

async function startKnotWithOwners(): Promise<Knot> {
  const key = { name: 'tlsa-bench.', secret: randomBytes(32).toString('base64') };
  const knot = await startKnot({
    zones: [
      {
        name: ZONE,
        dnssec: true,
        zoneFileText: [
          `$TTL ${TTL}`,
          `${ZONE} ${TTL} IN SOA ns.${ZONE} hostmaster.${ZONE} 1 3600 600 86400 60`,
          `${ZONE} ${TTL} IN NS ns.${ZONE}`,
          `ns.${ZONE} ${TTL} IN A 127.0.0.1`,
          ...owners.flatMap((o, i) =>
            desired(newGen(), i).map((r) => `${o} ${TTL} IN TLSA ${rdataText(r)}`),
          ),
          '',
        ].join('\n'),
      },
    ],
    tsig: { ...key, algorithm: 'hmac-sha256', updateTypes: ['TLSA'] },
    timeoutMs: 30_000,
  });
  const version =
    /version (\S+)/.exec(spawnText(toolPath('knotd', 'knot'), ['--version']))?.[1] ?? '?';
  return { port: knot.port, key, version };
}

function rfc2136(port: number, key: Knot['key'], extra: Record<string, unknown> = {}): DnsProvider {
  return createRfc2136(
    {
      server: HOST,
      port,
      tsig_name: key.name,
      tsig_algorithm: 'hmac-sha256',
      tsig_secret: key.secret,
      timeout_s: 5,
      ...extra,
    },
    ctx('bench'),
  );
}

// ---------------------------------------------------------------------------------------------
// Measuring

type Mode = 'engine' | 'naive';
interface Sample {
  reads: number;
  writes: number;
  ms: number;
  changed: number;
}
interface Target {
  label: string;
  /** What the server should hold (shared by targets on one server). */
  gen: Gen;
  /** A fresh provider (a new run), and the counters it moves. */
  provider(): DnsProvider;
  counts(): Counts;
  /** Throws when the server does not hold exactly the desired records. */
  verify(): Promise<void>;
}

async function measure(t: Target, mode: Mode): Promise<Sample> {
  const before = { ...t.counts() };
  const p = t.provider();
  const t0 = process.hrtime.bigint();
  const changed =
    mode === 'engine' ? await reconcileEngine(p, t.gen) : await reconcileNaive(p, t.gen);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const after = t.counts();
  await t.verify();
  return { reads: after.reads - before.reads, writes: after.writes - before.writes, ms, changed };
}

function checkState(label: string, gen: Gen, have: Map<string, string[]>): void {
  owners.forEach((o, i) => {
    const got = [...(have.get(o) ?? [])]
      .map((s) => s.toLowerCase().replace(/\s+/g, ' '))
      .sort()
      .join(' | ');
    const want = desired(gen, i).map(rdataText).sort().join(' | ');
    if (got !== want) throw new Error(`bench: ${label}: ${o} holds [${got}], expected [${want}]`);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const span = (xs: number[]) =>
  Math.min(...xs) === Math.max(...xs) ? `${xs[0]}` : `${Math.min(...xs)}–${Math.max(...xs)}`;
const ms = (x: number) => (x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : `${Math.round(x)} ms`);
const ratio = (a: number, b: number) =>
  b === 0 ? '–' : `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×`;

async function main(): Promise<void> {
  let pdns: Pdns | undefined;
  let knot: Knot | undefined;
  let proxy: Awaited<ReturnType<typeof countingProxy>> | undefined;
  let tap: HttpTap | undefined;
  try {
    process.stderr.write(
      `bench: starting pdns_server and knotd with ${OWNERS} owner names each …\n`,
    );
    [pdns, knot] = await Promise.all([startPowerDnsWithOwners(), startKnotWithOwners()]);
    proxy = await countingProxy(knot.port, HOST);
    // Every request the powerdns provider makes passes the tap: counted there.
    tap = await startHttpTap(pdns.apiUrl);
    const pd = pdns;
    const kn = knot;
    const px = proxy;
    const pdnsCounts = tap.counts;
    const pdnsUrl = tap.url;
    const direct = rfc2136(kn.port, kn.key, { zone: ZONE }); // verification: not through the proxy
    const pdnsGen = newGen();
    const knotGen = newGen();
    const knotVerify = async () => {
      const listed = await direct.listMany!(owners);
      checkState('knot', knotGen, new Map([...listed].map(([o, rs]) => [o, rs.map(rdataText)])));
    };
    const targets: Target[] = [
      {
        label: `PowerDNS ${pd.version} (HTTP API, sqlite3; settle_ms 250, the default)`,
        provider: () => createPowerDns({ url: pdnsUrl, api_key: pd.apiKey }, ctx('bench')),
        gen: pdnsGen,
        counts: () => pdnsCounts,
        verify: async () => checkState('powerdns', pdnsGen, await pdnsState(pd)),
      },
      {
        label: `Knot ${kn.version} (RFC 2136; zone found by SOA query per name, the default)`,
        provider: () => rfc2136(px.port, kn.key),
        gen: knotGen,
        counts: () => px.counts,
        verify: knotVerify,
      },
      {
        label: `Knot ${kn.version} (RFC 2136; option "zone" set)`,
        provider: () => rfc2136(px.port, kn.key, { zone: ZONE }),
        gen: knotGen,
        counts: () => px.counts,
        verify: knotVerify,
      },
    ];

    const cases = [
      { id: '(a) no change', prepare: () => 0 },
      { id: '(b) 10 % changed', prepare: (gen: Gen, r: number) => rollTenPercent(gen, r) },
    ];
    const samples = new Map<string, Sample[]>();
    let round = 0;
    for (let run = 1; run <= RUNS; run++) {
      for (const t of targets) {
        for (const c of cases) {
          // Engine first or naive first, alternating, each on a fresh 10 % of the names.
          const modes: Mode[] = run % 2 ? ['engine', 'naive'] : ['naive', 'engine'];
          for (const mode of modes) {
            const expect = c.prepare(t.gen, round++);
            const s = await measure(t, mode);
            if (s.changed !== expect)
              throw new Error(
                `bench: ${t.label} ${c.id} ${mode}: changed ${s.changed} names, expected ${expect}`,
              );
            const k = `${t.label}\n${c.id}\n${mode}`;
            samples.set(k, [...(samples.get(k) ?? []), s]);
            process.stderr.write(
              `run ${run}/${RUNS} ${t.label.split(' (')[0]} ${c.id} ${mode}: ${s.reads} reads, ${s.writes} writes, ${ms(s.ms)}\n`,
            );
          }
        }
      }
    }

    const rows: string[] = [];
    for (const t of targets) {
      for (const c of cases) {
        const get = (m: Mode) => samples.get(`${t.label}\n${c.id}\n${m}`)!;
        const e = get('engine');
        const n = get('naive');
        const calls = (xs: Sample[]) => xs.map((x) => x.reads + x.writes);
        const cell = (xs: Sample[]) =>
          `${span(calls(xs))} (${span(xs.map((x) => x.reads))} R + ${span(xs.map((x) => x.writes))} W)`;
        rows.push(
          `| ${t.label} | ${c.id}, ${e[0]!.changed} of ${OWNERS} names | ${cell(e)} | ${ms(median(e.map((x) => x.ms)))} | ${cell(n)} | ${ms(median(n.map((x) => x.ms)))} | ${ratio(median(calls(n)), median(calls(e)))} | ${ratio(median(n.map((x) => x.ms)), median(e.map((x) => x.ms)))} |`,
        );
      }
    }
    const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
    const table = [
      '| server | case | engine: listMany + applyMany, API calls | wall | naive loop: list + apply per name, API calls | wall | calls naive/engine | time naive/engine |',
      '|---|---|---|---|---|---|---|---|',
      ...rows,
    ].join('\n');
    const text = [
      '# Provider batch benchmark',
      '',
      `Reconcile ${OWNERS} TLSA owner names (each holding a \`3 1 1\` and a \`2 1 1\`) in one signed zone, on a real`,
      'PowerDNS and a real Knot DNS on loopback: (a) nothing to change, (b) a key rollover at 10 % of the names',
      '(one `3 1 1` added and the old one removed at each). "engine" is what `src/engine/reconcile.ts` does',
      '(`listMany` over every name, then `applyMany` over the changed ones); "naive" is `list` and, where it differs,',
      '`apply`, one name at a time. Each run uses a fresh provider instance, as a CLI run does.',
      '',
      `- machine: ${cpu}, ${availableParallelism()} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB; Node ${process.version}; ${process.platform}`,
      `- date: ${new Date().toISOString()}; load average at the end: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
      `- runs: ${RUNS} per cell (BENCH_RUNS), engine and naive interleaved; wall time is the median, calls are min–max`,
      '',
      table,
      '',
      'API calls: PowerDNS HTTP requests (R = GET, W = PATCH; counted at an HTTP proxy in front of the API), Knot DNS',
      'messages (R = QUERY, W = UPDATE; counted by a UDP/TCP proxy on loopback in front of knotd, which both modes pass',
      'through). Every run is checked afterwards: the server must hold exactly the desired records.',
      '',
      `Reading the numbers: PowerDNS reads a whole zone in one GET, so listing ${OWNERS} names is 2 requests (zone`,
      `discovery + the zone) against ${OWNERS + 1} filtered GETs; a batch write is 1 PATCH + the zone read before and after it`,
      '(plus one `settle_ms` pause) against 3 requests and a pause per changed name. RFC 2136 has no zone read',
      "(AXFR is not an update right), so listing stays one TLSA query per name in both modes (the engine's listMany",
      'sends 16 at a time, hence the shorter wall time), and without the option "zone" each name also costs one SOA',
      'query to find its zone; the changes go in one UPDATE message per zone (split only past 800 records).',
      '',
      'Command: `npx tsc -p . && node dist/bench/providers.js` (needs pdns-server, pdns-backend-sqlite3, sqlite3, knot).',
      '',
    ].join('\n');
    writeFileSync(join(ROOT, 'bench', 'results-providers.md'), text);
    process.stdout.write(`${text}\n`);
  } finally {
    await tap?.close();
    await proxy?.close();
    await stopAll();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
