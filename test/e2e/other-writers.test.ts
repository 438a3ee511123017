/**
 * Issue 14, points 3 and 4: several writers at one TLSA owner name. Host C is tlsa as
 * configured here; host D is another writer (its lines in the zone file, written by the test).
 * `tlsa check` is run first, then the renewal is performed, with posttls-finger polling the
 * server about once a second through a validating unbound the whole time.
 *
 *   pebble ──▶ certbot ──deploy hook──▶ tlsa (C) ──zonefile──▶ Knot (signed) ◀── unbound ◀── posttls-finger
 *                                       host D's lines ──────▶        Postfix serves tlsa's installed copy
 *
 *   3. C has records ["2 1 1"], issuers none, staged install. pebble is restarted (a new
 *      intermediate) and D publishes that intermediate's 2 1 1 before C renews. check says the
 *      renewal is safe (staged); the renewal then installs the chain once D's record is 2×TTL
 *      old, counted from when C first saw it on every server (it used to wait for ever), with 0
 *      failed polls; C never removes D's record.
 *   4. C adds "3 1 1", max_records_per_name 3; D keeps two records of its own at TTL 6 (C: 3).
 *      plan warns that the other writers' records put the owner over the cap and that they use
 *      another TTL; plan, status and check show the TTL the servers serve. A renewal with a new
 *      key from the same intermediate is safe (staged, and D's live 2 1 1 matches it at once):
 *      0 failed polls, and D's records stay.
 *
 * Needs root (Postfix master, mount namespaces), a free 127.0.53.x:53, and the Debian packages
 * knot knot-dnsutils unbound pebble certbot postfix openssl.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, REPO_ROOT, requireBuiltCli } from '../helpers/cli.js';
import { makeCertbot, type Certbot, type CertbotRun, type HookRun } from '../lab/certbot.js';
import { query, rdataOf } from '../lab/dig.js';
import { startKnot, type KnotServer } from '../lab/knot.js';
import {
  freeLoopback53,
  labDescribe,
  makeTempDir,
  shellQuote,
  sleep,
  stopAll,
  toolPath,
} from '../lab/lab.js';
import { startPebble, type PebbleServer } from '../lab/pebble.js';
import { startPostfix, type PostfixServer } from '../lab/postfix.js';
import { startUnbound, type UnboundServer } from '../lab/unbound.js';
import { DanePoller, makeDaneFinger, type DaneFinger } from './dane-finger.js';

const ZONE = 'example.test.';
const HOST = 'mx.example.test';
const TTL = 3;
const D_TTL = 6;
const HOOK = join(REPO_ROOT, 'hooks', 'certbot-deploy');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}
const show = (r: Run): string =>
  `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

function runAsync(
  argv: string[],
  env: Record<string, string> = {},
  timeoutMs = 90_000,
): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const spki = (c: X509Certificate): Buffer =>
  c.publicKey.export({ type: 'spki', format: 'der' }) as Buffer;
const pemCerts = (text: string): X509Certificate[] =>
  (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );

interface CheckJson {
  ok: boolean;
  reports: {
    warnings: string[];
    servedTtl?: number;
    records: string[];
    nextRenewal: { verdict: string; text: string }[];
  }[];
}
interface StateJson {
  records: { usage: number; selector: number; matching: number; data: string }[];
  observed?: Record<string, Record<string, string>>;
}

labDescribe(
  "several writers at one owner: another writer's record counts, the cap and the TTL (issue 14, points 3 and 4)",
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ['unbound-checkconf', 'unbound'],
    ['pebble', 'pebble'],
    ['certbot', 'certbot'],
    ['postfix', 'postfix'],
    ['postconf', 'postfix'],
    ['posttls-finger', 'postfix'],
    ['setsid', 'util-linux'],
    ['unshare', 'util-linux'],
    ['openssl', 'openssl'],
  ],
  () => {
    const t0 = Date.now();
    const note = (s: string): void => {
      console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
    };
    let dir: string;
    let knot: KnotServer;
    let unbound: UnboundServer;
    let pebble: PebbleServer;
    let certbot: Certbot;
    let postfix: PostfixServer;
    let finger: DaneFinger;
    let poller: DanePoller;
    let port: number;
    let owner: string;
    let cfgPath: string;
    let stateDir: string;
    let installDir: string;
    let fragmentPath: string;
    let postfixReload: string;

    function writeConfig(records: string[], cap?: number): void {
      const s = JSON.stringify;
      writeFileSync(
        cfgPath,
        [
          `state_dir: ${s(stateDir)}`,
          `ttl: ${TTL}`,
          ...(cap ? [`max_records_per_name: ${cap}`] : []),
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  propagation: true',
          '  probe: true',
          '  timeout_s: 3',
          'providers:',
          '  knot:',
          '    type: zonefile',
          `    path: ${s(fragmentPath)}`,
          `    reload: ${s(knot.reloadCommand(ZONE))}`,
          'services:',
          '  mx:',
          `    host: ${HOST}`,
          `    ports: [${port}]`,
          '    protocol: smtp',
          '    provider: knot',
          `    ttl: ${TTL}`,
          `    records: ${s(records)}`,
          '    issuers: none',
          '    certificates:',
          `      - lineage: ${s(certbot.liveDir('mx'))}`,
          '    install:',
          `      dir: ${s(installDir)}`,
          `      reload: ${s(postfixReload)}`,
          '',
        ].join('\n'),
      );
    }

    const tlsaEnv = (): Record<string, string> => ({ TLSA_CONFIG: cfgPath });
    const tlsa = (args: string[]): Promise<Run> =>
      runAsync([process.execPath, CLI_PATH, '--config', cfgPath, ...args], { TLSA_DEBUG: '1' });
    const liveChain = (): X509Certificate[] =>
      pemCerts(readFileSync(join(certbot.liveDir('mx'), 'fullchain.pem'), 'utf8'));
    const installedLeaf = (): X509Certificate | undefined => {
      const f = join(installDir, 'mx', 'current', 'fullchain.pem');
      return existsSync(f) ? pemCerts(readFileSync(f, 'utf8'))[0] : undefined;
    };
    const readState = (): StateJson =>
      JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateJson;
    const owned = (): string[] =>
      readState().records.map((r) => `${r.usage} ${r.selector} ${r.matching} ${r.data}`);
    const onKnot = async (): Promise<{ rdata: string[]; ttl: number }> => {
      const r = await query({
        server: knot.host,
        port: knot.port,
        name: owner,
        type: 'TLSA',
        recurse: false,
        timeoutS: 1,
        retries: 1,
      });
      return {
        rdata: rdataOf(r, 'TLSA')
          .map((x) => x.toLowerCase().replace(/\s+/g, ' '))
          .sort(),
        ttl: Math.max(0, ...r.records.filter((x) => x.type === 'TLSA').map((x) => x.ttl)),
      };
    };
    const ta = (c: X509Certificate): string => `2 1 1 ${sha256(spki(c))}`;
    const ee = (c: X509Certificate): string => `3 1 1 ${sha256(spki(c))}`;

    /** Host D writes its record (Knot serves the RRset with the TTL of its last line: D's). */
    async function hostDWrites(rdata: string, ttl: number): Promise<void> {
      const lines = readFileSync(fragmentPath, 'utf8')
        .split('\n')
        .filter((l) => l && !l.includes(rdata));
      writeFileSync(
        fragmentPath,
        `${[...lines, `${owner} ${ttl} IN TLSA ${rdata} ; host D's`].join('\n')}\n`,
      );
      knot.reload(ZONE);
      const deadline = Date.now() + 30_000;
      while (!(await onKnot()).rdata.includes(rdata)) {
        if (Date.now() > deadline) throw new Error(`host D's ${rdata} never reached Knot`);
        await sleep(250);
      }
    }

    function theHook(r: CertbotRun): HookRun {
      expect(r.hooks.length, `deploy hook runs in certbot's log:\n${r.output}`).toBe(1);
      return r.hooks[0]!;
    }

    async function checkJson(run: Promise<Run>): Promise<{ run: Run; json: CheckJson }> {
      const r = await run;
      let json: CheckJson;
      try {
        json = JSON.parse(r.stdout) as CheckJson;
      } catch {
        throw new Error(`check did not print JSON:\n${show(r)}`);
      }
      return { run: r, json };
    }

    /** `tlsa daemon --once` about once a second until `done()`. */
    async function drive(
      label: string,
      done: () => boolean | Promise<boolean>,
      timeoutMs: number,
    ): Promise<Run> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const r = await tlsa(['daemon', '--once']);
        if (await done()) return r;
        if (Date.now() > deadline)
          throw new Error(
            `${label}: not done after ${timeoutMs} ms\n${show(r)}\n--- status ---\n${show(await tlsa(['status']))}\n--- fragment ---\n${readFileSync(fragmentPath, 'utf8')}`,
          );
        await sleep(1000);
      }
    }

    /** Until Knot serves `rdata` and every cache has it (older than 2× the largest TTL). */
    async function waitCached(rdata: string): Promise<void> {
      const deadline = Date.now() + 60_000;
      while (!(await onKnot()).rdata.includes(rdata)) {
        if (Date.now() > deadline) throw new Error(`${rdata} never reached Knot`);
        await sleep(250);
      }
      await sleep(2 * D_TTL * 1000 + 1500);
    }

    const failed = (scenario: string) =>
      poller
        .of(scenario)
        .filter((x) => !x.verified)
        .map((x) => `${x.at.toISOString()} ${x.trust ?? '-'}: ${x.output.slice(-300)}`);

    beforeAll(async () => {
      requireBuiltCli();
      dir = makeTempDir('e2e-other-writers');
      chmodSync(dir, 0o755);
      stateDir = join(dir, 'state');
      installDir = join(dir, 'installed');
      cfgPath = join(dir, 'tlsa.yaml');
      fragmentPath = join(dir, 'tlsa.fragment');
      const openssl = toolPath('openssl', 'openssl');
      const tmpKey = join(dir, 'throwaway-key.pem');
      const tmpCert = join(dir, 'throwaway-cert.pem');
      execFileSync(
        openssl,
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          tmpKey,
          '-out',
          tmpCert,
          '-days',
          '2',
          '-subj',
          `/CN=${HOST}`,
        ],
        { stdio: 'ignore' },
      );
      postfix = await startPostfix({
        chains: [{ keyPath: tmpKey, fullchainPath: tmpCert }],
        hostname: HOST,
      });
      port = postfix.smtpPort;
      owner = `_${port}._tcp.${HOST}.`;
      execFileSync(toolPath('postconf', 'postfix'), [
        '-c',
        postfix.configDir,
        '-e',
        `smtpd_tls_chain_files = ${join(installDir, 'mx', 'current', 'combined.pem')}`,
      ]);
      postfixReload = `${shellQuote(toolPath('postfix', 'postfix'))} -c ${shellQuote(postfix.configDir)} reload`;
      writeFileSync(
        fragmentPath,
        '; TLSA records: tlsa writes the lines marked tlsa:managed, host D the others\n',
      );
      const zoneFile = join(dir, 'example.test.zone');
      writeFileSync(
        zoneFile,
        [
          `$ORIGIN ${ZONE}`,
          '$TTL 300',
          `@ 300 IN SOA ns1.${ZONE} hostmaster.${ZONE} 1 3600 600 86400 60`,
          `@ 300 IN NS ns1.${ZONE}`,
          'ns1 300 IN A 127.0.0.1',
          'mx 300 IN A 127.0.0.1',
          `$INCLUDE ${fragmentPath}`,
          '',
        ].join('\n'),
      );
      knot = await startKnot({ zones: [{ name: ZONE, zoneFilePath: zoneFile, dnssec: true }] });
      const glibcResolver = await freeLoopback53();
      unbound = await startUnbound({
        stubs: [{ zone: ZONE, port: knot.port }],
        trustAnchors: knot.dsRecords(ZONE),
        extraListen: glibcResolver,
        cacheMaxTtl: 30,
        cacheMaxNegativeTtl: 2,
      });
      pebble = await startPebble({ dnsServer: `127.0.0.1:${unbound.port}` });
      certbot = makeCertbot({
        directoryUrl: pebble.directoryUrl,
        caBundle: pebble.tlsCaPath,
        httpPort: pebble.httpPort,
        dir: join(dir, 'certbot'),
      });
      finger = makeDaneFinger({ dir, zone: ZONE, resolverAddress: glibcResolver });
      poller = new DanePoller(finger, HOST, port, 1000);
      note(
        `lab up: Knot :${knot.port}, unbound :${unbound.port}, pebble :${pebble.port}, Postfix :${port}`,
      );
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      const all = poller?.results ?? [];
      note(
        `posttls-finger: ${all.length} polls; failed per scenario: ${['3', '4'].map((s) => `${s} ${all.filter((r) => r.scenario === s && !r.verified).length}/${all.filter((r) => r.scenario === s).length}`).join(', ')}`,
      );
      await postfix?.stop();
      await stopAll();
    }, 60_000);

    it("3. 2 1 1 only, staged install: host D already published the next intermediate's 2 1 1; check says safe (staged); the renewal installs once it is 2×TTL old, 0 failed polls; C never removes it", async () => {
      writeConfig(['2 1 1']);
      const first = await certbot.certonly({
        certName: 'mx',
        domains: [HOST],
        keyType: 'ecdsa',
        deployHook: HOOK,
        env: tlsaEnv(),
      });
      expect(first.code, first.output).toBe(0);
      expect(theHook(first).code, first.output).toBe(0);
      const firstTa = ta(liveChain()[1]!);
      await waitCached(firstTa);
      const f = await finger.check({ host: HOST, port });
      expect(f.verified, f.output).toBe(true);
      poller.scenario = '3';
      poller.start();

      // A CA rotation is coming; host D has published the 2 1 1 of the next intermediate already.
      await pebble.restart();
      const next = pemCerts(await pebble.intermediate())[0]!;
      expect(ta(next)).not.toBe(firstTa);
      await hostDWrites(ta(next), TTL);
      await waitCached(ta(next));

      const { run, json } = await checkJson(tlsa(['check', '--json']));
      note(
        `3: check: ${(json.reports[0]?.nextRenewal ?? []).map((x) => x.text).join(' | ')} ${json.reports[0]?.warnings.join(' | ')}`,
      );
      expect(run.code, show(run)).toBe(0);
      expect(
        (json.reports[0]!.nextRenewal ?? []).map((x) => x.verdict),
        show(run),
      ).toEqual(['staged']);
      expect(json.reports[0]!.records).toEqual(expect.arrayContaining([ta(next)]));

      const account = await certbot.resetAccount();
      const renewal = await certbot.renew({
        certName: 'mx',
        reuseKey: false,
        account,
        deployHook: HOOK,
        env: tlsaEnv(),
      });
      expect(renewal.code, renewal.output).toBe(0);
      const hook = theHook(renewal);
      note(
        `3: hook exit ${hook.code}: ${hook.stdout.trim().replace(/\n/g, ' | ')} ${hook.stderr.trim().split('\n').slice(-2).join(' | ')}`,
      );
      expect(hook.code, `${hook.stdout}\n${hook.stderr}`).toBe(0);
      const renewed = liveChain();
      expect(ta(renewed[1]!), 'issued from the intermediate host D published').toBe(ta(next));
      expect(owned(), "C does not take over D's record").not.toContain(ta(next));

      // C's staged chain relies on D's record: installed once it is 2×TTL old on every server.
      const status = await tlsa(['daemon', '--once']);
      expect(show(status)).not.toMatch(/waits for its records to be 2×TTL old/);
      const started = Date.now();
      await drive(
        '3',
        () => installedLeaf()?.fingerprint256 === renewed[0]!.fingerprint256,
        90_000,
      );
      note(`3: installed ${((Date.now() - started) / 1000).toFixed(1)} s after the hook`);
      expect(Object.keys(readState().observed?.[owner] ?? {})).toEqual([ta(next)]);
      // C's old record retires; D's stays, never C's.
      await drive('3-retire', async () => !(await onKnot()).rdata.includes(firstTa), 60_000);
      expect((await onKnot()).rdata).toEqual([ta(next)]);
      expect(owned()).toEqual([]);
      await sleep(3000);
      expect(poller.of('3').length).toBeGreaterThan(5);
      expect(failed('3'), 'the prediction "safe (staged)"').toEqual([]);
    }, 360_000);

    it("4. D's records at TTL 6 beside C's at TTL 3, cap 3: plan, status and check say who is over and which TTL is served; a renewal is safe, D's records stay", async () => {
      poller.scenario = '4';
      const d1 = `3 1 1 ${sha256(Buffer.from('host D, record 1'))}`;
      const d2 = `3 1 1 ${sha256(Buffer.from('host D, record 2'))}`;
      await hostDWrites(d1, D_TTL);
      await hostDWrites(d2, D_TTL);
      expect((await onKnot()).ttl, "Knot serves D's TTL").toBe(D_TTL);
      writeConfig(['3 1 1', '2 1 1'], 3);
      const key = ee(liveChain()[0]!);

      // C publishes its 3 1 1 (the daemon: it looks at what is served before its write).
      const planned = await tlsa(['plan']);
      note(
        `4: plan before: ${planned.stdout.trim().replace(/\n/g, ' | ')} ${planned.stderr.trim().replace(/\n/g, ' | ')}`,
      );
      expect(planned.code, show(planned)).toBe(0);
      expect(planned.stderr).toContain(`${owner}: 4 records at the owner, over the cap of 3`);
      expect(planned.stderr).toMatch(
        /1 published by tlsa here, 3 by other writers \(another host, or by hand\); the 3 from other writers put it over/,
      );
      await drive('4-publish', () => owned().includes(key), 60_000);

      const plan = await tlsa(['plan']);
      note(
        `4: plan: ${plan.stdout.trim().replace(/\n/g, ' | ')} ${plan.stderr.trim().replace(/\n/g, ' | ')}`,
      );
      expect(plan.stdout).toMatch(new RegExp(`TTL ${TTL}; served with TTL \\d+ when last seen`));
      expect(plan.stderr).toMatch(
        /over the cap of 3.*1 published by tlsa here, 3 by other writers/,
      );
      expect(plan.stderr).toContain(`the RRset was served with TTL ${D_TTL}`);
      expect(plan.stderr).toContain(`but tlsa publishes it with TTL ${TTL}`);
      const status = await tlsa(['status']);
      expect(status.code, show(status)).toBe(0);
      expect(status.stderr).toContain(`the RRset was served with TTL ${D_TTL}`);

      // D writes again: its TTL is what the servers serve now; check says so.
      await hostDWrites(d1, D_TTL);
      await waitCached(d1); // the resolver's copy too: check compares it with the servers'
      const { run, json } = await checkJson(tlsa(['check', '--json']));
      note(`4: check: ${json.reports[0]?.warnings.join(' | ')}`);
      expect(json.reports[0]!.servedTtl, show(run)).toBe(D_TTL);
      expect(json.reports[0]!.warnings.join('\n')).toContain(
        `serve the TLSA RRset at ${owner} with TTL ${D_TTL}, but this service's ttl is ${TTL}`,
      );
      expect(json.reports[0]!.warnings.join('\n')).toMatch(/records at .*: over ~3/);
      expect(
        json.reports[0]!.nextRenewal.map((x) => x.verdict),
        show(run),
      ).toEqual(['staged']);

      // The renewal (new key, same intermediate: D's 2 1 1, live, matches it): safe.
      await sleep(2 * D_TTL * 1000 + 1500);
      const account = await certbot.resetAccount();
      const renewal = await certbot.renew({
        certName: 'mx',
        reuseKey: false,
        account,
        deployHook: HOOK,
        env: tlsaEnv(),
      });
      expect(renewal.code, renewal.output).toBe(0);
      expect(theHook(renewal).code, renewal.output).toBe(0);
      const renewed = liveChain();
      await drive(
        '4',
        () => installedLeaf()?.fingerprint256 === renewed[0]!.fingerprint256,
        90_000,
      );
      await sleep(3000);
      expect((await onKnot()).rdata).toEqual(expect.arrayContaining([d1, d2]));
      expect(poller.of('4').length).toBeGreaterThan(5);
      expect(failed('4'), 'the prediction "safe"').toEqual([]);
    }, 360_000);
  },
);
