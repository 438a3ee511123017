/**
 * One service, one host, two protocols: Postfix's STARTTLS listener and its implicit-TLS
 * (smtpd_tls_wrappermode=yes) listener, both on non-standard loopback ports, configured as
 *
 *   protocol: smtp                                   # default for the ports without their own
 *   ports: [STARTTLS_PORT, {port: WRAPPER_PORT, protocol: smtps}]
 *
 * tlsa publishes through the zonefile provider into an $INCLUDEd fragment of a zone Knot signs;
 * unbound validates (trust anchor: the zone's DS). Then:
 *  - the records of both ports come back from unbound with the AD bit (kdig);
 *  - `tlsa check --config F` probes each port as configured and passes for both;
 *  - `tlsa check --config F HOST:PORT` probes a port the configuration lists with its configured
 *    protocol (the STARTTLS port is non-standard: by port alone it would be implicit TLS);
 *  - after a renewal with a new key, the live probe before retiring the old key's record uses
 *    each port's protocol: it sees the old chain still served on the implicit-TLS port (record
 *    kept, that port named), and once both listeners serve the new chain the record goes.
 *
 * Needs root (Postfix master) and the Debian packages knot knot-dnsutils unbound postfix.
 */
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH, requireBuiltCli, stackLines } from '../helpers/cli.js';
import {
  makeCa,
  makeLeaf,
  opensslSpkiSha256,
  type CaHandle,
  type LeafHandle,
} from '../helpers/pki.js';
import { query, rdataOf } from '../lab/dig.js';
import type { KnotServer } from '../lab/knot.js';
import { startFragmentZone } from '../lab/fragment-zone.js';
import { labDescribe, makeTempDir, stopAll } from '../lab/lab.js';
import { POSTFIX_TOOLS, startPostfix, type PostfixServer } from '../lab/postfix.js';
import type { UnboundServer } from '../lab/unbound.js';

const ZONE = 'multi.test.';
const HOST = 'mx.multi.test';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tlsa(args: string[], timeoutMs = 60_000): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.TLSA_CONFIG;
  delete env.NODE_OPTIONS;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      env,
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
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: Run): string =>
  `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

interface ReportJson {
  host: string;
  port: number;
  protocol: string;
  owner: string;
  ok: boolean;
  dnssec: { tlsa: string; address: string };
  probes: {
    address: string;
    keyType: string;
    ok: boolean;
    notServed?: boolean;
    matched?: string;
    problems: string[];
  }[];
  failures: string[];
}

function reports(r: Run): ReportJson[] {
  try {
    const parsed = JSON.parse(r.stdout) as {
      command: string;
      exitCode: number;
      reports: ReportJson[];
    };
    expect(parsed, show(r)).toMatchObject({ command: 'check', exitCode: r.code });
    return parsed.reports;
  } catch {
    throw new Error(`no JSON from tlsa check\n${show(r)}`);
  }
}

/** What each report's probes concluded, compactly: [port, protocol, ok, "keyType:verdict …"]. */
const verdicts = (rs: ReportJson[]): [number, string, boolean, string][] =>
  rs.map((x) => [
    x.port,
    x.protocol,
    x.ok,
    x.probes
      .map((p) => `${p.keyType}:${p.notServed ? 'not served' : p.ok ? 'verified' : 'FAILED'}`)
      .join(' '),
  ]);

labDescribe(
  'one service, STARTTLS and implicit TLS on one host: publish to Knot, check through unbound, probe before retiring',
  [
    ['knotd', 'knot'],
    ['knotc', 'knot'],
    ['keymgr', 'knot'],
    ['kdig', 'knot-dnsutils'],
    ['unbound', 'unbound'],
    ['unbound-control', 'unbound'],
    ...POSTFIX_TOOLS,
  ],
  () => {
    let dir: string;
    let pf: PostfixServer;
    let knot: KnotServer;
    let unbound: UnboundServer;
    let cfgPath: string;
    let servedChain: string;
    let ca: CaHandle;
    let oldLeaf: LeafHandle;
    let newLeaf: LeafHandle;
    const owner = (port: number): string => `_${port}._tcp.${HOST}.`;
    const rd = (leaf: { certPath: string }): string => `3 1 1 ${opensslSpkiSha256(leaf.certPath)}`;

    /** TLSA RDATA at `owner` through unbound, only when validated (AD). */
    async function validatedTlsa(o: string): Promise<string[]> {
      await unbound.flush(ZONE);
      const r = await query({
        server: unbound.host,
        port: unbound.port,
        name: o,
        type: 'TLSA',
        dnssec: true,
      });
      if (!r.flags.includes('ad')) return [`not validated: ${r.rcode} ${r.flags.join(' ')}`];
      return rdataOf(r, 'TLSA')
        .map((x) => x.toLowerCase())
        .sort();
    }

    /** One combined PEM (key, leaf, issuer): one path for smtpd_tls_chain_files. */
    function combined(name: string, leaf: LeafHandle): string {
      const p = join(dir, `${name}-combined.pem`);
      writeFileSync(p, `${leaf.keyPem.trim()}\n${leaf.certPem.trim()}\n${ca.certPem.trim()}\n`, {
        mode: 0o600,
      });
      return p;
    }

    /** Point one listener of master.cf at a chain (an -o override), and reload Postfix. */
    async function serveOn(port: number, chainFile: string): Promise<void> {
      const file = join(pf.configDir, 'master.cf');
      const lines = readFileSync(file, 'utf8').split('\n');
      const at = lines.findIndex((l) => l.startsWith(`${pf.host}:${port} `));
      if (at < 0) throw new Error(`no listener for port ${port} in ${file}`);
      let end = at + 1;
      while (end < lines.length && /^\s+-o /.test(lines[end]!)) end++;
      const kept = lines.slice(at + 1, end).filter((l) => !l.includes('smtpd_tls_chain_files='));
      lines.splice(at + 1, end - at - 1, ...kept, `  -o smtpd_tls_chain_files=${chainFile}`);
      writeFileSync(file, lines.join('\n'));
      await pf.reload();
    }

    beforeAll(async () => {
      requireBuiltCli();
      dir = makeTempDir('ports-lab');
      chmodSync(dir, 0o755); // the Postfix harness's unprivileged processes may look here
      const root = makeCa(dir, { name: 'Ports Lab Root', key: 'p256' });
      ca = makeCa(dir, { name: 'Ports Lab E1', key: 'p256', issuer: root });
      oldLeaf = makeLeaf(dir, { ca, cn: HOST, key: 'p256' });
      newLeaf = makeLeaf(dir, { ca, cn: HOST, key: 'p256' });
      // The chain tlsa reads (rewritten at the renewal); Postfix serves its own copy.
      servedChain = join(dir, 'fullchain.pem');
      writeFileSync(servedChain, `${oldLeaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
      const postfixChain = join(dir, 'postfix-start-fullchain.pem');
      writeFileSync(postfixChain, `${oldLeaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
      pf = await startPostfix({
        hostname: HOST,
        chains: [{ keyPath: oldLeaf.keyPath, fullchainPath: postfixChain }],
      });
      await serveOn(pf.smtpPort, combined('old', oldLeaf));
      await serveOn(pf.smtpsPort, combined('old', oldLeaf));

      let fragment: string;
      ({ fragment, knot, unbound } = await startFragmentZone(dir, {
        zone: ZONE,
        file: 'multi.test.zone',
        nsLabel: 'ns1',
        minimum: 60,
        header: '; TLSA records: tlsa writes the lines marked tlsa:managed',
        dnssec: true,
        unbound: { cacheMaxTtl: 5, cacheMaxNegativeTtl: 2 },
      }));

      const s = JSON.stringify;
      cfgPath = join(dir, 'tlsa.yaml');
      writeFileSync(
        cfgPath,
        [
          `state_dir: ${s(join(dir, 'state'))}`,
          'ttl: 2',
          'verify:',
          `  resolver: "127.0.0.1:${unbound.port}"`,
          `  authoritative_port: ${knot.port}`,
          '  timeout_s: 5',
          'providers:',
          '  knot:',
          '    type: zonefile',
          `    path: ${s(fragment)}`,
          `    reload: ${s(knot.reloadCommand(ZONE))}`,
          'services:',
          '  mail:',
          `    host: ${HOST}`,
          '    protocol: smtp',
          `    ports: [${pf.smtpPort}, {port: ${pf.smtpsPort}, protocol: smtps}]`,
          '    provider: knot',
          '    grace_s: 0',
          '    issuers: none',
          '    certificates:',
          `      - fullchain: ${s(servedChain)}`,
          '',
        ].join('\n'),
      );
    }, 120_000);

    afterAll(async () => {
      await pf?.stop();
      await stopAll();
    }, 60_000);

    it('publish: the records of both ports are on Knot and validated by unbound', async () => {
      const r = await tlsa(['--config', cfgPath, 'publish']);
      expect(stackLines(r.stdout + r.stderr)).toEqual([]);
      expect(r.code, show(r)).toBe(0);
      const want = [rd(oldLeaf), `2 1 1 ${opensslSpkiSha256(ca.certPath)}`].sort();
      expect(await validatedTlsa(owner(pf.smtpPort))).toEqual(want);
      expect(await validatedTlsa(owner(pf.smtpsPort))).toEqual(want);
    }, 120_000);

    it('check --config F: each port probed as configured (STARTTLS, implicit TLS), both verified', async () => {
      const r = await tlsa(['--config', cfgPath, 'check', '--json']);
      expect(stackLines(r.stdout + r.stderr)).toEqual([]);
      const rs = reports(r);
      expect(verdicts(rs), show(r)).toEqual([
        [pf.smtpPort, 'smtp', true, 'rsa:not served ecdsa:verified'],
        [pf.smtpsPort, 'smtps', true, 'rsa:not served ecdsa:verified'],
      ]);
      for (const x of rs)
        expect(x.dnssec).toEqual({
          tlsa: 'secure',
          address: 'secure',
          message: expect.any(String) as unknown,
        });
      expect(r.code, show(r)).toBe(0);
    }, 120_000);

    it('check --config F HOST:PORT: a port the configuration lists is probed with its configured protocol', async () => {
      const starttls = await tlsa([
        '--config',
        cfgPath,
        'check',
        '--json',
        `${HOST}:${pf.smtpPort}`,
      ]);
      expect(verdicts(reports(starttls)), show(starttls)).toEqual([
        [pf.smtpPort, 'smtp', true, 'rsa:not served ecdsa:verified'],
      ]);
      expect(starttls.code, show(starttls)).toBe(0);
      const wrapper = await tlsa(['--config', cfgPath, 'check', `${HOST}:${pf.smtpsPort}`]);
      expect(wrapper.stdout, show(wrapper)).toMatch(
        new RegExp(`^OK {3}${HOST.replace(/\./g, '\\.')}:${pf.smtpsPort} \\(smtps\\) `, 'm'),
      );
      expect(wrapper.code, show(wrapper)).toBe(0);
      // --protocol still overrides the configuration (and here is wrong: a failure, exit 1).
      const forced = await tlsa([
        '--config',
        cfgPath,
        'check',
        '--json',
        '--protocol',
        'tls',
        `${HOST}:${pf.smtpPort}`,
      ]);
      expect(
        reports(forced).map((x) => [x.protocol, x.ok]),
        show(forced),
      ).toEqual([['tls', false]]);
      expect(forced.code, show(forced)).toBe(1);
    }, 120_000);

    it("renewal with a new key: the probe before retiring uses each port's protocol", async () => {
      writeFileSync(servedChain, `${newLeaf.certPem.trim()}\n${ca.certPem.trim()}\n`);
      const pub = await tlsa(['--config', cfgPath, 'publish']);
      expect(pub.code, show(pub)).toBe(0);
      for (const port of [pf.smtpPort, pf.smtpsPort])
        expect(await validatedTlsa(owner(port))).toContain(rd(newLeaf));

      // The STARTTLS listener serves the new chain, the implicit-TLS one still the old: the old
      // key's records stay, and the reason is the chain seen on the implicit-TLS port (a probe of
      // the wrong kind there would fail instead: "could not check every address").
      await serveOn(pf.smtpPort, combined('new', newLeaf));
      const held = await tlsa(['--config', cfgPath, 'retire', '--json']);
      expect(held.code, show(held)).toBe(0);
      const heldJson = JSON.parse(held.stdout) as {
        held: { owner: string; rdata: string; why: string }[];
        retired: unknown[];
      };
      expect(heldJson.retired, show(held)).toEqual([]);
      expect(heldJson.held.map((h) => [h.owner, h.rdata.toLowerCase()]).sort(), show(held)).toEqual(
        [owner(pf.smtpPort), owner(pf.smtpsPort)].sort().map((o) => [o, rd(oldLeaf)]),
      );
      for (const h of heldJson.held)
        expect(h.why).toBe(
          `127.0.0.1 port ${pf.smtpsPort} still presents a chain it matches (ecdsa)`,
        );

      // Both listeners serve the new chain: both probes succeed, the old records go.
      await serveOn(pf.smtpsPort, combined('new', newLeaf));
      const gone = await tlsa(['--config', cfgPath, 'retire', '--json']);
      expect(gone.code, show(gone)).toBe(0);
      const goneJson = JSON.parse(gone.stdout) as {
        held: unknown[];
        retired: { owner: string; rdata: string }[];
      };
      expect(goneJson.held, show(gone)).toEqual([]);
      expect(goneJson.retired.map((x) => x.owner).sort(), show(gone)).toEqual(
        [owner(pf.smtpPort), owner(pf.smtpsPort)].sort(),
      );
      const want = [rd(newLeaf), `2 1 1 ${opensslSpkiSha256(ca.certPath)}`].sort();
      expect(await validatedTlsa(owner(pf.smtpPort))).toEqual(want);
      expect(await validatedTlsa(owner(pf.smtpsPort))).toEqual(want);

      const check = await tlsa(['--config', cfgPath, 'check', '--json']);
      expect(verdicts(reports(check)), show(check)).toEqual([
        [pf.smtpPort, 'smtp', true, 'rsa:not served ecdsa:verified'],
        [pf.smtpsPort, 'smtps', true, 'rsa:not served ecdsa:verified'],
      ]);
      expect(check.code, show(check)).toBe(0);
    }, 180_000);
  },
);
