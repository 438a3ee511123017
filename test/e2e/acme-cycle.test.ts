/**
 * End to end (issue 11, built-in ACME): a full current → next → following cycle of `tlsa renew`
 * with real components, all on loopback, all started here (test/lab/mail-lab.ts):
 *
 *   pebble ──HTTP-01──▶ tlsa renew (standalone responder) ──zonefile──▶ Knot (signed
 *     example.test.) ◀── unbound (validating) ◀── posttls-finger -l dane, polled ~1/s throughout,
 *     offering ECDSA and RSA in turn
 *   tlsa's staged install (install.dir/mx and mx-rsa) ──▶ Postfix (smtpd_tls_chain_files: both).
 *
 * One service, `acme: {key_types: [ecdsa-p256, rsa-2048]}`, its two lineages
 * (STATE_DIR/acme/mx/KEY_TYPE) listed as certificate sources with staged install, TTL 3 s:
 *   first issuance: no next key yet (fresh keys); nothing served from the install yet, so it is
 *     a first install; Postfix is pointed at it once the records have been on Knot for 2×TTL.
 *   renewal 1 (current → next), pebble restarted (new root and intermediate), renewal 2
 *   (next → following), renewal 3: before each, `tlsa daemon --once` until the next keys'
 *   3 1 1 are live; `tlsa renew --force` then renews with the next keys and the new chains are
 *   installed by that same run (no staging wait, no other run in between). After the restart
 *   nothing published names the new intermediate: the next key's 3 1 1 alone carries it.
 * Ground truth from outside tlsa: openssl computes the next key's hash before the renewal and
 * the served leaf's after it (s_client), a watcher samples Knot's RRset, and every
 * posttls-finger poll must say "Verified TLS connection established".
 *
 * Needs root (Postfix master, mount namespaces), a free 127.0.53.x:53 and the Debian packages
 * knot knot-dnsutils unbound pebble certbot postfix openssl; takes about 5 minutes.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { requireBuiltCli } from '../helpers/cli.js';
import {
  type AcmeKeyType,
  acmeLineage,
  acmeLines,
  KEY_FAMILY,
  nextKeyFile,
} from '../lab/acme-lineage.js';
import { chainRecords } from '../lab/certs.js';
import { DanePoller } from '../lab/dane-finger.js';
import { labDescribe, sleep, toolPath } from '../lab/lab.js';
import { MAIL_HOST, mailLabTools, startMailLab, type MailLab } from '../lab/mail-lab.js';
import { showRun } from '../lab/run.js';
import {
  WATCH_SLACK_MS,
  expectEveryPollVerified,
  installedPem,
  opensslCertSpki,
  opensslKeySpki,
  opensslServedSpki,
  RrsetWatcher,
  statusRecords,
} from './acme-steps.js';
import { driveUntil } from './steps.js';

const TTL = 3;
const KEY_TYPES: readonly AcmeKeyType[] = ['ecdsa-p256', 'rsa-2048'];
/** The installed copies' names (install.dir/NAME/current). */
const NAME: Record<AcmeKeyType, string> = { 'ecdsa-p256': 'mx', 'rsa-2048': 'mx-rsa' };

labDescribe(
  'e2e: built-in ACME (tlsa renew) current → next → following, RSA and ECDSA, pebble restarted in the middle; posttls-finger throughout',
  mailLabTools(),
  () => {
    const suiteStart = Date.now();
    let lab: MailLab;
    let poller: DanePoller;
    let watcher: RrsetWatcher;
    const note = (s: string): void =>
      console.log(`[acme-cycle ${((Date.now() - suiteStart) / 1000).toFixed(1)} s] ${s}`);
    const lineagePem = (k: AcmeKeyType): string =>
      readFileSync(join(acmeLineage(lab, k), 'fullchain.pem'), 'utf8');
    const isInstalled = (k: AcmeKeyType): boolean => installedPem(lab, NAME[k]) === lineagePem(k);

    beforeAll(async () => {
      requireBuiltCli();
      lab = await startMailLab({ name: 'e2e-acme-cycle' });
      const s = JSON.stringify;
      lab.writeConfig({
        ttl: TTL,
        service: [
          '    issuers: none',
          '    certificates:',
          ...KEY_TYPES.flatMap((k) => [
            `      - lineage: ${s(acmeLineage(lab, k))}`,
            `        name: ${NAME[k]}`,
          ]),
          ...lab.installLines(),
          ...acmeLines(lab, KEY_TYPES),
        ],
      });
      watcher = new RrsetWatcher(lab);
      watcher.start();
      poller = new DanePoller(lab.finger!, MAIL_HOST, lab.port, 1000);
      poller.keyTypes = ['ecdsa', 'rsa'];
      note(
        `lab up: Knot :${lab.auth.port}, unbound :${lab.unbound.port}, pebble :${lab.pebble.port} (HTTP-01 :${lab.pebble.httpPort}), Postfix :${lab.port}`,
      );
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      await watcher?.stop();
      await lab?.close();
    }, 60_000);

    /** Runs `tlsa daemon --once` until every next key's 3 1 1 is live in `status`; returns the
     *  next keys' SPKI hashes as openssl computes them from the key files. */
    async function nextKeysLive(label: string): Promise<Record<AcmeKeyType, string>> {
      const next = {} as Record<AcmeKeyType, string>;
      for (const k of KEY_TYPES) next[k] = await opensslKeySpki(nextKeyFile(lab, k));
      const t0 = Date.now();
      await driveUntil(
        lab,
        `${label}: the next keys' 3 1 1 live`,
        async () => {
          const recs = await statusRecords(lab);
          return KEY_TYPES.every((k) =>
            recs.some((r) => r.rdata === `3 1 1 ${next[k]}` && r.phase === 'live'),
          );
        },
        120_000,
      );
      note(`${label}: next keys' 3 1 1 live ${((Date.now() - t0) / 1000).toFixed(1)} s later`);
      return next;
    }

    /** `tlsa renew --force` with the next keys live: the new chains carry the next keys and are
     *  installed and served when renew returns. */
    async function renewWithNextKeys(label: string, newIntermediate: boolean): Promise<void> {
      poller.scenario = label;
      const next = await nextKeysLive(label);
      for (const k of KEY_TYPES)
        expect(
          watcher.servedFor(`3 1 1 ${next[k]}`),
          `Knot served the next ${k} key's 3 1 1 for 2×TTL before the renewal`,
        ).toBeGreaterThan(2 * TTL * 1000 - WATCH_SLACK_MS);
      const before = Object.fromEntries(
        KEY_TYPES.map((k) => [k, chainRecords(lineagePem(k))]),
      ) as Record<AcmeKeyType, ReturnType<typeof chainRecords>>;
      const onKnotBefore = (await lab.served(2)).rdata;

      const r = await lab.tlsa(['renew', '--force'], { timeoutMs: 300_000 });
      expect(r.code, showRun(r)).toBe(0);
      for (const k of KEY_TYPES) {
        expect(r.stdout, showRun(r)).toMatch(new RegExp(`mx ${k}: renewed with the next key`));
        // No staging wait: installed by renew's own engine run, before any other tlsa run.
        expect(isInstalled(k), `${k} installed when renew returns:\n${showRun(r)}`).toBe(true);
        const issued = lstatSync(acmeLineage(lab, k)).mtimeMs;
        const installed = lstatSync(join(lab.installDir, NAME[k], 'current')).mtimeMs;
        note(
          `${label}: ${k} issued → installed ${((installed - issued) / 1000).toFixed(2)} s (renew took ${(r.ms / 1000).toFixed(1)} s)`,
        );
        const after = chainRecords(lineagePem(k));
        expect(after.leaf.fingerprint256).not.toBe(before[k].leaf.fingerprint256);
        // The new leaf and the served one carry the key whose 3 1 1 was live before (openssl).
        expect(await opensslCertSpki(join(acmeLineage(lab, k), 'cert.pem'))).toBe(next[k]);
        expect(await opensslServedSpki(lab.port, KEY_FAMILY[k]), `${k} served leaf`).toBe(next[k]);
        if (newIntermediate) {
          expect(after.ta, 'pebble restarted: a new intermediate').not.toBe(before[k].ta);
          expect(onKnotBefore, 'nothing named the new intermediate before').not.toContain(after.ta);
        }
        const f = await lab.finger!.check({
          host: MAIL_HOST,
          port: lab.port,
          keyType: KEY_FAMILY[k],
        });
        expect(f.verified, f.output).toBe(true);
        if (newIntermediate) expect(f.matched, f.output).toBe('EE 0');
      }
    }

    it('first issuance: fresh keys (no next key yet), a first install; Postfix serves both once their records are live', async () => {
      poller.scenario = 'first';
      const r = await lab.tlsa(['renew'], { timeoutMs: 300_000 });
      expect(r.code, showRun(r)).toBe(0);
      for (const k of KEY_TYPES) {
        expect(r.stdout).toMatch(
          new RegExp(`mx ${k}: renewed with a new key \\(no next key yet\\)`),
        );
        expect(isInstalled(k), `${k}: first install\n${showRun(r)}`).toBe(true);
      }
      // The admin's side of a first install on a running server: point Postfix at the copies
      // once their 3 1 1 have been on Knot for 2×TTL.
      const ee = KEY_TYPES.map((k) => chainRecords(lineagePem(k)).ee);
      const deadline = Date.now() + 60_000;
      while (!ee.every((x) => watcher.servedFor(x) > 2 * TTL * 1000 + 500)) {
        if (Date.now() > deadline)
          throw new Error(`not on Knot: ${ee.join(', ')}\n${lab.fragment()}`);
        await sleep(200);
      }
      execFileSync(toolPath('postconf', 'postfix'), [
        '-c',
        lab.postfix.configDir,
        '-e',
        `smtpd_tls_chain_files = ${KEY_TYPES.map((k) => join(lab.installDir, NAME[k], 'current', 'combined.pem')).join(', ')}`,
      ]);
      await lab.postfix.reload();
      for (const k of KEY_TYPES)
        expect(await opensslServedSpki(lab.port, KEY_FAMILY[k])).toBe(
          await opensslCertSpki(join(acmeLineage(lab, k), 'cert.pem')),
        );
      poller.start();
    }, 400_000);

    it('renewal 1 (current → next): the next keys serve at once', async () => {
      await renewWithNextKeys('renewal 1', false);
    }, 400_000);

    it("pebble restarted (new root and intermediate), renewal 2 (next → following): installed at once, carried by the next keys' 3 1 1", async () => {
      poller.scenario = 'pebble restart';
      await lab.pebble.restart();
      await renewWithNextKeys('renewal 2', true);
    }, 400_000);

    it('renewal 3: the cycle goes on', async () => {
      await renewWithNextKeys('renewal 3', false);
    }, 400_000);

    it('the end: the old keys retire; Knot serves the served keys, their issuer and the next keys; every poll verified', async () => {
      poller.scenario = 'end';
      const want = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const k of KEY_TYPES) {
          out.push(`3 1 1 ${await opensslCertSpki(join(acmeLineage(lab, k), 'cert.pem'))}`);
          out.push(`3 1 1 ${await opensslKeySpki(nextKeyFile(lab, k))}`);
        }
        out.push(chainRecords(lineagePem('ecdsa-p256')).ta);
        return [...new Set(out)].sort();
      };
      const expected = await want();
      await driveUntil(
        lab,
        'end',
        async () => JSON.stringify((await lab.served(2)).rdata) === JSON.stringify(expected),
        120_000,
      );
      // A poll a second; renewals with a live next key are served before the run's DNS
      // writes, so on a quiet machine the whole cycle takes ~45 s: 30 polls was too tight.
      await expectEveryPollVerified(poller, 15, note);
    }, 300_000);
  },
);
