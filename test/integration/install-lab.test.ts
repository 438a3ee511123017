/**
 * Staged install as root, in the lab: Knot (signed zone, tlsa's zonefile provider writes an
 * $INCLUDEd fragment), a validating unbound, Postfix reading tlsa's installed combined.pem on a
 * STARTTLS and an implicit-TLS port, and posttls-finger -l dane polled about once a second.
 *
 * The two ports are two services sharing one certbot-style lineage and one install dir (an
 * admin-made symlink), with the key given to group postfix, mode 0640. A renewal with a new key
 * and a new intermediate must be installed once and reloaded once (Postfix logs each reload),
 * keep the real previous release, leave the key copies as configured, and break DANE for no
 * poll.
 */
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DanePoller, makeDaneFinger, type DaneFinger } from '../lab/dane-finger.js';
import { CLI_PATH, requireBuiltCli } from '../helpers/cli.js';
import { makeCa, makeLeaf, makeLineage, type CaHandle } from '../helpers/pki.js';
import { query, rdataOf } from '../lab/dig.js';
import type { KnotServer } from '../lab/knot.js';
import { startFragmentZone } from '../lab/fragment-zone.js';
import {
  freeLoopback53,
  labDescribe,
  makeTempDir,
  shellQuote,
  sleep,
  stopAll,
  toolPath,
} from '../lab/lab.js';
import { postTlsFinger, startPostfix, type PostfixServer } from '../lab/postfix.js';
import type { UnboundServer } from '../lab/unbound.js';

const ZONE = 'example.test.';
const HOST = 'mx.example.test';
const TTL = 2;

function tlsa(cfg: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      [CLI_PATH, '--config', cfg, ...args],
      { timeout: 90_000 },
      (err, stdout, stderr) => {
        resolveRun({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          out: `${stdout}${stderr}`,
        });
      },
    );
  });
}

labDescribe(
  'staged install as root: shared copy, key for group postfix, Postfix + posttls-finger (Knot, unbound)',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ['postfix', 'postfix'],
    ['postconf', 'postfix'],
    ['posttls-finger', 'postfix'],
    ['setsid', 'util-linux'],
    ['unshare', 'util-linux'],
    ['openssl', 'openssl'],
  ],
  () => {
    let dir: string;
    let knot: KnotServer;
    let unbound: UnboundServer;
    let postfix: PostfixServer;
    let poller: DanePoller;
    let finger: DaneFinger;
    let cfg: string;
    let le: string;
    let realInstall: string;
    let root: CaHandle;
    const reloadsLog = () =>
      existsSync(join(dir, 'reloads.log'))
        ? readFileSync(join(dir, 'reloads.log'), 'utf8').split('\n').filter(Boolean)
        : [];
    const postfixReloads = () =>
      (postfix.maillog().match(/postfix\/master\[\d+\]: reload -- /g) ?? []).length;
    const installedLeaf = () =>
      new X509Certificate(readFileSync(join(realInstall, 'mx', 'current', 'cert.pem')))
        .fingerprint256;

    const renew = (ca: CaHandle) => {
      const leaf = makeLeaf(dir, { ca, cn: HOST, key: 'p256' });
      makeLineage(le, 'mx', leaf, [ca]);
      return new X509Certificate(leaf.certPem);
    };

    async function drive(
      label: string,
      done: () => boolean | Promise<boolean>,
      timeoutMs = 90_000,
    ): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        const r = await tlsa(cfg, ['daemon', '--once']);
        last = r.out;
        if (await done()) return;
        if (Date.now() > deadline)
          throw new Error(
            `${label}: not done after ${timeoutMs} ms; last run exit ${r.code}:\n${last}`,
          );
        await sleep(1000);
      }
    }

    beforeAll(async () => {
      requireBuiltCli();
      dir = makeTempDir('install-lab');
      chmodSync(dir, 0o755); // Postfix's unprivileged processes may look here
      le = join(dir, 'le');
      root = makeCa(dir, { name: 'Lab Root', key: 'p256' });
      const intA = makeCa(dir, { name: 'Lab Int A', key: 'p256', issuer: root });
      const leaf = makeLeaf(dir, { ca: intA, cn: HOST, key: 'p256' });
      makeLineage(le, 'mx', leaf, [intA]);

      // install.dir is a symlink the admin made (allowed: the admin's choice); tlsa owns what is below.
      realInstall = join(dir, 'srv-tls');
      mkdirSync(realInstall, { mode: 0o755 });
      const installDir = join(dir, 'tls');
      symlinkSync(realInstall, installDir);

      postfix = await startPostfix({
        chains: [{ keyPath: leaf.keyPath, fullchainPath: join(le, 'live', 'mx', 'fullchain.pem') }],
        hostname: HOST,
      });
      const postconf = toolPath('postconf', 'postfix');
      await new Promise<void>((res, rej) =>
        execFile(
          postconf,
          [
            '-c',
            postfix.configDir,
            '-e',
            `smtpd_tls_chain_files = ${join(installDir, 'mx', 'current', 'combined.pem')}`,
          ],
          (e) => (e ? rej(e) : res()),
        ),
      );
      const reload = `echo reload >> ${shellQuote(join(dir, 'reloads.log'))}; ${shellQuote(toolPath('postfix', 'postfix'))} -c ${shellQuote(postfix.configDir)} reload`;

      const glibcResolver = await freeLoopback53();
      let fragment: string;
      ({ fragment, knot, unbound } = await startFragmentZone(dir, {
        zone: ZONE,
        nsLabel: 'ns1',
        header: '; tlsa writes here',
        dnssec: true,
        unbound: { extraListen: glibcResolver, cacheMaxTtl: 30, cacheMaxNegativeTtl: 2 },
      }));
      const a = await query({
        server: unbound.host,
        port: unbound.port,
        name: HOST,
        type: 'A',
        dnssec: true,
      });
      if (!a.flags.includes('ad') || !rdataOf(a, 'A').includes('127.0.0.1'))
        throw new Error(`unbound does not validate ${HOST}:\n${a.raw}`);

      const s = JSON.stringify;
      const service = (port: number, protocol: string) => [
        `    host: ${HOST}`,
        `    ports: [${port}]`,
        `    protocol: ${protocol}`,
        '    provider: knot',
        '    issuers: none',
        '    certificates:',
        `      - lineage: ${s(join(le, 'live', 'mx'))}`,
        '    install:',
        `      dir: ${s(installDir)}`,
        `      reload: ${s(reload)}`,
        '      group: postfix',
        '      mode: "0640"',
      ];
      cfg = join(dir, 'tlsa.yaml');
      writeFileSync(
        cfg,
        [
          `state_dir: ${s(join(dir, 'state'))}`,
          `ttl: ${TTL}`,
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  propagation: true',
          '  probe: true',
          '  timeout_s: 3',
          'providers:',
          '  knot:',
          '    type: zonefile',
          `    path: ${s(fragment)}`,
          `    reload: ${s(knot.reloadCommand(ZONE))}`,
          'services:',
          '  smtp:',
          ...service(postfix.smtpPort, 'smtp'),
          '  smtps:',
          ...service(postfix.smtpsPort, 'tls'),
          '',
        ].join('\n'),
      );
      finger = makeDaneFinger({ dir, zone: ZONE, resolverAddress: glibcResolver });
      poller = new DanePoller(finger, HOST, postfix.smtpPort, 1000);
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      await postfix?.stop();
      await stopAll();
    }, 60_000);

    it('installs the shared copy once per run, reloads once, keeps the real previous release and the key for group postfix; DANE never fails', async () => {
      // First issuance: installed at once (nothing served from the install dir yet), one reload.
      const first = await tlsa(cfg, ['publish']);
      expect(first.code, first.out).toBe(0);
      expect(first.out).toMatch(/installed .* for smtp, smtps/);
      expect(reloadsLog()).toEqual(['reload']);
      expect(postfixReloads()).toBe(1);
      const r1 = readlinkSync(join(realInstall, 'mx', 'current'));
      const postfixGid = Number(
        (
          await new Promise<string>((res) =>
            execFile('getent', ['group', 'postfix'], (_e, out) => res(out)),
          )
        ).split(':')[2],
      );
      const keyCopies = () =>
        ['privkey.pem', 'combined.pem'].map((f) => {
          const st = statSync(join(realInstall, 'mx', 'current', f));
          return [f, st.uid, st.gid, st.mode & 0o7777];
        });
      expect(keyCopies()).toEqual([
        ['privkey.pem', 0, postfixGid, 0o640],
        ['combined.pem', 0, postfixGid, 0o640],
      ]);

      // The records become live; posttls-finger verifies Postfix (which read tlsa's combined.pem).
      await drive(
        'first records live',
        async () => (await finger.check({ host: HOST, port: postfix.smtpPort })).verified,
      );
      poller.start();

      // Renewal: new key, new intermediate: staged until its records are live, then installed once.
      const intB = makeCa(dir, { name: 'Lab Int B', key: 'p256', issuer: root });
      const next = renew(intB);
      await drive('renewal installed', () => installedLeaf() === next.fingerprint256);
      await sleep(3000); // a few polls against the new chain
      await poller.stop();

      expect(reloadsLog()).toEqual(['reload', 'reload']);
      expect(postfixReloads()).toBe(2);
      expect(readdirSync(join(realInstall, 'mx', 'releases'))).toHaveLength(2);
      expect(readlinkSync(join(realInstall, 'mx', 'previous'))).toBe(r1);
      expect(keyCopies()).toEqual([
        ['privkey.pem', 0, postfixGid, 0o640],
        ['combined.pem', 0, postfixGid, 0o640],
      ]);
      // Both ports present the new chain (implicit TLS through posttls-finger -w).
      const smtps = await postTlsFinger({
        configDir: postfix.configDir,
        port: postfix.smtpsPort,
        wrapper: true,
      });
      expect(smtps.pkeySha256, smtps.output).toBeDefined();
      const nextSpki = createHash('sha256')
        .update(next.publicKey.export({ type: 'spki', format: 'der' }))
        .digest('hex');
      expect(smtps.pkeySha256).toBe(nextSpki);
      const polls = poller.results;
      const failed = polls.filter((r) => !r.verified);
      expect(polls.length).toBeGreaterThan(3);
      expect(
        failed.map((r) => `${r.at.toISOString()} ${r.output.split('\n').slice(-3).join(' | ')}`),
      ).toEqual([]);
      expect(polls.at(-1)!.pkeySha256).toBe(nextSpki);
    }, 300_000);
  },
);
