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
import { firstByKey, RecordDraft, sameKey, stateKey } from '../../src/engine/record-index.js';
import type { OwnedRecord, StateFile } from '../../src/engine/state.js';
import { findOwned, withConfirmed, withIntents } from '../../src/engine/state-ops.js';
import { loadEachChainOnce, serviceChains } from '../../src/engine/sources.js';
import { computeTargets } from '../../src/engine/targets.js';
import { runEngine } from '../../src/engine/reconcile.js';
import { normaliseName, recordKey } from '../../src/tlsa/record.js';
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

describe('state records: a per-operation index answers as a scan would', () => {
  const rec = (provider: string, owner: string, data: string, extra = {}) => ({
    provider,
    owner,
    usage: 3 as const,
    selector: 1 as const,
    matching: 1 as const,
    data,
    ...extra,
  });
  type Rec = ReturnType<typeof rec>;
  const scan = (list: Rec[], r: Rec) =>
    list.find((x) => x.provider === r.provider && recordKey(x) === recordKey(r));

  it('finds the first match, by provider and key, and nothing for none', () => {
    const list = [
      rec('p', 'a.', 'aa'),
      rec('q', 'a.', 'aa'),
      rec('p', 'b.', 'bb', { n: 1 }),
      rec('p', 'b.', 'bb', { n: 2 }),
    ];
    const draft = new RecordDraft(list);
    const first = firstByKey(list);
    for (const r of [...list, rec('p', 'c.', 'cc'), rec('r', 'a.', 'aa')]) {
      expect(draft.find(r)).toBe(scan(list, r));
      expect(first.get(stateKey(r))).toBe(scan(list, r));
    }
    expect(draft.find(rec('p', 'b.', 'bb'))).toBe(list[2]);
  });

  it('upsert replaces the first match or appends, as findIndex + assign/push did, on a copy', () => {
    const list = [rec('p', 'a.', 'aa', { status: 'published' })];
    const before = [...list];
    const draft = new RecordDraft(list);
    draft.upsert(rec('p', 'a.', 'aa', { status: 'retiring' }));
    draft.upsert(rec('p', 'b.', 'bb'));
    draft.upsert(rec('q', 'b.', 'bb'));
    draft.upsert(rec('p', 'b.', 'bb', { n: 2 }));
    expect(draft.records).toEqual([
      rec('p', 'a.', 'aa', { status: 'retiring' }),
      rec('p', 'b.', 'bb', { n: 2 }),
      rec('q', 'b.', 'bb'),
    ]);
    for (const r of draft.records) expect(draft.find(r)).toBe(scan(draft.records, r));
    expect(list).toEqual(before); // the operation's input is never changed
  });

  // The draft keeps positions per provider and owner and compares fields: it must meet exactly
  // where the keys do, names and data holding blanks included.
  const awkward = [
    rec('p', 'a.', 'aa'),
    rec('p q', 'a.', 'aa'),
    rec('p', 'q a.', 'aa'),
    rec('p', 'a.', 'aa', { n: 2 }),
    rec('p', 'a. 3 1 1 aa', 'aa'),
    rec('p', 'a.', 'aa 3 1 1 aa'),
    rec('p', 'a.', 'aa aa'),
    { ...rec('p', 'a.', 'aa'), usage: 2 as const },
    rec('', ' a.', 'aa'),
    rec(' ', 'a.', 'aa'),
  ];
  const byKey = (list: Rec[], r: Rec) => list.find((x) => stateKey(x) === stateKey(r));

  it('sameKey says what comparing recordKey strings says, names and data with spaces included', () => {
    for (const a of awkward)
      for (const b of awkward) expect(sameKey(a, b)).toBe(recordKey(a) === recordKey(b));
  });

  it('finds and upserts as the whole-key index did, when names with spaces make keys meet', () => {
    for (let from = 0; from <= awkward.length; from++) {
      const list = awkward.slice(0, from);
      const draft = new RecordDraft(list);
      const model = [...list];
      for (const r of [...awkward].reverse()) {
        expect(draft.find(r)).toBe(byKey(model, r));
        const u = { ...r, n: from };
        const i = model.findIndex((x) => stateKey(x) === stateKey(u));
        if (i >= 0) model[i] = u;
        else model.push(u);
        draft.upsert(u);
        expect(draft.records).toEqual(model);
      }
      for (const r of awkward) expect(draft.find(r)).toBe(byKey(model, r));
    }
  });

  it('the state operations find records through it: settle, intents and confirmations', () => {
    const owned = (data: string, status: OwnedRecord['status']): OwnedRecord => ({
      ...rec('p', '_25._tcp.mx.example.org.', data),
      ttl: 300,
      service: 's',
      status,
      addedAt: '2026-01-01T00:00:00.000Z',
      by: 'test',
    });
    const state: StateFile = { version: 1, records: [owned('aa', 'published')] };
    const add = { ...owned('bb', 'published'), chains: ['c'], ttl: 600 };
    const intent = withIntents(state, [{ add: [add], remove: [state.records[0]!] }], 'me', 'T1');
    expect(intent.records.map((r) => [r.data, r.status])).toEqual([
      ['aa', 'removing'],
      ['bb', 'publishing'],
    ]);
    expect(findOwned(intent, add)?.status).toBe('publishing');
    expect(findOwned(state, add)).toBeUndefined();
    const done = withConfirmed(intent, [{ add: [add], remove: [state.records[0]!] }], 'T2');
    expect(done.records).toEqual([
      { ...owned('bb', 'published'), ttl: 600, addedAt: 'T1', by: 'me', publishedAt: 'T2' },
    ]);
    expect(findOwned(done, add)?.publishedAt).toBe('T2');
    expect(findOwned(done, state.records[0]!)).toBeUndefined();
  });
});

describe('the configuration after loading', () => {
  it('an error found after loading (the YAML document is not kept) still names its line', () => {
    const config = loadConfig(configFile);
    const err = config.error(['services', 'b', 'host'], 'not a host');
    expect(err.message).toBe('services.b.host: not a host');
    expect(err.line).toBe(fs.readFileSync(configFile, 'utf8').split('\n').indexOf('  b:') + 2);
    expect(config.lineOf(['services', 'c'])).toBe(err.line! + 6);
  });
});

describe('a run that changes nothing', () => {
  it('leaves the state file as it is (not rewritten), and a first run still creates it', async () => {
    const d = path.join(dir, 'noop');
    fs.mkdirSync(d);
    const file = path.join(d, 'tlsa.yaml');
    fs.writeFileSync(
      file,
      fs
        .readFileSync(configFile, 'utf8')
        .replace('services:', 'verify: {propagation: false, probe: false}\nservices:'),
    );
    const config = loadConfig(file);
    const stateFile = path.join(d, 'state', 'state.json');
    const seen = () => {
      const st = fs.statSync(stateFile);
      return { ino: st.ino, mtime: st.mtimeMs, text: fs.readFileSync(stateFile, 'utf8') };
    };
    const publish = () => runEngine(config, { entryPoint: 'test', now: new Date() });
    expect((await publish()).added).toBeGreaterThan(0);
    const published = seen();
    expect(JSON.parse(published.text).records.length).toBeGreaterThan(0);
    const again = await publish();
    expect(again.added + again.removed).toBe(0);
    expect(seen()).toEqual(published);
    // Without a state file, nothing to change (the record is at the provider, not owned): the
    // run still writes the (empty) state, as every run did.
    fs.rmSync(stateFile);
    const first = await publish();
    expect(first.added + first.removed).toBe(0);
    expect(JSON.parse(seen().text).records).toEqual([]);
  });
});

describe('owner names: the last one normalised is remembered', () => {
  it('answers as before for the same name again, and an invalid name throws every time', () => {
    expect(normaliseName('MX.Example.org')).toBe('mx.example.org.');
    expect(normaliseName('MX.Example.org')).toBe('mx.example.org.');
    expect(normaliseName('mx.example.org.')).toBe('mx.example.org.');
    expect(() => normaliseName('bad..name')).toThrow(RangeError);
    expect(() => normaliseName('bad..name')).toThrow(RangeError);
    expect(normaliseName('Other.example.')).toBe('other.example.');
    expect(() => normaliseName('bad..name')).toThrow(RangeError);
  });
});
