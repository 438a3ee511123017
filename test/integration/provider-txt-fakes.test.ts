/**
 * TXT records (ACME DNS-01) of the hosted providers against their *-api-fake servers, and of
 * exec: what is particular to each beyond the shared TXT contract (contract/txt-suite.ts):
 * the text each API is sent (its quoting rules), a writer racing between our read and our
 * write, records written before an API changed its rules, what each fake refuses as the
 * service does, and exec programs written before TXT existed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChangeResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProvider as createCloudflare } from '../../providers/cloudflare.js';
import type { TxtRecords } from '../../providers/contract.js';
import { createProvider as createExec } from '../../providers/exec.js';
import { createProvider as createRoute53 } from '../../providers/route53.js';
import { CloudflareApiFake } from '../fakes/cloudflare-api-fake.js';
import { type DesecApiFake, startDesecApiFake } from '../fakes/desec-api-fake.js';
import { Route53ApiFake } from '../fakes/route53-api-fake.js';
import { DESEC_DOMAIN, DESEC_FAKE_OPTIONS, desecProvider } from './contract/desec.js';

const ctx = {
  instance: 't',
  baseDir: process.cwd(),
  optionError: (k: string, m: string) => new Error(`${k}: ${m}`),
};
const sorted = (xs: string[]) => [...xs].sort();
let n = 0;
const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: Error) => e,
  );

describe('route53 TXT against route53-api-fake', () => {
  const ZONE = 'txt.example.test.';
  let fake: Route53ApiFake;
  let zoneId: string;
  let txt: TxtRecords;
  beforeAll(async () => {
    fake = await Route53ApiFake.start();
    zoneId = fake.addZone(ZONE);
    txt = createRoute53(
      {
        endpoint: fake.url,
        access_key_id: fake.accessKeyId,
        secret_access_key: fake.secretAccessKey,
      },
      ctx,
    ).txt!;
  });
  afterAll(() => fake.stop());
  const owner = () => `_acme-challenge.r${++n}.${ZONE}`;

  it('sends each value in double quotes with octal escapes, in one DELETE+CREATE batch', async () => {
    const o = owner();
    await txt.add(o, ['abc'], 60);
    fake.clearLog();
    await txt.add(o, ['café "x"'], 60);
    expect(fake.values(o, 'TXT')).toEqual(['"abc"', '"caf\\303\\251 \\"x\\""']);
    const writes = fake.requests.filter((r) => r.op === 'ChangeResourceRecordSets');
    expect(writes.map((r) => r.detail)).toEqual([
      `DELETE ${o} TXT 60 ["abc"]; CREATE ${o} TXT 60 ["abc" | "caf\\303\\251 \\"x\\""]`,
    ]);
    expect(sorted(await txt.list(o))).toEqual(sorted(['abc', 'café "x"']));
  });

  it('a writer between our read and our write: the batch fails, is read again, both stay', async () => {
    const o = owner();
    await txt.add(o, ['first'], 60);
    fake.onceBeforeChange(() => fake.addRecord(o, 'TXT', 60, '"racer"'));
    fake.clearLog();
    await txt.add(o, ['ours'], 60);
    expect(sorted(fake.values(o, 'TXT'))).toEqual(sorted(['"first"', '"racer"', '"ours"']));
    expect(fake.requests.filter((r) => r.code === 'InvalidChangeBatch')).toHaveLength(1);
  });

  it('a CNAME written between our read and our write: refused for TXT, naming the owner, nothing written', async () => {
    const o = owner();
    fake.onceBeforeChange(() => fake.addRecord(o, 'CNAME', 60, 'elsewhere.example.'));
    const err = await failure(txt.add(o, ['v'], 60));
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toMatch(
      new RegExp(`${o} has a CNAME in .*TXT records cannot sit beside it`),
    );
    expect(fake.values(o, 'TXT')).toEqual([]);
    expect(fake.values(o, 'CNAME')).toEqual(['elsewhere.example.']);
  });

  it('the fake refuses a TXT value without quotes and a string over 255 characters, as Route 53 does', async () => {
    const client = new Route53Client({
      region: 'us-east-1',
      endpoint: fake.url,
      maxAttempts: 1,
      credentials: { accessKeyId: fake.accessKeyId, secretAccessKey: fake.secretAccessKey },
    });
    const o = owner();
    const send = (Value: string) =>
      failure(
        client.send(
          new ChangeResourceRecordSetsCommand({
            HostedZoneId: zoneId,
            ChangeBatch: {
              Changes: [
                {
                  Action: 'CREATE',
                  ResourceRecordSet: {
                    Name: o,
                    Type: 'TXT',
                    TTL: 60,
                    ResourceRecords: [{ Value }],
                  },
                },
              ],
            },
          }),
        ),
      );
    expect((await send('abc'))?.message).toMatch(
      /InvalidCharacterString \(Value should be enclosed in quotation marks\) encountered with 'abc'/,
    );
    expect((await send(`"${'x'.repeat(256)}"`))?.message).toMatch(/CharacterStringTooLong/);
    expect(fake.values(o, 'TXT')).toEqual([]);
  });
});

describe('cloudflare TXT against cloudflare-api-fake', () => {
  const ZONE = 'cf.example.test.';
  let fake: CloudflareApiFake;
  let zoneId: string;
  let txt: TxtRecords;
  beforeAll(async () => {
    fake = await CloudflareApiFake.start();
    zoneId = fake.addZone(ZONE);
    txt = createCloudflare({ api_token: fake.token, base_url: fake.baseUrl }, ctx).txt!;
  });
  afterAll(() => fake.stop());
  const owner = () => `_acme-challenge.c${++n}.${ZONE}`;

  it('posts one record per value, quoted, marked "managed by tlsa"; deletes only named ones by id', async () => {
    const o = owner();
    await txt.add(o, ['a "b"', 'c'], 60);
    expect(
      fake
        .records(o, 'TXT')
        .map((r) => [r.content, r.comment, r.ttl])
        .sort(),
    ).toEqual([
      ['"a \\"b\\""', 'managed by tlsa', 60],
      ['"c"', 'managed by tlsa', 60],
    ]);
    await txt.remove(o, ['c']);
    expect(fake.records(o, 'TXT').map((r) => r.content)).toEqual(['"a \\"b\\""']);
  });

  it('reads a record stored bare (before Cloudflare required quotes) as one string, and keeps it', async () => {
    const o = owner();
    fake.addRecord(o, 'TXT', { content: 'v=spf1 include:x -all' });
    expect(await txt.list(o)).toEqual(['v=spf1 include:x -all']);
    await txt.add(o, ['ours'], 60);
    await txt.remove(o, ['ours', 'v=spf1', '-all']);
    expect(fake.records(o, 'TXT').map((r) => r.content)).toEqual(['v=spf1 include:x -all']);
  });

  it('the fake quotes bare content, splits strings over 255 bytes and refuses an open quote', async () => {
    const o = owner();
    const post = (content: string) =>
      fetch(`${fake.baseUrl}/zones/${zoneId}/dns_records`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fake.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'TXT', name: o.slice(0, -1), content, ttl: 60 }),
      }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as { result?: { content?: string } },
      }));
    expect((await post('bare')).body.result?.content).toBe('"bare"');
    expect((await post(`"${'y'.repeat(300)}"`)).body.result?.content).toBe(
      `"${'y'.repeat(255)}" "${'y'.repeat(45)}"`,
    );
    expect((await post('"open')).status).toBe(400);
  });
});

describe('desec TXT against desec-api-fake', () => {
  let fake: DesecApiFake;
  let txt: TxtRecords;
  beforeAll(async () => {
    fake = await startDesecApiFake(DESEC_FAKE_OPTIONS);
    txt = desecProvider(fake).txt!;
  });
  afterAll(() => fake.close());
  const sub = () => `_acme-challenge.d${++n}`;

  it('writes the whole TXT RRset with every value quoted; another writer overwriting it is repaired', async () => {
    const s = sub();
    const o = `${s}.${DESEC_DOMAIN}.`;
    await txt.add(o, ['first'], 60);
    // Another client writes its stale set (without ours) right after our write.
    fake.afterNextWrite(() => fake.seed(DESEC_DOMAIN, s, 'TXT', 60, ['"first"', '"racer"']));
    await txt.add(o, ['caf\u00e9'], 60);
    expect(sorted(fake.rrset(DESEC_DOMAIN, s, 'TXT')!.records)).toEqual(
      sorted(['"first"', '"racer"', '"caf\\195\\169"']),
    );
    expect(sorted(await txt.list(o))).toEqual(sorted(['first', 'racer', 'café']));
  });

  it('raises a TTL below the domain minimum, as deSEC requires', async () => {
    const s = sub();
    await txt.add(`${s}.other.test.`, ['x'], 60);
    expect(fake.rrset('other.test', s, 'TXT')?.ttl).toBe(3600);
  });

  it("the fake refuses unquoted TXT with deSEC's words and stores the canonical form", async () => {
    const s = sub();
    const patch = (records: string[]) =>
      fetch(`${fake.url}/domains/${DESEC_DOMAIN}/rrsets/`, {
        method: 'PATCH',
        headers: { authorization: `Token ${fake.token}`, 'content-type': 'application/json' },
        body: JSON.stringify([{ subname: s, type: 'TXT', ttl: 60, records }]),
      }).then(async (r) => ({ status: r.status, text: await r.text() }));
    const bare = await patch(['foo']);
    expect(bare.status).toBe(400);
    expect(bare.text).toContain('Data for TXT records must be given using quotation marks.');
    expect((await patch(['"caf\u00e9" "\\059"'])).status).toBe(200);
    expect(fake.rrset(DESEC_DOMAIN, s, 'TXT')?.records).toEqual(['"caf\\195\\169" ";"']);
  });
});

describe('exec TXT', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tlsa-exec-txt-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const make = (command: string) => createExec({ command }, { ...ctx, baseDir: dir });
  const o = '_acme-challenge.mx.example.org.';

  it('sends txt-* actions with type TXT; TLSA requests now say type TLSA', async () => {
    const p = make(`cat > req.json; echo '{"values":["v1"]}'`);
    await p.txt!.add(o.toUpperCase(), ['v1'], 60);
    expect(JSON.parse(readFileSync(join(dir, 'req.json'), 'utf8'))).toEqual({
      action: 'txt-add',
      type: 'TXT',
      owner: o,
      ttl: 60,
      values: ['v1'],
    });
    const tlsa = make(`cat > req.json; echo '{"records":[]}'`);
    await tlsa.list('_25._tcp.mx.example.org');
    expect(JSON.parse(readFileSync(join(dir, 'req.json'), 'utf8'))).toEqual({
      action: 'list',
      type: 'TLSA',
      owner: '_25._tcp.mx.example.org.',
    });
  });

  it('a program written before TXT (exit 0, no answer) fails clearly, naming the owner', async () => {
    const err = await failure(make('cat > /dev/null').txt!.add(o, ['v1'], 60));
    expect(err?.name).toBe('ProviderError');
    expect(err!.message).toContain(o);
    expect(err!.message).toMatch(/answered nothing: does it know the TXT actions/);
  });

  it('an answer without the added value, or still with a removed one, is an error', async () => {
    const missing = await failure(make(`echo '{"values":["other"]}'`).txt!.add(o, ['v1'], 60));
    expect(missing?.message).toMatch(/txt-add at .* answered without "v1"/);
    const left = await failure(make(`echo '{"values":["v1"]}'`).txt!.remove(o, ['v1']));
    expect(left?.message).toMatch(/txt-remove at .* answered with "v1" still there/);
  });
});
