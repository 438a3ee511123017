/**
 * TSIG (RFC 8945) and the RFC 2136 UPDATE encoding against independent implementations:
 *  - fixed vectors: UPDATE messages signed by Knot's knsupdate (hmac-sha256) and BIND's
 *    nsupdate (hmac-sha512), captured once from the wire; our code must verify them and, signing
 *    the same bytes at the same time, produce the very same message;
 *  - the UPDATE knsupdate sends for "prereq nxrrset CNAME / delete one TLSA / add one TLSA" is
 *    byte for byte what buildTlsaUpdate makes;
 *  - live: knsupdate and nsupdate send to a UDP listener in this test; we verify their request
 *    and answer with a response signed by our code, which the tools must accept (and must
 *    reject when the response is signed with another secret).
 * That a real server accepts our signed requests is shown in test/integration.
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTsig, signMessage, verifyMessage, type TsigKey } from '../../src/dns/tsig.js';
import { buildTlsaUpdate } from '../../src/dns/update.js';
import { readHeader, walkRecords } from '../../src/dns/wire.js';
import { createProvider, parseKeyText } from '../../providers/rfc2136.js';
import { labDescribe } from '../lab/lab.js';

const KEY256: TsigKey = {
  name: 'tlsa-test-key.',
  algorithm: 'hmac-sha256',
  secret: Buffer.from('tlsa unit test vector key 256!!!'),
};
const KEY512: TsigKey = {
  name: 'tlsa-test-key.',
  algorithm: 'hmac-sha512',
  secret: Buffer.from('tlsa unit test vector key for hmac-sha512, 64 bytes long......!!'),
};
const OWNER = '_25._tcp.mx.example.test.';
const DATA = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';

/** knsupdate 3.2.6: zone example.test., update add OWNER 300 TLSA 3 1 1 DATA, key KEY256. */
const KNSUPDATE_SHA256 = Buffer.from(
  '954f28000001000000010001076578616d706c6504746573740000060001035f3235045f746370026d78c00c003400010000012c0023' +
    '0301010123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0d746c73612d746573742d6b65790000fa00ff' +
    '00000000003d0b686d61632d7368613235360000006b05628c012c00203deb4f681f1facb2337f04d508fa8d4d87ef4e48c881502e6b' +
    '8d5c7dc1bd8c82954f00000000',
  'hex',
);
/** nsupdate 9.18.49: the same update, key KEY512. */
const NSUPDATE_SHA512 = Buffer.from(
  '450328000001000000010001076578616d706c6504746573740000060001035f3235045f746370026d78076578616d706c6504746573' +
    '7400003400010000012c00230301010123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0d746c73612d74' +
    '6573742d6b65790000fa00ff00000000005d0b686d61632d7368613531320000006b05628c012c00405598ab5a84c439270a759b36d9' +
    'f0d51ca81ee7143ea950ea6253a67a40f981f7ba279b6683bf46ce20f208462738da8156a66e8ce15083da6c96797833600281450300' +
    '000000',
  'hex',
);
/** knsupdate: prereq nxrrset OWNER CNAME; update delete OWNER TLSA 3 1 1 ab..; update add OWNER 300 TLSA 2 1 1 cd.. */
const KNSUPDATE_PREREQ = Buffer.from(
  '19bc28000001000100020000076578616d706c6504746573740000060001035f3235045f746370026d78c00c000500fe000000000000' +
    'c01e003400fe000000000023030101ababababababababababababababababababababababababababababababababc01e003400010000' +
    '012c0023020101cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd',
  'hex',
);

describe('TSIG against captured knsupdate / nsupdate messages', () => {
  for (const [tool, msg, key] of [
    ['knsupdate', KNSUPDATE_SHA256, KEY256],
    ['nsupdate', NSUPDATE_SHA512, KEY512],
  ] as const) {
    it(`verifies the ${key.algorithm} MAC of ${tool}`, () => {
      const tsig = parseTsig(msg)!;
      expect(tsig.keyName).toBe('tlsa-test-key.');
      expect(tsig.algorithm).toBe(`${key.algorithm}.`);
      expect(tsig.fudge).toBe(300);
      expect(tsig.mac.length).toBe(key.algorithm === 'hmac-sha256' ? 32 : 64);
      expect(verifyMessage(msg, key, { now: tsig.timeSigned })).toMatchObject({ ok: true });
    });

    it(`signs ${tool}'s unsigned message into the same bytes`, () => {
      const tsig = parseTsig(msg)!;
      const unsigned = Buffer.from(msg.subarray(0, tsig.start));
      unsigned.writeUInt16BE(readHeader(msg).counts[3] - 1, 10);
      const ours = signMessage(unsigned, key, { now: tsig.timeSigned, fudge: 300 });
      expect(ours.mac.toString('hex')).toBe(tsig.mac.toString('hex'));
      expect(ours.message.toString('hex')).toBe(msg.toString('hex'));
    });

    it(`rejects ${tool}'s message when a byte, the secret, the algorithm or the time is wrong`, () => {
      const now = parseTsig(msg)!.timeSigned;
      const tampered = Buffer.from(msg);
      tampered[40] = tampered[40]! ^ 1; // inside the TLSA RDATA
      expect(verifyMessage(tampered, key, { now })).toMatchObject({ ok: false, reason: 'bad-mac' });
      const wrongSecret = { ...key, secret: Buffer.from(key.secret).fill(1, 0, 1) };
      expect(verifyMessage(msg, wrongSecret, { now })).toMatchObject({
        ok: false,
        reason: 'bad-mac',
      });
      const otherAlg: TsigKey = {
        ...key,
        algorithm: key.algorithm === 'hmac-sha256' ? 'hmac-sha512' : 'hmac-sha256',
      };
      expect(verifyMessage(msg, otherAlg, { now })).toMatchObject({
        ok: false,
        reason: 'key-mismatch',
      });
      expect(verifyMessage(msg, { ...key, name: 'other-key.' }, { now })).toMatchObject({
        ok: false,
        reason: 'key-mismatch',
      });
      expect(verifyMessage(msg, key, { now: now + 301 })).toMatchObject({
        ok: false,
        reason: 'bad-time',
      });
      expect(verifyMessage(msg, key, { now: now - 300 })).toMatchObject({ ok: true });
    });
  }

  it('an unsigned message is reported as unsigned', () => {
    expect(verifyMessage(KNSUPDATE_PREREQ, KEY256)).toEqual({ ok: false, reason: 'unsigned' });
  });

  it('a response is signed over the request MAC: chained verification works, a wrong request MAC fails', () => {
    const req = signMessage(KNSUPDATE_PREREQ, KEY512);
    const response = Buffer.from(KNSUPDATE_PREREQ.subarray(0, 12 + 18)); // header + zone section
    response.writeUInt16BE(0xa800, 2); // QR, opcode UPDATE
    response.writeUInt16BE(0, 6);
    response.writeUInt16BE(0, 8);
    response.writeUInt16BE(0, 10);
    const signed = signMessage(response, KEY512, { requestMac: req.mac });
    expect(verifyMessage(signed.message, KEY512, { requestMac: req.mac })).toMatchObject({
      ok: true,
    });
    expect(verifyMessage(signed.message, KEY512, { requestMac: Buffer.alloc(64) })).toMatchObject({
      ok: false,
      reason: 'bad-mac',
    });
    expect(verifyMessage(signed.message, KEY512)).toMatchObject({ ok: false, reason: 'bad-mac' });
  });

  it('a TSIG error answer (BADSIG, no MAC) is reported as an error', () => {
    const response = Buffer.from(KNSUPDATE_PREREQ.subarray(0, 12 + 18));
    response.writeUInt16BE(0xa809, 2); // QR, UPDATE, NOTAUTH
    for (const o of [6, 8, 10]) response.writeUInt16BE(0, o);
    const signed = signMessage(response, KEY256, { error: 16 });
    const t = parseTsig(signed.message)!;
    expect(t.error).toBe(16);
    expect(verifyMessage(signed.message, KEY256)).toMatchObject({ ok: false, reason: 'error' });
  });
});

describe('RFC 2136 UPDATE encoding', () => {
  it('is byte for byte what knsupdate sends for the same prerequisite, delete and add', () => {
    const ours = buildTlsaUpdate(0x19bc, {
      zone: 'example.test.',
      owner: OWNER,
      remove: [{ owner: OWNER, usage: 3, selector: 1, matching: 1, data: 'ab'.repeat(32) }],
      add: [{ owner: OWNER, usage: 2, selector: 1, matching: 1, data: 'cd'.repeat(32) }],
      ttl: 300,
    });
    expect(ours.toString('hex')).toBe(KNSUPDATE_PREREQ.toString('hex'));
  });

  it('compresses the owner name: 40 records stay well under the 64 KiB limit and parse back', () => {
    const add = Array.from({ length: 40 }, (_, i) => ({
      owner: OWNER,
      usage: 3 as const,
      selector: 1 as const,
      matching: 1 as const,
      data: i.toString(16).padStart(2, '0').repeat(32),
    }));
    const msg = buildTlsaUpdate(1, {
      zone: 'example.test.',
      owner: OWNER,
      add,
      remove: [],
      ttl: 300,
    });
    expect(readHeader(msg).counts).toEqual([1, 1, 40, 0]);
    expect(msg.length).toBeLessThan(40 * 50 + 100);
    expect(
      walkRecords(msg)
        .filter((s) => s.section === 2)
        .every((s) => msg.readUInt16BE(s.rdataAt - 8) === 1),
    ).toBe(true);
  });
});

describe('rfc2136 key text', () => {
  it('takes the secret from a plain value, a BIND key block or a Knot key block', () => {
    expect(parseKeyText(' c2VjcmV0\n')).toEqual({ secret: 'c2VjcmV0' });
    expect(
      parseKeyText('key "tlsa-update" {\n\talgorithm hmac-sha512;\n\tsecret "c2VjcmV0";\n};\n'),
    ).toEqual({ name: 'tlsa-update', algorithm: 'hmac-sha512', secret: 'c2VjcmV0' });
    expect(
      parseKeyText(
        '# hmac-sha256:tlsa-update:c2VjcmV0\nkey:\n  - id: tlsa-update\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n',
      ),
    ).toEqual({ name: 'tlsa-update', algorithm: 'hmac-sha256', secret: 'c2VjcmV0' });
  });
});

// ---------------------------------------------------------------------------------------------
// Live: the real tools talk to a listener in this test.

function listen(): Promise<{ sock: Socket; port: number }> {
  return new Promise((resolveListen) => {
    const sock = createSocket('udp4');
    sock.bind(0, '127.0.0.1', () => resolveListen({ sock, port: sock.address().port }));
  });
}

function runTool(bin: string, script: string): Promise<{ code: number; out: string }> {
  return new Promise((resolveRun) => {
    const child = execFile(bin, ['-t', '3'], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolveRun({
        code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
        out: `${stdout}${stderr}`,
      });
    });
    child.stdin!.end(script);
  });
}

labDescribe(
  'TSIG with the real knsupdate and nsupdate',
  [
    ['knsupdate', 'knot-dnsutils'],
    ['nsupdate', 'bind9-dnsutils'],
  ],
  () => {
    const sockets: Socket[] = [];
    afterEach(() => {
      for (const s of sockets.splice(0)) s.close();
    });

    const cases = [
      ['knsupdate', KEY256],
      ['knsupdate', KEY512],
      ['nsupdate', KEY256],
      ['nsupdate', KEY512],
    ] as const;

    for (const [tool, key] of cases) {
      for (const answerKey of ['same', 'wrong'] as const) {
        it(`${tool} ${key.algorithm}: we verify its request; it ${answerKey === 'same' ? 'accepts' : 'rejects'} our ${answerKey === 'same' ? '' : 'wrongly '}signed answer`, async () => {
          const { sock, port } = await listen();
          sockets.push(sock);
          const seen: { verdict?: string; mac?: Buffer } = {};
          sock.on('message', (req, rinfo) => {
            const v = verifyMessage(req, key);
            seen.verdict = v.ok ? 'ok' : v.reason;
            if (!v.ok) return;
            seen.mac = v.tsig.mac;
            const h = readHeader(req);
            // NOERROR answer: the header (QR set) and the zone section of the request.
            const zoneEnd = walkRecords(req)[0]?.start ?? parseTsig(req)!.start;
            const answer = Buffer.from(req.subarray(0, zoneEnd));
            answer.writeUInt16BE(0x8000 | (h.opcode << 11), 2);
            for (const o of [6, 8, 10]) answer.writeUInt16BE(0, o);
            const signWith =
              answerKey === 'same'
                ? key
                : { ...key, secret: Buffer.from('another secret entirely') };
            const signed = signMessage(answer, signWith, { requestMac: v.tsig.mac });
            sock.send(signed.message, rinfo.port, rinfo.address);
          });
          const secret = key.secret.toString('base64');
          const script =
            `server 127.0.0.1 ${port}\nzone example.test.\nkey ${key.algorithm}:${key.name} ${secret}\n` +
            `prereq nxrrset ${OWNER} CNAME\nupdate add ${OWNER} 300 TLSA 3 1 1 ${DATA}\nsend\n`;
          const r = await runTool(tool, script);
          expect(seen.verdict).toBe('ok');
          if (answerKey === 'same') expect(r, r.out).toMatchObject({ code: 0 });
          else {
            expect(r.code, r.out).not.toBe(0);
            expect(r.out).toMatch(/failed to verify TSIG|tsig verify failure/);
          }
        });
      }
    }
  },
);

// ---------------------------------------------------------------------------------------------
// The provider's error mapping and retries, against a scripted UDP server in this process.

type Script =
  | 'NOERROR'
  | 'SERVFAIL'
  | 'YXRRSET'
  | 'REFUSED'
  | 'unsigned NOERROR'
  | 'other key NOERROR'
  | 'silent';
const RCODES: Record<string, number> = { NOERROR: 0, SERVFAIL: 2, REFUSED: 5, YXRRSET: 7 };

async function scriptedServer(
  key: TsigKey,
  script: Script[],
): Promise<{ port: number; requests: Buffer[]; close(): void }> {
  const { sock, port } = await listen();
  const requests: Buffer[] = [];
  sock.on('message', (req, rinfo) => {
    requests.push(req);
    const step = script[Math.min(requests.length, script.length) - 1]!;
    if (step === 'silent') return;
    const v = verifyMessage(req, key);
    const zoneEnd = walkRecords(req)[0]?.start ?? parseTsig(req)!.start;
    const answer = Buffer.from(req.subarray(0, zoneEnd));
    answer.writeUInt16BE(
      0x8000 | (readHeader(req).opcode << 11) | RCODES[step.split(' ').at(-1)!]!,
      2,
    );
    for (const o of [6, 8, 10]) answer.writeUInt16BE(0, o);
    const signer =
      step === 'other key NOERROR' ? { ...key, secret: Buffer.from('not the key') } : key;
    const out =
      step === 'unsigned NOERROR'
        ? answer
        : signMessage(answer, signer, v.ok ? { requestMac: v.tsig.mac } : {}).message;
    sock.send(out, rinfo.port, rinfo.address);
  });
  return { port, requests, close: () => sock.close() };
}

describe('rfc2136 provider against a scripted server', () => {
  const ctx = {
    instance: 'unit',
    baseDir: '/',
    optionError: (k: string, m: string) => new Error(`option ${k}: ${m}`),
  };
  const secret = KEY256.secret.toString('base64');
  const servers: { close(): void }[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.close();
  });
  const r1 = {
    owner: OWNER,
    usage: 3 as const,
    selector: 1 as const,
    matching: 1 as const,
    data: DATA,
  };
  const r2 = { ...r1, usage: 2 as const };

  async function run(script: Script[]): Promise<{ error?: Error; requests: Buffer[] }> {
    const srv = await scriptedServer(KEY256, script);
    servers.push(srv);
    const p = createProvider(
      {
        port: srv.port,
        zone: 'example.test',
        tsig_name: 'tlsa-test-key',
        tsig_secret: secret,
        timeout_s: 0.3,
      },
      ctx,
    );
    const error = await p.apply(OWNER, { add: [r1], remove: [r2] }, 300).then(
      () => undefined,
      (e: Error) => e,
    );
    return { error, requests: srv.requests };
  }

  it('sends one signed UPDATE: CNAME prerequisite (NONE), delete (NONE, TTL 0), add (IN, TTL) deleted first (its TTL then holds)', async () => {
    const { error, requests } = await run(['NOERROR']);
    expect(error).toBeUndefined();
    expect(requests).toHaveLength(1);
    const msg = requests[0]!;
    expect(verifyMessage(msg, KEY256)).toMatchObject({ ok: true });
    expect(readHeader(msg)).toMatchObject({ opcode: 5, counts: [1, 1, 3, 1] });
    const rrs = walkRecords(msg).map((s) => ({
      section: s.section,
      type: s.type,
      class: s.class,
      ttl: msg.readUInt32BE(s.typeAt + 4),
      rdlen: s.end - s.rdataAt,
    }));
    expect(rrs).toEqual([
      { section: 1, type: 5, class: 254, ttl: 0, rdlen: 0 },
      { section: 2, type: 52, class: 254, ttl: 0, rdlen: 35 },
      { section: 2, type: 52, class: 254, ttl: 0, rdlen: 35 },
      { section: 2, type: 52, class: 1, ttl: 300, rdlen: 35 },
      { section: 3, type: 250, class: 255, ttl: 0, rdlen: expect.any(Number) },
    ]);
  });

  it('retries SERVFAIL and succeeds', async () => {
    const { error, requests } = await run(['SERVFAIL', 'NOERROR']);
    expect(error).toBeUndefined();
    expect(requests).toHaveLength(2);
  });

  it('gives up after 4 SERVFAILs and after 4 unanswered tries, saying why', async () => {
    const a = await run(['SERVFAIL']);
    expect(a.requests).toHaveLength(4);
    expect(a.error?.name).toBe('ProviderError');
    expect(a.error?.message).toMatch(/SERVFAIL \(zone example\.test\.\)/);
    const b = await run(['silent']);
    expect(b.requests).toHaveLength(4);
    expect(b.error?.message).toMatch(/no answer from 127\.0\.0\.1 port \d+ \(UDP\) within 0\.3 s/);
  });

  it('maps YXRRSET to the CNAME message and REFUSED to the ACL message, without retrying', async () => {
    const a = await run(['YXRRSET']);
    expect(a.requests).toHaveLength(1);
    expect(a.error?.message).toMatch(/has a CNAME/);
    const b = await run(['REFUSED']);
    expect(b.requests).toHaveLength(1);
    expect(b.error?.message).toMatch(
      /refuses updates for this zone from this key \(check its ACL \/ update-policy/,
    );
  });

  it('does not trust a NOERROR answer that is unsigned or signed with another key', async () => {
    expect((await run(['unsigned NOERROR'])).error?.message).toMatch(
      /not signed with key "tlsa-test-key\." \(unsigned\)/,
    );
    expect((await run(['other key NOERROR'])).error?.message).toMatch(
      /not signed with key "tlsa-test-key\." \(bad-mac\)/,
    );
  });

  it('validates its options and never shows the secret', () => {
    const make = (o: Record<string, unknown>) => () =>
      createProvider({ tsig_name: 'k', tsig_secret: secret, ...o }, ctx);
    expect(make({})).not.toThrow();
    expect(make({ tsig_secret: undefined })).toThrow(/option tsig_secret: .*tsig_secret_file/);
    expect(make({ tsig_secret: 'not base64!' })).toThrow(
      /option tsig_secret: the TSIG secret is not base64/,
    );
    expect(make({ tsig_algorithm: 'hmac-md5' })).toThrow(
      /option tsig_algorithm: .*hmac-sha256, hmac-sha512/,
    );
    expect(make({ tsig_name: undefined })).toThrow(/option tsig_name/);
    expect(make({ port: 70000 })).toThrow(/option port/);
    expect(make({ timeout_s: 0 })).toThrow(/option timeout_s/);
    expect(make({ zone: 'bad..zone' })).toThrow(/option zone/);
    expect(make({ secret: 'x' })).toThrow(/option secret: rfc2136 has no option "secret"/);
    try {
      make({ tsig_algorithm: 'hmac-md5' })();
    } catch (e) {
      expect((e as Error).message).not.toContain(secret);
    }
  });
});
