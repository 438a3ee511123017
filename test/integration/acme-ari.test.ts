/**
 * `tlsa renew` with ARI (RFC 9773), profiles and CA faults, against Debian's pebble on loopback
 * behind the test proxy test/fakes/ari-proxy.ts (pebble 2.4 has neither ARI nor profiles: the
 * proxy adds them and passes everything else through). pebble's VA resolves the service host
 * through a Knot on loopback and fetches the HTTP-01 token from tlsa's standalone responder.
 * External Account Binding is tested against a second pebble that requires it (no proxy).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ariCertIdOf } from '../../src/acme/ari-id.js';
import { parseSchedule, type RenewalSchedule } from '../../src/acme/schedule-file.js';
import { type AriProxy, startAriProxy } from '../fakes/ari-proxy.js';
import { CLI_PATH, configYaml, requireBuiltCli } from '../helpers/cli.js';
import { makeCa, makeLeaf } from '../helpers/pki.js';
import { freePort, labDescribe, makeTempDir, sleep, stopAll } from '../lab/lab.js';
import { PEBBLE_TOOLS, type PebbleServer, startPebble, startVaResolver } from '../lab/pebble.js';
import { type Run, runAsync, showRun } from '../lab/run.js';

const DAY = 86_400_000;
const EAB_KID = 'kid-tlsa-lab';
const EAB_KEY = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';
const WRONG_EAB_KEY = `${EAB_KEY.slice(0, -4)}AAAA`;

/** A renewal of an issued lineage here uses a fresh key (the next key's 3 1 1 cannot be live
 *  at this TTL): it succeeds and its chain waits staged, which `renew` reports as exit 4. */
const RENEWED_STAGED = 4;
labDescribe(
  'tlsa renew: ARI, profiles, EAB and CA faults against pebble behind ari-proxy (loopback)',
  [...PEBBLE_TOOLS, ['knotd', 'knot'], ['knotc', 'knot']],
  () => {
    let pebble: PebbleServer;
    let eabPebble: PebbleServer;
    let proxy: AriProxy;
    /** pebble issuing 40-second certificates, behind its own proxy. */
    let shortPebble: PebbleServer;
    let shortProxy: AriProxy;
    let httpPort: number;
    const future = () => ({
      window: { start: new Date(Date.now() + 20 * DAY), end: new Date(Date.now() + 22 * DAY) },
      retryAfterS: 3600,
    });

    beforeAll(async () => {
      requireBuiltCli();
      const dnsServer = await startVaResolver();
      httpPort = await freePort();
      pebble = await startPebble({
        dnsServer,
        httpPort,
        timeoutMs: 60_000,
      });
      eabPebble = await startPebble({
        dnsServer,
        httpPort,
        eabKeys: { [EAB_KID]: EAB_KEY },
        timeoutMs: 60_000,
      });
      shortPebble = await startPebble({
        dnsServer,
        httpPort,
        certificateValiditySeconds: 40,
        timeoutMs: 60_000,
      });
      const proxyFor = (p: PebbleServer) =>
        startAriProxy({
          upstreamHost: p.host,
          upstreamPort: p.port,
          pebbleDir: p.dir,
          tlsCaPath: p.tlsCaPath,
        });
      proxy = await proxyFor(pebble);
      shortProxy = await proxyFor(shortPebble);
    }, 240_000);
    afterAll(async () => {
      await proxy?.stop();
      await shortProxy?.stop();
      await stopAll();
    });

    function setup(acmeExtra: string[] = [], directory = proxy.directoryUrl, ca = pebble) {
      const dir = makeTempDir('acme-ari');
      writeFileSync(
        join(dir, 'config.yaml'),
        configYaml({
          certificates: ['lineage: state/acme/mx/ecdsa-p256'],
          serviceExtra: [
            'records: ["3 1 1"]',
            'acme:',
            `  directory: ${JSON.stringify(directory)}`,
            `  challenge: {http01: {standalone: "127.0.0.1:${httpPort}"}}`,
            `  ca_bundle: ${JSON.stringify(ca.tlsCaPath)}`,
            ...acmeExtra.map((l) => `  ${l}`),
          ],
        }),
      );
      const certPath = join(dir, 'state/acme/mx/ecdsa-p256/cert.pem');
      const schedulePath = join(dir, 'state/acme/mx/schedule/ecdsa-p256.json');
      return {
        dir,
        // Not spawnSync: the proxy answers from this process's event loop meanwhile.
        renew: (...a: string[]): Promise<Run> =>
          runAsync(
            [process.execPath, CLI_PATH, '--config', join(dir, 'config.yaml'), 'renew', ...a],
            {
              timeoutMs: 150_000,
              env: { TLSA_TEST_EAB_KEY: EAB_KEY, TLSA_TEST_WRONG_EAB_KEY: WRONG_EAB_KEY },
            },
          ),
        cert: () => readFileSync(certPath, 'utf8'),
        schedule: (): RenewalSchedule => parseSchedule(readFileSync(schedulePath, 'utf8'))!,
        /** Time passes: the stored schedule's poll time is over. */
        pollTimeOver: () => {
          const s = JSON.parse(readFileSync(schedulePath, 'utf8')) as RenewalSchedule;
          s.nextPollAt = new Date(Date.now() - 1000).toISOString();
          writeFileSync(schedulePath, JSON.stringify(s));
        },
      };
    }

    /** A lineage issued through the proxy, with a future ARI window for it. */
    async function issued(acmeExtra: string[] = []) {
      proxy.setRenewalInfo(future());
      const s = setup(acmeExtra);
      const r = await s.renew();
      expect(r.code, showRun(r)).toBe(0);
      return s;
    }

    const near = (iso: string | undefined, ms: number, slackMs = 120_000) =>
      Math.abs(Date.parse(iso ?? '') - ms) < slackMs;

    it('a window in the future: not due, the schedule says so, Retry-After holds the next poll', async () => {
      const s = await issued();
      const serial = new X509Certificate(s.cert()).serialNumber;
      const sched = s.schedule();
      expect(sched.source).toBe('ari');
      expect(sched.serial).toBe(serial);
      const { window } = future();
      expect(near(sched.windowStart, window.start.getTime())).toBe(true);
      expect(near(sched.windowEnd, window.end.getTime())).toBe(true);
      expect(Date.parse(sched.at)).toBeGreaterThanOrEqual(Date.parse(sched.windowStart!));
      expect(Date.parse(sched.at)).toBeLessThanOrEqual(Date.parse(sched.windowEnd!));
      expect(near(sched.nextPollAt, Date.now() + 3600_000)).toBe(true);
      expect(proxy.renewalInfoAsked.at(-1)).toBe(ariCertIdOf(s.cert()));

      // Before nextPollAt: the stored schedule answers, the CA is not asked at all.
      const before = proxy.requests.length;
      const second = await s.renew();
      expect(second.code, showRun(second)).toBe(0);
      expect(second.stdout).toContain(`not due until ${sched.at} (ari rule)`);
      expect(proxy.requests.slice(before)).toEqual([]);

      // Once it is over: asked again, still not due.
      s.pollTimeOver();
      const asked = proxy.renewalInfoAsked.length;
      const third = await s.renew();
      expect(third.code, showRun(third)).toBe(0);
      expect(third.stdout).toMatch(/not due until .* \(ari rule\)/);
      expect(proxy.renewalInfoAsked.length).toBe(asked + 1);
      expect(s.cert()).toContain(new X509Certificate(s.cert()).toString().trim());
      expect(new X509Certificate(s.cert()).serialNumber).toBe(serial);
    }, 400_000);

    it('a window in the past: renewed at once, the new order says which certificate it replaces', async () => {
      const s = await issued();
      const old = s.cert();
      const oldId = ariCertIdOf(old);
      proxy.setRenewalInfo(
        {
          window: { start: new Date(Date.now() - 2 * DAY), end: new Date(Date.now() - DAY) },
          explanationURL: 'https://ca.example/incident-42',
        },
        oldId,
      );
      s.pollTimeOver();
      const orders = proxy.newOrders.length;
      const r = await s.renew();
      expect(r.code, showRun(r)).toBe(RENEWED_STAGED);
      expect(r.stderr).toContain('https://ca.example/incident-42');
      expect(r.stdout).toMatch(/renewed with/);
      expect(s.cert()).not.toBe(old);
      expect(proxy.newOrders.slice(orders)).toHaveLength(1);
      expect(proxy.newOrders.at(-1)!.replaces).toBe(oldId);
      // The new certificate has its own schedule (the proxy's future window for other ids).
      expect(s.schedule().serial).toBe(new X509Certificate(s.cert()).serialNumber);
      expect(s.schedule().source).toBe('ari');
    }, 400_000);

    it('alreadyReplaced: ordered once more without replaces, and said so', async () => {
      const s = await issued();
      const oldId = ariCertIdOf(s.cert());
      proxy.setRenewalInfo(
        { window: { start: new Date(0), end: new Date(Date.now() - DAY) } },
        oldId,
      );
      s.pollTimeOver();
      proxy.fault({ kind: 'alreadyReplaced' });
      const orders = proxy.newOrders.length;
      const r = await s.renew();
      proxy.fault(undefined);
      expect(r.code, showRun(r)).toBe(RENEWED_STAGED);
      expect(r.stderr).toMatch(/already replaced .*ordering without "replaces"/);
      const sent = proxy.newOrders.slice(orders);
      expect(sent.map((o) => o.replaces)).toEqual([oldId, undefined]);
    }, 400_000);

    it('an unusable renewalInfo answer: a warning, and the lifetime rule decides', async () => {
      proxy.setRenewalInfo({ body: '{"suggestedWindow": {"start": "2026-01-02T00:00:00Z"}}' });
      const s = setup();
      const r = await s.renew();
      expect(r.code, showRun(r)).toBe(0);
      expect(r.stderr).toMatch(
        /warning: mx ecdsa-p256: the CA's renewalInfo answer is unusable \(the suggestedWindow has no valid start and end\); the lifetime rule decides/,
      );
      const sched = s.schedule();
      expect(sched.source).toBe('lifetime');
      const cert = new X509Certificate(s.cert());
      const nb = Date.parse(cert.validFrom);
      expect(near(sched.at, nb + ((Date.parse(cert.validTo) - nb) * 2) / 3, 1000)).toBe(true);
    }, 400_000);

    it('an ARI answer the CA botches never holds back a renewal the lifetime rule says is due', async () => {
      shortProxy.setRenewalInfo({ status: 500, body: 'internal error' });
      const s = setup([], shortProxy.directoryUrl, shortPebble);
      const first = await s.renew();
      expect(first.code, showRun(first)).toBe(0);
      expect(first.stderr).toMatch(/renewalInfo answer is unusable \(HTTP 500\)/);
      const old = s.cert();
      const leaf = new X509Certificate(old);
      expect(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)).toBeLessThanOrEqual(41_000);
      const sched = s.schedule();
      expect(sched.source).toBe('lifetime');
      // Half of a short lifetime has passed, and the next poll is due: the CA answers badly again.
      await sleep(Math.max(0, Date.parse(sched.at) - Date.now() + 1000));
      s.pollTimeOver();
      const asked = shortProxy.renewalInfoAsked.length;
      const r = await s.renew();
      expect(r.code, showRun(r)).toBe(RENEWED_STAGED);
      expect(r.stderr).toMatch(/unusable \(HTTP 500\); the lifetime rule decides when to renew/);
      expect(r.stdout).toMatch(/renewed with/);
      expect(shortProxy.renewalInfoAsked.length).toBeGreaterThan(asked);
      expect(s.cert()).not.toBe(old);
    }, 400_000);

    it('a profile the directory offers is sent; one it does not offer: exit 2 naming the offered', async () => {
      proxy.setProfiles({ tlsserver: 'https://ca.example/tlsserver', shortlived: 'six days' });
      try {
        proxy.setRenewalInfo(future());
        const s = setup(['profile: shortlived']);
        const r = await s.renew();
        expect(r.code, showRun(r)).toBe(0);
        expect(proxy.newOrders.at(-1)!.profile).toBe('shortlived');

        const orders = proxy.newOrders.length;
        const bad = setup(['profile: classic']);
        const refused = await bad.renew();
        expect(refused.code, showRun(refused)).toBe(2);
        expect(refused.stderr).toContain(
          'offers no profile "classic" (it offers: tlsserver, shortlived)',
        );
        expect(proxy.newOrders.length).toBe(orders);
      } finally {
        proxy.setProfiles(undefined);
      }
    }, 400_000);

    it('badNonce: retried by the client, the renewal succeeds', async () => {
      proxy.setRenewalInfo(future());
      const s = setup();
      proxy.fault({ kind: 'badNonce' });
      const orders = proxy.newOrders.length;
      const r = await s.renew();
      proxy.fault(undefined);
      expect(r.code, showRun(r)).toBe(0);
      expect(proxy.newOrders.length - orders).toBe(2);
    }, 400_000);

    it('rateLimited: exit 3 with the time, schedule "rate-limit", no CA request before that time', async () => {
      const s = await issued();
      const old = s.cert();
      proxy.fault({ kind: 'rateLimited', retryAfterS: 7200 });
      const t0 = Date.now();
      const r = await s.renew('--force');
      proxy.fault(undefined);
      expect(r.code, showRun(r)).toBe(3);
      // Not waited for in-process (acme-client would sleep through Retry-After).
      expect(r.ms).toBeLessThan(60_000);
      const until = /rate-limited this order until (\S+):/.exec(r.stderr)?.[1];
      expect(near(until, t0 + 7200_000)).toBe(true);
      expect(s.cert()).toBe(old);
      const sched = s.schedule();
      expect(sched.source).toBe('rate-limit');
      expect(sched.at).toBe(until);
      expect(sched.lastError).toBe('too many new orders recently (injected)');

      const before = proxy.requests.length;
      for (const args of [[], ['--force']]) {
        const again = await s.renew(...args);
        expect(again.code, showRun(again)).toBe(3);
        expect(again.stderr).toContain(`rate-limited this order until ${until}`);
        expect(again.stderr).toContain(
          'ecdsa-p256 is not asked for again before then (the CA said: too many new orders recently (injected))',
        );
      }
      expect(proxy.requests.slice(before)).toEqual([]);
      expect(s.cert()).toBe(old);
    }, 400_000);

    it('a chain for another key: exit 3, nothing installed, retried after a backoff', async () => {
      const s = await issued();
      const old = s.cert();
      const pki = makeTempDir('ari-foreign');
      const root = makeCa(pki, { name: 'Foreign Root', key: 'p256' });
      const leaf = makeLeaf(pki, { ca: root, cn: 'mx.example.org', key: 'p256' });
      proxy.fault({ kind: 'foreignChain', pem: `${leaf.certPem}${root.certPem}` });
      const r = await s.renew('--force');
      proxy.fault(undefined);
      expect(r.code, showRun(r)).toBe(3);
      expect(r.stderr).toMatch(/certificate for another key; nothing was installed/);
      expect(s.cert()).toBe(old);
      const sched = s.schedule();
      expect(sched.source).toBe('retry');
      expect(near(sched.at, Date.now() + 15 * 60_000)).toBe(true);

      // The next run before the backoff: not due, the CA is not asked; --force retries now.
      const before = proxy.requests.length;
      const waiting = await s.renew();
      expect(waiting.code, showRun(waiting)).toBe(0);
      expect(waiting.stdout).toContain(`not due until ${sched.at} (retry rule)`);
      expect(proxy.requests.slice(before)).toEqual([]);
      const retried = await s.renew('--force');
      expect(retried.code, showRun(retried)).toBe(RENEWED_STAGED);
      expect(s.cert()).not.toBe(old);
    }, 400_000);

    it('External Account Binding: pebble requiring it issues with the configured key; a wrong key exits 3 unprinted', async () => {
      const good = setup(
        ['eab: {kid: "kid-tlsa-lab", hmac_key: "${TLSA_TEST_EAB_KEY}"}'],
        eabPebble.directoryUrl,
        eabPebble,
      );
      const r = await good.renew();
      expect(r.code, showRun(r)).toBe(0);
      expect(`${r.stdout}${r.stderr}`).not.toContain(EAB_KEY);

      const bad = setup(
        ['eab: {kid: "kid-tlsa-lab", hmac_key: "${TLSA_TEST_WRONG_EAB_KEY}"}'],
        eabPebble.directoryUrl,
        eabPebble,
      );
      const refused = await bad.renew();
      expect(refused.code, showRun(refused)).toBe(3);
      expect(`${refused.stdout}${refused.stderr}`).not.toContain(WRONG_EAB_KEY);
    }, 400_000);
  },
);
