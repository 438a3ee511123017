/**
 * Issue 14, points 1 and 2: `tlsa check` predicts what the next renewal does, and each
 * prediction is then checked by performing the renewal, with posttls-finger polling the server
 * about once a second through a validating unbound the whole time.
 *
 *   pebble ──▶ certbot ──deploy hook──▶ tlsa ──zonefile──▶ Knot (signed) ◀── unbound ◀── posttls-finger
 *   Postfix serves tlsa's installed copy (staged install) or certbot's live files (no install).
 *
 * pebble makes a new intermediate on every start: a restart before a renewal is a CA rotation.
 * Scenarios, in order (each builds on the previous one):
 *   A. records ["3 1 1"], staged install, issuers none: check says "safe (staged)"; a renewal
 *      with a new key from a new intermediate has 0 failed polls (staged until live).
 *   B. records ["2 1 1"], issuers none, no install (Postfix reads certbot's files and is
 *      reloaded as soon as certbot wrote them): check (with --config and plain HOST:PORT) says
 *      the renewal breaks DANE on a CA rotation; after a pebble restart it does (failed polls),
 *      and the hook's advice names no --reuse-key (no 3 1 1 in that setup).
 *   C. the same, with a custom issuer catalog that lists the next intermediate: check says safe;
 *      the renewal after the pebble restart has 0 failed polls.
 *
 * Needs root (Postfix master, mount namespaces), a free 127.0.53.x:53, and the Debian packages
 * knot knot-dnsutils unbound pebble certbot postfix openssl.
 */
import { execFileSync } from 'node:child_process';
import type { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT, requireBuiltCli } from '../helpers/cli.js';
import type { Certbot, CertbotRun, HookRun } from '../lab/certbot.js';
import { eeRecord as ee, pemCerts, taRecord as ta } from '../lab/certs.js';
import { DanePoller, type DaneFinger } from '../lab/dane-finger.js';
import type { KnotServer } from '../lab/knot.js';
import { labDescribe, shellQuote, sleep, toolPath } from '../lab/lab.js';
import { mailLabTools, startMailLab, type MailLab } from '../lab/mail-lab.js';
import type { PebbleServer } from '../lab/pebble.js';
import type { PostfixServer } from '../lab/postfix.js';
import { runAsync, showRun as show, type Run } from '../lab/run.js';
import type { UnboundServer } from '../lab/unbound.js';
import { checkJson, driveUntil, theHook } from './steps.js';

const HOST = 'mx.example.test';
const TTL = 3;
const HOOK = join(REPO_ROOT, 'hooks', 'certbot-deploy');

const cn = (c: X509Certificate): string => /(?:^|\n)CN=([^\n]*)/.exec(c.subject)![1]!;

interface CheckJson {
  ok: boolean;
  reports: {
    warnings: string[];
    nextRenewal: { verdict: string; text: string }[];
    probes: { ok: boolean }[];
  }[];
}

labDescribe(
  'check forecasts the next renewal, and the renewal does what it said (issue 14)',
  mailLabTools(),
  () => {
    const t0 = Date.now();
    const note = (s: string): void => {
      console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
    };
    let lab: MailLab;
    let dir: string;
    let knot: KnotServer;
    let unbound: UnboundServer;
    let pebble: PebbleServer;
    let certbot: Certbot;
    let postfix: PostfixServer;
    let finger: DaneFinger;
    let poller: DanePoller;
    let port: number;
    let cfgPath: string;
    let installDir: string;
    let postfixReload: string;
    /** Deploy hook for the setups without staged install: Postfix loads certbot's new files at
     *  once (reload), then waits for `releaseFlag` (60 s at most) before tlsa's hook runs, so
     *  that what a client sees before the new records reach it is observed, not raced. */
    let reloadFirstHook: string;
    let releaseFlag: string;

    interface Cfg {
      records: string;
      issuers: string;
      staged: boolean;
    }
    function writeConfig(c: Cfg): void {
      const s = JSON.stringify;
      lab.writeConfig({
        ttl: TTL,
        service: [
          `    records: [${s(c.records)}]`,
          `    issuers: ${s(c.issuers)}`,
          ...lab.lineageLines(['mx']),
          ...(c.staged ? lab.installLines() : []),
        ],
      });
    }

    const tlsaEnv = (): Record<string, string> => ({ TLSA_CONFIG: cfgPath });
    const tlsa = (args: string[]): Promise<Run> => lab.tlsa(args);
    const plainCheck = (...extra: string[]): Promise<Run> =>
      runAsync(
        [
          process.execPath,
          CLI_PATH,
          'check',
          '--json',
          '--resolver',
          `127.0.0.1:${unbound.port}`,
          '--auth-port',
          String(knot.port),
          '--timeout',
          '3',
          ...extra,
          `${HOST}:${port}`,
        ],
        { env: { TLSA_CONFIG: '' } },
      );
    const livePem = (): string =>
      readFileSync(join(certbot.liveDir('mx'), 'fullchain.pem'), 'utf8');
    const liveChain = (): X509Certificate[] => pemCerts(livePem());
    const installedLeaf = (): X509Certificate | undefined => {
      const f = join(installDir, 'mx', 'current', 'fullchain.pem');
      return existsSync(f) ? pemCerts(readFileSync(f, 'utf8'))[0] : undefined;
    };
    const knotRdata = async (): Promise<string[]> => (await lab.served()).rdata;

    const drive = (label: string, done: () => boolean | Promise<boolean>, timeoutMs?: number) =>
      driveUntil(lab, label, done, timeoutMs);

    /** Wait until Knot serves `rdata` and it is older than 2×TTL (so every cache has it), and
     *  the daemon has seen it. */
    async function waitLive(rdata: string): Promise<void> {
      const deadline = Date.now() + 60_000;
      while (!(await knotRdata()).includes(rdata)) {
        if (Date.now() > deadline) throw new Error(`${rdata} never reached Knot`);
        await sleep(250);
      }
      await sleep(2 * TTL * 1000 + 1500);
      await tlsa(['daemon', '--once']);
    }

    /** Restart pebble (a new root and intermediate) and renew with a new key. */
    async function rotateAndRenew(hook: string): Promise<{ run: CertbotRun; hook: HookRun }> {
      const before = liveChain();
      const account = await certbot.resetAccount();
      const run = await certbot.renew({
        certName: 'mx',
        reuseKey: false,
        account,
        deployHook: hook,
        env: tlsaEnv(),
      });
      expect(run.code, run.output).toBe(0);
      const after = liveChain();
      expect(ee(after[0]!), 'a new key').not.toBe(ee(before[0]!));
      return { run, hook: theHook(run) };
    }

    const failedPolls = (scenario: string): number =>
      poller.of(scenario).filter((r) => !r.verified).length;

    beforeAll(async () => {
      requireBuiltCli();
      lab = await startMailLab({
        name: 'e2e-check-forecast',
        fragment: () => '; TLSA records: tlsa writes the lines marked tlsa:managed\n',
      });
      ({ dir, unbound, pebble, certbot, postfix, port, cfgPath, installDir } = lab);
      ({ postfixReload } = lab);
      knot = lab.auth.knot!;
      finger = lab.finger!;
      releaseFlag = join(dir, 'release-hook');
      reloadFirstHook = join(dir, 'reload-first-hook');
      writeFileSync(
        reloadFirstHook,
        [
          '#!/bin/sh',
          `${postfixReload} >/dev/null 2>&1`,
          `i=0; while [ ! -e ${shellQuote(releaseFlag)} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`,
          `exec ${shellQuote(HOOK)} "$@"`,
          '',
        ].join('\n'),
        { mode: 0o755 },
      );

      poller = new DanePoller(finger, HOST, port, 1000);
      note(
        `lab up: Knot :${knot.port}, unbound :${unbound.port}, pebble :${pebble.port}, Postfix :${port}`,
      );
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      const all = poller?.results ?? [];
      note(
        `posttls-finger: ${all.length} polls; failed per scenario: ${['A', 'B', 'C'].map((s) => `${s} ${all.filter((r) => r.scenario === s && !r.verified).length}/${all.filter((r) => r.scenario === s).length}`).join(', ')}`,
      );
      await lab?.close();
    }, 60_000);

    it('A. 3 1 1 only with staged install: check says safe (staged); a renewal from a new intermediate has 0 failed polls', async () => {
      writeConfig({ records: '3 1 1', issuers: 'none', staged: true });
      const first = await certbot.certonly({
        certName: 'mx',
        domains: [HOST],
        keyType: 'ecdsa',
        deployHook: HOOK,
        env: tlsaEnv(),
      });
      expect(first.code, first.output).toBe(0);
      expect(theHook(first).code, first.output).toBe(0);
      await waitLive(ee(liveChain()[0]!));
      const f = await finger.check({ host: HOST, port });
      expect(f.verified, f.output).toBe(true);
      poller.scenario = 'A';
      poller.start();

      const { run, json } = await checkJson<CheckJson>(tlsa(['check', '--json']));
      note(
        `A: check: ${(json.reports[0]?.nextRenewal ?? []).map((x) => x.text).join(' | ')} ${json.reports[0]?.warnings.join(' | ')}`,
      );
      expect(run.code, show(run)).toBe(0);
      const r = json.reports[0]!;
      expect(r.warnings.join('\n'), 'no false alarm: the engine stages the chain').not.toMatch(
        /breaks DANE|next renewal/,
      );
      expect(
        (r.nextRenewal ?? []).map((x) => x.verdict),
        show(run),
      ).toEqual(['staged']);
      expect(r.nextRenewal[0]!.text).toMatch(/safe \(staged\)/);

      await pebble.restart();
      const before = liveChain();
      const { hook } = await rotateAndRenew(HOOK);
      expect(hook.code, `${hook.stdout}\n${hook.stderr}`).toBe(0);
      const after = liveChain();
      expect(ta(after[1]!), 'a new intermediate').not.toBe(ta(before[1]!));
      await drive('A', () => installedLeaf()?.fingerprint256 === after[0]!.fingerprint256, 90_000);
      await sleep(3000);
      note(`A: installed; posttls-finger failed ${failedPolls('A')} of ${poller.of('A').length}`);
      expect(poller.of('A').length).toBeGreaterThan(5);
      expect(
        poller
          .of('A')
          .filter((x) => !x.verified)
          .map((x) => x.output.slice(-300)),
        'the prediction "safe (staged)"',
      ).toEqual([]);
    }, 300_000);

    it('B. 2 1 1 only, issuers none, no staged install: check (with --config and plain HOST:PORT) says a CA rotation breaks DANE; it does', async () => {
      // Postfix now reads certbot's files; the records become the issuer's 2 1 1 only.
      writeConfig({ records: '2 1 1', issuers: 'none', staged: false });
      const live = certbot.liveDir('mx');
      execFileSync(toolPath('postconf', 'postfix'), [
        '-c',
        postfix.configDir,
        '-e',
        `smtpd_tls_chain_files = ${join(live, 'privkey.pem')}, ${join(live, 'fullchain.pem')}`,
      ]);
      const p = await tlsa(['publish']);
      expect(p.code, show(p)).toBe(0);
      await waitLive(ta(liveChain()[1]!));
      await postfix.reload();
      poller.scenario = 'B-before';
      await sleep(3000);
      expect(
        poller
          .of('B-before')
          .filter((x) => !x.verified)
          .map((x) => x.output.slice(-300)),
      ).toEqual([]);

      const { run, json } = await checkJson<CheckJson>(tlsa(['check', '--json']));
      note(`B: check --config: ${json.reports[0]?.warnings.join(' | ')}`);
      expect(run.code, show(run)).toBe(0);
      const w = json.reports[0]!.warnings.join('\n');
      expect(w).toMatch(
        /next renewal \(ECDSA P-256\): breaks DANE: .*intermediate other than .*"issuers: none"/,
      );
      expect(
        (json.reports[0]!.nextRenewal ?? []).map((x) => x.verdict),
        show(run),
      ).toEqual(['breaks']);
      expect(w, 'no 3 1 1 is published: --reuse-key cannot help').not.toMatch(/reuse-key/);
      expect(w).toMatch(/install:/);
      // Without a configuration the port (not 25) is probed with TLS from the first byte: the
      // STARTTLS server answers in plaintext, and check says which option fixes that.
      const guessed = await plainCheck();
      expect(guessed.code, show(guessed)).toBe(1);
      expect(guessed.stdout).toContain(`run \\"tlsa check --protocol smtp ${HOST}:${port}\\"`);
      const plain = await checkJson<CheckJson>(plainCheck('--protocol', 'smtp'));
      note(`B: plain check: ${plain.json.reports[0]?.warnings.join(' | ')}`);
      expect(plain.json.reports[0]!.warnings.join('\n')).toMatch(
        /breaks DANE: .*intermediate other than .*no issuer catalog knows/,
      );
      expect(
        (plain.json.reports[0]!.nextRenewal ?? []).map((x) => x.verdict),
        show(plain.run),
      ).toEqual(['breaks']);

      // The renewal after a CA rotation: Postfix serves the new chain before tlsa's hook runs.
      poller.scenario = 'B';
      await pebble.restart();
      const renewal = rotateAndRenew(reloadFirstHook);
      const deadline = Date.now() + 60_000;
      while (!poller.of('B').some((x) => !x.verified) && Date.now() < deadline) await sleep(200);
      writeFileSync(releaseFlag, '');
      const { hook } = await renewal;
      note(`B: hook exit ${hook.code}: ${hook.stderr.trim().split('\n').slice(-1).join('')}`);
      const broken = poller.of('B').filter((x) => !x.verified);
      expect(broken.length, 'the prediction "breaks DANE": posttls-finger fails').toBeGreaterThan(
        0,
      );
      expect(broken[0]!.output).not.toMatch(/Verified TLS connection established/);
      // The hook says so too, with the fixes for this setup only.
      expect(hook.code).toBe(1);
      expect(hook.stderr).toMatch(/install:/);
      expect(hook.stderr).not.toMatch(/reuse-key/);
      // Converges once the new issuer's 2 1 1 is live.
      const newTa = ta(liveChain()[1]!);
      await waitLive(newTa);
      poller.scenario = 'B-after';
      await drive(
        'B-after',
        () => poller.of('B-after').filter((x) => x.verified).length >= 2,
        60_000,
      );
    }, 300_000);

    it('C. 2 1 1 only with a catalog that lists the next intermediate: check says safe; the renewal after a rotation has 0 failed polls', async () => {
      await pebble.restart();
      const served = liveChain()[1]!;
      const next = pemCerts(await pebble.intermediate())[0]!;
      expect(next.fingerprint256).not.toBe(served.fingerprint256);
      const catDir = join(dir, 'catalog');
      mkdirSync(catDir, { recursive: true });
      const entry = (c: X509Certificate, file: string) => {
        writeFileSync(join(catDir, file), c.toString());
        return {
          name: cn(c),
          key: 'ecdsa',
          status: 'active',
          notAfter: new Date(c.validTo).toISOString(),
          file,
        };
      };
      writeFileSync(
        join(catDir, 'catalog.json'),
        JSON.stringify(
          {
            ca: 'pebble',
            asOf: '2026-12-01',
            intermediates: [entry(served, 'served.pem'), entry(next, 'next.pem')],
          },
          null,
          2,
        ),
      );
      writeConfig({ records: '2 1 1', issuers: join(catDir, 'catalog.json'), staged: false });
      const p = await tlsa(['publish']);
      expect(p.code, show(p)).toBe(0);
      await waitLive(ta(next));
      rmFlag();

      poller.scenario = 'C';
      const { run, json } = await checkJson<CheckJson>(tlsa(['check', '--json']));
      note(
        `C: check: ${(json.reports[0]?.nextRenewal ?? []).map((x) => x.text).join(' | ')} ${json.reports[0]?.warnings.join(' | ')}`,
      );
      expect(run.code, show(run)).toBe(0);
      expect(
        (json.reports[0]!.nextRenewal ?? []).map((x) => x.verdict),
        show(run),
      ).toEqual(['safe']);
      expect(json.reports[0]!.warnings.join('\n'), show(run)).not.toMatch(/next renewal/);

      writeFileSync(releaseFlag, '');
      const { hook } = await rotateAndRenew(reloadFirstHook);
      expect(ta(liveChain()[1]!), 'issued from the intermediate the catalog named').toBe(ta(next));
      note(
        `C: hook exit ${hook.code}: ${hook.stdout.trim()} ${hook.stderr.trim().split('\n').slice(-1).join('')}`,
      );
      await sleep(5000);
      expect(poller.of('C').length).toBeGreaterThan(5);
      expect(
        poller
          .of('C')
          .filter((x) => !x.verified)
          .map((x) => x.output.slice(-300)),
        'the prediction "safe"',
      ).toEqual([]);
    }, 300_000);

    function rmFlag(): void {
      if (existsSync(releaseFlag)) execFileSync('rm', ['-f', releaseFlag]);
    }
  },
);
