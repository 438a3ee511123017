/**
 * Issue 14, point 4: a changed `ttl:` (the service's or the top-level one) updates the records
 * tlsa already published. The engine re-adds them with the new TTL (the provider contract:
 * re-adding a present record with another TTL sets the RRset's TTL), seen here through a
 * provider that records every call; `plan` (the CLI, text and --json) says so.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DnsProvider, TlsaChange } from '../../providers/index.js';
import { planText } from '../../src/cli/plan-view.js';
import { loadConfig } from '../../src/config/load.js';
import { liveAt } from '../../src/engine/lifecycle.js';
import type { PropagationView } from '../../src/engine/observe.js';
import { planOnly, runEngine } from '../../src/engine/reconcile.js';
import { readState } from '../../src/engine/state.js';
import { recordKey, type TlsaRecord } from '../../src/tlsa/record.js';
import { requireBuiltCli, runCli } from '../helpers/cli.js';
import {
  type CaHandle,
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  removeTempDir,
} from '../helpers/pki.js';

let dir: string;
let ca: CaHandle;
beforeAll(() => {
  dir = makeTempDir('tlsa-ttl-change-');
  const root = makeCa(dir, { name: 'Root', key: 'p256' });
  ca = makeCa(dir, { name: 'Int', key: 'p256', issuer: root });
});
afterAll(() => removeTempDir(dir));

let n = 0;
function scenario(serviceTtl?: number) {
  const base = join(dir, `s${++n}`);
  const le = join(base, 'le');
  makeCa(base, { name: 'unused', key: 'p256' }); // creates the directory
  makeLineage(le, 'mx.example.org', makeLeaf(base, { ca, cn: 'mx.example.org', key: 'p256' }), [
    ca,
  ]);
  const config = join(base, 'config.yaml');
  writeFileSync(
    config,
    [
      'state_dir: state',
      'ttl: 3600',
      'verify:',
      '  propagation: false',
      '  probe: false',
      'providers:',
      '  mem:',
      '    type: zonefile',
      '    path: zone.db',
      '    create: true',
      'services:',
      '  mx:',
      '    host: mx.example.org',
      '    provider: mem',
      '    issuers: none',
      ...(serviceTtl ? [`    ttl: ${serviceTtl}`] : []),
      '    certificates:',
      `      - lineage: ${le}/live/mx.example.org`,
      '',
    ].join('\n'),
  );
  const edit = (from: string, to: string) =>
    writeFileSync(config, readFileSync(config, 'utf8').replace(from, to));
  return { base, config, edit };
}

/** An in-memory provider keeping each record's TTL, recording every apply. */
function recorder() {
  const zone = new Map<string, { record: TlsaRecord; ttl: number }>();
  const calls: { owner: string; change: TlsaChange; ttl: number }[] = [];
  const provider: DnsProvider = {
    name: 'mem',
    async list(owner) {
      return [...zone.values()].filter((x) => x.record.owner === owner).map((x) => x.record);
    },
    async apply(owner, change, ttl) {
      calls.push({ owner, change, ttl });
      for (const r of change.add) zone.set(recordKey(r), { record: r, ttl });
      for (const r of change.remove)
        if (!change.add.some((a) => recordKey(a) === recordKey(r))) zone.delete(recordKey(r));
    },
  };
  return { zone, calls, providers: new Map([['mem', provider]]) };
}

describe('a changed ttl: re-adds the records tlsa published with the new TTL (issue 14.4)', () => {
  it('top-level ttl lowered 3600 → 300: one re-add with TTL 300, the state follows, plan says so, a second run does nothing', async () => {
    const s = scenario();
    const dns = recorder();
    const run = () =>
      runEngine(loadConfig(s.config), { entryPoint: 'test', providers: dns.providers });
    const first = await run();
    expect(first.added).toBe(2); // 3 1 1 and 2 1 1
    expect(dns.calls.map((c) => c.ttl)).toEqual([3600]);

    s.edit('ttl: 3600', 'ttl: 300');
    const config = loadConfig(s.config);
    const plan = await planOnly(config, { entryPoint: 'test', providers: dns.providers });
    expect(plan.plan[0]!.rettl.map((x) => x.from)).toEqual([3600, 3600]);
    expect(planText(plan.plan, new Date())).toMatch(
      /\+ 3 1 1 .*\[TTL 3600 → 300: re-adding with the new TTL\]/,
    );
    expect(plan.targets.warnings.join('\n')).toContain(
      'tlsa published its records there with TTL 3600; the configuration says 300: publish re-adds them',
    );

    const before = readState(config.stateDir).records;
    const second = await run();
    expect(second.added).toBe(2);
    expect(dns.calls).toHaveLength(2);
    const call = dns.calls[1]!;
    expect(call.ttl).toBe(300);
    expect(call.change.remove).toEqual([]);
    expect(call.change.add.map(recordKey).sort()).toEqual(before.map(recordKey).sort());
    expect([...dns.zone.values()].map((x) => x.ttl)).toEqual([300, 300]);
    const after = readState(config.stateDir);
    expect(after.records.map((r) => [r.ttl, r.status])).toEqual([
      [300, 'published'],
      [300, 'published'],
    ]);
    // Caches may hold the RRset with TTL 3600: the re-added records count as live only 2×3600
    // after they were written, as records added then would.
    for (const r of after.records) {
      const live = liveAt(r, false, after.ttls?.[r.owner] ?? [])!;
      expect((live.getTime() - Date.parse(r.publishedAt!)) / 1000).toBe(7200);
    }

    const third = await run();
    expect(third.added).toBe(0);
    expect(dns.calls).toHaveLength(2);
    expect(third.targets.warnings.join('\n')).not.toContain('re-adds');
  });

  it("a service's ttl raised 60 → 600: re-added with 600, waits count the larger TTL", async () => {
    const s = scenario(60);
    const dns = recorder();
    const world: PropagationView = {
      async propagated(_owner, records) {
        return { seen: records, lagging: [] };
      },
    };
    const run = () =>
      runEngine(loadConfig(s.config), {
        entryPoint: 'test',
        providers: dns.providers,
        propagation: world,
        observeAll: true,
      });
    await run();
    s.edit('    ttl: 60', '    ttl: 600');
    await run();
    expect(dns.calls.map((c) => [c.ttl, c.change.add.length, c.change.remove.length])).toEqual([
      [60, 2, 0],
      [600, 2, 0],
    ]);
    const state = readState(loadConfig(s.config).stateDir);
    for (const r of state.records) {
      expect(r.ttl).toBe(600);
      const live = liveAt(r, true, state.ttls?.[r.owner] ?? [])!;
      expect((live.getTime() - Date.parse(r.seenAt!)) / 1000).toBeGreaterThanOrEqual(1200);
    }
    await run();
    expect(dns.calls).toHaveLength(2);
  });

  it('tlsa plan (the CLI): text and --json show TTL 3600 → 300', () => {
    requireBuiltCli();
    const s = scenario();
    expect(runCli(['publish', '--config', s.config], { cwd: s.base }).code).toBe(0);
    s.edit('ttl: 3600', 'ttl: 300');
    const text = runCli(['plan', '--config', s.config], { cwd: s.base });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/\+ 3 1 1 .*\[TTL 3600 → 300: re-adding with the new TTL\]/);
    expect(text.stdout).toMatch(/\+ 2 1 1 .*\[TTL 3600 → 300: re-adding with the new TTL\]/);
    const json = runCli(['plan', '--config', s.config, '--json'], { cwd: s.base });
    const owners = JSON.parse(json.stdout).owners as { add: { ttl: number; ttlFrom: number }[] }[];
    expect(owners[0]!.add.map((a) => [a.ttlFrom, a.ttl])).toEqual([
      [3600, 300],
      [3600, 300],
    ]);
  });
});
