/**
 * `tlsa daemon` renewing built-in ACME lineages on schedule, against Debian's pebble on loopback
 * (pebble's VA resolves mx.example.org through a Knot on loopback and fetches the HTTP-01 token
 * from tlsa's standalone responder). The current certificate is made by hand (pebble's are valid
 * five years), so that its renewal time is seconds away: with `interval_s: 300` the daemon must
 * renew within seconds after that time, by itself. A schedule file set to a near time wakes it
 * then, and so does a retry schedule a failure wrote. A renewal that fails (the CA
 * unreachable) does not stop the daemon: logged, retried with backoff, and the engine still runs.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeSchedule } from '../../src/acme/schedule-file.js';
import { CLI_PATH, configYaml, requireBuiltCli } from '../helpers/cli.js';
import { handMadeLineage } from '../helpers/acme-lineage.js';
import { type CaHandle, makeCa } from '../helpers/pki.js';
import { startKnot, minimalZone } from '../lab/knot.js';
import { freePort, labDescribe, makeTempDir, stopAll } from '../lab/lab.js';
import { PEBBLE_TOOLS, type PebbleServer, startPebble } from '../lab/pebble.js';

/** The ISO time a stamped daemon line starts with. */
const stampOf = (line: string) => new Date(line.slice(0, line.indexOf(' ')));

labDescribe(
  'tlsa daemon: built-in ACME renewals on schedule against pebble (loopback)',
  [...PEBBLE_TOOLS, ['knotd', 'knot'], ['knotc', 'knot']],
  () => {
    let pebble: PebbleServer;
    let httpPort: number;
    let ca: CaHandle;

    beforeAll(async () => {
      requireBuiltCli();
      const knot = await startKnot({
        zones: [
          {
            name: 'example.org.',
            zoneFileText: minimalZone('example.org.', 'mx.example.org. 300 IN A 127.0.0.1'),
            dnssec: false,
          },
        ],
      });
      httpPort = await freePort();
      pebble = await startPebble({
        dnsServer: `127.0.0.1:${knot.port}`,
        httpPort,
        timeoutMs: 60_000,
      });
      const pki = makeTempDir('acme-daemon-pki');
      const root = makeCa(pki, { name: 'Hand Root', key: 'p256' });
      ca = makeCa(pki, { name: 'Hand Intermediate', key: 'p256', issuer: root, days: 100 });
    }, 120_000);
    afterAll(() => stopAll());

    function setup(directory: string, notBefore: Date, notAfter: Date) {
      const dir = makeTempDir('acme-daemon');
      writeFileSync(
        join(dir, 'config.yaml'),
        `${configYaml({
          certificates: ['lineage: state/acme/mx/ecdsa-p256'],
          serviceExtra: [
            'records: ["3 1 1"]',
            'acme:',
            `  directory: ${JSON.stringify(directory)}`,
            '  key_types: [ecdsa-p256]',
            `  challenge: {http01: {standalone: "127.0.0.1:${httpPort}"}}`,
            `  ca_bundle: ${JSON.stringify(pebble.tlsCaPath)}`,
          ],
        })}daemon:\n  interval_s: 300\n`,
      );
      const cert = handMadeLineage(join(dir, 'state'), ca, notBefore, notAfter);
      return {
        dir,
        cert,
        certNow: () => readFileSync(join(dir, 'state/acme/mx/ecdsa-p256/cert.pem'), 'utf8'),
      };
    }

    /** The daemon on `dir`'s config; its stderr lines as they come. */
    function daemon(dir: string) {
      const child = spawn(
        process.execPath,
        [CLI_PATH, '--config', join(dir, 'config.yaml'), 'daemon'],
        {
          cwd: dir,
        },
      );
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
      const lines = () => err.split('\n');
      const waitFor = async (re: RegExp, ms: number): Promise<string> => {
        const start = Date.now();
        for (;;) {
          const hit = lines().find((l) => re.test(l));
          if (hit) return hit;
          if (child.exitCode !== null) throw new Error(`the daemon exited:\n${err}`);
          if (Date.now() - start > ms) throw new Error(`timed out waiting for ${re}:\n${err}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      return { child, exited, lines, waitFor, err: () => err };
    }

    it('interval_s 300: renews a lineage at its renewal time (lifetime rule), by itself, within seconds', async () => {
      // 60 s of lifetime (10 days or less: renewed at half), so due 20 s from now.
      const start = Date.now();
      const { dir, cert, certNow } = setup(
        pebble.directoryUrl,
        new Date(start - 10_000),
        new Date(start + 50_000),
      );
      const at =
        new Date(cert.validFrom).getTime() +
        (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / 2;
      expect(at).toBeGreaterThan(Date.now() + 5000);
      const d = daemon(dir);
      try {
        // The first run is not due: it sleeps until the renewal time, not for the interval.
        const wake = await d.waitFor(
          /next run in .*: renew mx ecdsa-p256 \(lifetime rule\)/,
          30_000,
        );
        expect(wake).not.toMatch(/interval_s/);
        const due = await d.waitFor(/mx ecdsa-p256: renewal due \(lifetime rule\)/, 60_000);
        expect(stampOf(due).getTime()).toBeGreaterThanOrEqual(at);
        expect(stampOf(due).getTime()).toBeLessThan(at + 5000);
        await d.waitFor(/mx ecdsa-p256: renewed with a new key \(no next key yet\)/, 60_000);
        const renewed = new X509Certificate(certNow());
        expect(renewed.serialNumber).not.toBe(cert.serialNumber);
        expect(renewed.issuer).not.toBe(cert.issuer);
        // The engine ran after it: the new key's record is in the zone.
        await d.waitFor(/published \d+, removed \d+/, 30_000);
        // Pebble's certificate lasts five years: the next wake is the interval.
        await d.waitFor(/next run in 5m .*daemon\.interval_s 300/, 30_000);
        d.child.kill('SIGTERM');
        expect(await d.exited).toBe(0);
      } finally {
        d.child.kill('SIGKILL');
      }
    }, 180_000);

    it('a schedule file set to a near time wakes the daemon then (not at interval_s), once', async () => {
      const start = Date.now();
      const { dir, cert } = setup(
        pebble.directoryUrl,
        new Date(start - 86_400_000),
        new Date(start + 89 * 86_400_000),
      );
      const at = new Date(Date.now() + 12_000);
      writeSchedule(join(dir, 'state'), 'mx', 'ecdsa-p256', {
        at: at.toISOString(),
        source: 'ari',
        windowStart: new Date(at.getTime() - 2000).toISOString(),
        windowEnd: new Date(at.getTime() + 2000).toISOString(),
        serial: cert.serialNumber,
        decidedAt: new Date().toISOString(),
      });
      const d = daemon(dir);
      try {
        await d.waitFor(/next run in .*: renew mx ecdsa-p256 \(ARI window /, 30_000);
        const due = await d.waitFor(/mx ecdsa-p256: renewal due \(ARI window /, 60_000);
        expect(stampOf(due).getTime()).toBeGreaterThanOrEqual(at.getTime());
        expect(stampOf(due).getTime()).toBeLessThan(at.getTime() + 5000);
        // The renewal decides (and, once it reads the schedule, renews); either way the daemon
        // asks once and then sleeps, it does not spin on a schedule in the past.
        await d.waitFor(/mx ecdsa-p256: (renewed with|not due until)/, 60_000);
        await new Promise((r) => setTimeout(r, 5000));
        expect(d.lines().filter((l) => /renewal due/.test(l))).toHaveLength(1);
        d.child.kill('SIGTERM');
        await d.exited;
      } finally {
        d.child.kill('SIGKILL');
      }
    }, 180_000);

    it('a retry schedule a failure wrote: the daemon waits for it, though the lifetime rule says due', async () => {
      const closed = await freePort();
      const start = Date.now();
      const { dir, cert } = setup(
        `https://127.0.0.1:${closed}/dir`,
        new Date(start - 1_000_000),
        new Date(start + 600_000),
      );
      const at = new Date(Date.now() + 10_000);
      writeSchedule(join(dir, 'state'), 'mx', 'ecdsa-p256', {
        at: at.toISOString(),
        source: 'retry',
        serial: cert.serialNumber,
        lastError: 'the CA answered 503',
        decidedAt: new Date().toISOString(),
      });
      const d = daemon(dir);
      try {
        await d.waitFor(
          /next run in .*: renew mx ecdsa-p256 \(retry after an error: the CA answered 503\)/,
          30_000,
        );
        const due = await d.waitFor(/mx ecdsa-p256: renewal due \(retry after an error/, 60_000);
        expect(stampOf(due).getTime()).toBeGreaterThanOrEqual(at.getTime());
        expect(stampOf(due).getTime()).toBeLessThan(at.getTime() + 5000);
        const failed = await d.waitFor(/the renewal of mx failed/, 60_000);
        expect(stampOf(failed).getTime()).toBeGreaterThanOrEqual(at.getTime());
        d.child.kill('SIGTERM');
        await d.exited;
      } finally {
        d.child.kill('SIGKILL');
      }
    }, 180_000);

    it('a renewal that fails (CA unreachable) is logged, retried at the retry schedule it wrote; the daemon keeps running and the engine still runs', async () => {
      const closed = await freePort();
      const start = Date.now();
      // Past its renewal time already.
      const { dir, cert, certNow } = setup(
        `https://127.0.0.1:${closed}/dir`,
        new Date(start - 1_000_000),
        new Date(start + 600_000),
      );
      const d = daemon(dir);
      try {
        const first = await d.waitFor(
          /the renewal of mx failed: .*ECONNREFUSED.*the current chain stays/,
          60_000,
        );
        // The engine ran all the same: the current chain's record is published.
        await d.waitFor(/published 1, removed 0/, 30_000);
        // The failure wrote a retry schedule (15 minutes, doubling): the run that follows the
        // failed one (5 s later) does not ask the unreachable CA again, and the daemon then
        // sleeps for its interval, which comes before the retry (the test above shows it wakes
        // for such a schedule and tries again).
        await d.waitFor(/next run in 5m .*daemon\.interval_s 300/, 30_000);
        const sched = JSON.parse(
          readFileSync(join(dir, 'state/acme/mx/schedule/ecdsa-p256.json'), 'utf8'),
        ) as { source: string; at: string };
        expect(sched.source).toBe('retry');
        const inS = (Date.parse(sched.at) - stampOf(first).getTime()) / 1000;
        expect(inS).toBeGreaterThan(14 * 60);
        expect(inS).toBeLessThan(16 * 60);
        await new Promise((r) => setTimeout(r, 3000));
        expect(d.lines().filter((l) => /the renewal of mx failed/.test(l))).toHaveLength(1);
        expect(d.child.exitCode).toBeNull();
        expect(certNow()).toBe(cert.toString());
        d.child.kill('SIGTERM');
        await d.exited;
      } finally {
        d.child.kill('SIGKILL');
      }
    }, 180_000);
  },
);
