/**
 * The TXT capability of the provider contract (TxtRecords in providers/contract.ts), run by
 * provider-contract.test.ts against every target whose provider has `txt`; a target without
 * it has each case skipped, not failed. The target's `txt` reads and seeds the server
 * directly; a target without one is read and seeded through a second provider instance.
 * Also here: an RFC 1035 reader of TXT presentation text, independent of the providers' own,
 * for the targets' direct reads.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import type { DnsProvider, TxtRecords } from '../../../providers/contract.js';
import type { ContractEnv, ContractTarget } from './suite.js';

/** TXT presentation text (quoted or bare character-strings, \X and \DDD escapes, decimal or,
 *  for Route 53, octal) → the strings joined, decoded as UTF-8. */
export function readTxtText(text: string, base: 8 | 10 = 10): string {
  const bytes: number[] = [];
  const tokens = text.match(/"(?:[^"\\]|\\.)*"|[^\s"]+/g) ?? [];
  for (const token of tokens) {
    const body = token.startsWith('"') ? token.slice(1, -1) : token;
    for (let i = 0; i < body.length; i++) {
      if (body[i] === '\\') {
        const digits = body.slice(i + 1, i + 4);
        if (/^\d{3}$/.test(digits)) {
          bytes.push(Number.parseInt(digits, base));
          i += 3;
        } else {
          bytes.push(...Buffer.from(body[i + 1]!, 'utf8'));
          i += 1;
        }
      } else bytes.push(...Buffer.from(body[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A value as presentation text for seeding: quoted, `"` and `\` escaped, other bytes left. */
export const quoteForSeed = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;

const sorted = (values: string[]) => [...values].sort();
/** A DNS-01 value: the 43-character base64url SHA-256 of a key authorization. */
const digest = (s: string) => createHash('sha256').update(s).digest('base64url');
let counter = 0;

/** Registers the TXT cases inside the caller's describe block. */
export function txtCases(target: ContractTarget): void {
  let env: ContractEnv;
  beforeAll(async () => {
    env = await target.setup();
  }, 120_000);
  afterAll(async () => {
    await env?.teardown();
  });

  const owner = (label: string) =>
    `_acme-challenge.${label}-${process.pid}-${++counter}.${env.zone}`;
  /** The provider's TXT records, or the case is skipped: the provider has no `txt` (yet). */
  const txtOf = (p: DnsProvider, ctx: TestContext): TxtRecords => {
    if (!p.txt) ctx.skip();
    return p.txt!;
  };
  /** The server's TXT values at `o`, read around the provider under test. */
  const direct = async (o: string): Promise<string[]> => {
    if (env.txt) return sorted(await env.txt.read(o));
    return sorted(await env.provider().txt!.list(o));
  };
  const addForeign = async (o: string, value: string) => {
    if (env.txt) await env.txt.addForeign(o, value, 300);
    else await env.provider().txt!.add(o, [value], 300);
  };
  const flushed = async (t: TxtRecords, p: DnsProvider) => {
    await t.flush?.();
    await p.waitUntilApplied?.();
  };
  /** The error a promise rejects with. */
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => undefined,
      (e: Error) => e,
    );

  it('adds, lists and removes a value', async (ctx) => {
    const p = env.provider();
    const t = txtOf(p, ctx);
    const o = owner('round');
    const v = digest(o);
    expect(await t.list(o)).toEqual([]);
    await t.add(o, [v], 300);
    await flushed(t, p);
    expect(await direct(o)).toEqual([v]);
    expect(await t.list(o)).toEqual([v]);
    await t.remove(o, [v]);
    await flushed(t, p);
    expect(await direct(o)).toEqual([]);
    expect(await t.list(o)).toEqual([]);
  });

  it('adds beside foreign values, also one added behind its back, and leaves them', async (ctx) => {
    const p = env.provider();
    const t = txtOf(p, ctx);
    const o = owner('foreign');
    const foreign = 'v=spf1 -all';
    await addForeign(o, foreign);
    const [a, b] = [digest(`${o}a`), digest(`${o}b`)];
    await t.add(o, [a], 300);
    expect(await direct(o)).toEqual(sorted([foreign, a]));
    // Another client's challenge lands between two of ours, unseen by this instance.
    const late = digest(`${o}late`);
    await addForeign(o, late);
    await t.add(o, [b], 300);
    expect(await direct(o)).toEqual(sorted([foreign, a, late, b]));
    await t.remove(o, [a, b]);
    expect(await direct(o)).toEqual(sorted([foreign, late]));
    expect(sorted(await t.list(o))).toEqual(sorted([foreign, late]));
  });

  it('removes only the named values', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('three');
    const [a, b, c] = ['1', '2', '3'].map((s) => digest(`${o}${s}`));
    await t.add(o, [a!, b!, c!], 300);
    await t.remove(o, [b!]);
    expect(await direct(o)).toEqual(sorted([a!, c!]));
  });

  it('adding a value already there is a no-op; removing an absent one is no error', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('idem');
    const v = digest(o);
    await t.add(o, [v], 300);
    await t.add(o, [v], 300);
    await t.add(o, [v, v], 300);
    expect(await direct(o)).toEqual([v]);
    await t.remove(o, [digest(`${o}never`)]);
    expect(await direct(o)).toEqual([v]);
    const empty = owner('empty');
    await t.remove(empty, [v]);
    expect(await direct(empty)).toEqual([]);
  });

  it('holds two values at one owner (a wildcard and its base name answered at once)', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('wild');
    const [base, wild] = [digest(`${o}base`), digest(`${o}*`)];
    await t.add(o, [base, wild], 300);
    expect(await direct(o)).toEqual(sorted([base, wild]));
    expect(sorted(await t.list(o))).toEqual(sorted([base, wild]));
    await t.remove(o, [base]);
    expect(await direct(o)).toEqual([wild]);
    await t.remove(o, [wild]);
    expect(await direct(o)).toEqual([]);
  });

  it('accepts any spelling of the owner (case, trailing dot)', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('spelling');
    const v = digest(o);
    await t.add(o.toUpperCase().slice(0, -1), [v], 300);
    expect(await direct(o)).toEqual([v]);
    expect(await t.list(`_Acme-Challenge${o.slice('_acme-challenge'.length)}`)).toEqual([v]);
    expect(await t.list(o.slice(0, -1))).toEqual([v]);
    await t.remove(o.toUpperCase(), [v]);
    expect(await direct(o)).toEqual([]);
  });

  it('writes text with spaces, quotes, backslashes, non-ASCII and over 255 bytes, and reads it back', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('text');
    const odd = 'say "hi" \\ then; (go) — café';
    const long = `k=${'x'.repeat(300)}`;
    await t.add(o, [odd, long], 300);
    expect(await direct(o)).toEqual(sorted([odd, long]));
    expect(sorted(await t.list(o))).toEqual(sorted([odd, long]));
    await t.remove(o, [odd, long]);
    expect(await direct(o)).toEqual([]);
  });

  it('refuses a CNAME at the owner with a ProviderError naming it, and leaves the CNAME', async (ctx) => {
    const t = txtOf(env.provider(), ctx);
    const o = owner('cname');
    await env.addCname(o, `target.${env.zone}`);
    const err = await failure(t.add(o, [digest(o)], 300));
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/CNAME/);
    expect(err!.message).toContain(o);
    expect(await direct(o)).toEqual([]);
  });

  it('errors are ProviderErrors naming the owner, never a secret', async (ctx) => {
    txtOf(env.provider(), ctx);
    if (!env.badCredentials && !env.unknownZone) ctx.skip();
    if (env.badCredentials) {
      const o = owner('creds');
      for (const op of [
        (t: TxtRecords) => t.add(o, [digest(o)], 300),
        (t: TxtRecords) => t.remove(o, [digest(o)]),
        (t: TxtRecords) => t.list(o),
      ]) {
        const err = await failure(op(env.badCredentials().txt!));
        expect(err?.name).toBe('ProviderError');
        expect(err!.message).toContain(o);
        for (const s of env.secrets) expect(err!.message).not.toContain(s);
      }
    }
    if (env.unknownZone) {
      const { provider, owner: tlsaOwner } = env.unknownZone();
      const o = tlsaOwner.replace(/^_25\._tcp\./, '_acme-challenge.');
      const err = await failure(provider.txt!.add(o, [digest(o)], 300));
      expect(err?.name).toBe('ProviderError');
      expect(err!.message).toContain(o);
    }
  });
}
