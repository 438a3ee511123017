/**
 * What keeps a run linear at thousands of services: each certificate source loaded once per run
 * (and again on the next run, so a renewal is seen), and state records found through an index
 * that answers exactly as a scan of the list would.
 */
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChain, type CertSource } from '../../src/certs/chain.js';
import { loadConfig } from '../../src/config/load.js';
import { findRecordIndex, upsertRecord } from '../../src/engine/record-index.js';
import { loadEachChainOnce, serviceChains } from '../../src/engine/sources.js';
import { computeTargets } from '../../src/engine/targets.js';
import { recordKey } from '../../src/tlsa/record.js';
import { makeCa, makeLeaf, makeLineage, makeTempDir, removeTempDir } from '../helpers/pki.js';

let dir: string;
let int: ReturnType<typeof makeCa>;
let lineage: string;
let configFile: string;

beforeAll(() => {
  dir = makeTempDir('tlsa-scale-');
  const root = makeCa(dir, { name: 'Scale Root', key: 'p256' });
  int = makeCa(dir, { name: 'Scale Int', key: 'p256', issuer: root });
  const leaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
  lineage = makeLineage(path.join(dir, 'le'), 'mx.example.org', leaf, [int]);
  configFile = path.join(dir, 'tlsa.yaml');
  const service = (name: string) => [
    `  ${name}:`,
    '    host: mx.example.org',
    '    ports: [25]',
    '    provider: local',
    '    issuers: none',
    '    certificates:',
    `      - lineage: ${lineage}`,
  ];
  fs.writeFileSync(
    configFile,
    [
      'state_dir: state',
      'providers:',
      '  local: {type: zonefile, path: zone.db, create: true}',
      'services:',
      ...service('a'),
      ...service('b'),
      ...service('c'),
      '',
    ].join('\n'),
  );
});

afterAll(() => {
  if (dir) removeTempDir(dir);
});

describe('certificate sources: once per run', () => {
  it('loads a lineage that three services share once, through the loader it is given', () => {
    const config = loadConfig(configFile);
    const loads: CertSource[] = [];
    const load = loadEachChainOnce((source, now) => {
      loads.push(source);
      return loadChain(source, now);
    });
    const now = new Date();
    const chains = ['a', 'b', 'c'].map(
      (s) => serviceChains(config, s, config.raw.services[s]!, now, load)[0]!,
    );
    expect(loads).toEqual([{ kind: 'lineage', dir: lineage }]);
    expect(chains.map((c) => c.leaf.x509.fingerprint256)).toEqual(
      Array(3).fill(chains[0]!.leaf.x509.fingerprint256),
    );
  });

  it('computeTargets shares one loaded chain among the services of a run', () => {
    const config = loadConfig(configFile);
    const t = computeTargets(config, ['a', 'b', 'c'], new Date());
    const leaves = t.services.map((s) => s.chains[0]!.leaf);
    expect(leaves[1]).toBe(leaves[0]);
    expect(leaves[2]).toBe(leaves[0]);
  });

  it('a lineage renewed on disk between two runs is seen by the second run', () => {
    const config = loadConfig(configFile);
    const first = computeTargets(config, ['a'], new Date());
    const renewed = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
    makeLineage(path.join(dir, 'le'), 'mx.example.org', renewed, [int]);
    const second = computeTargets(config, ['a'], new Date());
    const fp = (t: typeof first) => t.services[0]!.chains[0]!.leaf.x509.fingerprint256;
    expect(fp(second)).not.toBe(fp(first));
    expect(fp(second)).toBe(new X509Certificate(renewed.certPem).fingerprint256);
  });

  it('a source that fails to load is not kept: it fails again (and loads once fixed)', () => {
    let calls = 0;
    const load = loadEachChainOnce((source, now) => {
      calls++;
      if (calls === 1) throw new Error('not yet');
      return loadChain(source, now);
    });
    const source: CertSource = { kind: 'lineage', dir: lineage };
    const now = new Date();
    expect(() => load(source, now)).toThrow('not yet');
    expect(load(source, now).leaf).toBe(load(source, now).leaf);
    expect(calls).toBe(2);
  });
});

describe('state records: index answers as a scan would', () => {
  const rec = (provider: string, owner: string, data: string, extra = {}) => ({
    provider,
    owner,
    usage: 3 as const,
    selector: 1 as const,
    matching: 1 as const,
    data,
    ...extra,
  });
  const scan = (list: ReturnType<typeof rec>[], r: ReturnType<typeof rec>) =>
    list.findIndex((x) => x.provider === r.provider && recordKey(x) === recordKey(r));

  it('finds the first match, by provider and key, and -1 for none', () => {
    const list = [
      rec('p', 'a.', 'aa'),
      rec('q', 'a.', 'aa'),
      rec('p', 'b.', 'bb', { n: 1 }),
      rec('p', 'b.', 'bb', { n: 2 }),
    ];
    for (const r of [...list, rec('p', 'c.', 'cc'), rec('r', 'a.', 'aa')])
      expect(findRecordIndex(list, r)).toBe(scan(list, r));
    expect(findRecordIndex(list, rec('p', 'b.', 'bb'))).toBe(2);
  });

  it('stays right when the list is changed by other code (push, replace in place, splice)', () => {
    const list = [rec('p', 'a.', 'aa'), rec('p', 'b.', 'bb')];
    expect(findRecordIndex(list, rec('p', 'b.', 'bb'))).toBe(1);
    list.push(rec('p', 'c.', 'cc'));
    expect(findRecordIndex(list, rec('p', 'c.', 'cc'))).toBe(2);
    list.splice(0, 1);
    list.push(rec('p', 'd.', 'dd')); // same length as before the splice
    for (const r of [
      rec('p', 'a.', 'aa'),
      rec('p', 'b.', 'bb'),
      rec('p', 'c.', 'cc'),
      rec('p', 'd.', 'dd'),
    ])
      expect(findRecordIndex(list, r)).toBe(scan(list, r));
  });

  it('upsert replaces the first match or appends, as findIndex + assign/push did', () => {
    const list = [rec('p', 'a.', 'aa', { status: 'published' })];
    upsertRecord(list, rec('p', 'a.', 'aa', { status: 'retiring' }));
    upsertRecord(list, rec('p', 'b.', 'bb'));
    upsertRecord(list, rec('q', 'b.', 'bb'));
    expect(list).toEqual([
      rec('p', 'a.', 'aa', { status: 'retiring' }),
      rec('p', 'b.', 'bb'),
      rec('q', 'b.', 'bb'),
    ]);
    expect(findRecordIndex(list, rec('q', 'b.', 'bb'))).toBe(2);
  });
});
