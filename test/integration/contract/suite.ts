/**
 * The provider contract (shared/design/providers.md), run against every provider by
 * provider-contract.test.ts. Each target supplies a fresh environment (a real server or an
 * HTTP fake named *-api-fake) and an independent way to read and seed the server.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DnsProvider } from '../../../providers/index.js';
import type { TlsaRecord } from '../../../src/tlsa/record.js';
import { recordKey } from '../../../src/tlsa/record.js';
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
  /** Secrets that must never appear in an error message. */
  secrets: string[];
  teardown(): Promise<void>;
}

export interface ContractTarget {
  /** Shown in the test name: say whether it is the real server or an *-api-fake. */
  name: string;
  tools: ToolRequirement[];
  setup(): Promise<ContractEnv>;
}

const hash = (s: string) => createHash('sha256').update(s).digest('hex');
let counter = 0;

/** Registers the contract cases inside the caller's describe block. */
export function contractCases(target: ContractTarget): void {
  let env: ContractEnv;
  beforeAll(async () => { env = await target.setup(); }, 120_000);
  afterAll(async () => { await env?.teardown(); });

  const owner = (label: string) => `_25._tcp.${label}-${process.pid}-${++counter}.${env.zone}`;
  const rec = (o: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({ owner: o, usage, selector: 1, matching: 1, data: hash(`${s}${o}`) });
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
    await Promise.all(writers.map((w, i) => w.apply(o, { add: [rec(o, `writer${i}`)], remove: [] }, 300)));
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 'base'), rec(o, 'writer0'), rec(o, 'writer1')]));
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
    const err = await env.badCredentials!().apply(o, { add: [rec(o, 'x')], remove: [] }, 300).then(() => undefined, (e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err!.name).toBe('ProviderError');
    expect(err!.message).toMatch(/credential|auth|token|key|signature|BADSIG|BADKEY|NOTAUTH|401|403/i);
    for (const s of env.secrets) expect(err!.message).not.toContain(s);
    expect(await env.readDirect(o)).toEqual([]);
  });

  it('fails fast naming the zone when the zone is unknown', async (ctx) => {
    if (!env.unknownZone) ctx.skip();
    const { provider, owner: o } = env.unknownZone!();
    const err = await provider.apply(o, { add: [rec(o, 'x')], remove: [] }, 300).then(() => undefined, (e: Error) => e);
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/zone/i);
  });

  it('retries once after throttling and then succeeds', async (ctx) => {
    if (!env.throttleOnce) ctx.skip();
    const o = owner('throttle');
    const p = env.provider();
    env.throttleOnce!();
    await p.apply(o, { add: [rec(o, 't')], remove: [] }, 300);
    expect(sorted(await env.readDirect(o))).toEqual(sorted([rec(o, 't')]));
  });
}
