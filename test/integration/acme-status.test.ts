/**
 * `tlsa status` and `tlsa check` on built-in ACME lineages, from their files alone (the CA is
 * not asked: the directory is a closed loopback port): the current certificate's expiry, the
 * next renewal time and where it comes from (a schedule file written by hand for the ARI
 * window, a rate limit; the lifetime rule when the schedule is for another certificate), and
 * whether the next key's 3 1 1 is live; `check` warns when a renewal is near and it is not.
 */
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type RenewalSchedule, writeSchedule } from '../../src/acme/schedule-file.js';
import { outputSchema } from '../../src/cli/json-contract.js';
import { handMadeLineage } from '../helpers/acme-lineage.js';
import { configYaml, REPO_ROOT, requireBuiltCli, runCli, show } from '../helpers/cli.js';
import { type CaHandle, makeCa, makeTempDir, removeTempDir } from '../helpers/pki.js';

let root: string;
let ca: CaHandle;
beforeAll(() => {
  requireBuiltCli();
  root = makeTempDir('tlsa-acme-status-');
  const r = makeCa(root, { name: 'Status Root', key: 'p256' });
  ca = makeCa(root, { name: 'Status Intermediate', key: 'p256', issuer: r, days: 200 });
});
afterAll(() => removeTempDir(root));

const DAY = 86_400_000;

function setup(name: string) {
  const dir = join(root, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(
    join(dir, 'config.yaml'),
    configYaml({
      certificates: ['lineage: state/acme/mx/ecdsa-p256'],
      serviceExtra: [
        'records: ["3 1 1"]',
        'acme:',
        '  directory: "https://127.0.0.1:9/dir"',
        '  key_types: [ecdsa-p256]',
        '  challenge: {http01: {standalone: "127.0.0.1:9"}}',
      ],
    }),
  );
  const now = Date.now();
  const cert = handMadeLineage(
    join(dir, 'state'),
    ca,
    new Date(now - 10 * DAY),
    new Date(now + 80 * DAY),
  );
  const schedule = (s: Partial<RenewalSchedule> & Pick<RenewalSchedule, 'at' | 'source'>) =>
    writeSchedule(join(dir, 'state'), 'mx', 'ecdsa-p256', {
      serial: cert.serialNumber,
      decidedAt: new Date().toISOString(),
      ...s,
    });
  const cli = (...a: string[]) =>
    runCli(['--config', join(dir, 'config.yaml'), ...a], { cwd: dir, timeout: 60_000 });
  return { dir, cert, schedule, cli };
}

const statusSchema = z.fromJSONSchema(
  JSON.parse(fs.readFileSync(join(REPO_ROOT, 'docs/json/status.schema.json'), 'utf8')),
);

function statusJson(r: ReturnType<typeof runCli>) {
  expect(r.code, show(r)).toBe(0);
  const v = JSON.parse(r.stdout);
  for (const schema of [statusSchema, outputSchema('status')]) {
    const checked = schema.safeParse(v);
    expect(checked.success, `${checked.error?.message}\n${show(r)}`).toBe(true);
  }
  return v.acme as {
    notAfter: string;
    next: Record<string, unknown>;
    nextKey: { live: boolean } | null;
  }[];
}

const iso = (ms: number) => new Date(ms).toISOString();

describe('tlsa status: each ACME lineage', () => {
  it('an ARI schedule: the window the time was chosen in, and the expiry', () => {
    const { cert, schedule, cli } = setup('ari');
    const t = Date.now();
    const [start, at, end, poll] = [t + 5 * DAY, t + 5.5 * DAY, t + 6 * DAY, t + 3600_000];
    schedule({
      at: iso(at),
      source: 'ari',
      windowStart: iso(start),
      windowEnd: iso(end),
      nextPollAt: iso(poll),
    });
    const text = cli('status');
    expect(text.code, show(text)).toBe(0);
    expect(text.stdout).toContain(
      `mx ecdsa-p256: certificate valid until ${new Date(cert.validTo).toISOString()}; next renewal ${iso(at)} (ARI window ${iso(start)} – ${iso(end)}), CA asked again ${iso(poll)}; no next key yet`,
    );
    const [l] = statusJson(cli('status', '--json'));
    expect(l).toMatchObject({
      notAfter: new Date(cert.validTo).toISOString(),
      next: {
        at: iso(at),
        source: 'ari',
        windowStart: iso(start),
        windowEnd: iso(end),
        nextPollAt: iso(poll),
      },
      nextKey: null,
    });
  });

  it('a rate limit: until when and why; a next key not published yet is not live', () => {
    const { dir, schedule, cli } = setup('rate-limit');
    const until = Date.now() + 3 * 3600_000;
    schedule({ at: iso(until), source: 'rate-limit', lastError: 'too many certificates' });
    const key = join(dir, 'state/acme/mx/next/ecdsa-p256.key');
    fs.mkdirSync(join(dir, 'state/acme/mx/next'), { recursive: true });
    fs.writeFileSync(
      key,
      generateKeyPairSync('ec', { namedCurve: 'P-256' })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString(),
      { mode: 0o600 },
    );
    const text = cli('status');
    expect(text.stdout, show(text)).toContain(
      `next renewal ${iso(until)} (rate limited until ${iso(until)}: too many certificates); next key's 3 1 1 NOT live yet`,
    );
    const [l] = statusJson(cli('status', '--json'));
    expect(l).toMatchObject({
      next: { source: 'rate-limit', at: iso(until), lastError: 'too many certificates' },
      nextKey: { live: false },
    });
  });

  it('a schedule for another certificate: the lifetime rule, said so', () => {
    const { cert, schedule, cli } = setup('stale');
    schedule({ at: iso(Date.now() + DAY), source: 'ari', serial: '01' });
    const from = new Date(cert.validFrom).getTime();
    const lifetimeAt = iso(from + ((new Date(cert.validTo).getTime() - from) * 2) / 3);
    const text = cli('status');
    expect(text.stdout, show(text)).toContain(
      `next renewal ${lifetimeAt} (lifetime rule; the schedule file is for an earlier certificate)`,
    );
    const [l] = statusJson(cli('status', '--json'));
    expect(l!.next).toEqual({ at: lifetimeAt, source: 'lifetime', staleSchedule: true });
  });
});

describe('tlsa check: a renewal soon and the next key not live', () => {
  const warningOf = (r: ReturnType<typeof runCli>) =>
    (JSON.parse(r.stdout) as { warnings: string[] }).warnings.filter((w) =>
      w.includes('renewal of mx ecdsa-p256'),
    );

  it('warns within 24 h (stderr and the envelope), not for a renewal weeks away', () => {
    const { schedule, cli } = setup('check');
    const at = Date.now() + 3600_000;
    schedule({ at: iso(at), source: 'lifetime' });
    const soon = cli('check', '--timeout', '2', '--json');
    expect(warningOf(soon), show(soon)).toEqual([
      `the renewal of mx ecdsa-p256 is due at ${iso(at)} and its next key's 3 1 1 is not live: it would use a fresh key and the new chain would wait for its records (staged install)`,
    ]);
    expect(soon.stderr).toMatch(/warning: the renewal of mx ecdsa-p256 is due at/);
    schedule({ at: iso(Date.now() + 20 * DAY), source: 'lifetime' });
    const later = cli('check', '--timeout', '2', '--json');
    expect(warningOf(later), show(later)).toEqual([]);
  });
});
