/**
 * A provider that answers the TTLs it will publish for many owner names at once
 * (effectiveTtlMany, the zone file's one look at its zone) is asked once per plan, with every
 * owner and TTL in first-seen order, and the plan is the one effectiveTtl asked name by name
 * gives: the same TTLs, reasons and raises.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DnsProvider, PublishedTtl } from '../../providers/index.js';
import { loadConfig } from '../../src/config/load.js';
import { planOnly } from '../../src/engine/reconcile.js';
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
  dir = makeTempDir('tlsa-ttl-many-');
  const root = makeCa(dir, { name: 'Root', key: 'p256' });
  ca = makeCa(dir, { name: 'Int', key: 'p256', issuer: root });
});
afterAll(() => removeTempDir(dir));

const hosts = ['mx1.example.org', 'mx2.example.org', 'mx3.example.org'];

function config(): string {
  const le = join(dir, 'le');
  for (const h of hosts) makeLineage(le, h, makeLeaf(dir, { ca, cn: h, key: 'p256' }), [ca]);
  const path = join(dir, 'config.yaml');
  writeFileSync(
    path,
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
      ...hosts.flatMap((h, i) => [
        `  s${i}:`,
        `    host: ${h}`,
        '    provider: mem',
        '    issuers: none',
        ...(i === 2 ? ['    ttl: 600'] : []),
        '    certificates:',
        `      - lineage: ${le}/live/${h}`,
      ]),
      '',
    ].join('\n'),
  );
  return path;
}

/** The TTL the fake provider publishes: mx2's RRset is pinned at 7200. */
function published(owner: string, ttl: number): number | PublishedTtl {
  if (!owner.includes('mx2') || ttl >= 7200) return ttl;
  return { ttl: 7200, why: `raised from ${ttl}: pinned`, cause: 'pinned' };
}

function provider(many: boolean) {
  const one: { owner: string; ttl: number }[] = [];
  const batches: { owner: string; ttl: number }[][] = [];
  const p: DnsProvider = {
    name: 'mem',
    async list() {
      return [];
    },
    async apply() {},
    async effectiveTtl(owner, ttl) {
      one.push({ owner, ttl });
      return published(owner, ttl);
    },
    ...(many
      ? {
          async effectiveTtlMany(asks: readonly { owner: string; ttl: number }[]) {
            batches.push(asks.map(({ owner, ttl }) => ({ owner, ttl })));
            return asks.map(({ owner, ttl }) => published(owner, ttl));
          },
        }
      : {}),
  };
  return { one, batches, providers: new Map([['mem', p]]) };
}

describe('effectiveTtlMany: one question for every owner of a plan', () => {
  it('is asked once, in first-seen order, and plans as effectiveTtl name by name does', async () => {
    const loaded = loadConfig(config());
    const batched = provider(true);
    const single = provider(false);
    const a = await planOnly(loaded, { entryPoint: 'test', providers: batched.providers });
    const b = await planOnly(loaded, { entryPoint: 'test', providers: single.providers });
    const owners = hosts.map((h) => `_25._tcp.${h}.`);
    expect(batched.one).toEqual([]);
    expect(batched.batches).toEqual([
      [
        { owner: owners[0], ttl: 3600 },
        { owner: owners[1], ttl: 3600 },
        { owner: owners[2], ttl: 600 },
      ],
    ]);
    expect(single.one).toEqual(batched.batches[0]);
    const view = (r: typeof a) =>
      r.plan.map((p) => ({
        owner: p.owner,
        ttl: p.ttl,
        why: p.ttlWhy,
        add: p.add.map((x) => [x.ttl, x.ttlRaise]),
      }));
    expect(view(a)).toEqual(view(b));
    expect(view(a).map((p) => [p.ttl, p.why])).toEqual([
      [3600, undefined],
      [7200, 'raised from 3600: pinned'],
      [600, undefined],
    ]);
    expect(a.plan[1]!.add[0]!.ttlRaise).toEqual({ from: 3600, cause: 'pinned' });
  });
});
