/**
 * The rollover engine on real files (zonefile provider, staged install dir, state dir) with the
 * clock moved forward instead of slept through, and the two observations (authoritative
 * propagation, live probe) replaced by scripted views so every order of events can be tried.
 * The lab e2e test proves the same rules with Knot, unbound, certbot, Postfix and posttls-finger.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { LiveView, PropagationView, ServedChains } from '../../src/engine/observe.js';
import { planOnly, runEngine, type EngineOptions } from '../../src/engine/reconcile.js';
import { readState, writeState } from '../../src/engine/state.js';
import { requireBuiltCli, runCli } from '../helpers/cli.js';
import {
  makeCa,
  makeLeaf,
  makeLineage,
  makeTempDir,
  opensslSpkiSha256,
  removeTempDir,
  type CaHandle,
} from '../helpers/pki.js';

let dir: string;
let root: CaHandle;
let intA: CaHandle;
let intB: CaHandle;
beforeAll(() => {
  dir = makeTempDir('tlsa-rollover-');
  root = makeCa(dir, { name: 'Root', key: 'p256' });
  intA = makeCa(dir, { name: 'Int A', key: 'p256', issuer: root });
  intB = makeCa(dir, { name: 'Int B', key: 'p256', issuer: root });
});
afterAll(() => removeTempDir(dir));

let n = 0;
function scenario() {
  const base = join(dir, `s${++n}`);
  const le = join(base, 'le');
  const config = join(base, 'config.yaml');
  makeCa(base, { name: 'unused', key: 'p256' }); // creates the directory
  const lineage = (ca: CaHandle, version: number) => {
    const leaf = makeLeaf(base, { ca, cn: 'mx.example.org', key: 'p256' });
    makeLineage(le, 'mx.example.org', leaf, [ca], { version });
    return leaf;
  };
  writeFileSync(
    config,
    [
      'state_dir: state',
      'ttl: 60',
      'verify:',
      '  resolver: "127.0.0.1:9"',
      '  propagation: true',
      '  probe: true',
      'providers:',
      '  z:',
      '    type: zonefile',
      '    path: zone.db',
      'services:',
      '  mx:',
      '    host: mx.example.org',
      '    provider: z',
      '    issuers: none',
      '    certificates:',
      `      - lineage: ${le}/live/mx.example.org`,
      '    install:',
      '      dir: installed',
      '      reload: "echo reload >> reloads.log"',
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(base, 'zone.db'),
    `_25._tcp.mx.example.org. 60 IN TLSA 3 1 1 ${'cd'.repeat(32)}\n`,
  );
  return { base, config, lineage };
}

/** Propagation: a record counts as on every server once `visibleAfter` is past. */
function propagation(state: { now: Date; lagging: boolean }): PropagationView {
  return {
    async propagated(_owner, records) {
      return state.lagging
        ? { seen: [], lagging: ['ns2.example.org. (192.0.2.2) lacks records'] }
        : { seen: records, lagging: [] };
    },
  };
}

function live(served: () => X509Certificate[][]): LiveView & { calls: number } {
  const v = {
    calls: 0,
    async servedChains(): Promise<ServedChains> {
      v.calls++;
      return {
        chains: served().map((chain) => ({
          address: '127.0.0.1',
          port: 25,
          keyType: 'ecdsa' as const,
          chain,
        })),
        errors: [],
      };
    },
  };
  return v;
}

const zone = (base: string) => readFileSync(join(base, 'zone.db'), 'utf8');
const installedLeaf = (base: string) =>
  new X509Certificate(readFileSync(join(base, 'installed/mx.example.org/current/fullchain.pem')))
    .fingerprint256;
const at = (t0: number, s: number) => new Date(t0 + s * 1000);

describe('rollover engine (zonefile, staged install, scripted DNS and probe views)', () => {
  it('bootstraps, waits for propagation and 2×TTL, installs, then retires only what no server presents', async () => {
    const s = scenario();
    const leaf1 = s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    let presented = () => [[new X509Certificate(leaf1.certPem), new X509Certificate(intA.certPem)]];
    const probe = live(() => presented());
    const t0 = Date.now();
    const run = (sec: number, extra: Partial<EngineOptions> = {}) =>
      runEngine(config, {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: probe,
        ...extra,
      });

    // 1. Nothing installed yet: the first chain is installed at once (nothing served from there).
    const r1 = await run(0);
    expect(r1.added).toBe(2);
    expect(r1.promoted.map((p) => p.source)).toEqual(['mx.example.org']);
    expect(readFileSync(join(s.base, 'reloads.log'), 'utf8')).toBe('reload\n');
    expect(zone(s.base)).toContain(opensslSpkiSha256(leaf1.certPath));

    // 2. Renewal with a new key and a NEW intermediate: nothing live matches it, so it is staged.
    const leaf2 = s.lineage(intB, 2);
    world.lagging = true;
    const r2 = await run(10);
    expect(r2.added).toBe(2);
    expect(r2.promoted).toEqual([]);
    expect(r2.waiting).toHaveLength(1);
    expect(r2.waiting[0]!.reason).toMatch(/authoritative server/);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf1.certPem).fingerprint256);

    // 3. 2×TTL later but one authoritative server still lags: still staged.
    const r3 = await run(200);
    expect(r3.promoted).toEqual([]);
    expect(readState(config.stateDir).records.filter((r) => r.seenAt)).toHaveLength(0);

    // 4. The server catches up: the records are seen now; the 2×TTL count starts here, since a
    //    cache may have fetched the old RRset just before.
    world.lagging = false;
    const r4 = await run(210);
    expect(r4.promoted).toEqual([]);
    expect(r4.waiting[0]!.eta!.getTime()).toBe(at(t0, 330).getTime());
    const r4b = await run(330);
    expect(r4b.promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf2.certPem).fingerprint256);
    expect(readlinkSync(join(s.base, 'installed/mx.example.org/previous'))).toMatch(/^releases\//);
    expect(readFileSync(join(s.base, 'reloads.log'), 'utf8')).toBe('reload\nreload\n');
    const states = readState(config.stateDir).records;
    expect(states.filter((r) => r.status === 'retiring')).toHaveLength(2);

    // 5. Grace (TTL) over, but the server still presents the old chain (reload not done yet):
    //    the old records stay.
    const r5 = await run(400);
    expect(r5.held).toHaveLength(2);
    expect(r5.removed).toBe(0);
    expect(zone(s.base)).toContain(opensslSpkiSha256(leaf1.certPath));

    // 6. The server presents the new chain: the old records go; the foreign one stays.
    presented = () => [[new X509Certificate(leaf2.certPem), new X509Certificate(intB.certPem)]];
    const r6 = await run(410);
    expect(r6.removed).toBe(2);
    expect(zone(s.base)).not.toContain(opensslSpkiSha256(leaf1.certPath));
    expect(zone(s.base)).toContain(opensslSpkiSha256(leaf2.certPath));
    expect(zone(s.base)).toContain('cd'.repeat(32));

    // 7. Idempotent: nothing more to do.
    const r7 = await run(420);
    expect([r7.added, r7.removed, r7.promoted.length, r7.held.length]).toEqual([0, 0, 0, 0]);
  });

  it('installs at once when the renewed chain already matches a live record (same intermediate, 2 1 1 live)', async () => {
    const s = scenario();
    s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const probe = live(() => []);
    const run = (sec: number) =>
      runEngine(config, {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: probe,
      });
    await run(0);
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 10),
      propagation: propagation(world),
      live: probe,
      observeAll: true,
    }); // seen at 10: live at 130
    const leaf2 = s.lineage(intA, 2);
    const r = await run(160);
    expect(r.promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf2.certPem).fingerprint256);
  });

  it('a staged chain whose records are live already is installed before the run writes the new records', async () => {
    const s = scenario();
    // The reload keeps a copy of the zone as it is at install time.
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8').replace(
        'reload: "echo reload >> reloads.log"',
        'reload: "cp zone.db zone-at-reload.db"',
      ),
    );
    s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const probe = live(() => []);
    const opts = { entryPoint: 'test', propagation: propagation(world), live: probe } as const;
    await runEngine(config, { ...opts, now: at(t0, 0) });
    await runEngine(config, { ...opts, now: at(t0, 10), observeAll: true }); // live at 130
    const leaf2 = s.lineage(intA, 2);
    const newKey = opensslSpkiSha256(leaf2.certPath);
    const r = await runEngine(config, { ...opts, now: at(t0, 160) });
    expect(r.promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf2.certPem).fingerprint256);
    // The new key's 3 1 1 is added by this run, after the install: the chain was served
    // without waiting for the run's DNS writes.
    expect(zone(s.base)).toContain(newKey);
    expect(readFileSync(join(s.base, 'zone-at-reload.db'), 'utf8')).not.toContain(newKey);
  });

  it('retire --dry-run changes nothing; a failed probe keeps records', async () => {
    const s = scenario();
    s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const failing: LiveView = {
      async servedChains() {
        return { chains: [], errors: ['127.0.0.1 port 25: connection refused'] };
      },
    };
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 0),
      propagation: propagation(world),
      live: failing,
    });
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 150),
      propagation: propagation(world),
      live: failing,
    });
    s.lineage(intB, 2);
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 160),
      propagation: propagation(world),
      live: failing,
    });
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 400),
      propagation: propagation(world),
      live: failing,
    });
    const before = zone(s.base);
    const dry = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 600),
      add: false,
      promote: false,
      dryRun: true,
      propagation: propagation(world),
      live: live(() => []),
    });
    expect(dry.retired.length).toBeGreaterThan(0);
    expect(zone(s.base)).toBe(before);
    const held = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 600),
      add: false,
      promote: false,
      propagation: propagation(world),
      live: failing,
    });
    expect(held.removed).toBe(0);
    expect(held.held[0]!.why).toMatch(
      /could not check every address: 127\.0\.0\.1 port 25: connection refused/,
    );
    expect(zone(s.base)).toBe(before);
  });

  it('converges after a crash between the intent and the provider call, and after one between the call and the confirmation', async () => {
    const s = scenario();
    const leaf1 = s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const probe = live(() => []);
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 0),
      propagation: propagation(world),
      live: probe,
    });
    // Crash A: the state says "publishing" for a record the provider never got.
    const st = readState(config.stateDir);
    const ghost = {
      ...st.records[0]!,
      data: 'ab'.repeat(32),
      status: 'publishing' as const,
      publishedAt: undefined,
    };
    writeState(config.stateDir, { ...st, records: [...st.records, ghost] });
    // Crash B: the provider has a record, the state still says "publishing" (confirmation lost).
    const st2 = readState(config.stateDir);
    st2.records[0] = { ...st2.records[0]!, status: 'publishing' };
    writeState(config.stateDir, st2);
    const r = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 5),
      propagation: propagation(world),
      live: probe,
    });
    expect(r.added).toBe(0);
    const after = readState(config.stateDir).records;
    expect(after.map((x) => x.status).sort()).toEqual(['published', 'published']);
    expect(after.some((x) => x.data === ghost.data)).toBe(false);
    expect(zone(s.base)).toContain(opensslSpkiSha256(leaf1.certPath));
    expect(existsSync(join(config.stateDir, 'lock'))).toBe(false);
  });

  it('a reload that failed or was killed after the install is run again by the next run', async () => {
    const s = scenario();
    s.lineage(intA, 1);
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8').replace(
        'reload: "echo reload >> reloads.log"',
        'reload: "test -e reload-ok && echo reload >> reloads.log"',
      ),
    );
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const probe = live(() => []);
    const first = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 0),
      propagation: propagation(world),
      live: probe,
    });
    expect(first.promoted[0]!.reloadError).toMatch(/exited with 1 \(retried on the next run\)/);
    expect(existsSync(join(s.base, 'installed/mx.example.org/.reload-pending'))).toBe(true);
    writeFileSync(join(s.base, 'reload-ok'), '');
    const second = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 5),
      propagation: propagation(world),
      live: probe,
    });
    expect(second.promoted).toEqual([expect.objectContaining({ service: 'mx', reloaded: true })]);
    expect(readFileSync(join(s.base, 'reloads.log'), 'utf8')).toBe('reload\n');
    expect(existsSync(join(s.base, 'installed/mx.example.org/.reload-pending'))).toBe(false);
    const third = await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 10),
      propagation: propagation(world),
      live: probe,
    });
    expect(third.promoted).toEqual([]);
  });

  it("waits 2× the largest TTL a cache may hold: the RRset's before the write (foreign record), or one raised after it", async () => {
    const s = scenario();
    s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const foreign = {
      owner: '_25._tcp.mx.example.org.',
      usage: 3 as const,
      selector: 1 as const,
      matching: 1 as const,
      data: 'cd'.repeat(32),
    };
    // What the servers answer: before tlsa's write, and after it (Knot resets the RRset's TTL).
    const world = { before: 600, after: 60 };
    const asked: string[] = [];
    const view: PropagationView = {
      async servedTtl(owner) {
        asked.push(owner);
        return { ttl: world.before, of: 'rrset', records: [foreign] };
      },
      async propagated(_owner, records) {
        return {
          seen: records,
          lagging: [],
          ttl: { ttl: world.after, of: 'rrset', records: [...records, foreign] },
        };
      },
    };
    let presented: X509Certificate[][] = [];
    const probe = live(() => presented);
    const t0 = Date.now();
    const run = (sec: number) =>
      runEngine(config, { entryPoint: 'test', now: at(t0, sec), propagation: view, live: probe });
    await run(0);
    expect(asked).toEqual(['_25._tcp.mx.example.org.']);

    // A new intermediate: staged; seen at 10, so live at 10 + 2×600 (not 10 + 2×60).
    const leaf2 = s.lineage(intB, 2);
    const r2 = await run(10);
    expect(r2.waiting[0]!.eta!.getTime()).toBe(at(t0, 1210).getTime());
    expect(r2.waiting[0]!.reason).toContain(
      "2×600 s: the RRset was served with TTL 600 before tlsa's write (foreign record)",
    );
    expect((await run(200)).promoted).toEqual([]);
    expect((await run(1210)).promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf2.certPem).fingerprint256);

    // The old records were in an RRset served with TTL 600: their grace is 600 s, not 60.
    presented = [[new X509Certificate(leaf2.certPem), new X509Certificate(intB.certPem)]];
    expect((await run(1300)).removed).toBe(0);
    expect((await run(1810)).removed).toBe(2);

    // Another writer raises the RRset's TTL to 900 right after tlsa's next write: seen with 900.
    world.before = 60;
    world.after = 900;
    const intC = makeCa(dir, { name: 'Int C', key: 'p256', issuer: root });
    const leaf3 = s.lineage(intC, 3);
    const r5 = await run(1900);
    expect(r5.waiting[0]!.eta!.getTime()).toBe(at(t0, 1900 + 1800).getTime());
    expect(r5.waiting[0]!.reason).toContain(
      "2×900 s: the RRset was served with TTL 900 after tlsa's write",
    );
    expect((await run(2500)).promoted).toEqual([]);
    expect((await run(3700)).promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf3.certPem).fingerprint256);

    // `plan` shows what the next records' wait would count from (the configured resolver is a
    // closed loopback port: only what the state remembers counts).
    s.lineage(intA, 4);
    const planned = await planOnly(config, { entryPoint: 'test', now: at(t0, 3800) });
    expect(planned.waits?.get('_25._tcp.mx.example.org.')).toEqual({
      ttl: 900,
      why: "the RRset was served with TTL 900 after tlsa's write (foreign record)",
    });
  });

  /** DANE-TA only, a first chain through Int A; host D already published the 2 1 1 of the next
   *  intermediate (Int B) at the owner, at `ttl`. */
  function otherWriterScenario(ttl: number) {
    const s = scenario(); // ttl: 60
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8').replace(
        '    issuers: none\n',
        '    issuers: none\n    records: ["2 1 1"]\n',
      ),
    );
    const otherHost = `_25._tcp.mx.example.org. ${ttl} IN TLSA 2 1 1 ${opensslSpkiSha256(intB.certPath)}\n`;
    writeFileSync(join(s.base, 'zone.db'), otherHost);
    s.lineage(intA, 1);
    return s;
  }

  it("another writer's record at a TTL that raised tlsa's: its wait names the raise and counts the raised TTL", async () => {
    // Host D's 2 1 1 of the next intermediate, at TTL 120: the RRset's TTL, so tlsa's (60) is
    // 120 too.
    const s = otherWriterScenario(120);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const run = (sec: number) =>
      runEngine(config, {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: live(() => []),
      });
    await run(0);
    s.lineage(intB, 2);
    const r = await run(20);
    expect(r.promoted).toEqual([]);
    expect(r.waiting[0]!.eta!.getTime()).toBe(at(t0, 20 + 240).getTime());
    expect(r.waiting[0]!.reason).toMatch(
      /another writer's record \(2 1 1 .*\) to be 2×TTL old \(2×120 s: tlsa's TTL for the name, raised from 60: .*zone\.db line 1\) has TTL 120/,
    );
  });

  it("another writer's live record lets a staged chain install, aged from when tlsa first saw it on every server; tlsa never removes it", async () => {
    const s = otherWriterScenario(60);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    let presented: X509Certificate[][] = [];
    const probe = live(() => presented);
    const run = (sec: number) =>
      runEngine(config, {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: probe,
      });
    await run(0); // bootstrap: C's own 2 1 1 of Int A, installed at once

    // Renewal through Int B: its 2 1 1 is D's. Not yet on every server: staged, no age yet.
    const leaf2 = s.lineage(intB, 2);
    world.lagging = true;
    const r1 = await run(10);
    expect(r1.added).toBe(0);
    expect(r1.promoted).toEqual([]);
    expect(r1.waiting[0]!.reason).toMatch(
      /another writer's record \(2 1 1 .*\) to reach every authoritative server/,
    );
    expect(readState(config.stateDir).observed?.['_25._tcp.mx.example.org.']).toBeUndefined();

    // Seen on every server at 20: live 2×TTL (60) later, with an ETA the daemon can sleep to.
    world.lagging = false;
    const r2 = await run(20);
    expect(r2.promoted).toEqual([]);
    expect(r2.waiting[0]!.eta!.getTime()).toBe(at(t0, 140).getTime());
    expect(r2.waiting[0]!.reason).toContain(
      'counted from when tlsa first saw it on every authoritative server',
    );
    expect((await run(100)).promoted).toEqual([]);
    const r3 = await run(140);
    expect(r3.promoted).toHaveLength(1);
    expect(installedLeaf(s.base)).toBe(new X509Certificate(leaf2.certPem).fingerprint256);

    // C's old record retires; D's record stays, never in C's state.
    presented = [[new X509Certificate(leaf2.certPem), new X509Certificate(intB.certPem)]];
    expect((await run(300)).removed).toBe(1);
    expect(zone(s.base)).toContain(opensslSpkiSha256(intB.certPath));
    expect(zone(s.base)).not.toContain(opensslSpkiSha256(intA.certPath));
    expect(readState(config.stateDir).records).toEqual([]);

    // D removes it: the observation is forgotten, so a record coming back starts over.
    writeFileSync(join(s.base, 'zone.db'), '');
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 400),
      propagation: propagation(world),
      live: probe,
      add: false,
    });
    expect(readState(config.stateDir).observed?.['_25._tcp.mx.example.org.']).toBeUndefined();
  });

  it("the hook's served-chain check (no staged install) counts another writer's live record", async () => {
    const s = scenario();
    writeFileSync(
      s.config,
      readFileSync(s.config, 'utf8')
        .replace('    issuers: none\n', '    issuers: none\n    records: ["2 1 1"]\n')
        .replace(/ {4}install:\n.*\n.*\n/, ''),
    );
    writeFileSync(
      join(s.base, 'zone.db'),
      `_25._tcp.mx.example.org. 60 IN TLSA 2 1 1 ${opensslSpkiSha256(intB.certPath)}\n`,
    );
    s.lineage(intB, 1);
    const config = loadConfig(s.config);
    expect(config.raw.services.mx!.install).toBeUndefined();
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now() + 60_000; // ahead of the real clock: observations are stamped with the run's
    const run = (sec: number) =>
      runEngine(config, {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: live(() => []),
        checkServed: true,
      });
    const r1 = await run(0);
    expect(r1.added).toBe(0);
    expect(r1.served).toEqual([expect.objectContaining({ live: false, eta: at(t0, 120) })]);
    expect((await run(119)).served[0]!.live).toBe(false);
    expect((await run(120)).served[0]!.live).toBe(true);
    expect(zone(s.base)).toContain(opensslSpkiSha256(intB.certPath));
    expect(readState(config.stateDir).records).toEqual([]);
  });

  it('ttl: lowered in the configuration: what is added next waits for the TTL the published records had', async () => {
    const s = scenario(); // ttl: 60
    s.lineage(intA, 1);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now() + 60_000; // ahead of the real clock: observations are stamped with the run's
    const run = (sec: number) =>
      runEngine(loadConfig(s.config), {
        entryPoint: 'test',
        now: at(t0, sec),
        propagation: propagation(world),
        live: live(() => []),
      });
    await run(0);
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('ttl: 60', 'ttl: 10'));
    // The hand-made line at TTL 60 is what the server serves for the RRset: it keeps tlsa at 60.
    const pinned = await planOnly(loadConfig(s.config), { entryPoint: 'test', now: at(t0, 5) });
    expect(pinned.plan[0]).toMatchObject({ ttl: 60, rettl: [] });
    expect(pinned.plan[0]!.ttlWhy).toMatch(/raised from 10: .*zone\.db line 1\) has TTL 60/);
    // Its writer lowers it too: now tlsa's own lines follow the configuration.
    const zonePath = join(s.base, 'zone.db');
    writeFileSync(
      zonePath,
      readFileSync(zonePath, 'utf8').replace(' 60 IN TLSA 3 1 1 cdcd', ' 10 IN TLSA 3 1 1 cdcd'),
    );
    const plan = await planOnly(loadConfig(s.config), { entryPoint: 'test', now: at(t0, 5) });
    expect(plan.targets.warnings.join('\n')).toContain(
      'tlsa published its records there with TTL 60; the configuration says 10',
    );
    s.lineage(intB, 2);
    const r = await run(10); // staged, seen on every server at 10: caches may hold the TTL-60 RRset
    expect(r.waiting[0]!.reason).toContain(
      "2×60 s: the RRset was served with TTL 60 before tlsa's write",
    );
    expect(r.waiting[0]!.eta!.getTime()).toBe(at(t0, 130).getTime());
    expect((await run(40)).promoted).toEqual([]);
    expect((await run(130)).promoted).toHaveLength(1);
  });

  it('a record kept because a live server still presents its chain: status and plan (the CLI) say it is held and why', async () => {
    requireBuiltCli();
    const s = scenario();
    // On the real clock (status has no other), so a TTL of 1 s keeps the waits short (the
    // hand-made line's too: a higher one would be the RRset's).
    writeFileSync(s.config, readFileSync(s.config, 'utf8').replace('ttl: 60', 'ttl: 1'));
    const zonePath = join(s.base, 'zone.db');
    writeFileSync(zonePath, readFileSync(zonePath, 'utf8').replace(' 60 IN TLSA', ' 1 IN TLSA'));
    const leaf1 = s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const probe = live(() => [
      [new X509Certificate(leaf1.certPem), new X509Certificate(intA.certPem)],
    ]);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const run = (extra: Partial<EngineOptions> = {}) =>
      runEngine(config, {
        entryPoint: 'test',
        propagation: propagation(world),
        live: probe,
        ...extra,
      });
    await run();
    s.lineage(intB, 2);
    await run(); // staged: its records were just published
    let promoted = 0;
    for (let i = 0; i < 20 && !promoted; i++) {
      await sleep(500);
      promoted = (await run()).promoted.length;
    }
    expect(promoted).toBe(1);
    await sleep(1500); // the grace (1 s) is over; the server was not reloaded: it still presents chain 1
    const r = await run();
    expect(r.held).toHaveLength(2);
    expect(readState(config.stateDir).records.filter((x) => x.held)).toHaveLength(2);

    const status = runCli(['status', '--config', s.config], { cwd: s.base });
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      /retiring .*held \(checked \d+ s ago\): 127\.0\.0\.1 port 25 still presents a chain it matches \(ecdsa\)/,
    );
    expect(status.stdout).not.toContain('removal by the next publish');
    const plan = runCli(['plan', '--config', s.config], { cwd: s.base });
    expect(plan.stdout).toMatch(
      /- 3 1 1 .*held \(checked \d+ s ago\): 127\.0\.0\.1 port 25 still presents a chain it matches/,
    );
    expect(plan.stdout).not.toContain('grace over)');
  }, 60_000);

  it('observeAll (the daemon) moves every pending record towards live, also those no staged chain waits for', async () => {
    const s = scenario();
    s.lineage(intA, 1);
    const config = loadConfig(s.config);
    const world = { now: new Date(), lagging: false };
    const t0 = Date.now();
    const probe = live(() => []);
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 0),
      propagation: propagation(world),
      live: probe,
    });
    expect(readState(config.stateDir).records.filter((r) => r.seenAt)).toHaveLength(0);
    await runEngine(config, {
      entryPoint: 'test',
      now: at(t0, 5),
      propagation: propagation(world),
      live: probe,
      observeAll: true,
    });
    expect(readState(config.stateDir).records.filter((r) => r.seenAt)).toHaveLength(2);
  });
});
