/**
 * `tlsa renew` (built-in ACME) against Debian's pebble on loopback: pebble's VA resolves the
 * service host through a Knot on loopback (mx.example.org A 127.0.0.1) and fetches the HTTP-01
 * token from tlsa's standalone responder on 127.0.0.1. The renewed lineage is a valid chain for
 * the configured key, its 3 1 1 is published by the engine, the account key is kept and reused,
 * the next key's 3 1 1 is published at once and used once live (until then a renewal takes a
 * fresh key and exits 4: its chain waits); HTTP-01 also through a webroot; `--json` validates
 * against docs/json/renew.schema.json.
 * An unreachable directory and a failed challenge exit 3, a profile pebble does not offer exits
 * 2, each with nothing written.
 */
import { X509Certificate, createHash, createPublicKey } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { outputSchema } from '../../src/cli/json-contract.js';
import {
  CLI_PATH,
  type CliResult,
  configYaml,
  REPO_ROOT,
  requireBuiltCli,
  runCli,
  show,
} from '../helpers/cli.js';
import { runAsync, showRun } from '../lab/run.js';
import { opensslSpkiSha256 } from '../helpers/pki.js';
import { freePort, labDescribe, makeTempDir, stopAll } from '../lab/lab.js';
import { PEBBLE_TOOLS, type PebbleServer, startPebble, startVaResolver } from '../lab/pebble.js';

labDescribe(
  'tlsa renew: built-in ACME against pebble (loopback)',
  [...PEBBLE_TOOLS, ['knotd', 'knot'], ['knotc', 'knot']],
  () => {
    let pebble: PebbleServer;
    let httpPort: number;

    beforeAll(async () => {
      requireBuiltCli();
      const dnsServer = await startVaResolver();
      httpPort = await freePort();
      pebble = await startPebble({
        dnsServer,
        httpPort,
        timeoutMs: 60_000,
      });
    }, 120_000);
    afterAll(() => stopAll());

    function setup(
      directory: string,
      standalonePort: number,
      ttl = 3600,
      acmeExtra: string[] = [],
      keyTypes = ['ecdsa-p256'],
    ): { dir: string; renew: (...a: string[]) => CliResult } {
      const dir = makeTempDir('acme-renew');
      const challenge = acmeExtra.some((l) => l.includes('challenge:'))
        ? []
        : [`  challenge: {http01: {standalone: "127.0.0.1:${standalonePort}"}}`];
      writeFileSync(
        join(dir, 'config.yaml'),
        configYaml({
          ttl,
          certificates: keyTypes.map((k) => `lineage: state/acme/mx/${k}`),
          serviceExtra: [
            'records: ["3 1 1"]',
            'acme:',
            `  directory: ${JSON.stringify(directory)}`,
            `  key_types: [${keyTypes.join(', ')}]`,
            ...challenge,
            `  ca_bundle: ${JSON.stringify(pebble.tlsCaPath)}`,
            ...acmeExtra.map((l) => `  ${l}`),
          ],
        }),
      );
      return {
        dir,
        renew: (...a) =>
          runCli(['--config', join(dir, 'config.yaml'), 'renew', ...a], { timeout: 120_000 }),
      };
    }

    it('issues a valid chain for a new ECDSA key, publishes its 3 1 1, reuses the account', async () => {
      const { dir, renew } = setup(pebble.directoryUrl, httpPort);
      const first = renew();
      expect(first.code, show(first)).toBe(0);
      const lineage = join(dir, 'state/acme/mx/ecdsa-p256');
      expect(lstatSync(lineage).isSymbolicLink()).toBe(true);
      const leaf = new X509Certificate(readFileSync(join(lineage, 'cert.pem')));
      const key = readFileSync(join(lineage, 'privkey.pem'), 'utf8');
      expect(statSync(join(lineage, 'privkey.pem')).mode & 0o777).toBe(0o600);
      expect(leaf.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(leaf.publicKey.export({ type: 'spki', format: 'der' })).toEqual(
        createPublicKey(key).export({ type: 'spki', format: 'der' }),
      );
      expect(leaf.subjectAltName).toBe('DNS:mx.example.org');
      // The chain verifies up to pebble's root.
      const chain = readFileSync(join(lineage, 'chain.pem'), 'utf8');
      const root = new X509Certificate(await pebble.root());
      const inter = new X509Certificate(chain);
      expect(leaf.verify(inter.publicKey)).toBe(true);
      expect(inter.verify(root.publicKey)).toBe(true);
      expect(readFileSync(join(lineage, 'fullchain.pem'), 'utf8')).toContain(chain.trim());
      // The engine published the new key's 3 1 1.
      const zone = readFileSync(join(dir, 'zone.db'), 'utf8');
      expect(zone).toContain(opensslSpkiSha256(join(lineage, 'cert.pem')).toLowerCase());
      // One account key per directory URL, 0600, kept.
      const accounts = join(dir, 'state/acme/accounts');
      const [accountDir] = readdirSync(accounts);
      const accountKey = join(accounts, accountDir!, 'account.key');
      expect(statSync(accountKey).mode & 0o777).toBe(0o600);
      const accountPem = readFileSync(accountKey, 'utf8');

      const second = renew();
      expect(second.code, show(second)).toBe(0);
      expect(second.stdout).toMatch(/not due until/);
      expect(readFileSync(join(lineage, 'cert.pem'), 'utf8')).toBe(leaf.toString());

      // The next key exists and is published, but not live yet (TTL 3600): a new key is used,
      // and the new chain waits for its records: exit 4 (wait), said in a line of its own.
      const forced = renew('--force');
      expect(forced.code, show(forced)).toBe(4);
      expect(forced.stdout).toMatch(/the next key's 3 1 1 is not live yet/);
      expect(forced.stdout).toMatch(
        /mx ecdsa-p256: waiting: renewed with a fresh key because the next key's 3 1 1 was not live; the new chain is served once its records are live \(exit 4\)/,
      );
      expect(readFileSync(accountKey, 'utf8')).toBe(accountPem);
      expect(readFileSync(join(lineage, 'cert.pem'), 'utf8')).not.toBe(leaf.toString());
    }, 300_000);

    const spkiHash = (pem: string) =>
      createHash('sha256')
        .update(createPublicKey(pem).export({ type: 'spki', format: 'der' }))
        .digest('hex');

    it('publishes the next key at once and renews with it once its 3 1 1 is live', async () => {
      const { dir, renew } = setup(pebble.directoryUrl, httpPort, 1);
      const nextPath = join(dir, 'state/acme/mx/next/ecdsa-p256.key');
      const first = renew();
      expect(first.code, show(first)).toBe(0);
      expect(first.stdout).toMatch(/renewed with a new key \(no next key yet\)/);
      const next = readFileSync(nextPath, 'utf8');
      expect(statSync(nextPath).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(dir, 'zone.db'), 'utf8')).toContain(spkiHash(next));
      // TTL 1 s and no propagation check: the record is live 2 s after it was published.
      await new Promise((r) => setTimeout(r, 3000));
      const second = renew('--force');
      expect(second.code, show(second)).toBe(0);
      expect(second.stdout).toMatch(/renewed with the next key/);
      const lineage = join(dir, 'state/acme/mx/ecdsa-p256');
      expect(readFileSync(join(lineage, 'privkey.pem'), 'utf8')).toBe(next);
      const newNext = readFileSync(nextPath, 'utf8');
      expect(newNext).not.toBe(next);
      expect(readFileSync(join(dir, 'zone.db'), 'utf8')).toContain(spkiHash(newNext));
      // status: the new next key turns live 2 s after its publication.
      await new Promise((r) => setTimeout(r, 3000));
      const status = runCli(['--config', join(dir, 'config.yaml'), 'status', '--json']);
      expect(status.code, show(status)).toBe(0);
      expect(JSON.parse(status.stdout).acme).toEqual([
        expect.objectContaining({
          keyType: 'ecdsa-p256',
          nextKey: { spkiSha256: spkiHash(newNext), live: true },
          next: expect.objectContaining({ source: 'lifetime' }),
        }),
      ]);
    }, 300_000);

    /** `renew --json`'s envelope, valid against docs/json/renew.schema.json and the zod contract. */
    function renewJson(r: CliResult, code: number) {
      expect(r.code, show(r)).toBe(code);
      const v = JSON.parse(r.stdout);
      const doc = z.fromJSONSchema(
        JSON.parse(readFileSync(join(REPO_ROOT, 'docs/json/renew.schema.json'), 'utf8')),
      );
      for (const schema of [doc, outputSchema('renew')]) {
        const checked = schema.safeParse(v);
        expect(checked.success, `${checked.error?.message}\n${show(r)}`).toBe(true);
      }
      expect(v).toMatchObject({ command: 'renew', exitCode: code, ok: code === 0 });
      return v as { lineages: Record<string, unknown>[]; added: number };
    }

    it('renew --json: per lineage the outcome, the key and why, the expiry and the next renewal; exit 4 when the new chain waits', () => {
      const { renew } = setup(pebble.directoryUrl, httpPort);
      const first = renewJson(renew('--json'), 0);
      expect(first.lineages).toEqual([
        {
          service: 'mx',
          keyType: 'ecdsa-p256',
          lineage: expect.stringMatching(/state\/acme\/mx\/ecdsa-p256$/),
          outcome: 'renewed',
          key: { use: 'fresh', reason: 'no next key' },
          notAfter: expect.any(String),
          next: { at: expect.any(String), source: 'lifetime', nextPollAt: expect.any(String) },
        },
      ]);
      expect(first.added).toBeGreaterThan(0);
      const notDue = renewJson(renew('--json'), 0);
      expect(notDue.lineages[0]).toMatchObject({
        outcome: 'not-due',
        key: null,
        notAfter: first.lineages[0]!.notAfter,
        next: first.lineages[0]!.next,
      });
      const waits = renewJson(renew('--force', '--json'), 4);
      expect(waits.lineages[0]).toMatchObject({
        outcome: 'renewed',
        key: { use: 'fresh', reason: 'next key record not live' },
      });
    }, 300_000);

    it('RSA and ECDSA side by side: one lineage each, both published', () => {
      const { dir, renew } = setup(
        pebble.directoryUrl,
        httpPort,
        3600,
        [],
        ['ecdsa-p384', 'rsa-2048'],
      );
      const r = renew();
      expect(r.code, show(r)).toBe(0);
      const zone = readFileSync(join(dir, 'zone.db'), 'utf8');
      const p384 = new X509Certificate(
        readFileSync(join(dir, 'state/acme/mx/ecdsa-p384/cert.pem')),
      );
      const rsa = new X509Certificate(readFileSync(join(dir, 'state/acme/mx/rsa-2048/cert.pem')));
      expect(p384.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
      expect(rsa.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
      for (const k of ['ecdsa-p384', 'rsa-2048'])
        expect(zone).toContain(
          opensslSpkiSha256(join(dir, `state/acme/mx/${k}/cert.pem`)).toLowerCase(),
        );
    }, 120_000);

    it('HTTP-01 through a webroot: the token file exists only during the order', async () => {
      const webroot = makeTempDir('acme-webroot');
      const seen: string[] = [];
      // The web server of the host: serves the webroot on the port pebble's VA connects to.
      const server = createServer((req, res) => {
        const file = join(webroot, (req.url ?? '/').split('?')[0]!);
        seen.push(req.url ?? '');
        if (!existsSync(file)) return void res.writeHead(404).end();
        res.writeHead(200).end(readFileSync(file));
      });
      await new Promise<void>((r) => server.listen(httpPort, '127.0.0.1', () => r()));
      try {
        const { dir } = setup(pebble.directoryUrl, 0, 3600, [
          `challenge: {http01: {webroot: ${JSON.stringify(webroot)}}}`,
        ]);
        // Run without blocking this process: its event loop serves the webroot meanwhile.
        const r = await runAsync(
          [process.execPath, CLI_PATH, '--config', join(dir, 'config.yaml'), 'renew'],
          {
            timeoutMs: 120_000,
          },
        );
        expect(r.code, showRun(r)).toBe(0);
        expect(existsSync(join(dir, 'state/acme/mx/ecdsa-p256/fullchain.pem'))).toBe(true);
        expect(seen.some((u) => u.startsWith('/.well-known/acme-challenge/'))).toBe(true);
        expect(readdirSync(join(webroot, '.well-known/acme-challenge'))).toEqual([]);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    }, 120_000);

    it('a profile the directory does not offer: exit 2 naming what it offers, nothing written', () => {
      const { dir, renew } = setup(pebble.directoryUrl, httpPort, 3600, ['profile: tlsserver']);
      const r = renew();
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(/offers no profiles; remove "profile: tlsserver"/);
      expect(existsSync(join(dir, 'state/acme'))).toBe(false);
    }, 120_000);

    it('an unreachable directory: exit 3, nothing written', async () => {
      const closed = await freePort();
      const { dir, renew } = setup(`https://127.0.0.1:${closed}/dir`, httpPort);
      const r = renew();
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toMatch(/ACME directory .* cannot be read: ECONNREFUSED/);
      expect(existsSync(join(dir, 'state/acme'))).toBe(false);
      expect(existsSync(join(dir, 'zone.db'))).toBe(false);
    }, 120_000);

    it('a failed HTTP-01 challenge: exit 3, no lineage, nothing published', async () => {
      // tlsa answers on another port than the one pebble's VA connects to.
      const { dir, renew } = setup(pebble.directoryUrl, await freePort());
      const r = renew();
      expect(r.code, show(r)).toBe(3);
      expect(r.stderr).toMatch(/http-01 challenge for mx\.example\.org failed/);
      expect(existsSync(join(dir, 'state/acme/mx'))).toBe(false);
      expect(existsSync(join(dir, 'zone.db'))).toBe(false);
    }, 120_000);
  },
);
