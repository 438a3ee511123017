/** What the built-in ACME e2e tests share: the openssl ground truth (a key file's and a
 *  served certificate's SPKI SHA-256, never tlsa's code), a watcher of the TLSA RRset on the
 *  authoritative server, `status --json`, and the verdict over every posttls-finger poll. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { DanePoller } from '../lab/dane-finger.js';
import { sleep, shellQuote, toolPath } from '../lab/lab.js';
import { MAIL_HOST, type MailLab } from '../lab/mail-lab.js';
import { runAsync, showRun } from '../lab/run.js';

async function sh(script: string, what: string): Promise<string> {
  const r = await runAsync(['sh', '-c', script], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`${what}:\n${showRun(r)}`);
  return r.stdout;
}

const openssl = (): string => shellQuote(toolPath('openssl', 'openssl'));
const digest = (): string =>
  `${openssl()} pkey -pubin -outform DER | ${openssl()} dgst -sha256 -r | cut -d' ' -f1`;

/** SHA-256 of a private key's SPKI (the data of its 3 1 1), by openssl. */
export async function opensslKeySpki(keyFile: string): Promise<string> {
  const out = await sh(
    `${openssl()} pkey -in ${shellQuote(keyFile)} -pubout | ${digest()}`,
    `openssl: the public key of ${keyFile}`,
  );
  return out.trim().toLowerCase();
}

/** SHA-256 of a certificate file's SPKI, by openssl. */
export async function opensslCertSpki(certFile: string): Promise<string> {
  const out = await sh(
    `${openssl()} x509 -in ${shellQuote(certFile)} -pubkey -noout | ${digest()}`,
    `openssl: the public key of ${certFile}`,
  );
  return out.trim().toLowerCase();
}

const SIGALGS = {
  rsa: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256',
  ecdsa: 'ecdsa_secp256r1_sha256',
} as const;

/** SHA-256 of the SPKI of the leaf Postfix presents after STARTTLS to a client offering only
 *  `family`'s signature algorithms, by openssl s_client. */
export async function opensslServedSpki(port: number, family: 'rsa' | 'ecdsa'): Promise<string> {
  const out = await sh(
    `${openssl()} s_client -connect 127.0.0.1:${port} -starttls smtp -name e2e.test -servername ${MAIL_HOST} -sigalgs ${SIGALGS[family]} </dev/null 2>/dev/null | ${openssl()} x509 -pubkey -noout | ${digest()}`,
    `openssl s_client: the ${family} leaf served on ${port}`,
  );
  return out.trim().toLowerCase();
}

/** The watcher's sampling error (its period, a kdig on a loaded machine) plus the time a Knot
 *  reload takes: tlsa may see a record on every server before the watcher does. */
export const WATCH_SLACK_MS = 1500;

/** Samples the TLSA RRset on the authoritative server (every ~200 ms): when each RDATA first
 *  appeared and when it left. */
export class RrsetWatcher {
  readonly seen = new Map<string, { first: number; gone?: number }>();
  private running = false;
  private loop: Promise<void> | undefined;
  constructor(private readonly lab: MailLab) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          const { rdata } = await this.lab.served(1);
          const now = Date.now();
          for (const r of rdata) {
            const s = this.seen.get(r);
            if (!s || s.gone !== undefined) this.seen.set(r, { first: now });
          }
          for (const [r, s] of this.seen)
            if (s.gone === undefined && !rdata.includes(r)) s.gone = now;
        } catch {
          /* a reload in progress: next sample */
        }
        await sleep(200);
      }
    })();
  }

  /** How long (ms) `rdata` has been served without a gap, or -1. */
  servedFor(rdata: string): number {
    const s = this.seen.get(rdata);
    return s && s.gone === undefined ? Date.now() - s.first : -1;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

export interface StatusRecord {
  rdata: string;
  phase: string;
  waitsFor: string | null;
}

/** `tlsa status --json`'s records. */
export async function statusRecords(lab: MailLab): Promise<StatusRecord[]> {
  const r = await lab.tlsa(['status', '--json']);
  if (r.code !== 0) throw new Error(`tlsa status:\n${showRun(r)}`);
  return (JSON.parse(r.stdout) as { records: StatusRecord[] }).records.map((x) => ({
    ...x,
    rdata: x.rdata.toLowerCase(),
  }));
}

/** The installed copy's fullchain (install.dir/NAME/current), if any. */
export function installedPem(lab: MailLab, name: string): string | undefined {
  const f = join(lab.installDir, name, 'current', 'fullchain.pem');
  return existsSync(f) ? readFileSync(f, 'utf8') : undefined;
}

/** Stops the poller and checks that every posttls-finger poll of the run verified (at least
 *  `minPolls` of them); `note` gets the count per scenario. */
export async function expectEveryPollVerified(
  poller: DanePoller,
  minPolls: number,
  note: (s: string) => void,
): Promise<void> {
  await poller.stop();
  const all = poller.results;
  const byScenario = [...new Set(all.map((x) => x.scenario))].map((sc) => {
    const xs = all.filter((x) => x.scenario === sc);
    return `${sc}: ${xs.length} polls, ${xs.filter((x) => !x.verified).length} failed, matched ${[...new Set(xs.map((x) => `${x.keyType}:${x.matched ?? '-'}`))].join(' ')}`;
  });
  note(`posttls-finger per scenario:\n  ${byScenario.join('\n  ')}`);
  expect(all.length).toBeGreaterThan(minPolls);
  expect(
    all
      .filter((x) => !x.verified)
      .map((x) => `[${x.scenario}] ${x.at.toISOString()} (${x.keyType}):\n${x.output}`),
  ).toEqual([]);
}
