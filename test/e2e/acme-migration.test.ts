/**
 * End to end (issue 11, point 7): a lineage moved from certbot to built-in ACME and back, with
 * the steps of docs/acme.md, while posttls-finger polls Postfix about once a second. Same lab
 * as the other e2e tests (test/lab/mail-lab.ts), all on loopback, all started here:
 *
 *   pebble ──HTTP-01──▶ certbot (deploy hook) or tlsa renew ──zonefile──▶ Knot (signed
 *     example.test.) ◀── unbound ◀── posttls-finger -l dane
 *   tlsa's staged install (install.dir/mx/current/combined.pem) ──▶ Postfix.
 *
 * TTL 3 s. pebble is restarted before each move (a new intermediate), so that no live record
 * matches the new chain and only the staged wait keeps it from being served early. The installed copy keeps its name ("mx") throughout, so Postfix's configuration never
 * changes; only the source behind it does:
 *   certbot: the certbot lineage "mx", installed and served.
 *   to ACME: one edit adds `acme:` and puts the ACME lineage in the certbot lineage's place
 *     (`name: mx`), then `tlsa renew`: the ACME chain's records are published and the chain
 *     waits staged (certbot's installed chain keeps being served, with its records) until they
 *     are live; `tlsa daemon --once` then installs it; certbot's records retire afterwards.
 *   back to certbot: certbot renews its lineage (the hook: no service uses it yet); one edit
 *     puts it back in place of the ACME lineage and removes `acme:`; the same staged wait, then
 *     the ACME chain's and the next key's records retire.
 * Checked from outside tlsa: the served key (openssl s_client) is the old one until the new
 * chain is installed, the new key's 3 1 1 was on Knot for 2×TTL before that install (a watcher
 * samples Knot), and every posttls-finger poll verifies.
 *
 * Needs root (Postfix master, mount namespaces), a free 127.0.53.x:53 and the Debian packages
 * knot knot-dnsutils unbound pebble certbot postfix openssl; takes about 3 minutes.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { requireBuiltCli } from '../helpers/cli.js';
import { acmeLineage, acmeLines, nextKeyFile } from '../lab/acme-lineage.js';
import { chainRecords } from '../lab/certs.js';
import { DanePoller } from '../lab/dane-finger.js';
import { labDescribe, sleep } from '../lab/lab.js';
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
} from './acme-steps.js';
import { driveUntil, theHook } from './steps.js';

const TTL = 3;

labDescribe(
  'e2e: a lineage moved from certbot to built-in ACME and back with the documented steps; posttls-finger throughout',
  mailLabTools(),
  () => {
    const suiteStart = Date.now();
    let lab: MailLab;
    let poller: DanePoller;
    let watcher: RrsetWatcher;
    const note = (s: string): void =>
      console.log(`[acme-migration ${((Date.now() - suiteStart) / 1000).toFixed(1)} s] ${s}`);
    const certbotCert = (): string => join(lab.certbot.liveDir('mx'), 'cert.pem');
    const acmeCert = (): string => join(acmeLineage(lab, 'ecdsa-p256'), 'cert.pem');
    const pemOf = (lineage: string): string => readFileSync(join(lineage, 'fullchain.pem'), 'utf8');
    const installedLink = (): string => join(lab.installDir, 'mx', 'current');

    const certbotConfig = (): void => lab.writeConfig({ ttl: TTL, service: lab.stagedService() });
    const acmeConfig = (): void =>
      lab.writeConfig({
        ttl: TTL,
        service: [
          '    issuers: none',
          '    certificates:',
          `      - lineage: ${JSON.stringify(acmeLineage(lab, 'ecdsa-p256'))}`,
          '        name: mx # the installed copy certbot lineage "mx" had: Postfix reads it',
          ...lab.installLines(),
          ...acmeLines(lab, ['ecdsa-p256']),
        ],
      });

    beforeAll(async () => {
      requireBuiltCli();
      lab = await startMailLab({ name: 'e2e-acme-migration' });
      certbotConfig();
      watcher = new RrsetWatcher(lab);
      watcher.start();
      poller = new DanePoller(lab.finger!, MAIL_HOST, lab.port, 1000);
      note(
        `lab up: Knot :${lab.auth.port}, unbound :${lab.unbound.port}, pebble :${lab.pebble.port}, Postfix :${lab.port}`,
      );
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      await watcher?.stop();
      await lab?.close();
    }, 60_000);

    /** The staged wait from outside: until the new chain is installed, the old key is served;
     *  once it is, the new key is served and its 3 1 1 had been on Knot for 2×TTL by then. The
     *  old key's 3 1 1 leaves Knot only after the install. */
    async function stagedSwitch(
      label: string,
      from: { spki: string },
      to: { lineage: string; spki: string },
    ): Promise<void> {
      expect(installedPem(lab, 'mx'), `${label}: staged, not installed yet`).not.toBe(
        pemOf(to.lineage),
      );
      expect(await opensslServedSpki(lab.port, 'ecdsa'), `${label}: the old key still serves`).toBe(
        from.spki,
      );
      const t0 = Date.now();
      await driveUntil(
        lab,
        `${label}: installed`,
        () => installedPem(lab, 'mx') === pemOf(to.lineage),
        120_000,
      );
      const installedAt = lstatSync(installedLink()).mtimeMs;
      const rr = `3 1 1 ${to.spki}`;
      const firstOnKnot = watcher.seen.get(rr)?.first;
      expect(firstOnKnot, `${label}: the new 3 1 1 was seen on Knot`).toBeDefined();
      expect(
        installedAt - firstOnKnot!,
        `${label}: on Knot ${((installedAt - firstOnKnot!) / 1000).toFixed(1)} s before the install`,
      ).toBeGreaterThanOrEqual(2 * TTL * 1000 - WATCH_SLACK_MS);
      note(
        `${label}: installed ${((Date.now() - t0) / 1000).toFixed(1)} s after the switch; its 3 1 1 was on Knot ${((installedAt - firstOnKnot!) / 1000).toFixed(1)} s before`,
      );
      expect(await opensslServedSpki(lab.port, 'ecdsa'), `${label}: the new key serves`).toBe(
        to.spki,
      );
      // The old key's record retires by the usual rules: after the install, never before.
      await driveUntil(
        lab,
        `${label}: the old 3 1 1 retired`,
        () => watcher.servedFor(`3 1 1 ${from.spki}`) < 0,
        120_000,
      );
      const gone = watcher.seen.get(`3 1 1 ${from.spki}`)?.gone;
      expect(gone, `${label}: the old 3 1 1 left Knot`).toBeDefined();
      expect(gone!).toBeGreaterThan(installedAt);
    }

    it('certbot: first issuance through the deploy hook, installed and served', async () => {
      poller.scenario = 'certbot';
      const r = await lab.certbot.certonly({
        certName: 'mx',
        domains: [MAIL_HOST],
        keyType: 'ecdsa',
        deployHook: lab.hook,
        env: { TLSA_CONFIG: lab.cfgPath },
      });
      expect(r.code, r.output).toBe(0);
      expect(theHook(r).code, r.output).toBe(0);
      expect(installedPem(lab, 'mx')).toBe(pemOf(lab.certbot.liveDir('mx')));
      const ee = chainRecords(pemOf(lab.certbot.liveDir('mx'))).ee;
      while (watcher.servedFor(ee) < 2 * TTL * 1000 + 500) await sleep(200);
      await lab.postfix.reload();
      expect(await opensslServedSpki(lab.port, 'ecdsa')).toBe(await opensslCertSpki(certbotCert()));
      poller.start();
      await sleep(3000);
    }, 300_000);

    it("to built-in ACME: acme: in the certbot lineage's place (same installed name), tlsa renew; staged until live, then installed; certbot's records retire after", async () => {
      poller.scenario = 'to acme';
      const certbotSpki = await opensslCertSpki(certbotCert());
      // A new intermediate: no live record (not even certbot's chain's 2 1 1) matches the chain.
      await lab.pebble.restart();
      acmeConfig();
      const r = await lab.tlsa(['renew'], { timeoutMs: 300_000 });
      expect(r.code, showRun(r)).toBe(0);
      expect(r.stdout).toMatch(/mx ecdsa-p256: renewed with a new key/);
      const acmeSpki = await opensslCertSpki(acmeCert());
      expect(acmeSpki).not.toBe(certbotSpki);
      await stagedSwitch(
        'to acme',
        { spki: certbotSpki },
        {
          lineage: acmeLineage(lab, 'ecdsa-p256'),
          spki: acmeSpki,
        },
      );
      // The next key's 3 1 1 is published: the following renewal can serve at once.
      const next = await opensslKeySpki(nextKeyFile(lab, 'ecdsa-p256'));
      expect((await lab.served(2)).rdata).toContain(`3 1 1 ${next}`);
    }, 400_000);

    it('back to certbot: certbot renews its lineage, which goes back in place of the ACME one (acme: removed); staged until live; the ACME and next-key records retire', async () => {
      poller.scenario = 'back to certbot';
      const acmeSpki = await opensslCertSpki(acmeCert());
      const next = await opensslKeySpki(nextKeyFile(lab, 'ecdsa-p256'));
      await lab.pebble.restart();
      const account = await lab.certbot.resetAccount();
      const cb = await lab.certbot.renew({
        certName: 'mx',
        reuseKey: false,
        account,
        deployHook: lab.hook,
        env: { TLSA_CONFIG: lab.cfgPath },
      });
      expect(cb.code, cb.output).toBe(0);
      const hook = theHook(cb);
      expect(hook.code, cb.output).toBe(0);
      expect(hook.stdout, 'no service uses the certbot lineage yet').toMatch(/no service .* uses/);
      const certbotSpki = await opensslCertSpki(certbotCert());
      certbotConfig();
      const p = await lab.tlsa(['publish']);
      expect(p.code, showRun(p)).toBe(0);
      await stagedSwitch(
        'back to certbot',
        { spki: acmeSpki },
        {
          lineage: lab.certbot.liveDir('mx'),
          spki: certbotSpki,
        },
      );
      await driveUntil(
        lab,
        'the next key retired',
        () => watcher.servedFor(`3 1 1 ${next}`) < 0,
        120_000,
      );
    }, 400_000);

    it('every posttls-finger poll of the whole run verified', async () => {
      await expectEveryPollVerified(poller, 30, note);
    }, 60_000);
  },
);
