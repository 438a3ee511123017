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
 *      D's lines are in C's zone file, and Knot serves one TTL per RRset: C writes and waits
 *      on 6 and its plan says why. plan warns that the other writers' records put the owner
 *      over the cap; plan, status and check show the TTL the servers serve. A renewal with a new
 *      key from the same intermediate is safe (staged, and D's live 2 1 1 matches it at once):
 *      0 failed polls, and D's records stay.
 *   4b. C's `ttl:` changes (3 → 8): plan says it re-adds C's records with the new TTL; the daemon
 *      does, Knot serves the RRset with TTL 8, the state holds 8, the next plan has nothing to
 *      add; D's records stay, 0 failed polls.
 *
 * Needs root (Postfix master, mount namespaces), a free 127.0.53.x:53, and the Debian packages
 * knot knot-dnsutils unbound pebble certbot postfix openssl.
 */
import type { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli } from '../helpers/cli.js';
import type { Certbot } from '../lab/certbot.js';
import { eeRecord as ee, pemCerts, sha256, taRecord as ta } from '../lab/certs.js';
import { DanePoller, type DaneFinger } from '../lab/dane-finger.js';
import type { KnotServer } from '../lab/knot.js';
import { labDescribe, sleep } from '../lab/lab.js';
import { mailLabTools, startMailLab, type MailLab } from '../lab/mail-lab.js';
import type { PebbleServer } from '../lab/pebble.js';
import { showRun as show, type Run } from '../lab/run.js';
import type { UnboundServer } from '../lab/unbound.js';
import { checkJson, driveUntil, theHook } from './steps.js';

const HOST = 'mx.example.test';
const TTL = 3;
const D_TTL = 6;
const HOOK = join(REPO_ROOT, 'hooks', 'certbot-deploy');

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
  mailLabTools(),
  () => {
    const t0 = Date.now();
    const note = (s: string): void => {
      console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${s}`);
    };
    let lab: MailLab;
    let knot: KnotServer;
    let unbound: UnboundServer;
    let pebble: PebbleServer;
    let certbot: Certbot;
    let finger: DaneFinger;
    let poller: DanePoller;
    let port: number;
    let owner: string;
    let cfgPath: string;
    let stateDir: string;
    let installDir: string;

    function writeConfig(records: string[], cap?: number, ttl = TTL): void {
      lab.writeConfig({
        ttl,
        top: cap ? [`max_records_per_name: ${cap}`] : [],
        service: [
          `    records: ${JSON.stringify(records)}`,
          '    issuers: none',
          ...lab.lineageLines(['mx']),
          ...lab.installLines(),
        ],
      });
    }

    const tlsaEnv = (): Record<string, string> => ({ TLSA_CONFIG: cfgPath });
    const tlsa = (args: string[]): Promise<Run> => lab.tlsa(args);
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
    const onKnot = (): Promise<{ rdata: string[]; ttl: number }> => lab.served();

    /** Host D writes its record (Knot serves the RRset with the TTL of its last line: D's). */
    async function hostDWrites(rdata: string, ttl: number): Promise<void> {
      await lab.auth.otherWriterSets(owner, rdata, ttl, "host D's");
      const deadline = Date.now() + 30_000;
      while (!(await onKnot()).rdata.includes(rdata)) {
        if (Date.now() > deadline) throw new Error(`host D's ${rdata} never reached Knot`);
        await sleep(250);
      }
    }

    const drive = (label: string, done: () => boolean | Promise<boolean>, timeoutMs?: number) =>
      driveUntil(lab, label, done, timeoutMs);

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
      lab = await startMailLab({
        name: 'e2e-other-writers',
        fragment: () =>
          '; TLSA records: tlsa writes the lines marked tlsa:managed, host D the others\n',
      });
      ({ unbound, pebble, certbot, port, owner, cfgPath, stateDir, installDir } = lab);
      knot = lab.auth.knot!;
      finger = lab.finger!;
      poller = new DanePoller(finger, HOST, port, 1000);
      note(
        `lab up: Knot :${knot.port}, unbound :${unbound.port}, pebble :${pebble.port}, Postfix :${port}`,
      );
    }, 180_000);

    afterAll(async () => {
      await poller?.stop();
      const all = poller?.results ?? [];
      note(
        `posttls-finger: ${all.length} polls; failed per scenario: ${['3', '4', '4b'].map((s) => `${s} ${all.filter((r) => r.scenario === s && !r.verified).length}/${all.filter((r) => r.scenario === s).length}`).join(', ')}`,
      );
      await lab?.close();
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

      const { run, json } = await checkJson<CheckJson>(tlsa(['check', '--json']));
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
      // The wait of what it adds names the raised TTL and why, as the TTL line does.
      expect(planned.stdout).toMatch(
        new RegExp(
          `new records live 2×${D_TTL} s: tlsa's TTL, raised from ${TTL}: a TLSA line there not written by tlsa \\(.+ line \\d+\\) has TTL ${D_TTL};`,
        ),
      );
      await drive('4-publish', () => owned().includes(key), 60_000);

      const plan = await tlsa(['plan']);
      note(
        `4: plan: ${plan.stdout.trim().replace(/\n/g, ' | ')} ${plan.stderr.trim().replace(/\n/g, ' | ')}`,
      );
      // D's lines at TTL 6 are in C's zone file: tlsa wrote its own with 6 too (the RRset's one
      // TTL), not with its configured 3, and the plan says why 6. (A warning may still name the
      // TTL 3 D's record was served with in scenario 3.)
      expect(plan.stdout).toMatch(
        new RegExp(
          `TTL ${D_TTL}: raised from ${TTL}: a TLSA line there not written by tlsa .*; served with TTL ${D_TTL} when last seen`,
        ),
      );
      expect(plan.stderr).toMatch(
        /over the cap of 3.*1 published by tlsa here, 3 by other writers/,
      );
      expect(plan.stderr).not.toContain(`but tlsa publishes it with TTL ${TTL}:`);
      const status = await tlsa(['status']);
      expect(status.code, show(status)).toBe(0);
      expect(status.stderr).not.toContain(`but tlsa publishes it with TTL ${TTL}:`);

      // D writes again: its TTL is what the servers serve now; check says so.
      await hostDWrites(d1, D_TTL);
      await waitCached(d1); // the resolver's copy too: check compares it with the servers'
      const { run, json } = await checkJson<CheckJson>(tlsa(['check', '--json']));
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
    it("4b. C's ttl changes from 3 to 8: plan says it re-adds C's records with TTL 8; after the daemon's run Knot serves TTL 8, the next plan adds nothing, D's records stay, 0 failed polls", async () => {
      poller.scenario = '4b';
      const NEW_TTL = 8;
      const d = (await onKnot()).rdata.filter((r) => !owned().includes(r));
      expect(d.length, "D's records are there").toBeGreaterThan(0);
      writeConfig(['3 1 1', '2 1 1'], 3, NEW_TTL);

      const plan = await tlsa(['plan']);
      note(`4b: plan: ${plan.stdout.trim().replace(/\n/g, ' | ')}`);
      expect(plan.code, show(plan)).toBe(0);
      type Rec = { usage: number; selector: number; matching: number; data: string };
      const wanted = (): (Rec & { ttl: number; status: string })[] =>
        (
          JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as {
            records: (Rec & { ttl: number; status: string })[];
          }
        ).records.filter((r) => r.status === 'published' || r.status === 'pending');
      const text = (r: Rec) => `${r.usage} ${r.selector} ${r.matching} ${r.data}`;
      const mine = wanted().map(text);
      expect(mine.length).toBeGreaterThan(0);
      for (const r of mine) expect(plan.stdout).toContain(r.slice(0, 25));
      // C's records were written with D's 6 (scenario 4); 8 is above it: every line gets 8.
      expect(plan.stdout).toContain(`[TTL ${D_TTL} → ${NEW_TTL}: re-adding with the new TTL]`);

      await drive('4b', async () => (await onKnot()).ttl === NEW_TTL, 60_000);
      const served = await onKnot();
      expect(served.rdata, "C's and D's records, none lost").toEqual(
        expect.arrayContaining([...mine, ...d]),
      );
      expect(wanted().map((r) => `${text(r)} ${r.ttl}`)).toEqual(
        mine.map((r) => `${r} ${NEW_TTL}`),
      );
      const again = await tlsa(['plan']);
      expect(again.stdout, show(again)).not.toContain('re-adding with the new TTL');
      expect(again.stdout).not.toMatch(/^\s*\+ /m);
      await sleep(3000);
      expect(poller.of('4b').length).toBeGreaterThan(2);
      expect(failed('4b'), 'a TTL change never breaks DANE').toEqual([]);
    }, 240_000);
  },
);
