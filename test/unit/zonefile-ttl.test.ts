/**
 * The zonefile provider and TTLs a server really serves: a TLSA line tlsa did not write, with a
 * higher TTL, sets the TTL tlsa writes and waits on (effectiveTtl); and the file's line ending
 * (CR LF) is kept on the lines tlsa writes.
 */
import { createHash } from 'node:crypto';
import {
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PublishedTtl } from '../../providers/contract.js';
import { createProvider } from '../../providers/zonefile.js';
import { planJson, planText } from '../../src/cli/plan-view.js';
import { planOwners, type TargetRecord } from '../../src/engine/plan.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';

const owner = '_25._tcp.mx.example.org.';
const h = (s: string) => createHash('sha256').update(s).digest('hex');
const rec = (s: string): TlsaRecord => ({ owner, usage: 3, selector: 1, matching: 1, data: h(s) });
const hand = (s: string, ttl?: number) =>
  `_25._tcp.mx ${ttl ?? ''} IN TLSA 3 1 1 ${h(s)}`.replace('  ', ' ');
const HEAD = '$ORIGIN example.org.\n$TTL 300\n@ IN SOA ns1 host 1 3600 600 86400 300\n';

const made: string[] = [];
afterAll(() => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

function setup(text: string, files: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tlsa-zf-ttl-'));
  made.push(dir);
  const path = join(dir, 'zone.db');
  writeFileSync(path, text);
  for (const [name, t] of Object.entries(files)) writeFileSync(join(dir, name), t);
  const p = createProvider(
    { path },
    { instance: 't', baseDir: dir, optionError: (k, m) => new Error(`${k}: ${m}`) },
  );
  return { dir, path, p };
}

const ttlOf = (got: number | PublishedTtl | undefined) =>
  typeof got === 'number' ? got : got?.ttl;

describe('zonefile effectiveTtl: the TTL the server serves at an owner with lines tlsa did not write', () => {
  it('a hand-made TLSA line with a higher TTL raises it, naming the line; a lower one does not', async () => {
    const { p, path } = setup(`${HEAD}${hand('foreign', 7200)}\n`);
    const got = await p.effectiveTtl!(owner, 3600);
    expect(got).toEqual({
      ttl: 7200,
      why: expect.stringContaining(`${path} line 4`),
      cause: `a TLSA line there not written by tlsa (${path} line 4) has TTL 7200`,
    });
    expect((got as PublishedTtl).why).toMatch(/raised from 3600.*not written by tlsa.*TTL 7200/);
    expect(await p.effectiveTtl!(owner, 86400)).toBe(86400);
    expect(await p.effectiveTtl!('_443._tcp.www.example.org', 3600)).toBe(3600);
    // Any spelling of the owner (contract rule 5).
    expect(ttlOf(await p.effectiveTtl!('_25._TCP.MX.example.org', 3600))).toBe(7200);
  });

  it('the TTL a line inherits ($TTL, the last one written) counts; the highest of several wins', async () => {
    const { p } = setup(
      `${HEAD}_25._tcp.mx IN TLSA 3 1 1 ${h('a')}\n$TTL 900\n\tIN TLSA 3 1 1 ${h('b')}\n${hand('c', 600)}\n`,
    );
    expect(ttlOf(await p.effectiveTtl!(owner, 60))).toBe(900);
  });

  it("tlsa's own lines (marked) never pin the TTL: after a `ttl:` change they are rewritten", async () => {
    const { p, path } = setup(`${HEAD}${hand('foreign', 300)}\n`);
    await p.apply(owner, { add: [rec('ours')], remove: [] }, 7200);
    expect(await p.effectiveTtl!(owner, 3600)).toBe(3600);
    // The engine re-adds its record with the effective TTL: every line of the owner gets it.
    await p.apply(owner, { add: [rec('ours')], remove: [] }, 3600);
    const lines = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.includes('TLSA'));
    expect(lines.map((l) => l.match(/ (\d+) IN TLSA/)?.[1])).toEqual(['3600', '3600']);
  });

  it('a line in an $INCLUDEd file counts (tlsa cannot rewrite it there)', async () => {
    const { p } = setup(`${HEAD}$INCLUDE hand.db\n`, {
      'hand.db': `${hand('included', 86400)}\n`,
    });
    expect(await p.effectiveTtl!(owner, 3600)).toEqual({
      ttl: 86400,
      why: expect.stringContaining('hand.db line 1'),
      cause: expect.stringContaining('hand.db line 1) has TTL 86400'),
    });
  });

  it('a line without a TTL in a file without $TTL takes the server default: not counted', async () => {
    const { p } = setup(
      `$ORIGIN example.org.\n@ 300 IN SOA ns1 host 1 3600 600 86400 300\n_25._tcp.mx IN TLSA 3 1 1 ${h('x')}\n`,
    );
    // The SOA's 300 is the last TTL written: RFC 2308 §4 makes it the line's.
    expect(await p.effectiveTtl!(owner, 60)).toEqual(expect.objectContaining({ ttl: 300 }));
    const bare = setup(`_25._tcp.mx.example.org. IN TLSA 3 1 1 ${h('x')}\n`);
    expect(await bare.p.effectiveTtl!(owner, 60)).toBe(60);
  });

  it('a TTL over 2^31 - 1 (a digit too many) counts as 604800, the cap of RFC 8767, not as written', async () => {
    const { p } = setup(`${HEAD}${hand('typo', 2 ** 31)}\n${hand('typo2', 36000000000)}\n`);
    const got = await p.effectiveTtl!(owner, 3600);
    expect(ttlOf(got)).toBe(604800);
    expect((got as PublishedTtl).why).toMatch(
      /has TTL 2147483648 \(over 2\^31 - 1: resolvers keep it up to 604800\)/,
    );
    const { p: max } = setup(`${HEAD}${hand('typo', 2 ** 31)}\n${hand('max', 2 ** 31 - 1)}\n`);
    expect(ttlOf(await max.effectiveTtl!(owner, 3600))).toBe(2 ** 31 - 1);
  });

  it('reads the file again when it changed (an edit between two runs of one process)', async () => {
    const { p, path } = setup(`${HEAD}${hand('foreign', 600)}\n`);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(600);
    writeFileSync(path, `${HEAD}${hand('foreign', 1200)}\n\n`);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(1200);
  });

  it('reads the zone again when its path is a link moved to another file (a release swap), the old one left as it was', async () => {
    const { p, path, dir } = setup('');
    const v1 = join(dir, 'v1.db');
    const v2 = join(dir, 'v2.db');
    writeFileSync(v1, `${HEAD}${hand('foreign', 600)}\n`);
    writeFileSync(v2, `${HEAD}${hand('foreign', 1200)}\n`);
    rmSync(path);
    symlinkSync(v1, path);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(600);
    symlinkSync(v2, `${path}.new`);
    renameSync(`${path}.new`, path);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(1200);
    expect((await p.list(owner)).map((r) => r.data)).toEqual([h('foreign')]);
  });

  it('reads the file again after an edit in place of the same size whose mtime was put back (rsync --inplace -t, cp -p)', async () => {
    const { p, path } = setup(`${HEAD}${hand('foreign', 600)}\n`);
    const synced = 1_700_000_000; // the source's mtime, as a sync tool sets it
    utimesSync(path, synced, synced);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(600);
    const before = statSync(path);
    writeFileSync(path, `${HEAD}${hand('foreign', 900)}\n`);
    utimesSync(path, synced, synced);
    expect([statSync(path).size, statSync(path).mtimeMs]).toEqual([before.size, before.mtimeMs]);
    expect(ttlOf(await p.effectiveTtl!(owner, 300))).toBe(900);
  });
});

describe('the plan shows the TTL a provider publishes instead, and why', () => {
  const target = (ttl: number): TargetRecord => ({
    ...rec('ours'),
    provider: 'zf',
    service: 'mx',
    ttl,
    why: 'leaf key',
    matchesServed: true,
    chains: [],
  });

  it('planOwners: the owner plan carries the raised TTL and the reason; text and JSON say both', () => {
    const why =
      'raised from 3600: a TLSA line there not written by tlsa (zone.db line 4) has TTL 7200';
    const [p] = planOwners({
      desired: [target(3600)],
      listed: new Map(),
      owned: [],
      now: new Date(0),
      effectiveTtl: () => 7200,
      ttlWhy: () => why,
    });
    expect(p!.ttl).toBe(7200);
    expect(p!.add[0]!.ttl).toBe(7200);
    expect(p!.ttlWhy).toBe(why);
    expect(planText([p!], new Date(0))).toContain(`(provider zf, TTL 7200: ${why})`);
    expect(planJson([p!]).owners[0]).toMatchObject({ ttl: 7200, ttlWhy: why });
  });

  it('no reason when the provider publishes the TTL asked', () => {
    const [p] = planOwners({
      desired: [target(3600)],
      listed: new Map(),
      owned: [],
      now: new Date(0),
      effectiveTtl: (r) => r.ttl,
      ttlWhy: () => 'never shown',
    });
    expect(p!.ttlWhy).toBeUndefined();
    expect(planJson([p!]).owners[0]).not.toHaveProperty('ttlWhy');
  });
});

describe('zonefile: the line ending of the file is kept', () => {
  const crlf = (s: string) => s.replace(/\n/g, '\r\n');

  it('a CR LF zone gets CR LF lines from tlsa (added, retimed, after a removal, TXT); its own lines stay byte for byte', async () => {
    const text = crlf(`${HEAD}@ IN NS ns1\n${hand('foreign', 300)}\n`);
    const { p, path } = setup(text);
    await p.apply(owner, { add: [rec('a'), rec('b')], remove: [] }, 300);
    let out = readFileSync(path, 'latin1');
    expect(out.startsWith(text)).toBe(true);
    expect(out.split('\r\n').at(-1)).toBe('');
    expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    // Retimed lines (a new TTL re-added) and a removal.
    await p.apply(owner, { add: [rec('a')], remove: [rec('b')] }, 600);
    out = readFileSync(path, 'latin1');
    expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(out).toContain(' 600 IN TLSA ');
    await p.txt!.add('_acme-challenge.mx.example.org', ['token'], 60);
    out = readFileSync(path, 'latin1');
    expect(out).toContain('"token"');
    expect(out.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
  });

  it('an LF zone stays LF', async () => {
    const { p, path } = setup(`${HEAD}${hand('foreign', 300)}\n`);
    await p.apply(owner, { add: [rec('a')], remove: [] }, 300);
    expect(readFileSync(path, 'latin1')).not.toContain('\r');
  });
});
