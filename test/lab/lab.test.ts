/**
 * Self-test of the lab harness: the facts the integration tests rely on, checked on this
 * machine's Knot and unbound.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKdig, query, rdataOf } from './dig.js';
import { minimalZone, startKnot, type KnotServer } from './knot.js';
import {
  findTool,
  freePort,
  labDescribe,
  makeTempDir,
  requireTool,
  runningDaemons,
  startDaemon,
  stopAll,
} from './lab.js';
import { startUnbound, type UnboundServer } from './unbound.js';

const hex = (): string => createHash('sha256').update(randomBytes(16)).digest('hex');

function sh(command: string, input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolveSh) => {
    const child = execFile(
      '/bin/sh',
      ['-c', command],
      { timeout: 20_000 },
      (err, stdout, stderr) => {
        resolveSh({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          out: `${stdout}${stderr}`,
        });
      },
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

describe('lab helpers (no servers)', () => {
  it('requireTool: present, missing, and missing under TLSA_LAB=require', () => {
    expect(requireTool('sh', 'dash')).toBe(true);
    const saved = process.env.TLSA_LAB;
    try {
      delete process.env.TLSA_LAB;
      expect(requireTool('no-such-binary-tlsa-lab', 'no-such-package')).toBe(false);
      process.env.TLSA_LAB = 'require';
      expect(() => requireTool('no-such-binary-tlsa-lab', 'no-such-package')).toThrow(
        /no-such-package/,
      );
    } finally {
      if (saved === undefined) delete process.env.TLSA_LAB;
      else process.env.TLSA_LAB = saved;
    }
  });

  it('freePort hands out distinct ports', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    expect(new Set(ports).size).toBe(3);
  });

  it('startDaemon: a server that dies early fails with its log tail', async () => {
    const dir = makeTempDir('dying');
    await expect(
      startDaemon({
        name: 'dying',
        argv: ['/bin/sh', '-c', 'echo "fatal: port in use" >&2; exit 3'],
        cwd: dir,
        ready: async () => false,
        timeoutMs: 3000,
      }),
    ).rejects.toThrow(/exited with status 3[\s\S]*fatal: port in use/);
  });

  it('startDaemon: a server that never gets ready is killed after the timeout; stop() kills by pid', async () => {
    const dir = makeTempDir('slow');
    await expect(
      startDaemon({
        name: 'slow',
        argv: ['/bin/sh', '-c', 'echo waiting; exec sleep 60'],
        cwd: dir,
        ready: async () => false,
        timeoutMs: 500,
      }),
    ).rejects.toThrow(/not ready after 500 ms[\s\S]*waiting/);
    expect(runningDaemons().some((d) => d.name === 'slow')).toBe(false);

    const d = await startDaemon({
      name: 'sleeper',
      argv: ['sleep', '60'],
      cwd: dir,
      ready: async () => true,
    });
    expect(readFileSync(d.pidFile, 'utf8').trim()).toBe(String(d.pid));
    await d.stop();
    expect(d.exited).toBe(true);
    expect(existsSync(d.pidFile)).toBe(false);
    expect(() => process.kill(d.pid, 0)).toThrow();
  });

  it('parseKdig reads status, flags and the answer section', () => {
    const r = parseKdig(
      [
        ';; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1',
        ';; Flags: qr rd ra ad; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 1',
        '',
        ';; ANSWER SECTION:',
        '_25._tcp.mx.example.test.\t300\tIN\tTLSA\t3 1 1 AABB',
        '',
        ';; Received 100 B',
      ].join('\n'),
    );
    expect(r.rcode).toBe('NOERROR');
    expect(r.flags).toEqual(['qr', 'rd', 'ra', 'ad']);
    expect(r.answers).toEqual(['_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 AABB']);
    expect(rdataOf(r, 'tlsa')).toEqual(['3 1 1 AABB']);
  });
});

labDescribe(
  'lab servers: Knot and unbound',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['knsupdate', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
  ],
  () => {
    const ZONE = 'lab.test.';
    const tsig = {
      name: 'lab-key',
      algorithm: 'hmac-sha256' as const,
      secret: randomBytes(32).toString('base64'),
    };
    let knot: KnotServer;
    let validating: UnboundServer;
    let noAnchor: UnboundServer;
    let wrongAnchor: UnboundServer;
    let includePath: string;

    beforeAll(async () => {
      const dir = makeTempDir('lab-selftest');
      includePath = join(dir, 'include.db');
      writeFileSync(includePath, '');
      knot = await startKnot({
        zones: [
          {
            name: ZONE,
            zoneFileText: minimalZone(
              ZONE,
              `mx.${ZONE} 300 IN A 127.0.0.1\n$INCLUDE ${includePath}`,
            ),
            dnssec: true,
          },
          { name: 'plain.test.', dnssec: false },
        ],
        tsig,
      });
      const ds = knot.dsRecords(ZONE);
      const stubs = [{ zone: ZONE, port: knot.port }];
      const wrong = ds[0]!.replace(/[0-9a-f]{64}$/, '0'.repeat(64));
      [validating, noAnchor, wrongAnchor] = await Promise.all([
        startUnbound({ stubs, trustAnchors: ds }),
        startUnbound({ stubs, trustAnchors: [] }),
        startUnbound({ stubs, trustAnchors: [wrong] }),
      ]);
    });

    afterAll(async () => {
      await stopAll();
      expect(runningDaemons()).toEqual([]);
    });

    it('keymgr gives DS records; unbound: correct anchor -> AD, no anchor -> no AD, wrong anchor -> SERVFAIL', async () => {
      expect(knot.dsRecords(ZONE)[0]).toMatch(/^lab\.test\. DS \d+ 13 2 [0-9a-f]{64}$/);
      const ask = (u: UnboundServer) =>
        query({ server: u.host, port: u.port, name: `mx.${ZONE}`, type: 'A', dnssec: true });
      const good = await ask(validating);
      expect(good.rcode, good.raw).toBe('NOERROR');
      expect(good.flags).toContain('ad');
      const none = await ask(noAnchor);
      expect(none.rcode, none.raw).toBe('NOERROR');
      expect(none.flags).not.toContain('ad');
      expect(rdataOf(none, 'A')).toEqual(['127.0.0.1']);
      const bad = await ask(wrongAnchor);
      expect(bad.rcode, bad.raw).toBe('SERVFAIL');
    });

    it('unbound refuses names outside its stub zones (no stray queries)', async () => {
      const r = await query({
        server: validating.host,
        port: validating.port,
        name: 'example.com',
        type: 'A',
      });
      expect(r.rcode).toBe('REFUSED');
    });

    it('Knot: edits without a serial change, also in an $INCLUDEd file, are loaded by the blocking reload command', async () => {
      const file = knot.zoneFiles[ZONE]!;
      const before = readFileSync(file, 'utf8');
      const one = hex();
      appendFileSync(file, `_25._tcp.mx.${ZONE} 300 IN TLSA 3 1 1 ${one}\n`);
      expect((await sh(knot.reloadCommand(ZONE))).code).toBe(0);
      let r = await query({
        server: knot.host,
        port: knot.port,
        name: `_25._tcp.mx.${ZONE}`,
        type: 'TLSA',
        dnssec: true,
      });
      expect(rdataOf(r, 'TLSA').map((x) => x.toLowerCase())).toEqual([`3 1 1 ${one}`]);
      expect(r.records.some((x) => x.type === 'RRSIG')).toBe(true);

      const two = hex();
      writeFileSync(includePath, `_25._tcp.mx.${ZONE} 300 IN TLSA 3 1 1 ${two}\n`);
      expect((await sh(knot.reloadCommand(ZONE))).code).toBe(0);
      r = await query({
        server: knot.host,
        port: knot.port,
        name: `_25._tcp.mx.${ZONE}`,
        type: 'TLSA',
      });
      expect(
        rdataOf(r, 'TLSA')
          .map((x) => x.toLowerCase())
          .sort(),
      ).toEqual([`3 1 1 ${one}`, `3 1 1 ${two}`].sort());

      // Knot never writes the signed zone back into the file (zonefile-sync: -1).
      expect(readFileSync(file, 'utf8')).toBe(
        `${before}_25._tcp.mx.${ZONE} 300 IN TLSA 3 1 1 ${one}\n`,
      );

      // Without a reload nothing changes; with unbound's cache flushed the served data is Knot's.
      writeFileSync(includePath, '');
      await validating.flush(ZONE);
      r = await query({
        server: validating.host,
        port: validating.port,
        name: `_25._tcp.mx.${ZONE}`,
        type: 'TLSA',
        dnssec: true,
      });
      expect(rdataOf(r, 'TLSA')).toHaveLength(2);
      expect(r.flags).toContain('ad');

      // A broken zone file: the reload command fails (exit 1) and the old zone stays served.
      appendFileSync(includePath, 'this is not a record\n');
      const failed = await sh(knot.reloadCommand(ZONE));
      expect(failed.code, failed.out).not.toBe(0);
      r = await query({
        server: knot.host,
        port: knot.port,
        name: `_25._tcp.mx.${ZONE}`,
        type: 'TLSA',
      });
      expect(rdataOf(r, 'TLSA')).toHaveLength(2);
      writeFileSync(includePath, '');
      expect((await sh(knot.reloadCommand(ZONE))).code).toBe(0);
      r = await query({
        server: knot.host,
        port: knot.port,
        name: `_25._tcp.mx.${ZONE}`,
        type: 'TLSA',
      });
      expect(rdataOf(r, 'TLSA')).toHaveLength(1);
    });

    it('Knot: RFC 2136 update with the TSIG key works, a wrong secret gives NOTAUTH/BADSIG', async () => {
      const knsupdate = findTool('knsupdate')!;
      const data = hex();
      const script = (secret: string) =>
        [
          `server ${knot.host} ${knot.port}`,
          `zone plain.test.`,
          `key ${tsig.algorithm}:${tsig.name} ${secret}`,
          `update add _443._tcp.www.plain.test. 300 IN TLSA 3 1 1 ${data}`,
          'send',
          '',
        ].join('\n');
      const bad = await sh(knsupdate, script(randomBytes(32).toString('base64')));
      expect(bad.code).not.toBe(0);
      // knsupdate prints the TSIG error as the status: 'status: BADSIG' (RCODE NOTAUTH + TSIG error BADSIG).
      expect(bad.out).toMatch(/status: (BADSIG|NOTAUTH)/);
      const ok = await sh(knsupdate, script(tsig.secret));
      expect(ok.code, ok.out).toBe(0);
      const r = await query({
        server: knot.host,
        port: knot.port,
        name: '_443._tcp.www.plain.test.',
        type: 'TLSA',
      });
      expect(rdataOf(r, 'TLSA').map((x) => x.toLowerCase())).toEqual([`3 1 1 ${data}`]);
    });
  },
);
