/** The desec provider against desec-api-fake (an HTTP fake of deSEC's documented API, not
 *  deSEC): the shared contract runs in provider-contract.test.ts; this is what is particular
 *  to deSEC. */
import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { rdataText, type TlsaRecord } from '../../src/tlsa/record.js';
import { startDesecApiFake, type DesecApiFake } from '../fakes/desec-api-fake.js';
import { desecProvider, readFake } from './contract/desec.js';

const DOMAIN = 'example.test';
const SUB = 'sub.example.test';
let n = 0;
const owner = (label: string, domain = DOMAIN) => `_25._tcp.${label}-${++n}.${domain}.`;
const sub = (o: string, domain = DOMAIN) => o.slice(0, -(domain.length + 2));
const rec = (o: string, s: string, usage: 2 | 3 = 3): TlsaRecord => ({
  owner: o,
  usage,
  selector: 1,
  matching: 1,
  data: createHash('sha256').update(`${s}${o}`).digest('hex'),
});
const keys = (rs: TlsaRecord[]) => rs.map(rdataText).sort();
const errorOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

describe('desec provider (desec-api-fake)', () => {
  let fake: DesecApiFake;
  const readOnlyToken = 'readonlytoken1234567890abcdef';
  beforeAll(async () => {
    // deSEC's usual minimum TTL; a page size of 3 so that pagination is reachable.
    fake = await startDesecApiFake({
      domains: [
        { name: DOMAIN, minimum_ttl: 3600 },
        { name: SUB, minimum_ttl: 3600 },
      ],
      pageSize: 3,
      readOnlyTokens: [readOnlyToken],
    });
  });
  afterAll(async () => {
    await fake.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("raises a TTL below the domain's minimum_ttl and says why", async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const o = owner('ttl');
    const p = desecProvider(fake);
    // The engine asks first: the TTL deSEC publishes, and why (the plan's TTL line, the waits).
    expect(await p.effectiveTtl(o, 300)).toEqual({
      ttl: 3600,
      why: "raised from 300: deSEC's minimum TTL for example.test (its minimum_ttl) is 3600, deSEC refuses lower ones; set the service's ttl to at least 3600",
      cause: "deSEC's minimum TTL for example.test (its minimum_ttl) is 3600",
    });
    expect(stderr).not.toHaveBeenCalled();
    // A caller that applies a lower TTL without asking gets it raised, and a warning.
    await p.apply(o, { add: [rec(o, 'a')], remove: [] }, 300);
    expect(fake.rrset(DOMAIN, sub(o), 'TLSA')?.ttl).toBe(3600);
    expect(p.notices).toEqual([
      expect.stringMatching(
        /TTL 300 is below deSEC's minimum TTL 3600 for example\.test; publishing with TTL 3600/,
      ),
    ]);
    expect(stderr.mock.calls.map(([s]) => String(s)).join('')).toMatch(
      /tlsa: warning: desec\(contract\): TTL 300 is below deSEC's minimum TTL 3600/,
    );
    // A TTL at or over the minimum is written as given.
    const o2 = owner('ttl-ok');
    await p.apply(o2, { add: [rec(o2, 'a')], remove: [] }, 7200);
    expect(fake.rrset(DOMAIN, sub(o2), 'TLSA')?.ttl).toBe(7200);
    expect(await p.effectiveTtl(o2, 7200)).toBe(7200);
  });

  it("only removing keeps the RRset's own TTL", async () => {
    const o = owner('keep-ttl');
    fake.seed(DOMAIN, sub(o), 'TLSA', 86400, [
      rdataText(rec(o, 'foreign')),
      rdataText(rec(o, 'ours')),
    ]);
    await desecProvider(fake).apply(o, { add: [], remove: [rec(o, 'ours')] }, 3600);
    expect(fake.rrset(DOMAIN, sub(o), 'TLSA')).toMatchObject({
      ttl: 86400,
      records: [rdataText(rec(o, 'foreign'))],
    });
  });

  it('writes with one bulk PATCH per apply (counted once against the write limit)', async () => {
    const o = owner('bulk');
    const before = fake.writes;
    const firstRequest = fake.requests.length;
    await desecProvider(fake).apply(
      o,
      { add: [rec(o, '1'), rec(o, '2'), rec(o, '3', 2)], remove: [] },
      3600,
    );
    expect(fake.writes - before).toBe(1);
    const writes = fake.requests.slice(firstRequest).filter((r) => r.method !== 'GET');
    expect(writes).toEqual([
      { method: 'PATCH', path: `/api/v1/domains/${DOMAIN}/rrsets/`, status: 200 },
    ]);
    expect(keys(readFake(fake, o))).toEqual(keys([rec(o, '1'), rec(o, '2'), rec(o, '3', 2)]));
  });

  it('follows cursor pagination (Link headers) when a name has more RRsets than a page', async () => {
    const o = owner('paged');
    fake.seed(DOMAIN, sub(o), 'A', 3600, ['192.0.2.1']);
    fake.seed(DOMAIN, sub(o), 'TXT', 3600, ['"hello"']);
    fake.seed(DOMAIN, sub(o), 'AAAA', 3600, ['2001:db8::1']);
    fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [rdataText(rec(o, 'foreign'))]);
    const firstRequest = fake.requests.length;
    const p = desecProvider(fake);
    await p.apply(o, { add: [rec(o, 'ours')], remove: [] }, 3600);
    expect(keys(await p.list(o))).toEqual(keys([rec(o, 'foreign'), rec(o, 'ours')]));
    const log = fake.requests.slice(firstRequest);
    expect(
      log.some((r) => r.status === 400 && r.path.includes(`subname=${encodeURIComponent(sub(o))}`)),
    ).toBe(true);
    expect(
      log.filter((r) => r.method === 'GET' && /[?&]cursor=/.test(r.path) && r.status === 200)
        .length,
    ).toBeGreaterThanOrEqual(2);
    expect(fake.rrset(DOMAIN, sub(o), 'A')?.records).toEqual(['192.0.2.1']);
  });

  it('repairs its records when another writer overwrites them with a stale set after our write', async () => {
    const o = owner('lost');
    const base = rdataText(rec(o, 'base'));
    fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [base]);
    fake.afterNextWrite(() => fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [base]));
    const before = fake.writes;
    await desecProvider(fake).apply(o, { add: [rec(o, 'ours')], remove: [] }, 3600);
    expect(fake.writes - before).toBe(2);
    expect(keys(readFake(fake, o))).toEqual(keys([rec(o, 'base'), rec(o, 'ours')]));
  });

  it('waits out a 429 for its Retry-After, and fails fast when the wait is longer than max_wait_s', async () => {
    const o = owner('throttle');
    fake.throttleOnce(1);
    const t0 = Date.now();
    await desecProvider(fake).apply(o, { add: [rec(o, 't')], remove: [] }, 3600);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(keys(readFake(fake, o))).toEqual(keys([rec(o, 't')]));

    const o2 = owner('throttle-long');
    fake.throttleOnce(600);
    const err = await errorOf(
      desecProvider(fake, { max_wait_s: 30 }).apply(o2, { add: [rec(o2, 't')], remove: [] }, 3600),
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(/rate limited by deSEC .*wait 600 s, more than max_wait_s \(30\)/);
    expect(readFake(fake, o2)).toEqual([]);
  });

  it('after a 429 on its write waits, reads again and recomputes: never re-sends a stale set', async () => {
    const o = owner('throttle-write');
    fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [rdataText(rec(o, 'base'))]);
    fake.throttleOnce(1, 'PATCH');
    // During the wait another writer adds its record: a re-sent body would delete it.
    const other = setTimeout(
      () =>
        fake.seed(DOMAIN, sub(o), 'TLSA', 3600, [
          rdataText(rec(o, 'base')),
          rdataText(rec(o, 'meanwhile')),
        ]),
      300,
    );
    const before = fake.requests.length;
    await desecProvider(fake).apply(o, { add: [rec(o, 'ours')], remove: [] }, 3600);
    clearTimeout(other);
    expect(keys(readFake(fake, o))).toEqual(
      keys([rec(o, 'base'), rec(o, 'meanwhile'), rec(o, 'ours')]),
    );
    expect(fake.requests.slice(before).map((r) => `${r.method} ${r.status}`)).toEqual([
      'GET 200', // the domain (owns_qname)
      'GET 200',
      'PATCH 429', // read, write: throttled
      'GET 200',
      'PATCH 200',
      'GET 200', // after Retry-After: read, write, read back
    ]);
  });

  it('a wrong token: 401 "token rejected", without the token', async () => {
    const bad = 'WrongTokenWrongTokenWrong123';
    const o = owner('badtoken');
    const err = await errorOf(
      desecProvider(fake, { token: bad }).apply(o, { add: [rec(o, 'x')], remove: [] }, 3600),
    );
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toBe(
      'desec(contract): token rejected (HTTP 401: Invalid token.); check "token"',
    );
    expect(err!.message).not.toContain(bad);
  });

  it('a token whose scoping policy forbids the write: 403 names the policy it needs', async () => {
    const o = owner('policy');
    const err = await errorOf(
      desecProvider(fake, { token: readOnlyToken }).apply(
        o,
        { add: [rec(o, 'x')], remove: [] },
        3600,
      ),
    );
    expect(err!.message).toContain(
      `the token may not write TLSA at "${sub(o)}" in domain ${DOMAIN} (HTTP 403: You do not have permission to perform this action.)`,
    );
    expect(err!.message).toContain(
      `{"domain": "${DOMAIN}", "subname": "${sub(o)}", "type": "TLSA", "perm_write": true}`,
    );
    expect(err!.message).not.toContain(readOnlyToken);
    expect(readFake(fake, o)).toEqual([]);
  });

  it('reports a CNAME at the name before writing anything', async () => {
    const o = owner('cname');
    fake.seed(DOMAIN, sub(o), 'CNAME', 3600, ['target.example.test.']);
    const firstRequest = fake.requests.length;
    const err = await errorOf(
      desecProvider(fake).apply(o, { add: [rec(o, 'x')], remove: [] }, 3600),
    );
    expect(err!.message).toMatch(
      /has a CNAME \(to target\.example\.test\.\) in deSEC domain example\.test/,
    );
    expect(fake.requests.slice(firstRequest).filter((r) => r.method !== 'GET')).toEqual([]);
  });

  it('finds the responsible domain (longest suffix) and writes the subname relative to it', async () => {
    const o = owner('deep', SUB);
    await desecProvider(fake).apply(o, { add: [rec(o, 'deep')], remove: [] }, 3600);
    expect(keys(readFake(fake, o, SUB))).toEqual(keys([rec(o, 'deep')]));
    expect(fake.rrset(DOMAIN, `${sub(o, SUB)}.sub`, 'TLSA')).toBeUndefined();
  });

  it('with the option "domain": names a domain the account lacks, and refuses names outside it', async () => {
    const o = owner('opt');
    const missing = await errorOf(
      desecProvider(fake, { domain: 'missing.test' }).apply(
        '_25._tcp.mx.missing.test.',
        { add: [rec('_25._tcp.mx.missing.test.', 'x')], remove: [] },
        3600,
      ),
    );
    expect(missing!.message).toMatch(
      /domain \(zone\) missing\.test not found in this deSEC account/,
    );
    const outside = await errorOf(
      desecProvider(fake, { domain: SUB }).apply(o, { add: [rec(o, 'x')], remove: [] }, 3600),
    );
    expect(outside!.message).toMatch(/is not in domain sub\.example\.test/);
    await desecProvider(fake, { domain: `${DOMAIN}.` }).apply(
      o,
      { add: [rec(o, 'x')], remove: [] },
      3600,
    );
    expect(keys(readFake(fake, o))).toEqual(keys([rec(o, 'x')]));
  });

  it("passes deSEC's validation message on (TTL over the maximum)", async () => {
    const o = owner('maxttl');
    const err = await errorOf(
      desecProvider(fake).apply(o, { add: [rec(o, 'x')], remove: [] }, 700000),
    );
    expect(err!.message).toBe(
      `desec(contract): deSEC rejected the TLSA RRset at ${o} (HTTP 400): ttl: Ensure this value is less than or equal to 604800.`,
    );
  });

  it('rejects bad options at their config key', () => {
    expect(() => desecProvider(fake, { token: undefined })).toThrow(/^token: /);
    expect(() => desecProvider(fake, { api_url: 'desec.io' })).toThrow(/^api_url: /);
    expect(() => desecProvider(fake, { domain: 'bad..name' })).toThrow(/^domain: /);
    expect(() => desecProvider(fake, { zone: 'x' })).toThrow(/^zone: desec has no option "zone"/);
  });

  describe("the fake follows deSEC's documented answers", () => {
    const call = async (
      method: string,
      path: string,
      body?: unknown,
      token: string | null = fake.token,
    ) => {
      const res = await fetch(`${fake.url}${path}`, {
        method,
        headers: {
          ...(token === null ? {} : { Authorization: `Token ${token}` }),
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await res.text();
      return {
        status: res.status,
        body: text ? (JSON.parse(text) as unknown) : undefined,
        headers: res.headers,
      };
    };

    it('authentication, unknown domain, owns_qname', async () => {
      expect(await call('GET', '/domains/', undefined, null)).toMatchObject({
        status: 401,
        body: { detail: 'Authentication credentials were not provided.' },
      });
      const bad = await call('GET', '/domains/', undefined, 'nope');
      expect(bad).toMatchObject({ status: 401, body: { detail: 'Invalid token.' } });
      expect(bad.headers.get('www-authenticate')).toBe('Token');
      expect(await call('GET', '/domains/unknown.test/rrsets/')).toMatchObject({
        status: 404,
        body: { detail: 'Not found.' },
      });
      expect(await call('GET', `/domains/?owns_qname=_25._tcp.mx.${SUB}`)).toMatchObject({
        status: 200,
        body: [{ name: SUB, minimum_ttl: 3600 }],
      });
      expect(await call('GET', '/domains/?owns_qname=x.nowhere.invalid')).toMatchObject({
        status: 200,
        body: [],
      });
    });

    it('validation: malformed TLSA, TTL minimum, CNAME exclusivity (bulk errors are per item)', async () => {
      const bulk = await call('PATCH', `/domains/${DOMAIN}/rrsets/`, [
        { subname: 'v1', type: 'TLSA', ttl: 3600, records: ['3 1 1 abc'] },
        { subname: 'v2', type: 'TLSA', ttl: 3600, records: ['x 1 1 abcd'] },
        { subname: 'v3', type: 'TLSA', ttl: 60, records: ['3 1 1 abcd'] },
        { subname: 'v4', type: 'TLSA', ttl: 3600, records: ['3 1 1 abcd'] },
      ]);
      expect(bulk).toEqual({
        status: 400,
        headers: expect.anything(),
        body: [
          { non_field_errors: ['Cannot parse hexadecimal or base64 record contents'] },
          { non_field_errors: ['Record content for type TLSA malformed: expecting an integer'] },
          { ttl: ['Ensure this value is greater than or equal to 3600.'] },
          {},
        ],
      });
      expect(fake.rrset(DOMAIN, 'v4', 'TLSA')).toBeUndefined(); // atomic: nothing written
      fake.seed(DOMAIN, 'cn', 'CNAME', 3600, ['target.example.test.']);
      expect(
        await call('PATCH', `/domains/${DOMAIN}/rrsets/`, [
          { subname: 'cn', type: 'TLSA', ttl: 3600, records: ['3 1 1 ABCD'] },
        ]),
      ).toMatchObject({
        status: 400,
        body: [
          {
            non_field_errors: [
              'RRset with conflicting type present: database (CNAME). (No other RRsets are allowed alongside CNAME.)',
            ],
          },
        ],
      });
      const ok = await call('PATCH', `/domains/${DOMAIN}/rrsets/`, [
        { subname: 'v4', type: 'TLSA', ttl: 3600, records: ['3 1 1 AB CD'] },
      ]);
      expect(ok).toMatchObject({
        status: 200,
        body: [
          {
            subname: 'v4',
            name: `v4.${DOMAIN}.`,
            type: 'TLSA',
            ttl: 3600,
            records: ['3 1 1 abcd'],
          },
        ],
      });
      expect(await call('GET', `/domains/${DOMAIN}/rrsets/v4/TLSA/`)).toMatchObject({
        status: 200,
        body: { records: ['3 1 1 abcd'] },
      });
      expect(
        await call('PATCH', `/domains/${DOMAIN}/rrsets/v4/TLSA/`, { records: [] }),
      ).toMatchObject({ status: 204 });
      expect(await call('GET', `/domains/${DOMAIN}/rrsets/v4/TLSA/`)).toMatchObject({
        status: 404,
      });
    });

    it('throttling and pagination answers', async () => {
      fake.throttleOnce(7);
      const t = await call('GET', '/domains/');
      expect(t).toMatchObject({
        status: 429,
        body: { detail: 'Request was throttled. Expected available in 7 seconds.' },
      });
      expect(t.headers.get('retry-after')).toBe('7');
      for (const s of ['p1', 'p2', 'p3', 'p4']) fake.seed(DOMAIN, s, 'TXT', 3600, ['"x"']);
      const page = await call('GET', `/domains/${DOMAIN}/rrsets/?type=TXT`);
      expect(page.status).toBe(400);
      expect((page.body as { detail: string }).detail).toMatch(
        /^Pagination required\. You can query up to 3 items at a time \(\d+ total\)\./,
      );
      expect(page.headers.get('link')).toMatch(
        /^<http:\/\/127\.0\.0\.1:\d+\/api\/v1\/domains\/example\.test\/rrsets\/\?type=TXT&cursor=>; rel="first"$/,
      );
    });
  });
});
