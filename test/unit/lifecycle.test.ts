/** The engine's two questions as pure functions (src/engine/lifecycle.ts): is this staged chain
 *  ready (a record that matches it is live), and is this removal held (a live server still
 *  presents a chain the record matches, or the probe could not tell). */
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainReady, removalHeld, type ChainEvidence } from '../../src/engine/lifecycle.js';
import type { OwnedRecord, TtlFact } from '../../src/engine/state.js';
import type { TlsaRecord } from '../../src/tlsa/record.js';
import { makeCa, makeLeaf, makeTempDir, opensslSpkiSha256, removeTempDir } from '../helpers/pki.js';

const owner = '_25._tcp.mx.example.org.';
const t0 = Date.parse('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0 + s * 1000);
const iso = (s: number) => at(s).toISOString();
const rec = (data: string, usage = 3): TlsaRecord => ({
  owner,
  usage,
  selector: 1,
  matching: 1,
  data,
});
const owned = (extra: Partial<OwnedRecord> = {}): OwnedRecord => ({
  ...rec('aa'.repeat(32)),
  provider: 'p',
  service: 'mx',
  ttl: 60,
  status: 'published',
  addedAt: iso(0),
  publishedAt: iso(0),
  by: 't',
  ...extra,
});
const evidence = (e: Partial<ChainEvidence>): ChainEvidence => ({
  owned: [],
  others: [],
  propagationChecked: true,
  ...e,
});

describe('chainReady: is this staged chain ready', () => {
  it("tlsa's own record: live 2×TTL after every authoritative server served it", () => {
    const e = evidence({ owned: [{ record: owned({ seenAt: iso(10) }), facts: [] }] });
    expect(chainReady(e, at(129))).toEqual({ ready: false, eta: at(130) });
    expect(chainReady(e, at(130))).toEqual({ ready: true, eta: at(130) });
  });

  it('not seen on every server yet: not ready, no ETA (unless propagation is not checked)', () => {
    const e = evidence({ owned: [{ record: owned(), facts: [] }] });
    expect(chainReady(e, at(10_000))).toEqual({ ready: false });
    expect(chainReady({ ...e, propagationChecked: false }, at(120))).toEqual({
      ready: true,
      eta: at(120),
    });
  });

  it('a larger TTL served before the write counts (the TTL rule)', () => {
    const before: TtlFact = { ttl: 600, at: iso(-1), source: 'before-write', served: 'rrset' };
    const e = evidence({ owned: [{ record: owned({ seenAt: iso(10) }), facts: [before] }] });
    expect(chainReady(e, at(130))).toEqual({ ready: false, eta: at(1210) });
  });

  it("another writer's record counts from when tlsa first saw it served", () => {
    const other = { record: rec('bb'.repeat(32), 2), ttl: 60, facts: [] };
    expect(chainReady(evidence({ others: [other] }), at(10_000))).toEqual({ ready: false });
    const seen = evidence({ others: [{ ...other, seenAt: iso(100) }] });
    expect(chainReady(seen, at(219))).toEqual({ ready: false, eta: at(220) });
    expect(chainReady(seen, at(220)).ready).toBe(true);
  });

  it('the earliest of several records; a first install is ready at once', () => {
    const e = evidence({
      owned: [
        { record: owned({ seenAt: iso(50) }), facts: [] },
        { record: owned({ seenAt: iso(10) }), facts: [] },
      ],
    });
    expect(chainReady(e, at(0)).eta).toEqual(at(130));
    expect(chainReady(evidence({ bootstrap: true }), at(0))).toEqual({ ready: true });
  });
});

describe('removalHeld: is this removal held', () => {
  let dir: string;
  let chain: X509Certificate[];
  let record: TlsaRecord;
  beforeAll(() => {
    dir = makeTempDir('tlsa-lifecycle-');
    const root = makeCa(dir, { name: 'Root', key: 'p256' });
    const int = makeCa(dir, { name: 'Int', key: 'p256', issuer: root });
    const leaf = makeLeaf(dir, { ca: int, cn: 'mx.example.org', key: 'p256' });
    chain = [new X509Certificate(leaf.certPem), new X509Certificate(int.certPem)];
    record = rec(opensslSpkiSha256(leaf.certPath));
  });
  afterAll(() => removeTempDir(dir));

  const seen = (chains: X509Certificate[][], errors: string[] = []) => ({
    chains: chains.map((c) => ({ address: '192.0.2.1', port: 25, keyType: 'ecdsa', chain: c })),
    errors,
  });

  it('held while a live server presents a chain the record matches', () => {
    expect(removalHeld(record, seen([chain]))).toBe(
      '192.0.2.1 port 25 still presents a chain it matches (ecdsa)',
    );
  });

  it('held when the probe could not check every address', () => {
    expect(removalHeld(record, seen([], ['192.0.2.2: timeout']))).toBe(
      'the live probe could not check every address: 192.0.2.2: timeout',
    );
  });

  it('not held when every address answered with chains it does not match', () => {
    expect(removalHeld(rec('cc'.repeat(32)), seen([chain]))).toBeUndefined();
    expect(removalHeld(record, seen([]))).toBeUndefined();
  });
});
