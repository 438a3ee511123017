/**
 * The provider contract (its rules are written on DnsProvider in providers/contract.ts), run against every provider by
 * provider-contract.test.ts. Each target supplies a fresh environment (a real server or an
 * HTTP fake named *-api-fake) and an independent way to read and seed the server.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DnsProvider, OwnerChange } from '../../../providers/contract.js';
import type { TlsaRecord } from '../../../src/tlsa/record.js';
import { rdataText, recordKey } from '../../../src/tlsa/record.js';
import type { ToolRequirement } from '../../lab/lab.js';

export interface ContractEnv {
  /** The zone the provider may write, e.g. `example.test.` */
  zone: string;
  /** A new provider instance with good credentials (each concurrent writer gets its own). */
  provider(): DnsProvider;
  /** A provider instance with wrong credentials (absent where there are none: zonefile). */
  badCredentials?(): DnsProvider;
  /** A provider instance and an owner name in a zone the server does not have. */
  unknownZone?(): { provider: DnsProvider; owner: string };
  /** Put a TLSA record at `owner` directly on the server, not through the provider. */
  addForeign(owner: string, record: TlsaRecord, ttl: number): Promise<void>;
  /** Put a CNAME at `owner` directly on the server. */
  addCname(owner: string, target: string): Promise<void>;
  /** The TLSA records at `owner` as the server has them, read independently of the provider. */
  readDirect(owner: string): Promise<TlsaRecord[]>;
  /** Make the next API call fail once with the service's throttling answer; absent where the
   *  protocol has no throttling (RFC 2136). */
  throttleOnce?(): void;
  /** The TTL of each TLSA record at `owner` (keyed `u s m hex`, as rdataText writes it), as
   *  the server has it, read independently of the provider. */
  readTtls(owner: string): Promise<Map<string, number>>;
  /** Fault injection: from the n-th write the provider sends (1 = the next: an API write
   *  request, an UPDATE message, a run of the exec program) on, every write fails and changes
   *  nothing, as when the server goes away mid-change; returns the function that ends it.
   *  Absent where nothing can be injected (the target's `noWriteFaults` says why). */
  failWritesFrom?(n: number): () => void;
  /** TXT records read and seeded on the server directly, not through the provider (targets
   *  whose provider has `txt`; see txt-suite.ts, which falls back to a second provider
   *  instance where this is absent). Values are the TXT texts, strings joined, unquoted. */
  txt?: {
    addForeign(owner: string, value: string, ttl: number): Promise<void>;
    read(owner: string): Promise<string[]>;
  };
  /** Secrets that must never appear in an error message. */
  secrets: string[];
  teardown(): Promise<void>;
}

export interface ContractTarget {
  /** Shown in the test name: say whether it is the real server or an *-api-fake. */
  name: string;
  tools: ToolRequirement[];
  /** Why no write can be made to fail (the env has no failWritesFrom); shown in the name of
   *  the skipped fault-injection cases. */
  noWriteFaults?: string;
  setup(): Promise<ContractEnv>;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');
let counter = 0;

/** Registers the contract cases inside the caller's describe block. */
export function contractCases(target: ContractTarget): void {
  let env: ContractEnv;
  beforeAll(async () => {
    env = await target.setup();
  }, 120_000);
  afterAll(async () => {
    await env?.teardown();
  });

  const owner = (label: string) => `_25._tcp.${label}-${process.pid}-${++counter}.${env.zone}`;
  const rec = (o: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
    owner: o,
    usage,
    selector: 1,
    matching: 1,
    data: hash(`${s}${o}`),
  });
  const sorted = (rs: TlsaRecord[]) => rs.map(recordKey).sort();

  it('adds to an empty name and lists it back', async () => {
    const o = owner('empty');
    const p = env.provider();
    expect(await p.list(o)).toEqual([]);
    await p.apply(o, { add: [rec(o, 'a'), rec(o, 'b', 2)], remove: [] }, 300);
    await p.waitUntilApplied?.();
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'a'), rec(o, 'b', 2)]));
    expect(sorted(await p.list(o))).toEqual(sorted([rec(o, 'a'), rec(o, 'b', 2)]));
  });

  it('adds beside a foreign record and leaves it alone', async () => {
    const o = owner('foreign');
    await env.addForeign(o, rec(o, 'foreign'), 300);
    const p = env.provider();
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'foreign'), rec(o, 'ours')]));
    await p.apply(o, { add: [], remove: [rec(o, 'ours')] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'foreign')]));
  });

  it('removes one of three', async () => {
    const o = owner('three');
    const p = env.provider();
    await p.apply(o, { add: [rec(o, '1'), rec(o, '2'), rec(o, '3')], remove: [] }, 300);
    await p.apply(o, { add: [], remove: [rec(o, '2')] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, '1'), rec(o, '3')]));
  });

  it('removing what is already gone succeeds and changes nothing', async () => {
    const o = owner('gone');
    const p = env.provider();
    await p.apply(o, { add: [rec(o, 'keep')], remove: [] }, 300);
    await p.apply(o, { add: [], remove: [rec(o, 'never-there')] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'keep')]));
  });

  it('two writers racing on one name both keep their records', async () => {
    const o = owner('race');
    await env.addForeign(o, rec(o, 'base'), 300);
    const writers = [env.provider(), env.provider()];
    await Promise.all(
      writers.map((w, i) => w.apply(o, { add: [rec(o, `writer${i}`)], remove: [] }, 300)),
    );
    expect(sorted(await env.readDirect(o))).toEqual(
      sorted([rec(o, 'base'), rec(o, 'writer0'), rec(o, 'writer1')]),
    );
  });

  it('reports a CNAME at the owner name and does not overwrite it', async () => {
    const o = owner('cname');
    await env.addCname(o, `target.${env.zone}`);
    const p = env.provider();
    await expect(p.apply(o, { add: [rec(o, 'x')], remove: [] }, 300)).rejects.toThrow(/CNAME/);
    expect(await env.readDirect(o)).toEqual([]);
  });

  it('fails fast with a clear message on wrong credentials, without printing the secret', async (ctx) => {
    if (!env.badCredentials) ctx.skip();
    const o = owner('creds');
    const err = await env.badCredentials!()
      .apply(o, { add: [rec(o, 'x')], remove: [] }, 300)
      .then(
        () => undefined,
        (e: Error) => e,
      );
    expect(err).toBeInstanceOf(Error);
    expect(err!.name).toBe('ProviderError');
    expect(err!.message).toMatch(
      /credential|auth|token|key|signature|BADSIG|BADKEY|NOTAUTH|401|403/i,
    );
    for (const s of env.secrets) expect(err!.message).not.toContain(s);
    expect(await env.readDirect(o)).toEqual([]);
  });

  it('fails fast naming the zone when the zone is unknown', async (ctx) => {
    if (!env.unknownZone) ctx.skip();
    const { provider, owner: o } = env.unknownZone!();
    const err = await provider.apply(o, { add: [rec(o, 'x')], remove: [] }, 300).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/zone/i);
  });

  // ---- Adds before removes (the rules in the DnsProvider doc comment) ----------------------

  /** Each change as the engine would send it: applyMany where the provider has it, else one
   *  apply per owner (what the engine does then). */
  const applyAll = async (p: DnsProvider, changes: OwnerChange[], ttl = 300) => {
    if (p.applyMany) await p.applyMany(changes, () => ttl);
    else for (const c of changes) await p.apply(c.owner, { add: c.add, remove: c.remove }, ttl);
  };
  /** An owner with a foreign record and two of ours ("old"), and the change that replaces
   *  ours with two new ones. */
  const replacing = async (
    label: string,
  ): Promise<{ o: string; before: TlsaRecord[]; change: OwnerChange }> => {
    const o = owner(label);
    await env.addForeign(o, rec(o, 'foreign'), 300);
    await env.provider().apply(o, { add: [rec(o, 'old1'), rec(o, 'old2', 2)], remove: [] }, 300);
    const before = await env.readDirect(o);
    expect(sorted(before)).toEqual(sorted([rec(o, 'foreign'), rec(o, 'old1'), rec(o, 'old2', 2)]));
    return {
      o,
      before,
      change: {
        owner: o,
        add: [rec(o, 'new1'), rec(o, 'new2', 2)],
        remove: [rec(o, 'old1'), rec(o, 'old2', 2)],
      },
    };
  };
  /** After a failed change: no record lost, nothing but the change's adds gained. */
  const neverFewer = async ({
    o,
    before,
    change,
  }: {
    o: string;
    before: TlsaRecord[];
    change: OwnerChange;
  }) => {
    const after = sorted(await env.readDirect(o));
    const allowed = new Set(sorted([...before, ...change.add]));
    expect(
      after.filter((k) => !allowed.has(k)),
      `${o}: records from nowhere`,
    ).toEqual([]);
    expect(after.length, `${o} lost records: ${after.join(', ')}`).toBeGreaterThanOrEqual(
      before.length,
    );
    expect(after, `${o}: the foreign record`).toContain(recordKey(rec(o, 'foreign')));
  };
  const done = async ({ o }: { o: string }) => {
    expect(sorted(await env.readDirect(o))).toEqual(
      sorted([rec(o, 'foreign'), rec(o, 'new1'), rec(o, 'new2', 2)]),
    );
  };
  const faultCase = (title: string) =>
    target.noWriteFaults ? `${title} (skipped: ${target.noWriteFaults})` : title;
  const faultIt = target.noWriteFaults ? it.skip : it;

  it('adds and removes in one change: both applied, records not named stay', async () => {
    const r = await replacing('swap');
    await env.provider().apply(r.o, { add: r.change.add, remove: r.change.remove }, 300);
    await done(r);
  });

  faultIt(
    faultCase(
      'adds and removes in one change: a write failing mid-change never leaves the owner with fewer records',
    ),
    async () => {
      // The failure hits the 1st, 2nd, 3rd write of the change: wherever the provider splits it,
      // some run fails between two of its writes (or in its only one).
      for (const n of [1, 2, 3]) {
        const r = await replacing(`fault${n}`);
        const p = env.provider();
        const heal = env.failWritesFrom!(n);
        try {
          await p
            .apply(r.o, { add: r.change.add, remove: r.change.remove }, 300)
            .catch(() => undefined);
        } finally {
          heal();
        }
        await neverFewer(r);
        // The next run finishes the change.
        await env.provider().apply(r.o, { add: r.change.add, remove: r.change.remove }, 300);
        await done(r);
      }
    },
  );

  it('a record both added and removed is kept (add wins)', async () => {
    const o = owner('both');
    const p = env.provider();
    await p.apply(o, { add: [rec(o, 'present')], remove: [] }, 300);
    await p.apply(
      o,
      { add: [rec(o, 'present'), rec(o, 'absent')], remove: [rec(o, 'present'), rec(o, 'absent')] },
      300,
    );
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'present'), rec(o, 'absent')]));
    // Split over two changes of one applyMany call (the engine sends one change per owner;
    // a caller may merge several): the same.
    const many = env.provider();
    if (!many.applyMany) return;
    const m = owner('both-many');
    await many.applyMany(
      [
        { owner: m, add: [rec(m, 'x')], remove: [] },
        { owner: m, add: [], remove: [rec(m, 'x')] },
      ],
      () => 300,
    );
    expect(sorted(await env.readDirect(m))).toEqual(sorted([rec(m, 'x')]));
  });

  it('a remove-only change keeps the TTL of the records that stay', async () => {
    const o = owner('ttl');
    // 300: within every target's bounds (the lab BIND's max-zone-ttl is 300).
    await env.addForeign(o, rec(o, 'foreign'), 300);
    const p = env.provider();
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect((await env.readTtls(o)).get(rdataText(rec(o, 'foreign')))).toBe(300);
    // The TTL passed now differs (the configuration changed since): removing a record must
    // not rewrite the TTL of what stays.
    await p.apply(o, { add: [], remove: [rec(o, 'ours')] }, 3600);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'foreign')]));
    expect((await env.readTtls(o)).get(rdataText(rec(o, 'foreign')))).toBe(300);
  });

  it('an add of a record already present with another TTL sets the RRset TTL to it', async () => {
    const o = owner('ttl-change');
    // 120 and 300: within every target's bounds (the lab BIND's max-zone-ttl is 300, the deSEC
    // fake's contract domain has minimum_ttl 60, Cloudflare takes 60..86400).
    await env.addForeign(o, rec(o, 'foreign'), 300);
    const p = env.provider();
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 300);
    expect((await env.readTtls(o)).get(rdataText(rec(o, 'ours')))).toBe(300);
    // The configured TTL changed: the engine re-adds the record it owns with the new TTL, and
    // what the server serves afterwards is the new TTL for the whole RRset.
    await env.provider().apply(o, { add: [rec(o, 'ours')], remove: [] }, 120);
    await p.waitUntilApplied?.();
    const ttls = await env.readTtls(o);
    expect(ttls.get(rdataText(rec(o, 'ours')))).toBe(120);
    expect(ttls.get(rdataText(rec(o, 'foreign')))).toBe(120);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'foreign'), rec(o, 'ours')]));
    // Through applyMany too, back up.
    const many = env.provider();
    if (!many.applyMany) return;
    await many.applyMany([{ owner: o, add: [rec(o, 'ours')], remove: [] }], () => 300);
    const again = await env.readTtls(o);
    expect(again.get(rdataText(rec(o, 'ours')))).toBe(300);
    expect(again.get(rdataText(rec(o, 'foreign')))).toBe(300);
  });

  faultIt(
    faultCase(
      'changes at several owners: a failing second write leaves no owner with fewer records',
    ),
    async () => {
      for (const n of [1, 2]) {
        const rs = [];
        for (const l of ['a', 'b', 'c']) rs.push(await replacing(`many${n}${l}`));
        const heal = env.failWritesFrom!(n);
        try {
          await applyAll(
            env.provider(),
            rs.map((r) => r.change),
          ).catch(() => undefined);
        } finally {
          heal();
        }
        for (const r of rs) await neverFewer(r);
        await applyAll(
          env.provider(),
          rs.map((r) => r.change),
        );
        for (const r of rs) await done(r);
      }
    },
  );

  it('retries once after throttling and then succeeds', async (ctx) => {
    if (!env.throttleOnce) ctx.skip();
    const o = owner('throttle');
    const p = env.provider();
    env.throttleOnce!();
    await p.apply(o, { add: [rec(o, 't')], remove: [] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 't')]));
  });
}
