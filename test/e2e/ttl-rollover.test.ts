/**
 * End to end (issue 9, point 1): a rollover waits for the TTL that caches may really hold, not
 * only tlsa's own. Same lab as rollover.test.ts, all on loopback, all started here:
 *
 *   pebble ──HTTP-01──▶ certbot ──deploy hook──▶ tlsa ──zonefile──▶ Knot (signed example.test.)
 *     ◀── unbound (validating, cache-max-ttl 120) ◀── posttls-finger -l dane, polled ~1/s
 *   tlsa staged install ──▶ Postfix (second instance), reloaded by tlsa.
 *
 * tlsa's TTL is 10 s. Another writer keeps a TLSA record of its own at the owner name (a
 * "foreign" record). Knot serves one TTL per RRset, the one of the RRset's last line in the zone
 * file: before the renewal the other writer leaves the RRset at TTL 30. On PowerDNS tlsa's write
 * brings it back to 10, which is all the servers show afterwards; in Knot's zone file tlsa
 * writes its lines with the other writer's 30 (the zonefile provider's effectiveTtl), so the
 * RRset keeps one TTL and tlsa's own wait counts from it.
 * Just before tlsa's write (in the deploy hook's wrapper) unbound's cache is flushed and
 * primed: it holds the RRset without the new records for 30 s. The renewal comes from a
 * restarted pebble (new intermediate), so the new chain matches none of the old records.
 * Counting 2×10 s from propagation installs the new chain ~20 s after the write, while unbound
 * still serves the old RRset for ~28 s: posttls-finger says Untrusted for several seconds. The
 * wait must count from the 30 s that were served before the write.
 *
 *   case 1: a foreign record at TTL 30 is added by the other writer after tlsa's first write;
 *   case 2: the existing foreign record's TTL is raised from 10 to 30 after tlsa's writes.
 *
 * Then case 1 again with PowerDNS (API, whole-RRset writes: the same reset) in place of Knot.
 *
 * Needs root (Postfix, mount namespaces), a free 127.0.53.x:53 and the Debian packages knot
 * knot-dnsutils pdns-server pdns-backend-sqlite3 sqlite3 unbound pebble certbot postfix
 * openssl; takes about 8 minutes.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { REPO_ROOT, requireBuiltCli } from '../helpers/cli.js';
import type { Certbot } from '../lab/certbot.js';
import { chainRecords, sha256 } from '../lab/certs.js';
import { DanePoller } from '../lab/dane-finger.js';
import { query, rdataOf } from '../lab/dig.js';
import { labDescribe, shellQuote, sleep, toolPath } from '../lab/lab.js';
import { mailLabTools, startMailLab, type MailLab } from '../lab/mail-lab.js';
import type { PebbleServer } from '../lab/pebble.js';
import { showRun, type Run } from '../lab/run.js';
import type { UnboundServer } from '../lab/unbound.js';
import { theHook } from './steps.js';

const ZONE = 'example.test.';
const HOST = 'mx.example.test';
const TTL = 10;
const FOREIGN_TTL = 30;
const HOOK = join(REPO_ROOT, 'hooks', 'certbot-deploy');

interface StateJson {
  records: { usage: number; selector: number; matching: number; data: string; status: string }[];
  ttls?: Record<string, { ttl: number; source: string; served: string; foreign?: boolean }[]>;
}

function ttlSuite(kind: 'Knot' | 'PowerDNS', cases: (1 | 2)[]): void {
  labDescribe(
    `e2e (${kind}): the rollover waits for the TTL caches may hold (foreign record at a higher TTL), posttls-finger throughout`,
    mailLabTools(kind === 'Knot' ? 'knot' : 'powerdns'),
    () => {
      const suiteStart = Date.now();
      let lab: MailLab;
      let unbound: UnboundServer;
      let pebble: PebbleServer;
      let certbot: Certbot;
      let poller: DanePoller;
      let owner: string;
      let cfgPath: string;
      let stateDir: string;
      let installDir: string;
      let hookWrapper: string;
      const note = (s: string): void =>
        console.log(`[${kind} ${((Date.now() - suiteStart) / 1000).toFixed(1)} s] ${s}`);
      const foreign1 = `3 1 1 ${sha256(Buffer.from("the other writer's first record"))}`;
      const foreign2 = `3 1 1 ${sha256(Buffer.from("the other writer's second record"))}`;

      const tlsa = (args: string[]): Promise<Run> => lab.tlsa(args);
      const readState = (): StateJson =>
        JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as StateJson;
      const livePem = (): string =>
        readFileSync(join(certbot.liveDir('mx'), 'fullchain.pem'), 'utf8');
      const installedPem = (): string | undefined => {
        const f = join(installDir, 'mx', 'current', 'fullchain.pem');
        return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
      };
      const isInstalled = (): boolean => installedPem() === livePem();
      /** What the authoritative server serves at the owner: the RDATA and the RRset's TTL. */
      const onAuth = (): Promise<{ rdata: string[]; ttl: number }> => lab.served(2);
      const foreignOnes = new Set<string>();

      async function otherWriterSets(rdata: string, ttl: number): Promise<void> {
        await lab.auth.otherWriterSets(owner, rdata, ttl);
        foreignOnes.add(rdata);
        expect((await onAuth()).ttl, `${kind} serves the RRset with the other writer's TTL`).toBe(
          ttl,
        );
      }

      /** Installed = certbot's chain; the state and the server hold exactly its records (and the
       *  other writer's), all published. */
      async function converged(): Promise<boolean> {
        if (!isInstalled()) return false;
        const { ee, ta } = chainRecords(livePem());
        const st = readState();
        if (st.records.length !== 2 || st.records.some((r) => r.status !== 'published'))
          return false;
        if (
          ![ee, ta].every((x) =>
            st.records.some(
              (r) => `${r.usage} ${r.selector} ${r.matching} ${r.data.toLowerCase()}` === x,
            ),
          )
        )
          return false;
        return (
          JSON.stringify((await onAuth()).rdata) === JSON.stringify([ee, ta, ...foreignOnes].sort())
        );
      }

      /** `tlsa daemon --once` about once a second until converged. */
      async function drive(label: string, timeoutMs: number): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const r = await tlsa(['daemon', '--once']);
          if (r.code !== 0)
            note(
              `${label}: daemon --once exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`,
            );
          if (await converged()) return;
          if (Date.now() > deadline)
            throw new Error(
              `${label}: not converged after ${timeoutMs} ms\n${showRun(r)}\n--- served ---\n${(await onAuth()).rdata.join('\n')}`,
            );
          await sleep(1000);
        }
      }

      /** pebble restarted (new intermediate), unbound primed just before tlsa's write, renewal;
       *  then the daemon until converged. Every poll of the case must verify. */
      async function rolloverWithPrimedCache(label: string): Promise<void> {
        poller.scenario = label;
        const before = chainRecords(livePem());
        expect(
          (await onAuth()).ttl,
          `before the renewal, ${kind} serves the RRset with the higher TTL`,
        ).toBe(FOREIGN_TTL);
        await pebble.restart();
        const account = await certbot.resetAccount();
        const r = await certbot.renew({
          certName: 'mx',
          reuseKey: false,
          account,
          deployHook: hookWrapper,
          env: { TLSA_CONFIG: cfgPath },
        });
        expect(r.code, r.output).toBe(0);
        const hook = theHook(r);
        expect(hook.code, r.output).toBe(0);
        const after = chainRecords(livePem());
        expect(after.ta, 'a new intermediate').not.toBe(before.ta);
        expect(isInstalled(), 'staged: nothing live matches the new chain').toBe(false);
        note(`${label}: renewed; hook ${hook.ms} ms: ${hook.stdout.replace(/\n/g, ' | ')}`);
        // PowerDNS: tlsa's write reset the RRset's TTL, afterwards the servers show only tlsa's.
        // Knot: tlsa wrote its lines with the other writer's higher TTL, the RRset's.
        const served = await onAuth();
        expect(served.rdata).toEqual(expect.arrayContaining([after.ee, after.ta]));
        expect(served.ttl).toBe(kind === 'Knot' ? FOREIGN_TTL : TTL);
        // unbound still holds the RRset it cached just before the write, without the new records.
        const cached = await query({
          server: unbound.host,
          port: unbound.port,
          name: owner,
          type: 'TLSA',
          dnssec: true,
        });
        const cachedRdata = rdataOf(cached, 'TLSA').map((x) =>
          x.toLowerCase().replace(/\s+/g, ' '),
        );
        expect(
          cachedRdata,
          'the cache primed before the write lacks the new records',
        ).not.toContain(after.ee);
        note(
          `${label}: unbound's cached RRset: TTL left ${cached.records.find((x) => x.type === 'TLSA')?.ttl} s`,
        );

        // The engine remembered the TTL served before its write, and status says so (soft: the
        // rollover goes on, so that a failure here still shows what DANE clients saw).
        const facts = readState().ttls?.[owner] ?? [];
        expect.soft(facts).toContainEqual(
          expect.objectContaining({
            ttl: FOREIGN_TTL,
            source: 'before-write',
            served: 'rrset',
            foreign: true,
          }),
        );
        const status = await tlsa(['status', '--json']);
        expect(status.code, showRun(status)).toBe(0);
        const pending = (
          JSON.parse(status.stdout) as {
            records: { rdata: string; phase: string; wait?: { ttl: number; why: string } | null }[];
          }
        ).records.filter((x) => x.rdata.toLowerCase() === after.ee);
        expect
          .soft(
            pending.map((x) => [x.phase, x.wait?.ttl]),
            status.stdout,
          )
          .toEqual([['pending', FOREIGN_TTL]]);
        // Knot: tlsa's own TTL, raised by the other writer's line (status names it, as plan's
        // TTL line does); PowerDNS: the TTL served before tlsa's write.
        expect
          .soft(pending[0]?.wait?.why)
          .toMatch(
            kind === 'Knot'
              ? new RegExp(
                  `^tlsa's TTL, raised from ${TTL}: a TLSA line there not written by tlsa \\(.+ line \\d+\\) has TTL ${FOREIGN_TTL}$`,
                )
              : new RegExp(
                  `^the RRset was served with TTL ${FOREIGN_TTL} before tlsa's write \\(foreign record\\)$`,
                ),
          );

        const t0 = Date.now();
        await drive(label, 180_000);
        note(`${label}: converged ${((Date.now() - t0) / 1000).toFixed(1)} s after the hook`);
        const polls = poller.of(label);
        note(
          `${label}: ${polls.length} posttls-finger polls, ${polls.filter((x) => !x.verified).length} not verified`,
        );
        expect(polls.length).toBeGreaterThan(20);
        expect(
          polls
            .filter((x) => !x.verified)
            .map((x) => `${x.at.toISOString()} ${x.trust ?? '-'}:\n${x.output}`),
        ).toEqual([]);
      }

      beforeAll(async () => {
        requireBuiltCli();
        lab = await startMailLab({
          name: 'e2e-ttl',
          authoritative: kind === 'Knot' ? 'knot' : 'powerdns',
          cacheMaxTtl: 120,
        });
        ({ unbound, pebble, certbot, owner, cfgPath, stateDir, installDir } = lab);
        const { dir, port } = lab;
        const glibcResolver = lab.glibcResolver!;

        // The deploy hook, with unbound's cache flushed and primed right before tlsa starts.
        hookWrapper = join(dir, 'certbot-deploy-priming');
        const control = `${shellQuote(toolPath('unbound-control', 'unbound'))} -c ${shellQuote(unbound.confPath)}`;
        writeFileSync(
          hookWrapper,
          [
            '#!/bin/sh',
            `${control} flush_zone ${ZONE} >/dev/null && ${control} flush_requestlist >/dev/null`,
            `${shellQuote(toolPath('kdig', 'knot-dnsutils'))} @127.0.0.1 -p ${unbound.port} +dnssec ${owner} TLSA >/dev/null`,
            `exec ${shellQuote(HOOK)} "$@"`,
            '',
          ].join('\n'),
          { mode: 0o755 },
        );

        lab.writeConfig({
          ttl: TTL,
          service: lab.stagedService(),
        });
        poller = new DanePoller(lab.finger!, HOST, port, 1000);
        await otherWriterSets(foreign1, TTL);
        note(
          `lab up: ${kind} :${lab.auth.port}, unbound :${unbound.port} + ${glibcResolver}:53, pebble :${pebble.port}, Postfix :${port}; owner ${owner}`,
        );
      }, 120_000);

      afterAll(async () => {
        await poller?.stop();
        await lab?.close();
      }, 60_000);

      it('first issuance: published beside the foreign record and installed; every poll verifies', async () => {
        poller.scenario = 'first';
        const r = await certbot.certonly({
          certName: 'mx',
          domains: [HOST],
          keyType: 'ecdsa',
          deployHook: HOOK,
          env: { TLSA_CONFIG: cfgPath },
        });
        expect(r.code, r.output).toBe(0);
        expect(theHook(r).code, r.output).toBe(0);
        expect(isInstalled()).toBe(true);
        poller.start();
        await drive('first', 60_000);
        expect(
          poller
            .of('first')
            .filter((x) => !x.verified)
            .map((x) => x.output),
        ).toEqual([]);
      }, 240_000);

      if (cases.includes(1))
        it("case 1: a foreign record at TTL 30 joined the RRset after tlsa's first write; renewal with a new intermediate: 0 failed polls", async () => {
          await otherWriterSets(foreign2, FOREIGN_TTL);
          await sleep(FOREIGN_TTL * 1000); // caches holding the TTL-10 RRset are gone
          await rolloverWithPrimedCache('case 1');
        }, 400_000);

      if (cases.includes(2))
        it("case 2: the foreign record's TTL is raised from 10 to 30 after tlsa's writes; renewal: 0 failed polls", async () => {
          // The other writer brings its second record back to tlsa's TTL; tlsa's next run
          // rewrites its own lines (written with 30 in case 1) to 10.
          await otherWriterSets(foreign2, TTL);
          await drive('case 2 (TTL back to 10)', 60_000);
          await sleep(FOREIGN_TTL * 1000); // caches holding the TTL-30 RRset are gone
          expect((await onAuth()).ttl, "tlsa's writes reset the RRset to its own TTL").toBe(TTL);
          await otherWriterSets(foreign1, FOREIGN_TTL);
          await sleep(TTL * 1000);
          await rolloverWithPrimedCache('case 2');
        }, 400_000);

      it('the foreign records survived; every posttls-finger poll of the whole run verified', async () => {
        await poller.stop();
        const served = await onAuth();
        expect(served.rdata).toEqual(expect.arrayContaining([...foreignOnes]));
        const bad = poller.results.filter((x) => !x.verified);
        note(`posttls-finger: ${poller.results.length} polls, ${bad.length} not verified`);
        expect(bad.map((x) => `[${x.scenario}] ${x.at.toISOString()} ${x.trust ?? '-'}`)).toEqual(
          [],
        );
      }, 60_000);
    },
  );
}

ttlSuite('Knot', [1, 2]);
ttlSuite('PowerDNS', [1]);
