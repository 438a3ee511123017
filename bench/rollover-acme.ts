// bench:rollover's built-in ACME case (issue 11): `tlsa renew --force` with the next key's
// 3 1 1 live, in the same loopback lab, after pebble's restart (a new intermediate, as in the
// certbot runs: no live 2 1 1 matches the new chain). The lab's service is first moved from
// certbot to built-in ACME as docs/acme.md says (the ACME lineage in place of certbot's, the same
// installed copy "mx" that Postfix reads), then each run waits, with `tlsa daemon --once` every
// second, until the chain is installed and every record (the next key's 3 1 1 included) is live.
// Timestamps (ms, this machine's clock), relative to t_issued:
//   t_issued     the ACME lineage's symlink is switched to the new release (its own mtime): the
//                moment the CA's chain is on disk, the counterpart of certbot's t_hook;
//   t_next       the new next key's 3 1 1 is in the zone fragment (the watcher, every 100 ms);
//   t_installed  the `current` symlink points at the new chain (its own mtime);
//   t_reload     Postfix's master writes "reload -- version" (inotify on the maillog);
//   t_served     a STARTTLS handshake first gets the new leaf (polled every 50 ms).
// Target (the issue's): t_reload − t_issued under 1 s, against 2×TTL + propagation for staged.
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { acmeLineage, acmeLines, nextKeyFile } from '../test/lab/acme-lineage.js';
import { pemCerts } from '../test/lab/certs.js';
import { sleep } from '../test/lab/lab.js';
import { MAIL_HOST, type MailLab } from '../test/lab/mail-lab.js';
import type { Run } from '../test/lab/run.js';
import { servedLeaf } from '../test/lab/starttls.js';

const KEY_TYPE = 'ecdsa-p256';
export const ACME_TARGET_MS = 1000;

/** What the acme case reads from the bench's watcher. */
export interface AcmeWatcher {
  readonly inFile: ReadonlyMap<string, { first: number }>;
  readonly reloads: readonly { seenAt: number }[];
}

export interface AcmeRunResult {
  n: number;
  /** The whole `tlsa renew --force` process, and its start → t_issued (the order). */
  renewMs: number;
  orderMs: number;
  /** renew used the next key (else a fresh one: the chain then waited staged). */
  nextKey: boolean;
  /** All relative to t_issued, ms. */
  next: number;
  installed: number;
  reload: number;
  served: number;
}

type Log = (s: string) => void;

const lineagePem = (lab: MailLab): string =>
  readFileSync(join(acmeLineage(lab, KEY_TYPE), 'fullchain.pem'), 'utf8');
const leafFp = (pem: string | undefined): string | undefined =>
  pem === undefined ? undefined : pemCerts(pem)[0]?.fingerprint256;
function installedFp(lab: MailLab): string | undefined {
  const f = join(lab.installDir, 'mx', 'current', 'fullchain.pem');
  return existsSync(f) ? leafFp(readFileSync(f, 'utf8')) : undefined;
}
const nextKeyRecord = (lab: MailLab): string => {
  const spki = createPublicKey(readFileSync(nextKeyFile(lab, KEY_TYPE), 'utf8')).export({
    type: 'spki',
    format: 'der',
  });
  return `3 1 1 ${createHash('sha256').update(spki).digest('hex')}`;
};

/** `tlsa daemon --once` every second until `done()`. */
async function onceUntil(
  lab: MailLab,
  what: string,
  done: () => boolean | Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: Run | undefined;
  while (!(await done())) {
    if (Date.now() > deadline)
      throw new Error(
        `acme: ${what} did not happen within ${timeoutMs / 1000} s\n${last?.stderr ?? ''}`,
      );
    const t = Date.now();
    last = await lab.tlsa(['daemon', '--once'], { timeoutMs: 90_000 });
    await sleep(Math.max(0, 1000 - (Date.now() - t)));
  }
}

/** Every record tlsa owns is live, the ACME chain is installed and the next key's 3 1 1 is
 *  among the live records: a renewal now can use the next key. */
async function ready(lab: MailLab): Promise<boolean> {
  if (!existsSync(nextKeyFile(lab, KEY_TYPE))) return false;
  if (installedFp(lab) !== leafFp(lineagePem(lab))) return false;
  const st = await lab.tlsa(['status', '--json']);
  if (st.code !== 0) return false;
  const recs = (JSON.parse(st.stdout) as { records: { rdata: string; phase: string }[] }).records;
  const next = nextKeyRecord(lab);
  return recs.every((r) => r.phase === 'live') && recs.some((r) => r.rdata.toLowerCase() === next);
}

/** docs/acme.md's move from certbot: one edit, `tlsa renew`, the staged install does the rest. */
export async function moveToAcme(lab: MailLab, ttl: number, log: Log): Promise<void> {
  lab.writeConfig({
    ttl,
    service: [
      '    issuers: none',
      '    certificates:',
      `      - lineage: ${JSON.stringify(acmeLineage(lab, KEY_TYPE))}`,
      '        name: mx',
      ...lab.installLines(),
      ...acmeLines(lab, [KEY_TYPE]),
    ],
  });
  const r = await lab.tlsa(['renew'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`acme: the first tlsa renew exited ${r.code}\n${r.stderr}`);
  await onceUntil(lab, 'the move from certbot', () => ready(lab), 180_000);
  log('acme: moved from certbot; the ACME chain is installed and the next key is live');
}

export async function acmeRollover(
  lab: MailLab,
  watcher: AcmeWatcher,
  n: number,
  log: Log,
): Promise<AcmeRunResult> {
  await onceUntil(lab, `run ${n}: ready`, () => ready(lab));
  const beforeFp = leafFp(lineagePem(lab));
  await lab.pebble.restart(); // a new intermediate: only the next key's 3 1 1 matches the chain
  const reloadsBefore = watcher.reloads.length;
  const r = await lab.tlsa(['renew', '--force'], { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`acme: tlsa renew --force exited ${r.code}\n${r.stderr}`);
  const tIssued = lstatSync(acmeLineage(lab, KEY_TYPE)).mtimeMs;
  const newFp = leafFp(lineagePem(lab));
  if (newFp === beforeFp) throw new Error('acme: renew did not change the lineage');
  const nextKey = /renewed with the next key/.test(r.stdout);
  // With the next key the install came from renew's own run; otherwise the staged wait.
  if (installedFp(lab) !== newFp)
    await onceUntil(lab, `run ${n}: the install`, () => installedFp(lab) === newFp);
  const linkPath = join(lab.installDir, 'mx', 'current');
  const tInstalled = lstatSync(linkPath).mtimeMs;
  const deadline = Date.now() + 60_000;
  let tServed = 0;
  while (!tServed) {
    if (Date.now() > deadline) throw new Error(`acme: run ${n}: the new leaf is not served`);
    try {
      if ((await servedLeaf({ port: lab.port, servername: MAIL_HOST })).fingerprint256 === newFp)
        tServed = Date.now();
    } catch {
      /* smtpd restarting */
    }
    if (!tServed) await sleep(50);
  }
  const reloadAfter = (x: { seenAt: number }): boolean => x.seenAt >= tInstalled - 5;
  while (!watcher.reloads.slice(reloadsBefore).some(reloadAfter)) {
    if (Date.now() > deadline) throw new Error(`acme: run ${n}: no Postfix reload seen`);
    await sleep(20);
  }
  const tReload = watcher.reloads.slice(reloadsBefore).find(reloadAfter)!.seenAt;
  const next = nextKeyRecord(lab);
  while (!watcher.inFile.has(next) && Date.now() < deadline) await sleep(50);
  const res: AcmeRunResult = {
    n,
    renewMs: r.ms,
    orderMs: tIssued - r.start,
    nextKey,
    next: (watcher.inFile.get(next)?.first ?? NaN) - tIssued,
    installed: tInstalled - tIssued,
    reload: tReload - tIssued,
    served: tServed - tIssued,
  };
  log(
    `acme run #${n}: ${nextKey ? 'next key' : 'FRESH KEY'}; issued → reload ${(res.reload / 1000).toFixed(2)} s (installed ${(res.installed / 1000).toFixed(2)} s, served ${(res.served / 1000).toFixed(2)} s); renew ${(r.ms / 1000).toFixed(1)} s`,
  );
  return res;
}
